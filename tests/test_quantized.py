"""The embedder backends: the int8 ONNX export (``embeddings/quantized.py``: built once, verified, rebuilt when
damaged) and the PyTorch batches of equal-length texts (``embeddings/encoder.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embeddings.encoder import SentenceTransformerEncoder, load_encoder
from embeddings.errors import EncoderError
from embeddings.files import sha256_file
from embeddings.late import pool_all
from embeddings.quantized import MODEL_FILE, RECIPE, OnnxInt8Encoder, export_is_valid, quantized_model_dir

TEXTS = [
    "Harbour\nThe lighthouse opened in 1811 on the rock. Its first keeper was Marie Duval.",
    "Who kept the lighthouse?",
    "Short.",
    "France's strategic dialogue with Russia began in 2019, after a speech at the Brégançon fort, " * 3,
]


def test_load_encoder_picks_the_backend_without_loading_a_model(monkeypatch):
    monkeypatch.delenv("QA_EMBEDDER_BACKEND", raising=False)
    assert isinstance(load_encoder("all-mpnet-base-v2", backend="onnx-int8"), OnnxInt8Encoder)
    assert load_encoder("all-mpnet-base-v2", backend="onnx-int8").name == "all-mpnet-base-v2+onnx-int8"
    assert load_encoder("all-mpnet-base-v2", backend="bf16").name == "all-mpnet-base-v2+bf16"
    assert load_encoder("all-mpnet-base-v2", backend="fp32").name == "all-mpnet-base-v2"
    local = load_encoder("/some/local/model", backend="onnx-int8")  # not packaged: runs in fp32
    assert isinstance(local, SentenceTransformerEncoder) and local.name == "/some/local/model"
    from embeddings import encoder as module

    for native, name in ((True, "all-mpnet-base-v2+bf16"), (False, "all-mpnet-base-v2")):
        monkeypatch.setattr(module, "cpu_has_bf16", lambda native=native: native)
        assert load_encoder("all-mpnet-base-v2", backend="auto").name == name  # bf16 only where the CPU has it
        assert load_encoder("all-mpnet-base-v2").name == "all-mpnet-base-v2"  # the default stays fp32
    assert module.resolve_backend("fp32") == "fp32"
    monkeypatch.setenv("QA_EMBEDDER_BACKEND", "int4")
    with pytest.raises(EncoderError, match="backend must be one of .*'int4'"):
        load_encoder("all-mpnet-base-v2")


@pytest.mark.parametrize("recipe", [None, "not json", {**RECIPE, "format": 0}, {**RECIPE, "sha256": "0" * 64}])
def test_an_export_without_a_current_recipe_or_matching_bytes_is_not_valid(tmp_path, recipe):
    (tmp_path / MODEL_FILE).write_bytes(b"onnx bytes")
    if recipe is not None:
        (tmp_path / "recipe.json").write_text(recipe if isinstance(recipe, str) else json.dumps(recipe))
    assert not export_is_valid(tmp_path)


@pytest.fixture(scope="module")
def int8_cache(tmp_path_factory):
    """A private cache holding one int8 export of the default embedder, built by the test."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QA_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield quantized_model_dir("all-mpnet-base-v2")


@pytest.mark.model
def test_the_int8_export_is_built_verified_and_reused(int8_cache):
    recipe = json.loads((int8_cache / "recipe.json").read_text())
    assert recipe["sha256"] == sha256_file(int8_cache / MODEL_FILE) and export_is_valid(int8_cache)
    built = (int8_cache / MODEL_FILE).stat().st_mtime_ns
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QA_CACHE_DIR", str(int8_cache.parents[1]))
        assert quantized_model_dir("all-mpnet-base-v2") == int8_cache
    assert (int8_cache / MODEL_FILE).stat().st_mtime_ns == built  # reused, not rebuilt


@pytest.mark.model
def test_int8_vectors_stay_close_to_fp32_and_do_not_depend_on_the_batch(int8_cache, monkeypatch):
    monkeypatch.setenv("QA_CACHE_DIR", str(int8_cache.parents[1]))
    int8 = OnnxInt8Encoder("all-mpnet-base-v2", batch_size=16)
    vectors = int8.encode(TEXTS)  # (4, 768) float32, L2-normalised
    fp32 = SentenceTransformerEncoder("all-mpnet-base-v2").encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 768) and int8.dim == 768
    assert (vectors * fp32).sum(axis=1).min() > 0.995
    int8.batch_size = 1
    assert np.abs(int8.encode(TEXTS) - vectors).max() < 1e-4
    assert np.abs(int8.encode(TEXTS[:1]) - vectors[:1]).max() < 1e-4
    for (tokens, offsets), vector in zip(int8.encode_tokens(TEXTS), vectors):
        assert np.abs(pool_all(tokens) - vector).max() < 1e-5  # late chunking pools the same token vectors
        assert offsets[0].tolist() == [0, 0] and len(offsets) == len(tokens)


@pytest.mark.model
def test_a_damaged_export_is_rebuilt(int8_cache, monkeypatch):
    monkeypatch.setenv("QA_CACHE_DIR", str(int8_cache.parents[1]))
    model = int8_cache / MODEL_FILE
    data = bytearray(model.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # same size, other bytes
    model.write_bytes(bytes(data))
    assert not export_is_valid(int8_cache)
    assert quantized_model_dir("all-mpnet-base-v2") == int8_cache
    assert export_is_valid(int8_cache)
    assert sha256_file(model) == json.loads((int8_cache / "recipe.json").read_text())["sha256"]


@pytest.mark.model
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_equal_length_batches_need_no_padding_so_a_vector_never_depends_on_its_batch(precision):
    encoder = SentenceTransformerEncoder("all-mpnet-base-v2", precision=precision)
    texts = [*TEXTS, "Who kept the light?", "Who kept the lighthouse?", "When did it open?", "Who built the pier?"]
    batches = encoder._batches(texts)
    assert sorted(row for rows in batches for row in rows) == list(range(len(texts)))
    for rows in batches:  # the model's own tokenisation pads nothing in any batch
        assert bool(encoder.model.tokenize([texts[i] for i in rows])["attention_mask"].all())
    assert any(len(rows) > 1 for rows in batches)  # equal lengths did share a batch
    together = encoder.encode(texts)
    alone = np.concatenate([encoder.encode([text]) for text in texts])
    # bf16: bit for bit with AVX512-BF16, but AMX kernels tile by batch shape (7e-4 measured on an Intel
    # slice with AMX); fp32 kernels round by batch shape too. Padding had moved bf16 vectors by ~1e-3.
    cpuinfo = Path("/proc/cpuinfo")
    amx = cpuinfo.exists() and "amx_bf16" in cpuinfo.read_text(errors="replace")
    tolerance = (2e-3 if amx else 0.0) if precision == "bf16" else 1e-6
    assert np.abs(together - alone).max() <= tolerance
    fp32 = SentenceTransformerEncoder("all-mpnet-base-v2").encode(texts)
    assert (together * fp32).sum(axis=1).min() > 0.999
