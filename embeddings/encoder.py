"""Step 3, vectors: turn texts into L2-normalised embeddings behind a one-method ``Encoder`` protocol.

The one decision: every embedder, packaged (``embeddings.embedders``) or a local path or hub name,
loads lazily through the same sentence-transformers code, once, behind a lock. The backend
(``fp32`` by default; ``bf16``, ``auto`` (bf16 where the CPU has it) or ``onnx-int8`` in
``embeddings.quantized``) is part of the encoder's ``name``; docs/DESIGN.md ("Indexing speed") has the
measurements that chose it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
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
BATCH_TOKENS = 4096  # tokens per batch at most (bench_embed.py)


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded lazily on first use (thread-safe, once).

    ``precision="bf16"`` runs the model under bfloat16 autocast (about 2x faster on a CPU with
    AVX512-BF16, cosine 0.9999 to fp32). Padding made bf16 vectors depend on their batch by up to
    ~1e-3; batches of equal-length texts need none (``encode``). The precision is part of ``name``
    (``all-mpnet-base-v2+bf16``), so an index records it.
    """

    def __init__(self, model: str = DEFAULT_EMBEDDER, *, batch_size: int = 32, device: str = "cpu",
                 precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.model_name = model
        self.name = model if precision == "fp32" else f"{model}+{precision}"
        self.precision = precision
        self.batch_size = batch_size
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

        Texts are batched with others of exactly their token length, longest first: a batch then
        needs no padding, which both saves the work padding costs (an index mixes passages with
        their sentences) and makes a text's vector independent of the batch it ran in: the same bit
        for bit in bf16, to ~1e-7 in fp32 (padding had moved bf16 vectors by up to 1e-3), so a
        vector does not depend on what else was indexed with it.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        done = 0
        for rows in self._batches(texts):
            with self._autocast():
                out[rows] = self.model.encode(
                    [texts[i] for i in rows], batch_size=len(rows), normalize_embeddings=True,
                    convert_to_numpy=True, show_progress_bar=False,
                )
            done += len(rows)
            if progress is not None:
                progress(done, len(texts))
        return out

    def _batches(self, texts: Sequence[str]) -> list[list[int]]:
        """Rows of ``texts`` grouped by token length (as the model will see them: truncated, with its
        special tokens), longest first, at most ``batch_size`` texts and ``BATCH_TOKENS`` tokens each."""
        lengths = [len(ids) for ids in self.model.tokenizer(
            [t.strip() for t in texts], truncation=True, max_length=self.max_tokens, verbose=False)["input_ids"]]
        by_length: dict[int, list[int]] = {}
        for row, length in enumerate(lengths):
            by_length.setdefault(length, []).append(row)
        batches = []
        for length in sorted(by_length, reverse=True):
            rows, size = by_length[length], max(1, min(self.batch_size, BATCH_TOKENS // max(length, 1)))
            batches += [rows[i : i + size] for i in range(0, len(rows), size)]
        return batches

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


BACKENDS = ("auto", "fp32", "bf16", "onnx-int8")
DEFAULT_BACKEND = "fp32"  # bf16 ("auto") kept recall but moved near-tied answers (docs/DESIGN.md, "Indexing speed")


def cpu_has_bf16() -> bool:
    """True when this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX); elsewhere torch emulates
    it, slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return re.search(r"\b(?:avx512_bf16|amx_bf16)\b", flags) is not None


def resolve_backend(backend: str | None = None) -> str:
    """``backend`` (else ``$QA_EMBEDDER_BACKEND``, else the default) with ``auto`` decided for this CPU."""
    backend = backend or os.environ.get("QA_EMBEDDER_BACKEND") or DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise EncoderError(f"embedder backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "bf16" if cpu_has_bf16() else "fp32"
    return backend


def load_encoder(name: str | None = None, *, backend: str | None = None) -> Encoder:
    """The embedder ``name`` (``$QA_EMBEDDER``, else the default) run by ``backend`` (see
    ``resolve_backend``): ``fp32`` or ``bf16`` PyTorch through sentence-transformers, or ``onnx-int8``
    (packaged embedders only; others run in fp32). Nothing loads until the first use."""
    name = name or os.environ.get("QA_EMBEDDER") or DEFAULT_EMBEDDER
    backend = resolve_backend(backend)
    if backend == "onnx-int8" and name in PACKAGED_EMBEDDERS:
        from embeddings.quantized import OnnxInt8Encoder

        return OnnxInt8Encoder(name)
    return SentenceTransformerEncoder(name, precision="bf16" if backend == "bf16" else "fp32")
