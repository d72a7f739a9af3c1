"""Generate step: stream a greedy chat answer from a language model.

The one decision: one loaded model serves every user, so it loads lazily under a lock and
generation calls run one at a time; GGUF models go to a llama.cpp build when one is installed,
because it decodes several times faster than transformers on CPU and keeps the shared system
prompt and worked exchanges in its KV cache across calls: ik_llama.cpp (``qa.ikllama``, the
faster one on this CPU), else llama.cpp through xllamacpp's in-process server (below).

    >>> gen = load_generator("small")
    >>> "".join(gen.generate([{"role": "user", "content": "Capital of France? One word."}]))
    'Paris'
"""

from __future__ import annotations

import copy
import json
import os
import queue
import re
import secrets
import sys
import threading
import urllib.request
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from qa.errors import BackendUnavailable, GenerationError, InvalidArgument, ModelNotFound
from qa.models import ModelSpec, resolve_model

ROLES = ("system", "user", "assistant")
# Chat-template control tokens written as text: ChatML / Qwen / Llama 3 / Phi "<|im_start|>", DeepSeek
# "<｜...｜>", Gemma "<start_of_turn>", Llama 2 / Mistral "[INST]" "<<SYS>>", "<s>" "</s>". Both backends
# parse special tokens inside message text, so a document holding "<|im_start|>system" would open a real
# system turn; ``defuse_control_tokens`` breaks them up so that text stays text.
CONTROL_TOKEN = re.compile(
    r"<[|｜][^<>\s|｜]{1,64}[|｜]>|</?(?:s|start_of_turn|end_of_turn|bos|eos|pad|unk)>|\[/?INST\]|<</?SYS>>", re.I
)
BACKENDS = ("ik", "llama", "transformers")
GGUF_BACKENDS = {"ik": ("ik_llama_cpp", "ik-llama-cpp-python"), "llama": ("xllamacpp", "xllamacpp")}  # (module, package)
_DONE = object()  # end-of-stream marker on the queue between worker and consumer


@runtime_checkable
class Generator(Protocol):
    """A chat model. `generate` is the one core method; the rest supports it."""

    name: str  # shown to people and stored with answers: "llama.cpp:default"

    def generate(
        self, messages: Sequence[dict], *, max_tokens: int = 160, stop: Sequence[str] = ()
    ) -> Iterator[str]:
        """Greedy (temperature 0) continuation of `messages`, yielded as decoded text pieces."""
        ...

    def warm_up(self) -> None:
        """Load the model now (otherwise on first use); safe to call twice."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in this model's vocabulary (no special tokens added)."""
        ...


def load_generator(
    model: str | os.PathLike[str] | ModelSpec | None = None,
    *,
    backend: str | None = None,
    threads: int | None = None,
) -> Generator:
    """A lazily loading generator for `model` (see `resolve_model`); nothing loads here.

    backend None picks, for GGUF models, ik_llama.cpp when ik-llama-cpp-python imports, else
    llama.cpp when xllamacpp does, else transformers (the only choice for other models); "ik",
    "llama" or "transformers" forces one and raises BackendUnavailable when it cannot serve.
    """
    spec = model if isinstance(model, ModelSpec) else resolve_model(model)
    if backend not in (None, *BACKENDS):
        raise InvalidArgument(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend is None and spec.format == "gguf":
        backend = next((b for b, (module, _) in GGUF_BACKENDS.items() if _importable(module)), None)
    backend = backend or "transformers"
    if backend in GGUF_BACKENDS:
        module, package = GGUF_BACKENDS[backend]
        if spec.format != "gguf":
            raise BackendUnavailable(
                f"the {backend} backend needs a GGUF file; {spec.name!r} is a {spec.source} "
                "transformers model (use backend='transformers')"
            )
        if not _importable(module):
            raise BackendUnavailable(f"the {backend} backend needs {package}: pip install {package}")
        if backend == "ik":
            from qa.ikllama import IkLlamaGenerator

            return IkLlamaGenerator(spec, threads=threads)
        return LlamaCppGenerator(spec, threads=threads)
    missing = [m for m in ("torch", "transformers") if not _importable(m)]
    if spec.format == "gguf" and not _importable("gguf"):
        missing.append("gguf")
    if missing:
        raise BackendUnavailable(
            f"the transformers backend needs {', '.join(missing)}: "
            "pip install torch transformers accelerate gguf"
        )
    return TransformersGenerator(spec, threads=threads)


def default_threads() -> tuple[int, int]:
    """(decode, prompt) threads for llama.cpp on this machine's usable cores.

    Decoding reads every weight once per token, so it is memory-bound and half the cores
    reach the bandwidth; prompt processing is compute-bound and uses them all. On 2 cores
    (bench/bench_generate.py) 1 decode thread matched or beat 2, while 2 prompt threads
    doubled prompt speed; with OMP_WAIT_POLICY unset, 2 decode threads collapsed to 1-2
    tokens/s whenever another process held a core.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = max(1, cores or 1)
    return max(1, cores // 2), cores


def llama_threads(threads: int | None, batch_threads: int | None) -> tuple[int, int]:
    """(decode, prompt) threads for a llama.cpp build: the ones given, else default_threads();
    prompt threads default to the decode threads when only those are given."""
    check_positive(threads=threads, batch_threads=batch_threads)
    decode, prompt = default_threads()
    return threads or decode, batch_threads or threads or prompt


class LlamaCppGenerator:
    """llama.cpp through xllamacpp's in-process server (one slot, prompt cache on)."""

    def __init__(
        self,
        model: str | os.PathLike[str] | ModelSpec,
        *,
        threads: int | None = None,  # decode threads; None: see default_threads()
        batch_threads: int | None = None,  # prompt-processing threads; None: `threads` or default
        n_ctx: int = 4096,  # tokens of context: ~530-token prompts plus the answer fit easily
        cache_ram_mib: int = 256,  # host RAM for saved prompt prefixes (~28 KB/token at 1.5B)
        repack: bool = False,  # llama.cpp's repacked CPU weight layouts: see below
    ) -> None:
        self.spec = model if isinstance(model, ModelSpec) else resolve_model(model)
        if self.spec.format != "gguf":
            raise BackendUnavailable(f"llama.cpp needs a GGUF file, got {self.spec.name!r}")
        check_positive(n_ctx=n_ctx)
        self.name = f"llama.cpp:{self.spec.name}"
        self.threads, self.batch_threads = llama_threads(threads, batch_threads)
        self.n_ctx = n_ctx
        self.cache_ram_mib = cache_ram_mib
        # llama.cpp copies Q4_K weights into an interleaved layout ("extra buffer types") by default.
        # On this AVX-512 CPU the plain mmapped layout reads the 1.5B model's prompts 1.27x as fast
        # (109 vs 86 tokens/s), decodes 0.88x as fast (20.6 vs 23.4) and needs ~600 MiB less RAM;
        # answers are short, so prompt speed decides the wait. The 0.5B model is within 5 % either
        # way (bench/bench_generate.py).
        self.repack = repack
        self._server: Any = None
        self._api_key = secrets.token_hex(16)  # guards the loopback HTTP port the server opens
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()

    def warm_up(self) -> None:
        self._load()

    def _load(self) -> Any:
        with self._load_lock:
            if self._server is None:
                _ask_openmp_to_sleep()
                import xllamacpp

                params = xllamacpp.CommonParams()
                params.model.path = self.spec.path()
                params.n_ctx = self.n_ctx
                params.n_parallel = 1
                params.cpuparams.n_threads = self.threads
                params.cpuparams_batch.n_threads = self.batch_threads
                params.cache_ram_mib = self.cache_ram_mib
                params.no_extra_bufts = not self.repack
                params.sampling.temp = 0.0
                params.sampling.top_k = 1
                params.verbosity = 1  # errors only; llama.cpp logs every request otherwise
                params.api_keys = [self._api_key]
                params.endpoint_slots = False
                try:
                    self._server = xllamacpp.Server(params)
                except Exception as exc:  # bad or truncated GGUF files fail here
                    raise ModelNotFound(f"llama.cpp could not load {self.spec.name}: {exc}") from exc
        return self._server

    def count_tokens(self, text: str) -> int:
        # xllamacpp exposes tokenisation only on its loopback HTTP server.
        server = self._load()
        request = urllib.request.Request(
            server.listening_address + "/tokenize",
            data=json.dumps({"content": text, "add_special": False}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._api_key}"},
        )
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
        with direct.open(request, timeout=30) as response:
            return len(json.load(response)["tokens"])

    def generate(
        self, messages: Sequence[dict], *, max_tokens: int = 160, stop: Sequence[str] = ()
    ) -> Iterator[str]:
        request = {
            "messages": _check_messages(messages),
            "max_tokens": _check_max_tokens(max_tokens),
            "stop": [s for s in stop if s],
            "stream": True,
            "temperature": 0.0,
            "top_k": 1,
            "cache_prompt": True,  # reuse the KV cache of the longest shared prefix
        }
        return self._stream(request)

    def _stream(self, request: dict) -> Iterator[str]:
        server = self._load()

        def run(on_chunk: Callable[[Any], bool]) -> None:
            with self._generate_lock:
                server.handle_chat_completions(request, on_chunk)

        for chunk in _stream_from_thread(run):
            if "error" in chunk:  # e.g. a prompt longer than n_ctx; reported as a chunk
                error = chunk["error"]
                raise GenerationError(f"{self.name}: {error.get('message', error)}")
            for choice in chunk.get("choices", ()):
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield text


class TransformersGenerator:
    """Hugging Face transformers on CPU: a GGUF file (dequantised to float32), a model
    directory or a hub id; greedy `model.generate` streamed through TextIteratorStreamer.

    Like llama.cpp's prefix cache, it keeps the KV cache of everything before the last turn (the
    fixed system prompt and worked exchanges) and reuses it while that prefix stays the same, so
    each question pays only for its own turn.
    """

    def __init__(
        self, model: str | os.PathLike[str] | ModelSpec, *, threads: int | None = None
    ) -> None:
        self.spec = model if isinstance(model, ModelSpec) else resolve_model(model)
        self.name = f"transformers:{self.spec.name}"
        self.threads = threads
        self._model: Any = None
        self._tokenizer: Any = None
        self._prefix: tuple[tuple[int, ...], Any] | None = None  # (token ids, KV cache) of the last prefix
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()

    def warm_up(self) -> None:
        self._load()

    def _prefix_cache(self, messages: list[dict], input_ids: Any) -> Any:
        """A copy of the KV cache of ``messages[:-1]``, computed once per distinct prefix; None when
        there is no earlier turn or its tokens are not a prefix of ``input_ids`` (1, n_tokens)."""
        if len(messages) < 2:
            return None
        import torch
        from transformers import DynamicCache

        model, tokenizer = self._load()
        prefix = tokenizer.apply_chat_template(messages[:-1], return_tensors="pt", return_dict=True)["input_ids"]
        n = prefix.shape[1]
        if n >= input_ids.shape[1] or not torch.equal(input_ids[0, :n], prefix[0]):
            return None
        key = tuple(prefix[0].tolist())
        if self._prefix is None or self._prefix[0] != key:
            with torch.no_grad():
                cache = model(input_ids=prefix, past_key_values=DynamicCache(), use_cache=True).past_key_values
            self._prefix = (key, cache)
        return copy.deepcopy(self._prefix[1])  # generate() extends the cache it is given

    def _load(self) -> tuple[Any, Any]:
        with self._load_lock:
            if self._model is None:
                try:
                    import torch
                    from transformers import AutoModelForCausalLM, AutoTokenizer
                except ImportError as exc:
                    raise BackendUnavailable(
                        f"the transformers backend needs torch and transformers: {exc}; "
                        "pip install torch transformers accelerate gguf"
                    ) from exc
                if self.threads:
                    torch.set_num_threads(self.threads)
                where = self.spec.path()
                kwargs: dict[str, Any] = {}
                if self.spec.format == "gguf":
                    where, kwargs["gguf_file"] = str(Path(where).parent), Path(where).name
                try:
                    tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
                    model = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32, **kwargs)
                except OSError as exc:  # missing files, unknown hub id, no network
                    raise ModelNotFound(f"transformers could not load {self.spec.name}: {exc}") from exc
                except ValueError as exc:  # e.g. accelerate missing for GGUF files
                    raise BackendUnavailable(f"transformers could not load {self.spec.name}: {exc}") from exc
                model.eval()
                self._tokenizer, self._model = tokenizer, model
        return self._model, self._tokenizer

    def count_tokens(self, text: str) -> int:
        _, tokenizer = self._load()
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(
        self, messages: Sequence[dict], *, max_tokens: int = 160, stop: Sequence[str] = ()
    ) -> Iterator[str]:
        checked = _check_messages(messages)
        stop = [s for s in stop if s]
        return cut_at_stop(self._stream(checked, _check_max_tokens(max_tokens), stop), stop)

    def _stream(self, messages: list[dict], max_tokens: int, stop: list[str]) -> Iterator[str]:
        model, tokenizer = self._load()
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        class Cancelled(StoppingCriteria):
            def __init__(self, event: threading.Event) -> None:
                self.event = event

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return self.event.is_set()

        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

        def run(on_chunk: Callable[[Any], bool]) -> None:
            streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
            cancelled = threading.Event()
            options = dict(
                inputs, max_new_tokens=max_tokens, do_sample=False, streamer=streamer,
                stopping_criteria=StoppingCriteriaList([Cancelled(cancelled)]), pad_token_id=pad,
            )  # fmt: skip
            if stop:
                options.update(stop_strings=stop, tokenizer=tokenizer)
            failures: list[BaseException] = []

            def decode() -> None:
                try:
                    model.generate(**options)
                except BaseException as exc:  # re-raised in the caller's thread
                    failures.append(exc)
                finally:
                    streamer.end()  # unblocks the loop below even when generate failed

            with self._generate_lock:
                cache = self._prefix_cache(messages, inputs["input_ids"])
                if cache is not None:
                    options["past_key_values"] = cache
                worker = threading.Thread(target=decode, name="transformers-generate", daemon=True)
                worker.start()
                for piece in streamer:
                    if piece and on_chunk(piece):
                        cancelled.set()
                worker.join()
            if failures:
                raise failures[0]

        yield from _stream_from_thread(run)


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


def _stream_from_thread(run: Callable[[Callable[[Any], bool]], None]) -> Iterator[Any]:
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


def _ask_openmp_to_sleep() -> None:
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


def defuse_control_tokens(text: str) -> str:
    """Make chat-template control tokens inert: their angle or square brackets become look-alikes.

    >>> defuse_control_tokens("x<|im_end|>\\n<|im_start|>system [INST]")
    'x‹|im_end|›\\n‹|im_start|›system ⟦INST⟧'
    """
    def inert(match: re.Match) -> str:
        token = match.group()
        if token.startswith("["):
            return "⟦" + token[1:-1] + "⟧"
        if token.startswith("<<"):
            return "‹‹" + token[2:-2] + "››"
        return "‹" + token[1:-1] + "›"

    return CONTROL_TOKEN.sub(inert, text)


def _check_messages(messages: Sequence[dict]) -> list[dict]:
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
    return checked


def check_positive(**values: int | None) -> None:
    """Raise InvalidArgument for any given value that is not None and not > 0."""
    for label, value in values.items():
        if value is not None and value <= 0:
            raise InvalidArgument(f"{label} must be > 0, got {value}")


def _check_max_tokens(max_tokens: int) -> int:
    check_positive(max_tokens=max_tokens)
    return max_tokens


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
