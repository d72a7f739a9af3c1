"""Step 3, vectors (int8): the packaged embedder exported to ONNX once, weights quantised to 8 bits.

The one decision: weight-only int8 (ONNX Runtime ``MatMulNBits``, blocks of 32 weights, int8 compute
with each token's activations quantised on their own). Whole-tensor dynamic quantisation
(``quantize_dynamic``) wrecked all-mpnet-base-v2 (cosine to fp32 down to 0.6: a few tokens carry
activations 30x larger than the rest), and made a text's vector depend on its batch; per-token
blocks keep cosine 0.9995 and give the same vector whatever the batch. The model is built once
into ``<cache>/embedders/<name>-onnx-int8/`` through a temporary folder renamed into place, its
sha256 recorded beside it and checked (a stamp makes later checks one ``stat()``); a missing,
stale or corrupt export is rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from embeddings.embedders import DEFAULT_EMBEDDER, packaged_model_dir
from embeddings.errors import EncoderError, ModelNotFound
from embeddings.files import sha256_file
from embeddings.packaged import cache_dir, stamp_matches, write_stamp

RECIPE = {"format": 1, "export": "torch.onnx.export opset 17, last_hidden_state",
          "quantize": "MatMulNBits bits=8 block_size=32 symmetric accuracy_level=4"}  # change it to rebuild
MODEL_FILE = "model.onnx"
INSTALL_HINT = "pip install 'qa-chatbot[onnx]' (onnxruntime, onnx, onnx-ir; see constraints.txt)"


def quantized_model_dir(name: str, *, source: Path | None = None) -> Path:
    """The folder holding ``model.onnx`` (int8) of the packaged embedder ``name``, built if needed."""
    target = cache_dir() / "embedders" / f"{name}-onnx-int8"
    if export_is_valid(target):
        return target
    source = source or packaged_model_dir(name)
    if source is None:
        raise ModelNotFound(f"embedder {name!r} is not a packaged embedder; only those have an int8 export")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        export_int8(source, tmp)
        digest = sha256_file(tmp / MODEL_FILE)
        (tmp / "recipe.json").write_text(json.dumps({**RECIPE, "source": name, "sha256": digest}, indent=1))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        write_stamp(target / MODEL_FILE, digest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def export_is_valid(folder: Path) -> bool:
    """True when ``folder`` holds an export of today's recipe whose bytes match its recorded sha256."""
    try:
        recorded = json.loads((folder / "recipe.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(recorded, dict) or {k: recorded.get(k) for k in RECIPE} != RECIPE:
        return False
    model, digest = folder / MODEL_FILE, recorded.get("sha256")
    if not model.is_file() or not isinstance(digest, str):
        return False
    if stamp_matches(model, digest):
        return True
    if sha256_file(model) != digest:  # touched or damaged: hash once, rebuild only if the bytes are wrong
        return False
    write_stamp(model, digest)
    return True


def export_int8(source: Path, folder: Path) -> None:
    """Export the transformer of the sentence-transformers folder ``source`` to ``folder/model.onnx``
    (inputs ``input_ids`` and ``attention_mask``, output the token vectors), weights in int8."""
    try:
        import onnx
        import torch
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise EncoderError(f"the int8 embedder needs onnxruntime, onnx and onnx-ir ({exc}): {INSTALL_HINT}") from None

    class TokenVectors(torch.nn.Module):
        def __init__(self, model) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    model = AutoModel.from_pretrained(str(source)).eval()
    example = AutoTokenizer.from_pretrained(str(source))(["An example.", "Two"], padding=True, return_tensors="pt")
    fp32 = folder / "fp32.onnx"
    with torch.inference_mode():
        torch.onnx.export(
            TokenVectors(model), (example["input_ids"], example["attention_mask"]), str(fp32),
            input_names=["input_ids", "attention_mask"], output_names=["token_vectors"], opset_version=17,
            dynamic_axes={name: {0: "batch", 1: "tokens"} for name in ("input_ids", "attention_mask", "token_vectors")},
            dynamo=False,
        )
    quantizer = MatMulNBitsQuantizer(onnx.load(str(fp32)), bits=8, block_size=32, is_symmetric=True,
                                     accuracy_level=4, op_types_to_quantize=("MatMul",))
    quantizer.process()
    quantizer.model.save_model_to_file(str(folder / MODEL_FILE), use_external_data_format=False)
    fp32.unlink()
    for extra in folder.glob("*.data"):
        extra.unlink()


class OnnxInt8Encoder:
    """A packaged sentence-transformers embedder run by ONNX Runtime with int8 weights; mean pooling.

    Loaded lazily, once (the first use may build the export: about a minute). Vectors do not depend
    on batch composition: padding is masked and activations are quantised token by token.
    """

    def __init__(self, model: str = DEFAULT_EMBEDDER, *, batch_size: int = 16, threads: int = 0) -> None:
        self.model_name = model
        self.name = f"{model}+onnx-int8"  # recorded in the index manifest: another precision rebuilds
        self.batch_size = batch_size
        self.threads = threads  # ONNX Runtime intra-op threads; 0: one per core
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()
        self._dim = 0
        self._max_tokens = 0

    @property
    def dim(self) -> int:
        self.warm_up()
        return self._dim

    @property
    def max_tokens(self) -> int:
        self.warm_up()
        return self._max_tokens

    def warm_up(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            try:
                import onnxruntime as ort
                from transformers import AutoTokenizer
            except ImportError as exc:
                raise EncoderError(f"the int8 embedder needs onnxruntime ({exc}): {INSTALL_HINT}") from None
            try:
                source = packaged_model_dir(self.model_name)
                if source is None:
                    raise ModelNotFound(f"embedder {self.model_name!r} is not packaged; int8 needs a packaged one")
                folder = quantized_model_dir(self.model_name, source=source)
            except ModelNotFound as exc:
                raise EncoderError(str(exc)) from None
            pooling = json.loads((source / "1_Pooling" / "config.json").read_text())
            if not pooling.get("pooling_mode_mean_tokens"):
                raise EncoderError(f"embedder {self.model_name!r} does not use mean pooling; run it with fp32")
            self._max_tokens = int(json.loads((source / "sentence_bert_config.json").read_text())["max_seq_length"])
            self._dim = int(json.loads((source / "config.json").read_text())["hidden_size"])
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # a shared CPU: do not spin
            self._tokenizer = AutoTokenizer.from_pretrained(str(source))
            self._session = ort.InferenceSession(str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])

    def count_tokens(self, text: str) -> int:
        """Word-piece tokens, without the special tokens the model adds around every input."""
        self.warm_up()
        return len(self._tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def encode(self, texts: Sequence[str], *, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """(n, dim) float32 L2-normalised vectors, in the order of ``texts`` (mean of token vectors)."""
        self.warm_up()
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for rows, tokens, mask, _ in self._batches(texts, progress):
            summed = (tokens * mask[..., None]).sum(axis=1)  # (batch, dim)
            mean = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            out[rows] = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
        return out

    def encode_tokens(self, texts: Sequence[str], *, progress: Callable[[int, int], None] | None = None
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text: (n_tokens, dim) float32 token vectors and (n_tokens, 2) int64 character offsets."""
        self.warm_up()
        out: list[tuple[np.ndarray, np.ndarray]] = [None] * len(texts)  # type: ignore[list-item]
        for rows, tokens, mask, offsets in self._batches(texts, progress):
            for j, i in enumerate(rows):
                n = int(mask[j].sum())
                out[i] = (tokens[j, :n], offsets[j, :n])
        return out

    def _batches(self, texts: Sequence[str], progress):
        """Longest texts first, so each batch pads little; yields (rows, token vectors, mask, offsets)."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            batch = self._tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                    max_length=self.max_tokens, return_offsets_mapping=True, return_tensors="np")
            mask = batch["attention_mask"].astype(np.int64)  # (batch, length)
            tokens = self._session.run(None, {"input_ids": batch["input_ids"].astype(np.int64),
                                              "attention_mask": mask})[0]  # (batch, length, dim) float32
            yield rows, tokens, mask.astype(np.float32), batch["offset_mapping"].astype(np.int64)
            if progress is not None:
                progress(min(start + len(rows), len(texts)), len(texts))
