"""Step 7, cite: turn the model's ``[n]`` markers into verified citations with exact offsets.

The one decision: a marker is trusted only if the sentence it ends is *supported* by the snippet it
names (most of the sentence's new content words, and every number, occur in it) and the cited text
is about what was asked (a content word of the question other than a year, a meaning close to the
question's, or the document's author or date for "who wrote" / "when published"); a document that
never names a year the question names cannot answer it. Wrong markers are moved to the snippet that
supports the sentence, unsupported sentences are dropped, and an answer left with no supported
sentence becomes a refusal. docs/DESIGN.md (step 7) gives the cases behind each rule.

    "Pierre Vimont was the envoy [3]." with Vimont only in snippet 1
        -> text "Pierre Vimont was the envoy [1].", Citation(n=1, ...span of the Vimont sentence)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from embeddings.paragraphs import split_sentences
from qa.citation.claims import Claim, is_refusal, split_claims
from qa.citation.spans import label_sentence, most_on_topic, names_the_author, names_the_date, topic_start
from qa.citation.words import added_words, content_words, numbers_in, question_topic, years
from qa.injection import looks_like_injection
from qa.prompting.snippets import Snippet
from qa.types import REFUSAL, Citation

SUPPORT = 0.6  # share of a sentence's new content words its snippet must contain
# A cited span this close to the question (embedding cosine) is on topic without sharing a word with it.
CLOSE_IN_MEANING = 0.5


@dataclass(frozen=True)
class Verified:
    text: str  # the answer shown to the user, with renumbered, verified markers
    citations: tuple[Citation, ...]
    refused: bool
    notes: tuple[str, ...]  # what verification changed, for logs and the evaluator



def informative_words(text: str) -> set[str]:
    """Content words of a snippet, leaving out sentences that address the model (injections)."""
    return {w for s, e in split_sentences(text) if not looks_like_injection(text[s:e]) for w in content_words(text[s:e])}


def support(claim_words: set[str], snippet_words: set[str]) -> float:
    """Share of the claim's words found in the snippet; 0 when a number of the claim is missing."""
    if not claim_words:
        return 0.0
    if not numbers_in(claim_words) <= snippet_words:
        return 0.0
    return len(claim_words & snippet_words) / len(claim_words)



def verify(raw: str, snippets: Sequence[Snippet], question: str, documents: dict[str, str],
           closeness: Callable[[Snippet, int, int], float] | None = None) -> Verified:
    """Check every claim of ``raw`` against the snippets; see the module docstring for the rules.

    ``closeness(snippet, start, end)`` is how close in meaning the text at those document offsets is
    to the question (a cosine of their embeddings): a cited span at least ``CLOSE_IN_MEANING`` close
    is on topic even when it shares no word with the question.
    """
    text = raw.strip()
    if not text or is_refusal(text) or not snippets:
        return Verified(REFUSAL, (), True, ("the model declined",) if text else ("empty answer",))
    asked, asked_years, topic = question_topic(question)
    by_n = {s.n: s for s in snippets}
    snippet_words = {s.n: informative_words(s.text) for s in snippets}
    notes: list[str] = []
    kept: list[tuple[Claim, Snippet, tuple[int, int]]] = []  # claim, supporting snippet, cited span
    for claim in split_claims(text):
        new = added_words(claim.text, question)
        scores = {n: support(new, snippet_words[n]) for n in snippet_words}
        valid = [n for n in claim.markers if n in snippet_words]
        for n in claim.markers:
            if n not in snippet_words:
                notes.append(f"removed [{n}]: there is no passage {n}")
        good = [n for n in valid if scores[n] >= SUPPORT]
        best = max(scores, key=lambda n: (scores[n], -n))
        if not new:
            notes.append(f"dropped a sentence that only repeats the question: {claim.text[:60]}")
            continue
        byline = None  # (snippet, span) of the passage text stating the author or date the claim is
        if good:
            chosen = good[0]
        elif scores[best] >= SUPPORT:
            chosen = best
            notes.append(f"cited [{best}] instead of {list(claim.markers) or 'nothing'} for: {claim.text[:60]}")
        elif byline := label_sentence(new, snippets, question):
            chosen = byline[0].n
            notes.append(f"cited where passage [{chosen}] states its author or date, for: {claim.text[:60]}")
        else:
            notes.append(f"dropped unsupported sentence: {claim.text[:80]}")
            continue
        if byline:
            on_topic, (start, end) = chosen, byline[1]
        else:
            on_topic, (start, end) = most_on_topic(chosen, [n for n in scores if scores[n] >= scores[chosen]], new,
                                                    by_n, documents, asked)
        if on_topic != chosen:
            notes.append(f"cited [{on_topic}] instead of [{chosen}], which says less of what was asked, "
                         f"for: {claim.text[:60]}")
        snippet = by_n[on_topic]
        document = documents[snippet.passage.doc]
        opening = topic_start(snippet, start)
        if (topic and not topic & content_words(document[opening:end])
                and not names_the_author(new, snippet, question) and not names_the_date(new, snippet, question)):
            close = closeness(snippet, opening, end) if closeness else None
            if close is None or close < CLOSE_IN_MEANING:
                notes.append(f"dropped a sentence whose source does not mention what was asked: {claim.text[:60]}")
                continue
            notes.append(f"kept a sentence whose source shares no word with the question but is close to it in "
                         f"meaning ({close:.2f}): {claim.text[:60]}")
        label = f"{snippet.passage.title} {snippet.passage.date or ''}"
        unmentioned = asked_years - years(document) - years(label) if asked_years else set()
        if unmentioned:
            notes.append(f"dropped a sentence whose document never mentions {', '.join(sorted(unmentioned))}, "
                         f"which the question asks about: {claim.text[:60]}")
            continue
        kept.append((claim, snippet, (start, end)))
    if not kept:
        return Verified(REFUSAL, (), True, tuple(notes + ["no sentence of the answer is supported by the passages"]))
    numbering: dict[int, int] = {}
    spans: dict[int, tuple[int, int]] = {}
    parts = []
    for claim, snippet, (start, end) in kept:
        n = snippet.n
        numbering.setdefault(n, len(numbering) + 1)
        if n in spans:
            start, end = min(start, spans[n][0]), max(end, spans[n][1])
        spans[n] = (start, end)
        body = said_once(whole_quantity(claim.text.rstrip(), snippet.text))
        tail = body[-1] if body and body[-1] in ".!?" else ""
        parts.append(f"{body[:len(body) - len(tail)].rstrip()} [{numbering[n]}]{tail or '.'}")
    return Verified(" ".join(parts), numbered_citations(numbering, spans, by_n, documents), False, tuple(notes))


_MAGNITUDE = r"(?:hundreds?|thousands?|millions?|billions?|trillions?|dozens?|percent|per cent)"
_AMOUNT = r"(?:a|an|one|two|three|four|five|six|seven|eight|nine|ten|half a|\d[\d.,]*)"


_REPEATED_ITEM = re.compile(r"(?<![\w-])([^,;.\[\]]*\w[^,;.\[\]]*?)(?:\s*(?:,|;|\band\b)\s*\1(?![\w-]))+", re.I)


def said_once(answer: str) -> str:
    """An item the model repeated in a row said once: the 1.5B model sometimes lists one thing twice.

    >>> said_once("Minsk agreements, Minsk agreements"), said_once("the INF Treaty and the New START Treaty")
    ('Minsk agreements', 'the INF Treaty and the New START Treaty')
    """
    return _REPEATED_ITEM.sub(r"\1", answer)


# what a quantity counts: the words after it, within four, up to a function word or, after the first,
# a verb form in -ing or -ed ("a dozen working groups meeting to...", "a million 155mm rounds for Ukraine")
_FUNCTION = frozenset("for to of by in on at from with that which who and or as since while than per is are was "
                      "were will would has have had".split())


def _counted(source: str, start: int) -> str:
    taken = []
    for m in re.finditer(r"\s+([\w-]+)|(\S)", source[start:]):
        word = m.group(1)
        if (not word or len(taken) == 4 or word.lower() in _FUNCTION
                or (taken and re.search(r"\w(?:ing|ed)$", word, re.I))):
            break
        taken.append(m.group(0))
    return "".join(taken)


def whole_quantity(answer: str, source: str) -> str:
    """A bare magnitude answered for a quantity ("million", "a million") with the amount its source
    gives it and what it counts ("a million 155mm rounds"), which is the answer; any other answer
    unchanged.

    >>> whole_quantity("million.", "The EU will miss its goal of producing a million 155mm rounds for Ukraine.")
    'a million 155mm rounds.'
    >>> whole_quantity("a dozen", "with a dozen working groups meeting to discuss"), whole_quantity("Paris", "")
    ('a dozen working groups', 'Paris')
    """
    word = re.fullmatch(rf"\s*(?:{_AMOUNT}\s+)?({_MAGNITUDE})\s*([.!?]?)\s*", answer, re.I)
    if not word:
        return answer
    found = re.search(rf"\b{_AMOUNT}\s+{re.escape(word.group(1))}\b", source, re.I)
    if not found:
        return answer
    return found.group(0) + _counted(source, found.end()) + word.group(2)


def numbered_citations(numbering: dict[int, int], spans: dict[int, tuple[int, int]], by_n: dict[int, Snippet],
                       documents: dict[str, str]) -> tuple[Citation, ...]:
    """The citations of an answer: for each snippet number the model used (``numbering``: snippet
    -> number shown), its cited span (``spans``, document offsets), in shown order."""
    citations = []
    for n, new_n in sorted(numbering.items(), key=lambda item: item[1]):
        snippet = by_n[n]
        start, end = spans[n]
        document = documents[snippet.passage.doc]
        citations.append(Citation(new_n, snippet.passage.doc, snippet.passage.id, start, end, document[start:end],
                                  snippet.passage.start, snippet.passage.end))
    return tuple(citations)
