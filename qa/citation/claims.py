"""Step 7b, claims: the sentences of an answer and the ``[n]`` markers each one carries.

The one decision: a marker belongs to the sentence it ends; markers that open a sentence or stand
alone belong to the sentence before ("Vimont. [2] The..."), and a sentence with no content word is
not a claim of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from embeddings.paragraphs import split_sentences
from qa.citation.words import content_words
from qa.types import Answer

_MARKER = re.compile(r"\[\s*(?:passages?|source|doc(?:ument)?)?\s*(\d{1,3}(?:\s*(?:,|;|and|-|–)\s*\d{1,3})*)\s*\]", re.I)
_CITATION_MARKER = re.compile(r"[^\S\n]*\[\s*\d+(?:\s*[,;–-]\s*\d+)*\s*\]")
_SPACE_BEFORE_PUNCT = re.compile(r"[^\S\n]+(?=[.,;:!?)])")
_REFUSAL_PATTERNS = re.compile(
    r"cannot find the answer|can ?not find (?:the|this|that|any)|(?:do|does|did) not (?:contain|mention|provide|say|specify|state|include)"
    r"|not (?:mentioned|stated|specified|provided|found|available) in|no (?:information|mention)|unable to (?:find|answer)"
    r"|not possible to (?:determine|answer)|i don'?t know|there is no answer",
    re.I,
)


@dataclass(frozen=True)
class Claim:
    text: str  # one sentence of the answer, markers removed
    markers: tuple[int, ...]  # the numbers the model put on it



def is_refusal(text: str) -> bool:
    """True when the answer says the documents do not hold the answer (in its first sentence)."""
    first = split_sentences(text.strip())
    head = text.strip()[first[0][0] : first[0][1]] if first else ""
    return not head or bool(_REFUSAL_PATTERNS.search(head))


def withheld_draft(answer: Answer) -> str:
    """What the model drafted when the citation check turned its answer into a refusal; "" when the
    answer stands or the model itself declined."""
    draft = answer.raw_text.strip()
    return draft if answer.refused and draft and not is_refusal(draft) else ""


def parse_markers(text: str) -> list[tuple[int, int, tuple[int, ...]]]:
    """Citation markers as (start, end, numbers) in ``text``.

    >>> parse_markers("Vimont [1, 3] and Paris [Passage 2].")
    [(7, 13, (1, 3)), (24, 35, (2,))]
    """
    found = []
    for m in _MARKER.finditer(text):
        numbers = tuple(int(n) for n in re.findall(r"\d+", m.group(1)))
        found.append((m.start(), m.end(), numbers))
    return found


def split_claims(text: str) -> list[Claim]:
    """Sentences of an answer with the markers each one carries.

    Markers that open a sentence, or stand alone, belong to the sentence before ("Vimont. [2] The...").
    """
    claims: list[Claim] = []
    for s, e in split_sentences(text):
        sentence = text[s:e]
        lead = re.match(rf"(?:\s*{_MARKER.pattern})+", sentence, re.I)
        if lead and claims:
            leading = tuple(n for _, _, numbers in parse_markers(lead.group()) for n in numbers)
            claims[-1] = Claim(claims[-1].text, claims[-1].markers + leading)
            sentence = sentence[lead.end():]
        markers = tuple(n for _, _, numbers in parse_markers(sentence) for n in numbers)
        bare = " ".join(_MARKER.sub(" ", sentence).split())
        bare = re.sub(r"\s+([.,;:!?])", r"\1", bare)
        if content_words(bare):
            claims.append(Claim(bare, markers))
        elif claims:
            claims[-1] = Claim(claims[-1].text, claims[-1].markers + markers)
    return claims



def strip_citations(text: str) -> str:
    """Remove numeric citation markers and tidy the spaces they leave before punctuation.

    Only bracketed numbers are markers (``[2]``, ``[1, 2]``, ``[1-3]``, ``[1][2]``); ``[note]`` stays.

    >>> strip_citations("Pierre Vimont [1][2], the envoy [3, 4].")
    'Pierre Vimont, the envoy.'
    """
    text = _CITATION_MARKER.sub("", text)
    text = _SPACE_BEFORE_PUNCT.sub("", text)
    return re.sub(r"[^\S\n]{2,}", " ", text).strip()
