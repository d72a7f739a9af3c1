"""Files of an index: synced and atomic writes, JSON lines, checksums, and the one-writer lock.

The one decision: a reader sees a file's old or new content, never a mix: every artefact is written
to a temporary name, flushed to disk, then renamed into place; writers of one index folder take turns
under an ``flock``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from embeddings.errors import IndexLocked, QAError

_CHUNK = 4 << 20  # bytes read at a time while hashing


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_jsonl(path: Path, rows: Iterator[dict]) -> None:
    write_synced(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode())


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old or the new content, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write_synced(tmp, data)
    os.replace(tmp, path)


@contextmanager
def index_lock(index_dir: Path, *, timeout: float = 600.0) -> Iterator[None]:
    """Hold the index directory's write lock; wait up to ``timeout`` seconds for another writer."""
    if index_dir.exists() and not index_dir.is_dir():
        raise QAError(f"the index folder {index_dir} is a file, not a folder; choose another --index-dir")
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        handle = open(index_dir / ".lock", "a+")
    except OSError as exc:
        raise QAError(f"cannot write the index in {index_dir} ({exc.strerror}); "
                      "choose a writable --index-dir") from None
    with handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexLocked(f"{index_dir} is being written by another process; try again later") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

