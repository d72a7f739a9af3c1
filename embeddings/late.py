"""Step 3b, late chunking: a unit's vector pooled from its passage's token vectors.

The one decision: each passage is run through the embedder once; the vector of each of its
sentences (and sentence pairs) is the mean of the passage's token vectors that fall inside the
sentence, L2-normalised, instead of a second and third run of the model over the same words. The
passage's own vector is the mean over all its tokens, as the embedder's mean pooling makes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from embeddings.paragraphs import Passage
from embeddings.units import passage_embedding_text


@runtime_checkable
class TokenEncoder(Protocol):
    """An encoder that can also hand out the token vectors its pooling averages."""

    def encode_tokens(self, texts: Sequence[str], *, progress=None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text: (n_tokens, dim) float32 token vectors and (n_tokens, 2) int64 character offsets
        into the text; special tokens have the offsets (0, 0)."""
        ...


def pool_span(tokens: np.ndarray, offsets: np.ndarray, start: int, end: int) -> np.ndarray | None:
    """The L2-normalised mean of the token vectors lying inside ``text[start:end]``, or None if none do.

    >>> tokens = np.array([[1, 0], [0, 1], [0, 3]], dtype=np.float32)
    >>> pool_span(tokens, np.array([[0, 0], [0, 5], [6, 9]]), 6, 9).tolist()
    [0.0, 1.0]
    """
    inside = (offsets[:, 0] >= start) & (offsets[:, 1] <= end) & (offsets[:, 1] > offsets[:, 0])
    if not inside.any():
        return None
    mean = tokens[inside].mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return (mean / norm).astype(np.float32) if norm else None


def pool_all(tokens: np.ndarray) -> np.ndarray:
    """The L2-normalised mean of every token vector, special tokens included (mean pooling)."""
    mean = tokens.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def late_chunk_vectors(
    passages: Sequence[Passage], units: np.ndarray, texts: Sequence[str], encoder, *,
    kinds: Sequence[str] | None = None, pooled: frozenset[str] = frozenset({"sentence", "pair"}), progress=None,
) -> np.ndarray:
    """(n_units, dim) float32, L2-normalised: one vector per row of ``units`` (passage row, start, end).

    ``kinds`` names each unit (``embedding_units(kinds=...)``; by default the first unit of each
    passage is the passage and the rest are pooled). A passage gets the mean of all its tokens; a
    unit whose kind is in ``pooled`` is pooled from the tokens inside its span; any other unit, and a
    span the model did not see to its end (cut off by its window), is encoded on its own from ``texts``.
    """
    if kinds is None:
        kinds = ["passage" if i == 0 or units[i, 0] != units[i - 1, 0] else "sentence" for i in range(len(units))]
    heads = [passage_embedding_text(p) for p in passages]
    tokenised = encoder.encode_tokens(heads, progress=progress)  # progress counts passages
    out = np.zeros((len(units), encoder.dim), dtype=np.float32)
    missing: list[int] = []
    for i, (row, start, end) in enumerate(units.tolist()):
        tokens, offsets = tokenised[row]
        if kinds[i] == "passage":
            out[i] = pool_all(tokens)
            continue
        if kinds[i] not in pooled:
            missing.append(i)
            continue
        shift = len(heads[row]) - len(passages[row].text) - passages[row].start  # doc offset -> text offset
        seen = int(offsets[:, 1].max()) >= end + shift  # the window reached the span's end
        vector = pool_span(tokens, offsets, start + shift, end + shift) if seen else None
        if vector is None:
            missing.append(i)
        else:
            out[i] = vector
    if missing:
        out[missing] = encoder.encode([texts[i] for i in missing])
    return out
