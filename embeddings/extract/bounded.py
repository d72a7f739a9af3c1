"""Step 1, in a cage: run the format readers in a child process with a time and a memory limit.

The one decision: pdfium, lxml and Lexbor are C code fed with files from anywhere, so they read in a
separate Python process capped at ``memory_bytes`` of address space and killed after ``timeout_s``;
a hostile or broken file costs one skip line ("took longer than 60 s"), never the indexing run. The
child is started once per corpus load, on the first PDF, Word or HTML file, and imports only
``embeddings.extract`` (not the embedder), so it starts in a fraction of a second.
"""

from __future__ import annotations

import pickle
import select
import struct
import subprocess
import sys
from pathlib import Path

from embeddings.extract.blocks import Extracted

TIMEOUT_S = 60.0  # wall time one file may take to read
MEMORY_BYTES = 2 << 30  # address space of the reading process
_PACKAGE = Path(__file__).resolve().parents[1]  # the embeddings folder
_BOOT = (  # make "embeddings" a bare package, so its __init__ (numpy, faiss, the encoder) is not run
    "import sys, types; pkg = types.ModuleType('embeddings'); pkg.__path__ = [sys.argv[1]]; "
    "sys.modules['embeddings'] = pkg; from embeddings.extract.bounded import serve; serve(int(sys.argv[2]))"
)


class BoundedReader:
    """A reading child process, started on first use; ``read`` returns an ``Extracted`` or raises
    ``ValueError`` with the reason the file was not read."""

    def __init__(self, *, timeout_s: float = TIMEOUT_S, memory_bytes: int = MEMORY_BYTES) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.timeout_s, self.memory_bytes = timeout_s, memory_bytes
        self._child: subprocess.Popen | None = None

    def __enter__(self) -> BoundedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child.wait()
            for stream in (self._child.stdin, self._child.stdout):
                stream.close()
            self._child = None

    def read(self, name: str, data: bytes) -> Extracted:
        if self._child is None or self._child.poll() is not None:
            self.close()
            self._child = subprocess.Popen(
                [sys.executable, "-I", "-c", _BOOT, str(_PACKAGE), str(self.memory_bytes)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )
        child = self._child
        try:
            _send(child.stdin, (name, data))
            ready, _, _ = select.select([child.stdout], [], [], self.timeout_s)
            if not ready:
                self.close()
                raise ValueError(f"took longer than {self.timeout_s:.0f} s to read (a hostile or broken file?)")
            status, value = _receive(child.stdout)
        except (OSError, EOFError, struct.error, pickle.UnpicklingError):
            self.close()
            raise ValueError("the reader crashed or ran out of memory on this file (corrupt or hostile?)") from None
        if status == "ok":
            return value
        raise ValueError(value)


def extract_bounded(name: str, data: bytes, *, reader: BoundedReader | None = None) -> Extracted:
    """``embeddings.extract.extract`` in a time- and memory-capped child process."""
    if reader is not None:
        return reader.read(name, data)
    with BoundedReader() as own:
        return own.read(name, data)


def _send(stream, value) -> None:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(payload)) + payload)
    stream.flush()


def _receive(stream):
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("the reading process closed its output")
    (size,) = struct.unpack("<Q", head)
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError("the reading process stopped mid-answer")
    return pickle.loads(payload)


def serve(memory_bytes: int) -> None:
    """The child's loop: read (name, bytes) requests on stdin, answer ("ok", Extracted) or ("skip", reason)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    from embeddings.extract.formats import extract

    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a library's print must not corrupt the answers
    while True:
        try:
            name, data = _receive(requests)
        except EOFError:
            return
        try:
            answer = ("ok", extract(name, data))
        except ValueError as exc:
            answer = ("skip", str(exc))
        except MemoryError:
            answer = ("skip", f"needs more than {memory_bytes >> 20} MB of memory to read")
        except RecursionError:
            answer = ("skip", "nested too deeply to read")
        except Exception as exc:  # a reader's own bug on a strange file: one skip line, not a crash
            answer = ("skip", f"cannot be read ({exc.__class__.__name__}: {str(exc)[:120]})")
        _send(answers, answer)
