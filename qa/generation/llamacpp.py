"""Generate step, llama.cpp backend: a GGUF file through xllamacpp's in-process llama.cpp server.

The one decision: xllamacpp ships prebuilt llama.cpp wheels (no 13-minute compile) and its server
keeps the KV cache of the longest shared prompt prefix, so the fixed system prompt and worked
exchanges cost nothing per question. It runs one slot, greedily, with its HTTP port guarded by a
random key and reached only for tokenisation, never through a proxy.

    >>> gen = LlamaCppGenerator("small")
    >>> "".join(gen.generate([{"role": "user", "content": "Capital of France? One word."}]))
    'Paris'
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any, Callable

from qa.errors import GenerationError, ModelNotFound
from qa.generation import base
from qa.generation.models import ModelSpec


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
        self.spec = base.gguf_model(model, "llama.cpp")
        base.check_positive(n_ctx=n_ctx)
        self.name = f"llama.cpp:{self.spec.name}"
        self.threads, self.batch_threads = base.llama_threads(threads, batch_threads)
        self.n_ctx = n_ctx
        self.cache_ram_mib = cache_ram_mib
        # llama.cpp repacks Q4_K weights by default; the plain mmapped layout reads prompts faster
        # here and needs less RAM, and prompt speed decides the wait (docs/DESIGN.md).
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
                base.ask_openmp_to_sleep()
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
            "messages": base.check_messages(messages),
            "max_tokens": base.check_max_tokens(max_tokens),
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

        for chunk in base.stream_from_thread(run):
            if "error" in chunk:  # e.g. a prompt longer than n_ctx; reported as a chunk
                error = chunk["error"]
                raise GenerationError(f"{self.name}: {error.get('message', error)}")
            for choice in chunk.get("choices", ()):
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield text
