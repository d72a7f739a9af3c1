"""Step 7c, spans: which sentences of a snippet a citation points at, and which snippet to cite.

The one decision: a citation is narrowed to the sentence(s) of its snippet that carry the claim's
words; between snippets that support a claim equally, the one whose cited sentence says more of what
was asked wins; an author or date the model read in a passage label is cited where the passage text
states it, never at the label.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from embeddings.paragraphs import split_sentences
from qa.citation.words import content_words
from qa.prompting.snippets import Snippet


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


def topic_start(snippet: Snippet, start: int) -> int:
    """Where the cited span's topic is set: the start of the passage sentence before ``start``, if
    any ("Super Bowl 50 was a game. The Broncos won." answers "Who won Super Bowl 50?")."""
    passage = snippet.passage
    before = [passage.start + s for s, e in split_sentences(passage.text) if passage.start + e <= start]
    return before[-1] if before else start



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


def most_on_topic(chosen: int, rivals: list[int], claim_words: set[str], by_n: dict[int, Snippet],
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

