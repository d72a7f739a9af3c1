"""Step 4a, vector index: exact inner-product search, approximate (HNSW) past a size threshold.

The one decision: start exact (``IndexFlatIP``); only a corpus with more than ``approx_threshold``
vectors gets an HNSW graph, whose lost recall ``bench/bench_index.py`` measures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embeddings.errors import IndexCorrupt


@dataclass(frozen=True)
class VectorSettings:
    approx_threshold: int = 100_000  # vectors above which search is approximate (HNSW)
    hnsw_m: int = 32  # HNSW graph degree
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 96  # breadth of the approximate search: recall vs speed

    def __post_init__(self) -> None:
        if self.approx_threshold < 0:
            raise ValueError(f"approx_threshold must be >= 0, got {self.approx_threshold}")


class VectorIndex:
    """A FAISS index over L2-normalised vectors; ``search`` returns cosine similarities."""

    def __init__(self, index, kind: str) -> None:
        self.index = index
        self.kind = kind  # "flat" or "hnsw"

    @classmethod
    def build(cls, vectors: np.ndarray, settings: VectorSettings = VectorSettings()) -> VectorIndex:
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # (n, dim) float32, L2-normalised
        dim = vectors.shape[1]
        if len(vectors) > settings.approx_threshold:
            index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = settings.hnsw_ef_construction
            index.hnsw.efSearch = settings.hnsw_ef_search
            kind = "hnsw"
        else:
            index, kind = faiss.IndexFlatIP(dim), "flat"
        if len(vectors):
            index.add(vectors)
        return cls(index, kind)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(n_queries, k) scores and row ids; ids are -1 where fewer than k vectors exist."""
        k = max(1, min(k, len(self))) if len(self) else 0
        if k == 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def to_bytes(self) -> bytes:
        import faiss

        return faiss.serialize_index(self.index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, kind: str, ef_search: int = VectorSettings.hnsw_ef_search) -> VectorIndex:
        import faiss

        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise IndexCorrupt(f"the FAISS index file cannot be read ({str(exc).splitlines()[0]})") from None
        if kind == "hnsw":
            index.hnsw.efSearch = ef_search
        return cls(index, kind)
