"""Step 3a, embedding units: what text each vector stands for.

The one decision: a passage is embedded whole, prefixed with its document title and section (so
"the 2024 article" or a heading can be matched), and, when it has several sentences, each sentence is
also embedded on its own, and each two neighbouring sentences together. A short factual question
then matches the one sentence (or the pair) that answers it instead of a blurred average of a
paragraph; retrieval scores a passage by its best unit.
"""

from __future__ import annotations

import numpy as np

from embeddings.paragraphs import Passage, split_sentences


def passage_embedding_text(passage: Passage) -> str:
    """The text embedded for a whole passage: title and section as a header line, then the text.

    >>> passage_embedding_text(Passage("a#1", "a.txt", 0, 5, "Hello", title="T", section="S"))
    'T — S\\nHello'
    """
    header = " — ".join(part for part in (passage.title, passage.section) if part)
    return f"{header}\n{passage.text}" if header else passage.text


def embedding_units(
    passages: list[Passage], *, sentences: bool = True, pairs: bool = True, kinds: list[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Units as a (n_units, 3) int64 array of (passage row, start, end) and the texts to embed.

    ``pairs`` adds each two neighbouring sentences as one more unit (passages of three or more
    sentences), for questions that paraphrase across a sentence boundary. When ``kinds`` is a list,
    each unit's kind is appended to it: ``"passage"``, ``"sentence"`` or ``"pair"``.
    """
    kinds = kinds if kinds is not None else []
    rows: list[tuple[int, int, int]] = []
    texts: list[str] = []
    for row, passage in enumerate(passages):
        rows.append((row, passage.start, passage.end))
        texts.append(passage_embedding_text(passage))
        kinds.append("passage")
        if not sentences:
            continue
        spans = split_sentences(passage.text)
        if len(spans) < 2:
            continue
        for start, end in spans:
            if len(passage.text[start:end].split()) < 4:  # a heading or a name: the passage covers it
                continue
            rows.append((row, passage.start + start, passage.start + end))
            texts.append(passage.text[start:end])
            kinds.append("sentence")
        if pairs and len(spans) > 2:
            for (start, _), (_, end) in zip(spans, spans[1:]):
                rows.append((row, passage.start + start, passage.start + end))
                texts.append(passage.text[start:end])
                kinds.append("pair")
    return np.array(rows, dtype=np.int64).reshape(-1, 3), texts
