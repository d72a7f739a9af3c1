"""Generate step, the shared part: the ``Generator`` protocol and what every backend uses.

The one decision: a backend implements one method, ``generate(messages) -> Iterator[str]`` (greedy,
streamed), plus ``warm_up`` and ``count_tokens``; everything around it (message checks, stop
strings, the thread-to-iterator plumbing, thread counts) lives here, so the backends import this
module and nothing imports a backend but the factory (``qa.generation.factory``).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Callable, Protocol, runtime_checkable

from qa.errors import BackendUnavailable, GenerationError, InvalidArgument, ModelNotFound
from qa.generation.models import ModelSpec, resolve_model
from qa.injection import defuse_control_tokens

ROLES = ("system", "user", "assistant")
_DONE = object()  # end-of-stream marker on the queue between worker and consumer


@runtime_checkable
class Generator(Protocol):
    """A chat model. `generate` is the one core method; the rest supports it."""

    name: str  # shown to people and stored with answers: "llama.cpp:default"

    def generate(
        self, messages: Sequence[dict], *, max_tokens: int = 160, stop: Sequence[str] = ()
    ) -> Iterator[str]:
        """Greedy (temperature 0) continuation of `messages`, yielded as decoded text pieces. A last
        message of the assistant is the start of the reply: the model goes on from it, and only the
        text after it is yielded."""
        ...

    def warm_up(self) -> None:
        """Load the model now (otherwise on first use); safe to call twice."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in this model's vocabulary (no special tokens added)."""
        ...



def default_threads() -> tuple[int, int]:
    """(decode, prompt) threads for llama.cpp on this machine's usable cores.

    Decoding reads every weight once per token, so it is memory-bound and half the cores
    reach the bandwidth; prompt processing is compute-bound and uses them all (docs/DESIGN.md).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = max(1, cores or 1)
    return max(1, cores // 2), cores


def gguf_model(model: ModelSpec | str | os.PathLike[str] | None, backend: str) -> ModelSpec:
    """``model`` resolved (see `resolve_model`), when it is a GGUF file ``backend`` can run."""
    spec = resolve_model(model)
    if spec.format != "gguf":
        raise BackendUnavailable(f"{backend} needs a GGUF file, got {spec.name!r}")
    return spec


def llama_threads(threads: int | None, batch_threads: int | None) -> tuple[int, int]:
    """(decode, prompt) threads for a llama.cpp build: the ones given, else default_threads();
    prompt threads default to the decode threads when only those are given."""
    check_positive(threads=threads, batch_threads=batch_threads)
    decode, prompt = default_threads()
    return threads or decode, batch_threads or threads or prompt


def cut_at_stop(pieces: Iterator[str], stop: Sequence[str]) -> Iterator[str]:
    """Re-yield `pieces`, ending just before the first stop string (which is not yielded).

    Holds back only an end of the text that could still grow into a stop string, so a short
    answer streams as it comes instead of waiting for the characters a stop string would need:
    ["Paris.", "\\n\\nQ"] with stop=["\\n\\n"] -> "Paris." only.
    """
    stop = [s for s in stop if s]
    if not stop:
        yield from pieces
        return
    buffer = ""
    for piece in pieces:
        buffer += piece
        hits = [i for i in (buffer.find(s) for s in stop) if i >= 0]
        if hits:
            if min(hits):
                yield buffer[: min(hits)]
            return
        cut = len(buffer) - _stop_prefix_at_end(buffer, stop)
        if cut:
            yield buffer[:cut]
            buffer = buffer[cut:]
    if buffer:
        yield buffer


def _stop_prefix_at_end(text: str, stop: Sequence[str]) -> int:
    """Length of the longest end of `text` that is the beginning of a stop string.

    >>> _stop_prefix_at_end("Paris.\\nQues", ["\\n\\n", "Question:"]), _stop_prefix_at_end("Paris", ["\\n\\n"])
    (4, 0)
    """
    longest = 0
    for s in stop:
        for n in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:n]):
                longest = n
                break
    return longest


def stream_from_thread(run: Callable[[Callable[[Any], bool]], None]) -> Iterator[Any]:
    """Turn a blocking call that feeds a callback into an iterator.

    `run(on_chunk)` runs in a worker thread; `on_chunk` returns True once the consumer has
    stopped iterating, so the backend can stop decoding early. Errors are re-raised here.
    """
    chunks: queue.Queue[Any] = queue.Queue()
    closed = threading.Event()

    def on_chunk(chunk: Any) -> bool:
        chunks.put(chunk)
        return closed.is_set()

    def work() -> None:
        try:
            run(on_chunk)
        except BaseException as exc:  # handed to the consumer thread
            chunks.put(exc)
        finally:
            chunks.put(_DONE)

    worker = threading.Thread(target=work, name="generate", daemon=True)
    worker.start()
    try:
        while (item := chunks.get()) is not _DONE:
            if isinstance(item, BaseException):
                if isinstance(item, (GenerationError, ModelNotFound, BackendUnavailable)):
                    raise item
                raise GenerationError(f"generation failed: {item}") from item
            yield item
    finally:
        closed.set()
        worker.join()


def ask_openmp_to_sleep() -> None:
    """Make idle OpenMP threads sleep instead of spin (OMP_WAIT_POLICY=PASSIVE).

    Spinning llama.cpp threads collapse to 1-2 tokens/s, or stall, whenever another process
    wants a core (bench/bench_generate.py). libgomp reads the variable once, when it loads;
    torch ships a libgomp with the same soname that xllamacpp then shares, so this only works
    before torch is imported: entry points should set it first (the Makefile exports it).
    """
    if "OMP_WAIT_POLICY" in os.environ:
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    if any(m in sys.modules for m in ("torch", "xllamacpp", "ik_llama_cpp")):
        warnings.warn(
            "OMP_WAIT_POLICY=PASSIVE was set after OpenMP loaded (torch imported first); "
            "export it before starting Python or llama.cpp may stall on a busy machine",
            RuntimeWarning,
            stacklevel=3,
        )



def check_messages(messages: Sequence[dict]) -> list[dict]:
    if not messages:
        raise InvalidArgument("messages must not be empty")
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidArgument(f"messages[{i}] must be a dict, got {type(message).__name__}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise InvalidArgument(f"messages[{i}]['role'] must be one of {ROLES}, got {role!r}")
        if not isinstance(content, str):
            raise InvalidArgument(f"messages[{i}]['content'] must be str, got {type(content).__name__}")
        checked.append({"role": role, "content": defuse_control_tokens(content)})
    if checked[-1]["role"] == "assistant" and (len(checked) < 2 or checked[-2]["role"] == "assistant"):
        raise InvalidArgument("the start of a reply (a last assistant message) must follow a user message")
    return checked


def check_positive(**values: int | None) -> None:
    """Raise InvalidArgument for any given value that is not None and not > 0."""
    for label, value in values.items():
        if value is not None and value <= 0:
            raise InvalidArgument(f"{label} must be > 0, got {value}")


def check_max_tokens(max_tokens: int) -> int:
    check_positive(max_tokens=max_tokens)
    return max_tokens

