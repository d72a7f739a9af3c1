"""Step 3, vectors: turn texts into L2-normalised embeddings behind a one-method ``Encoder`` protocol.

The one decision: every embedder, packaged (``embeddings.embedders``) or a local path or hub name,
loads lazily through the same sentence-transformers code, once, behind a lock. The backend
(``fp32`` by default, ``bf16``, or ``onnx-int8`` in ``embeddings.quantized``) is part of the encoder's
``name``; docs/DESIGN.md ("Indexing speed") says why fp32 stays the default.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from embeddings.embedders import DEFAULT_EMBEDDER, PACKAGED_EMBEDDERS, resolve_embedder
from embeddings.errors import EncoderError, ModelNotFound


@runtime_checkable
class Encoder(Protocol):
    name: str  # identity recorded in the index manifest
    dim: int
    max_tokens: int  # the model's window; longer inputs are silently truncated by the model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row L2-normalised."""
        ...

    def count_tokens(self, text: str) -> int: ...


PRECISIONS = ("fp32", "bf16")


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded lazily on first use (thread-safe, once).

    ``precision="bf16"`` runs the model under bfloat16 autocast (about 1.8x faster on a CPU with
    AVX512-BF16, cosine 0.9999 to fp32); its vectors depend on how texts are batched by up to ~1e-3,
    so in bf16 every text is run on its own and a text's vector never depends on its neighbours.
    The precision is part of ``name`` (``all-mpnet-base-v2+bf16``), so an index records it.
    """

    def __init__(self, model: str = DEFAULT_EMBEDDER, *, batch_size: int = 32, device: str = "cpu",
                 precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.model_name = model
        self.name = model if precision == "fp32" else f"{model}+{precision}"
        self.precision = precision
        self.batch_size = batch_size if precision == "fp32" else 1
        self.device = device
        self._model = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            try:
                path = resolve_embedder(self.model_name)
            except ModelNotFound as exc:
                raise EncoderError(str(exc)) from None
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:  # pragma: no cover - a broken install
                raise EncoderError(f"sentence-transformers is not installed ({exc}): pip install sentence-transformers") from None
            try:
                self._model = SentenceTransformer(path, device=self.device)
            except Exception as exc:  # noqa: BLE001 - any loading failure is a user-facing config problem
                raise EncoderError(f"cannot load embedder {self.name!r}: {exc}") from None

    @property
    def model(self):
        self.warm_up()
        return self._model

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        """Word-piece tokens, without the special tokens the model adds around every input."""
        return len(self.model.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def encode(self, texts: Sequence[str], *, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """(n, dim) float32 L2-normalised vectors, in the order of ``texts``.

        Texts are encoded longest first, so each batch holds texts of about one length: a batch is
        padded to its longest text, and an index mixes passages with their sentences. On 1,242
        SQuAD units this took 13.8 s instead of 35.8 s (all-MiniLM-L6-v2; all-mpnet-base-v2 27.6 s
        instead of 74.2 s on 318), with the same vectors to 1e-6.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            with self._autocast():
                out[rows] = self.model.encode(
                    [texts[i] for i in rows], batch_size=self.batch_size, normalize_embeddings=True,
                    convert_to_numpy=True, show_progress_bar=False,
                )
            if progress is not None:
                progress(min(start + len(rows), len(texts)), len(texts))
        return out

    def encode_tokens(self, texts: Sequence[str], *, progress: Callable[[int, int], None] | None = None
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text: (n_tokens, dim) float32 token vectors of the transformer (before pooling) and
        (n_tokens, 2) int64 character offsets into the text, (0, 0) for the special tokens.

        Padding is masked out of attention, so in fp32 a text's token vectors do not depend on the
        batch it ran in (to ~1e-6); in bf16 each text runs alone.
        """
        import torch

        transformer = self.model[0]
        out: list[tuple[np.ndarray, np.ndarray]] = [None] * len(texts)  # type: ignore[list-item]
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            batch = self.model.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                         max_length=self.max_tokens, return_offsets_mapping=True,
                                         return_tensors="pt")
            offsets = batch.pop("offset_mapping").numpy().astype(np.int64)  # (batch, length, 2)
            lengths = batch["attention_mask"].sum(dim=1).tolist()
            with torch.inference_mode(), self._autocast():
                hidden = transformer.auto_model(**batch.to(self.device)).last_hidden_state  # (batch, length, dim)
            hidden = hidden.float().cpu().numpy()
            for j, i in enumerate(rows):
                out[i] = (hidden[j, : lengths[j]], offsets[j, : lengths[j]])
            if progress is not None:
                progress(min(start + len(rows), len(texts)), len(texts))
        return out

    def _autocast(self):
        import contextlib

        if self.precision == "fp32":
            return contextlib.nullcontext()
        import torch

        return torch.autocast(self.device, dtype=torch.bfloat16)


BACKENDS = ("fp32", "bf16", "onnx-int8")
DEFAULT_BACKEND = "fp32"  # the only one that kept recall and is the same on every CPU (bench_embed.py)


def load_encoder(name: str | None = None, *, backend: str | None = None) -> Encoder:
    """The embedder ``name`` (``$QA_EMBEDDER``, else the default) run by ``backend``
    (``$QA_EMBEDDER_BACKEND``, else the default): ``fp32`` or ``bf16`` PyTorch through
    sentence-transformers, or ``onnx-int8`` (packaged embedders only; others run in fp32)."""
    name = name or os.environ.get("QA_EMBEDDER") or DEFAULT_EMBEDDER
    backend = backend or os.environ.get("QA_EMBEDDER_BACKEND") or DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise EncoderError(f"embedder backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "onnx-int8" and name in PACKAGED_EMBEDDERS:
        from embeddings.quantized import OnnxInt8Encoder

        return OnnxInt8Encoder(name)
    return SentenceTransformerEncoder(name, precision="bf16" if backend == "bf16" else "fp32")
