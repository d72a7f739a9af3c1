"""Step 7, cite: turn the model's ``[n]`` markers into verified citations with exact offsets.

The one decision: a marker is trusted only if the sentence it ends is *supported* by the snippet it
names: most of the sentence's content words that are not already in the question (the new
information: names, numbers, terms; see `added_words`) occur in that snippet, and every number does;
and the sentence it cites (or the one before it, which sets its topic) must mention something the
question asks about (one content word other than a year, or a meaning close to the question's by
embedding; for "who wrote...", the document's author will do, cited at the passage sentence that
names them when the model read the name in the passage label; for "when was it published?", its
date, where the passage prints it), so a name merely found in a passage is not passed off as the
answer; nor is one from a document that never names a year the question names ("at the 2024
forum" answered from an article of 2019). A marker that points past the snippets or at one that
does not support its sentence is moved to the snippet that does, or removed, and so is one whose
snippet supports the sentence no better than another that speaks clearly more of what was asked; an
uncited sentence gets the snippet that supports it; a sentence that adds nothing to the question, or
that no snippet supports, is dropped; an answer left with no supported sentence becomes a refusal.
Inside the snippet, the citation is narrowed to the sentence(s) carrying those words.

    "Pierre Vimont was the envoy [3]." with Vimont only in snippet 1
        -> text "Pierre Vimont was the envoy [1].", Citation(n=1, ...span of the Vimont sentence)
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from embeddings.paragraphs import split_sentences
from qa.prompt import Snippet, looks_like_injection
from qa.types import REFUSAL, Answer, Citation

SUPPORT = 0.6  # share of a sentence's new content words its snippet must contain
# A cited span this close to the question (embedding cosine) is on topic without sharing a word with it:
# "Which peace accords did Paris hope to put into practice...?" and "...the implementation of the Minsk
# agreements to halt war in the Donbass" (0.62). The names the model took from sources about something
# else, in answer to unanswerable seed questions, came from sentences at 0.32 and 0.38.
CLOSE_IN_MEANING = 0.5
_MARKER = re.compile(r"\[\s*(?:passages?|source|doc(?:ument)?)?\s*(\d{1,3}(?:\s*(?:,|;|and|-|–)\s*\d{1,3})*)\s*\]", re.I)
_WORD = re.compile(r"[^\W_]+(?:[.'’][^\W_]+)*")
_REFUSAL_PATTERNS = re.compile(
    r"cannot find the answer|can ?not find (?:the|this|that|any)|(?:do|does|did) not (?:contain|mention|provide|say|specify|state|include)"
    r"|not (?:mentioned|stated|specified|provided|found|available) in|no (?:information|mention)|unable to (?:find|answer)"
    r"|not possible to (?:determine|answer)|i don'?t know|there is no answer",
    re.I,
)
STOPWORDS = frozenset(
    "a an the and or but if then than that this these those there here of to in on at by for with from as into "
    "about over under after before during between against through is are was were be been being am do does did "
    "has have had having it its it's he she they them their his her him we you your our i me my who whom whose "
    "which what when where why how not no nor so too very can could would should will shall may might must also "
    "just only any all each both either neither more most other such own same some one ones s t said says say "
    "according passage passages document documents text article answer".split()
)


@dataclass(frozen=True)
class Verified:
    text: str  # the answer shown to the user, with renumbered, verified markers
    citations: tuple[Citation, ...]
    refused: bool
    notes: tuple[str, ...]  # what verification changed, for logs and the evaluator


@dataclass(frozen=True)
class Claim:
    text: str  # one sentence of the answer, markers removed
    markers: tuple[int, ...]  # the numbers the model put on it


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def content_words(text: str) -> set[str]:
    """Stemmed, lower-cased content words; numbers kept whole.

    >>> sorted(content_words("The U.S. withdrew from 2 treaties in 2019."))
    ['2', '2019', 'treati', 'us', 'withdrew']
    """
    return {w if any(c.isdigit() for c in w) else _stemmer().stemWord(w) for w in surface_words(text)}


def surface_words(text: str) -> set[str]:
    """The words `content_words` keeps, before stemming.

    >>> sorted(surface_words("Randomized algorithms use random bits."))
    ['algorithms', 'bits', 'random', 'randomized', 'use']
    """
    text = unicodedata.normalize("NFKC", text).replace("’", "'").lower()
    words = [w.strip("'") for w in _WORD.findall(text)]
    words = [w.removesuffix("'s").replace(".", "") for w in words]
    return {_NUMBER_WORDS.get(w, w) for w in words if len(w) > 1 and w not in STOPWORDS or w.isdigit()}


_NUMBER_WORDS = dict(zip(
    "one two three four five six seven eight nine ten eleven twelve dozen fifteen twenty thirty fifty hundred".split(),
    "1 2 3 4 5 6 7 8 9 10 11 12 12 15 20 30 50 100".split(),
))


def _numbers(words: set[str]) -> set[str]:
    return {w for w in words if any(c.isdigit() for c in w)}


_YEAR = re.compile(r"(?<![\d.,])(1[0-9]{3}|20[0-9]{2})(?![\d.,]\d)")


def years(text: str) -> set[str]:
    """The years a text names (1000-2099).

    >>> sorted(years("At the 2024 forum, 1,500 delegates (up from 2019's 900) met for 2.5 days"))
    ['2019', '2024']
    """
    return set(_YEAR.findall(text))


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


def _informative_words(text: str) -> set[str]:
    """Content words of a snippet, leaving out sentences that address the model (injections)."""
    return {w for s, e in split_sentences(text) if not looks_like_injection(text[s:e]) for w in content_words(text[s:e])}


def support(claim_words: set[str], snippet_words: set[str]) -> float:
    """Share of the claim's words found in the snippet; 0 when a number of the claim is missing."""
    if not claim_words:
        return 0.0
    if not _numbers(claim_words) <= snippet_words:
        return 0.0
    return len(claim_words & snippet_words) / len(claim_words)


def citation_span(claim_words: set[str], snippet: Snippet, document: str, asked: set[str]) -> tuple[int, int]:
    """The sentence(s) of the snippet that carry the claim's words, as document offsets; between
    sentences carrying as many, the one sharing more of the question's words (``asked``)."""
    sentences = [(snippet.start + s, snippet.start + e) for s, e in split_sentences(snippet.text)]
    if len(sentences) <= 1:
        return snippet.start, snippet.end

    def rank(span: tuple[int, int]) -> tuple[int, int]:
        words = content_words(document[span[0] : span[1]])
        return -len(claim_words & words), -len(asked & words)

    scored = sorted(sentences, key=rank)
    start, end = scored[0]
    covered = claim_words & content_words(document[start:end])
    for s, e in scored[1:]:
        extra = (claim_words & content_words(document[s:e])) - covered
        if len(extra) >= 2 or (extra and not covered):
            start, end = min(start, s), max(end, e)
            covered |= extra
    return start, end


def _topic_start(snippet: Snippet, start: int) -> int:
    """Where the cited span's topic is set: the start of the passage sentence before ``start``, if
    any ("Super Bowl 50 was a game. The Broncos won." answers "Who won Super Bowl 50?")."""
    passage = snippet.passage
    before = [passage.start + s for s, e in split_sentences(passage.text) if passage.start + e <= start]
    return before[-1] if before else start


_CHOICE = re.compile(r"\w\s+or\s+\w", re.I)


def added_words(claim: str, question: str) -> set[str]:
    """What a sentence of the answer adds to the question: its content words the question lacks.

    A claim made only of the question's words can still answer it in two ways, which count: a word
    the question has only in another form ("randomized algorithms" for "algorithms that use random
    bits"), and one side of a choice ("A or B?"). Echoing the question word for word adds nothing.

    >>> added_words("Randomized algorithms", "What are algorithms that use random bits called?")
    {'random'}
    >>> added_words("The envoy", "Who was the envoy?")
    set()
    >>> sorted(added_words("The Ethiopian Empire", "Which is older, the British Empire or the Ethiopian Empire?"))
    ['empir', 'ethiopian']
    """
    new = content_words(claim) - content_words(question)
    if new:
        return new
    if _CHOICE.search(question):
        return content_words(claim)
    return content_words(" ".join(surface_words(claim) - surface_words(question)))


_AUTHORSHIP = re.compile(r"\b(?:wrote|write|writes|written|writer|authors?|authored|byline)\b", re.I)


def names_the_author(claim_words: set[str], snippet: Snippet, question: str) -> bool:
    """True when the question asks who wrote something and the claim is the cited document's author.

    Such an answer is on topic though its byline ("Rym Momtaz") shares no word with the question
    ("Who wrote the 2024 article?"): the author is part of every passage's label the model sees.

    >>> from types import SimpleNamespace as NS
    >>> byline = NS(passage=NS(author="Rym Momtaz"))
    >>> names_the_author({"rym", "momtaz"}, byline, "Who wrote the 2024 article?")
    True
    >>> names_the_author({"rym", "momtaz"}, byline, "Who leads NATO?")
    False
    """
    author = content_words(snippet.passage.author or "")
    return bool(author and claim_words and claim_words <= author and _AUTHORSHIP.search(question))


_PUBLICATION = re.compile(r"\b(?:published|publication|dated|posted|released|appeared|written)\b", re.I)


def names_the_date(claim_words: set[str], snippet: Snippet, question: str) -> bool:
    """True when the question asks when something was published and the claim is the cited
    document's date, as its label shows it.

    >>> from types import SimpleNamespace as NS
    >>> dated = NS(passage=NS(date="February 02, 2024"))
    >>> names_the_date({"februari", "02", "2024"}, dated, "When was the piece published?")
    True
    >>> names_the_date({"februari", "02", "2024"}, dated, "When did the war start?")
    False
    """
    date = content_words(snippet.passage.date or "")
    return bool(date and claim_words and claim_words <= date and _PUBLICATION.search(question))


def label_sentence(claim_words: set[str], snippets: Sequence[Snippet], question: str) -> tuple[Snippet, tuple[int, int]] | None:
    """For "who wrote..." or "when was... published", the snippet whose document's author or date
    the claim is, and the span (document offsets) in its passage that states it: the first sentence
    naming the author, or the date as printed; None when there is none.

    The model sees each document's author and date in the passage label ("«Title» (by Ann Lee,
    February 02, 2024)"), so it may answer with words that the snippet's own text lacks; the
    citation then points at the passage text that states them ("Our Fellow, Ann Lee, has
    published...", a dateline), never at the label.
    """
    for snippet in snippets:
        passage = snippet.passage
        if names_the_author(claim_words, snippet, question):
            for s, e in split_sentences(passage.text):
                if claim_words <= content_words(passage.text[s:e]):
                    return snippet, (passage.start + s, passage.start + e)
        if names_the_date(claim_words, snippet, question) and passage.date in passage.text:
            start = passage.start + passage.text.index(passage.date)
            return snippet, (start, start + len(passage.date))
    return None


ON_TOPIC = 2  # question words another snippet must mention beyond the chosen one's for the marker to move


def _most_on_topic(chosen: int, rivals: list[int], claim_words: set[str], by_n: dict[int, Snippet],
                   documents: dict[str, str], asked: set[str]) -> tuple[int, tuple[int, int]]:
    """The snippet to cite among ``rivals`` (those supporting the claim as well as ``chosen`` does)
    and its cited span: ``chosen``, unless another one's cited sentence mentions at least
    ``ON_TOPIC`` more of the question's words.

    The claim's words alone cannot tell a photo caption "Putin and Macron, 2017." from the sentence
    "Macron was first elected in 2017" when the answer is "2017"; the question's words can.
    """
    spans = {n: citation_span(claim_words, by_n[n], documents[by_n[n].passage.doc], asked)
             for n in (rivals if asked else [chosen])}
    held = {n: len(asked & content_words(documents[by_n[n].passage.doc][start:end]))
            for n, (start, end) in spans.items()}
    best = max(held, key=lambda n: (held[n], -n))
    if held[best] >= held[chosen] + ON_TOPIC:
        return best, spans[best]
    return chosen, spans[chosen]


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
    asked = content_words(question)
    asked_years = years(question)
    # What the cited sentence must mention: a year alone does not make it about what was asked. "The
    # 2024 article" names a document, whose dateline prints the year; the year rule below checks it.
    topic = asked - asked_years or asked
    by_n = {s.n: s for s in snippets}
    snippet_words = {s.n: _informative_words(s.text) for s in snippets}
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
            on_topic, (start, end) = _most_on_topic(chosen, [n for n in scores if scores[n] >= scores[chosen]], new,
                                                    by_n, documents, asked)
        if on_topic != chosen:
            notes.append(f"cited [{on_topic}] instead of [{chosen}], which says less of what was asked, "
                         f"for: {claim.text[:60]}")
        snippet = by_n[on_topic]
        document = documents[snippet.passage.doc]
        topic_start = _topic_start(snippet, start)
        if (topic and not topic & content_words(document[topic_start:end])
                and not names_the_author(new, snippet, question) and not names_the_date(new, snippet, question)):
            close = closeness(snippet, topic_start, end) if closeness else None
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
        body = claim.text.rstrip()
        tail = body[-1] if body and body[-1] in ".!?" else ""
        parts.append(f"{body[:len(body) - len(tail)].rstrip()} [{numbering[n]}]{tail or '.'}")
    citations = []
    for n, new_n in sorted(numbering.items(), key=lambda item: item[1]):
        snippet = by_n[n]
        start, end = spans[n]
        document = documents[snippet.passage.doc]
        citations.append(Citation(new_n, snippet.passage.doc, snippet.passage.id, start, end, document[start:end],
                                  snippet.passage.start, snippet.passage.end))
    return Verified(" ".join(parts), tuple(citations), False, tuple(notes))
