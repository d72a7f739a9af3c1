"""Step 6d, broad snippets: what the model reads for summaries and comparisons, and the broad prompt.

The one decision: a summary never feeds a whole document (a 3,000-token article cannot be read in
seconds on 2 cores): it reads the document's most central sentences, chosen from the sentence
vectors the index already holds, spread over the document (maximal marginal relevance) and shown
in document order; a comparison reads the best sentences of each document involved, so that one
document cannot fill the budget alone. Each snippet is still an exact span of its document.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import replace

import numpy as np

from embeddings.paragraphs import Passage, split_sentences
from qa.injection import CONTROL_TOKEN, looks_like_injection
from qa.prompting.messages import build_messages
from qa.prompting.snippets import Snippet, is_prose, points_back, select_snippets, stands_alone
from qa.retrieve import Hit, Retriever

REDUNDANCY = 1.0  # weight of a sentence's likeness to those already chosen (MMR), past RELATED
RELATED = 0.5  # cosine that sentences of one article on one subject reach anyway: only closer counts as repeating


def _readable(retriever: Retriever, keep: Callable[[Passage], bool]) -> Iterator[tuple[int, Passage]]:
    """The passages ``keep`` accepts, with their rows, never one that holds a chat-template control token
    (``<|im_start|>``): a forged conversation, not prose, whose sentences are not offered."""
    for row, passage in enumerate(retriever.passages):
        if keep(passage) and not CONTROL_TOKEN.search(passage.text):
            yield row, passage


def _sentences_of(retriever: Retriever, docs: Collection[str],
                  keep: Callable[[str], object]) -> Iterator[tuple[int, Passage, int, int, str]]:
    """(row, passage, start, end, text) of every prose sentence of ``docs`` that ``keep`` accepts, in
    document order, offsets into the document, never an injected order (``_readable``'s passages)."""
    for row, passage in _readable(retriever, lambda p: p.doc in docs):
        for s, e in split_sentences(passage.text):
            text = passage.text[s:e]
            if is_prose(text) and keep(text) and not looks_like_injection(text):
                yield row, passage, passage.start + s, passage.start + e, text


def _opening_lean(n: int, early: float) -> np.ndarray:
    """``early`` for the first of ``n`` sentences, falling evenly to 0 for the last."""
    return early * np.linspace(1.0, 0.0, n, dtype=np.float32)


def central_sentences(vectors: np.ndarray, *, k: int, query: np.ndarray | None = None, focus: float = 0.0,
                      redundancy: float = REDUNDANCY, related: float = RELATED, early: float = 0.0) -> list[int]:
    """Indices of ``k`` sentences that best stand for the whole: each scores its cosine to the mean
    of all sentences (and, by ``focus``, to ``query``), plus ``early`` times how early it comes (1 for
    the first, 0 for the last), less ``redundancy`` times how much closer than ``related`` it is to a
    sentence already chosen (so a far-off outlier gains nothing from being unlike the others).
    Returned in the order given (document order).

    >>> v = np.array([[1, 0], [0.99, 0.14], [0.6, 0.8], [0, 1]], dtype=np.float32)
    >>> central_sentences(v, k=2)  # one of the two near-duplicates, then the next most central
    [0, 2]
    """
    if not len(vectors) or k <= 0:
        return []
    centre = vectors.mean(axis=0)  # (dim,)
    centre = centre / (np.linalg.norm(centre) or 1.0)
    score = (1 - focus) * (vectors @ centre)
    if query is not None and focus:
        score = score + focus * (vectors @ query)
    if early:
        score = score + _opening_lean(len(vectors), early)
    chosen: list[int] = []
    while len(chosen) < min(k, len(vectors)):
        penalty = np.maximum(0.0, (vectors @ vectors[chosen].T).max(axis=1) - related) if chosen else 0.0
        gain = score - redundancy * penalty
        gain[chosen] = -np.inf
        chosen.append(int(np.argmax(gain)))
    return sorted(chosen)


def central_snippets(retriever: Retriever, docs: Sequence[str], question: str, *, budget: int,
                     count_tokens: Callable[[str], int], section: str | None = None, focus: float = 0.0,
                     count: int | None = None, within: Collection[str] | None = None,
                     early: float = 0.0) -> list[Snippet]:
    """The most central sentences of ``docs`` (or of one ``section``, or of the passages whose ids are
    ``within``) under ``budget`` tokens, in document order, numbered from 1; ``count`` of them when
    the user asked for that many. ``focus`` weighs closeness to ``question`` (the document's title,
    for a summary). Only sentences that read on their own out of their paragraph are candidates
    (``stands_alone``); one that points back ("They continue to be based on...") comes with the
    sentence before it. On the 19 summaries of the seven broad sets: accuracy 0.526 both ways, point
    recall 0.365 -> 0.356, citation precision 0.544 -> 0.561 (docs/DESIGN.md, seventh session).
    ``early`` leans the choice toward the first sentences (`central_sentences`): a section's opening
    paragraphs state what the rest goes on to detail."""
    spans: list[tuple[Hit, int, int]] = []
    vectors = []
    def inside(passage: Passage) -> bool:
        return (passage.doc in docs and (not section or passage.section == section)
                and (within is None or passage.id in within))

    for row, passage in _readable(retriever, inside):
        stored = retriever.sentence_vectors(passage)
        before = None  # the sentence before, in passage offsets
        for s, e in split_sentences(passage.text):
            start, end = passage.start + s, passage.start + e
            text, previous, before = passage.text[s:e], before, (s, e)
            if (start, end) not in stored or not is_prose(text) or looks_like_injection(text):
                continue
            if points_back(text):  # shown with the sentence it points back at, scored as itself
                if previous is None or not is_prose(passage.text[slice(*previous)]):
                    continue
                opening = passage.start + previous[0]
            elif stands_alone(text):
                opening = start
            else:
                continue
            spans.append((Hit(row + 1, 0.0, passage, 0.0, 0.0, opening, end), opening, end))
            vectors.append(stored[(start, end)])
    if not spans:
        return []
    matrix = np.stack(vectors)  # (n_sentences, dim) float32, L2-normalised
    costs = [count_tokens(hit.passage.text[s - hit.passage.start : e - hit.passage.start]) for hit, s, e in spans]
    k = max(1, min(len(spans), count or round(budget / (sum(costs) / len(costs)))))
    query = retriever.query_vector(question) if focus else None
    picked = central_sentences(matrix, k=k, query=query, focus=focus, early=early)
    lean = _opening_lean(len(spans), early)
    used, kept = 0, []
    for i in sorted(picked, key=lambda i: -float(matrix[i] @ matrix.mean(axis=0) + lean[i])):  # most central first
        if used + costs[i] <= budget or not kept:
            kept.append(i)
            used += costs[i]
    order = sorted(kept, key=lambda i: (docs.index(spans[i][0].doc), spans[i][1]))
    snippets = []
    for n, i in enumerate(order, start=1):
        hit, start, end = spans[i]
        snippets.append(Snippet(n, hit, start, end, retriever.document_text(hit.doc)[start:end]))
    return snippets


def kind_snippets(retriever: Retriever, docs: Collection[str], kinds: Sequence[str]) -> list[Snippet]:
    """The sentences of ``docs`` that name one of the ``kinds`` of thing a list asks for ("speech",
    "treaty"), in document order, numbered from 1, each its hit's best unit: a list over a whole
    document ("Which speeches does Momtaz quote?") has its items spread over passages that no single
    search ranks together."""
    said = re.compile(rf"\b(?:{'|'.join(map(re.escape, kinds))})", re.I)
    found: list[Snippet] = []
    for row, passage, start, end, text in _sentences_of(retriever, docs, said.search):
        found.append(Snippet(len(found) + 1, Hit(row + 1, 0.0, passage, 0.0, 0.0, start, end), start, end, text))
    return found


def naming_snippets(retriever: Retriever, docs: Collection[str], question: str,
                    names: Callable[[str], bool]) -> list[Snippet]:
    """Every sentence of ``docs`` that ``names`` accepts, in document order, numbered from 1, scored by
    its cosine to ``question``: what a description of a name across several documents ("What role does
    Trump play in these two texts?") answers from, each document's best (`qa.extractive.best_snippet`),
    wherever in it the name comes up, since a search ranks the passages by the rest of the words too."""
    query = retriever.query_vector(question)
    units: dict[str, dict[tuple[int, int], np.ndarray]] = {}  # each passage's stored vectors, read once
    found: list[Snippet] = []
    for row, passage, start, end, text in _sentences_of(retriever, docs, names):
        if passage.id not in units:
            units[passage.id] = retriever.sentence_vectors(passage)
        score = max((float(v @ query) for (a, b), v in units[passage.id].items() if a <= start and end <= b),
                    default=0.0)
        found.append(Snippet(len(found) + 1, Hit(row + 1, score, passage, score, 0.0, start, end), start, end, text,
                             score))
    return found


def per_document_snippets(retriever: Retriever, docs: Sequence[str], question: str, *, budget: int,
                          count_tokens: Callable[[str], int], passages: int = 3, anchors: int = 3,
                          follow: bool = False) -> tuple[list[Snippet], list[Hit]]:
    """The best sentences of each document in ``docs`` for ``question``, ``budget`` shared evenly,
    numbered document by document; and the hits they came from. Ranking the whole corpus first would
    let the document that matches the question's words best fill the budget alone."""
    snippets: list[Snippet] = []
    used: list[Hit] = []
    for doc in docs:
        hits = retriever.search(question, k=passages, within={doc})  # ranked as in the whole corpus
        chosen = select_snippets(hits, retriever, question, budget=budget // max(1, len(docs)),
                                 max_passages=passages, count_tokens=count_tokens, anchors=anchors, per_passage=2,
                                 prose_only=True, follow=follow)
        chosen.sort(key=lambda s: s.start)
        snippets += [replace(s, n=len(snippets) + i) for i, s in enumerate(chosen, start=1)]
        used += hits
    return snippets, used


def build_broad_messages(snippets: Sequence[Snippet], question: str, instruction: str) -> list[dict]:
    """The one-fact prompt's messages (same fixed prefix, so the cache serves it), with the shape's
    instruction after the question in the last user turn."""
    messages = build_messages(snippets, question, style="sentence")
    last = messages[-1]
    return messages[:-1] + [{"role": "user", "content": f"{last['content']}\n\n{instruction}"}]
