"""Step 6b, snippets: choose the most relevant sentences of the retrieved passages and number them.

The one decision: time to first token on a 2-core CPU is dominated by prompt length, so the model
sees a small token budget of *sentences*, not whole passages: the best-scoring sentences of the top
passages (question similarity of their stored sentence vectors, plus the question words they share,
weighted by rarity), grown into contiguous snippets. Each numbered snippet is an exact span of a
document, so ``[n]`` in the answer maps straight back to offsets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from embeddings.paragraphs import Passage, split_sentences
from qa.injection import CONTROL_TOKEN, looks_like_injection
from qa.retrieve import Hit, Retriever


@dataclass(frozen=True)
class Snippet:
    n: int  # the number shown to the model: "[n]"
    hit: Hit  # the retrieved passage this snippet is cut from
    start: int  # offsets into the document (inside the passage)
    end: int
    text: str  # == document[start:end]
    score: float = 0.0  # the best score of a sentence inside (`sentence_scores`); 0.0 where not scored

    @property
    def passage(self) -> Passage:
        return self.hit.passage


SHARED_WEIGHT = 1.0  # weight of the question's words a sentence holds, against its dense cosine
# A sentence scoring within this of the best one is shown even when the budget is spent: the score
# cannot tell such sentences apart (docs/DESIGN.md, step 6).
CLOSE_MARGIN = 0.03
RANK_PENALTY = 0.05  # taken off a sentence's score per place its passage ranks below the first


def sentence_scores(hit: Hit, retriever: Retriever, query: np.ndarray, question: str) -> list[tuple[float, int, int]]:
    """(score, start, end) of each sentence of a hit's passage, start/end in document offsets.

    A sentence scores its stored vector's cosine to the question plus the share of the question's
    words it holds, each word weighted by its rarity as BM25 weighs it, so a sentence that shares a
    rare name beats one that shares "France" (docs/DESIGN.md, step 6). Question words ("which", "did": ``Retriever.question_terms``) are not counted: in a small corpus
    they are rare enough in prose to weigh like names.

    A passage that holds a chat-template control token (``<|im_start|>``) is a forged conversation,
    not prose: it has no sentences to offer, since its injected turn may be split over many lines.
    """
    passage = hit.passage
    if CONTROL_TOKEN.search(passage.text):
        return []
    vectors = retriever.sentence_vectors(passage)  # {(start, end): (dim,) vector}
    asked = set(retriever.question_terms(question))
    total = sum(map(retriever.term_weight, asked)) or 1.0
    scored = []
    for s, e in split_sentences(passage.text):
        if looks_like_injection(passage.text[s:e]):  # passage text is data: instructions are never shown
            continue
        start, end = passage.start + s, passage.start + e
        vector = vectors.get((start, end))
        dense = float(vector @ query) if vector is not None else 0.0
        shared = sum(map(retriever.term_weight, asked & set(retriever.terms(passage.text[s:e])))) / total
        scored.append((dense + SHARED_WEIGHT * shared, start, end))
    return scored


def select_snippets(
    hits: Sequence[Hit],
    retriever: Retriever,
    question: str,
    *,
    budget: int,  # tokens of passage text in the prompt (AnswerSettings.budget)
    max_passages: int,  # passages that may contribute sentences (AnswerSettings.max_passages)
    count_tokens: Callable[[str], int],
    margin: float = CLOSE_MARGIN,  # sentences scoring within this of the best are shown over budget
    anchors: int = 4,  # best sentences the snippets grow from (more for broad answers: qa.shapes)
    per_passage: int = 2,  # of which at most this many from one passage
    prose_only: bool = False,  # leave out headings, captions and bylines (lines that are not sentences)
    follow: bool = False,  # each anchor brings the sentence after it before the next anchor is taken
) -> list[Snippet]:
    """Pick the best sentences under ``budget``, grow each by its neighbours, number the snippets.

    Anchors are the best-scoring sentences (at most ``per_passage`` per passage, ``anchors`` in all). The best one is
    always shown, and so is any within ``margin`` of it, over budget if need be; the others only
    while the budget allows. The best sentence of the retriever's first passage is an anchor too,
    over budget if need be. Each anchor is then extended by the sentence after it and the one
    before it while the budget allows, because the answer often sits right beside the sentence that
    matches the question best. Snippets are numbered best first (by the best sentence inside),
    because small models lean on passage [1].
    """
    query = retriever.query_vector(question)
    # numbered 1..n in the order given (ranks index the list below); may grow by a passage that
    # follows one of them (``follow``)
    hits = [h if h.rank == r else replace(h, rank=r) for r, h in enumerate(hits[:max_passages], start=1)]
    sentences: dict[int, list[tuple[int, int]]] = {}  # rank -> sentence spans in order
    candidates = []  # (score, rank, index of the sentence in its passage)
    for hit in hits:
        scored = sentence_scores(hit, retriever, query, question)
        sentences[hit.rank] = [(start, end) for _, start, end in scored]
        for i, (score, _, _) in enumerate(scored):
            candidates.append((score - RANK_PENALTY * (hit.rank - 1), hit.rank, i))
    candidates.sort(key=lambda c: -c[0])
    chosen: set[tuple[int, int]] = set()
    used = 0

    def cost(rank: int, i: int) -> int:
        start, end = sentences[rank][i]
        return count_tokens(retriever.document_text(hits[rank - 1].doc)[start:end])

    def take(rank: int, i: int, *, over_budget: bool = False) -> bool:
        nonlocal used
        if (rank, i) in chosen or not 0 <= i < len(sentences[rank]):
            return False
        if prose_only and not is_prose(retriever.document_text(hits[rank - 1].doc)[slice(*sentences[rank][i])]):
            return False
        c = cost(rank, i)
        if used + c > budget and not over_budget:
            return False
        chosen.add((rank, i))
        used += c
        return True

    def _after(rank: int, i: int) -> tuple[int, int]:
        """The sentence after sentence ``i`` of passage ``rank``: the first of the next paragraph
        when it is the passage's last (a sentence ending in "said:" leads into the next one)."""
        if i + 1 < len(sentences[rank]):
            return rank, i + 1
        after = retriever.next_passage(hits[rank - 1].passage)
        if after is None:
            return rank, i + 1  # none: take() declines
        known = next((h.rank for h in hits if h.passage.id == after.id), None)
        if known is None:
            known = len(hits) + 1
            hits.append(Hit(known, 0.0, after, 0.0, 0.0, after.start, after.start))
            sentences[known] = [(start, end) for _, start, end in sentence_scores(hits[-1], retriever, query, question)]
        return known, 0

    most, anchors = anchors, []
    for score, rank, i in candidates:
        if len(anchors) == most:
            break
        close = score >= candidates[0][0] - margin  # the score cannot tell it from the best
        if sum(1 for r, _ in anchors if r == rank) < per_passage and take(rank, i, over_budget=close):
            anchors.append((rank, i))
            if follow:  # an explanation or a list goes on in the sentence after the one that matches,
                take(*_after(rank, i), over_budget=len(anchors) == 1)  # for the best one at any cost
    # The retriever's best passage always shows its best sentence: the fusion ranked that passage
    # first on evidence the sentence score does not see (BM25 over the whole passage and its title).
    if not any(rank == 1 for rank, _ in anchors):
        first = next(((rank, i) for _, rank, i in candidates if rank == 1), None)
        if first is not None and take(*first, over_budget=True):
            anchors.append(first)
    for rank, i in anchors:
        take(rank, i + 1)
    for rank, i in anchors:
        take(rank, i - 1)
    best = {(rank, i): score for score, rank, i in candidates}  # a followed passage's sentences score below all
    floor = min(best.values(), default=0.0) - 1.0
    pieces = []  # (best sentence score inside, rank, start, end)
    for rank in {r for r, _ in chosen}:
        document = retriever.document_text(hits[rank - 1].doc)
        spans = sorted(sentences[rank][i] for r, i in chosen if r == rank)
        for start, end in _merge_spans(spans, document):
            inside = [best.get((rank, i), floor) for i, (s, e) in enumerate(sentences[rank]) if start <= s and e <= end]
            pieces.append((max(inside), rank, start, end))
    pieces.sort(key=lambda p: (-p[0], p[1], p[2]))
    snippets: list[Snippet] = []
    for score, rank, start, end in pieces:
        document = retriever.document_text(hits[rank - 1].doc)
        snippets.append(Snippet(len(snippets) + 1, hits[rank - 1], start, end, document[start:end], score))
    return snippets


_PROSE_END = tuple('.!?…"”’)')
PROSE_WORDS = 6  # a shorter line is a heading, caption or byline, not a sentence that says something
# A sentence has its verbs and function words in lower case; a line of names and a date ("Vladimir
# Putin and Emmanuel Macron, 2017.", a photo caption) does not. 2 keeps 7,277 of the 7,280 prose
# sentences of 1,500 SQuAD paragraphs ("Tesla died on 7 January 1943." included) and drops the captions.
PROSE_LOWER = 2
# A line addressed to the web page's reader ("Read the rest of the article here.") says nothing of the
# subject; no sentence of the 1,500 SQuAD paragraphs above matches, one line of the seed articles does.
_TO_THE_READER = re.compile(r"^\W*(?:read|click|tap|subscribe|sign up|download|follow us|share|continue reading)\b"
                            r".{0,60}\b(?:here|below|now|newsletter)\W*$", re.I)


def is_prose(sentence: str) -> bool:
    """True for a sentence that says something: 6+ words, 2+ of them in lower case, ending in a full
    stop, "!", "?" or a quote.

    >>> is_prose("Macron’s Dialogue With Russia: A French Attempt to Fix the Architecture"), is_prose("Talks ended.")
    (False, False)
    >>> is_prose("Vladimir Putin and Emmanuel Macron, 2017."), is_prose("Tesla died on 7 January 1943.")
    (False, True)
    >>> is_prose("Read the rest of the article here."), is_prose("Read in 1990, the treaty said more than that.")
    (False, True)
    """
    words = sentence.split()
    return (len(words) >= PROSE_WORDS and sentence.rstrip().endswith(_PROSE_END)
            and sum(w[:1].islower() for w in words) >= PROSE_LOWER and not _TO_THE_READER.match(sentence))


# A sentence that opens by pointing back ("These two factors have weakened...", "She has published...")
# needs the sentence before it to say what it points at.
# So does one that only says who said the quotation before it ("Macron said, speaking in English, ...").
# "But they have often translated into...": after a conjunction too.
_POINTS_BACK = re.compile(r"^\W*(?:(?i:(?:but|and|yet|so|still|instead|however|moreover|indeed),?\s+)?"
                          r"(?i:these|those|this|that|such|both|it|its|they|their|he|his|she|her)\b"
                          r"|(?:[A-Z][\w’'.-]*\s+){1,3}(?:said|says|told|wrote|added)\b)")
STANDS_ALONE_WORDS = 8  # a shorter sentence leads into what follows ("Four months later, Macron went further.")


def points_back(sentence: str) -> bool:
    """True for a sentence that needs the one before it to say what it is about.

    >>> points_back("They continue to be based on European defense."), points_back("Macron said, in English, this.")
    (True, True)
    >>> points_back("Thereafter, the talks ended."), points_back("In 2019, Macron put forward the idea.")
    (False, False)
    >>> points_back("But they have often translated into distrust."), points_back("But Macron has shifted.")
    (True, False)
    """
    return bool(_POINTS_BACK.match(sentence))


def stands_alone(sentence: str) -> bool:
    """True for a sentence that can be read out of its paragraph, as a summary shows it: it neither
    points back (``points_back``) nor leads into what follows (a colon, a short lead-in), and it
    holds whole quotations (not the middle of one that spans sentences).

    >>> stands_alone("On the one hand, by initiating a renewed dialogue on cyber-security, in particular with Russia.”")
    False
    >>> stands_alone("Four months later, Macron went further."), stands_alone("Macron’s move stood out as a break from containment.")
    (False, True)
    """
    return (not points_back(sentence) and not sentence.rstrip().endswith(":")
            and len(sentence.split()) >= STANDS_ALONE_WORDS
            and sentence.count("“") == sentence.count("”") and sentence.count('"') % 2 == 0)


def _merge_spans(spans: list[tuple[int, int]], document: str) -> list[tuple[int, int]]:
    """Join spans separated only by whitespace into one contiguous span."""
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and not document[merged[-1][1] : start].strip():
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged

