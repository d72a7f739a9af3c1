"""Generate step, ik_llama.cpp backend: the same GGUF file through ik_llama.cpp's C API.

The one decision: ik_llama.cpp is a llama.cpp fork with faster CPU matrix kernels, measured the
fastest backend on this kind of CPU (docs/DESIGN.md, step 7). The `ik-llama-cpp-python` wheel ships the library with ctypes bindings; only its C API is used here.
Like llama.cpp's server, the generator keeps the tokens already in its KV cache and decodes only
what follows the longest shared prefix, so the fixed system prompt and worked exchanges cost
nothing per question.

    >>> gen = IkLlamaGenerator("small")
    >>> "".join(gen.generate([{"role": "user", "content": "Capital of France? One word."}]))
    'Paris'
"""

from __future__ import annotations

import codecs
import ctypes
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Callable

from qa.errors import BackendUnavailable, GenerationError, ModelNotFound
from qa.generation import base
from qa.generation.lookup import PromptLookup
from qa.generation.models import ModelSpec

# speculative decoding from prompt lookup: tokens drafted per step, and the shortest n-gram matched (4 and 3 were
# the fastest of 4-8 tokens x 2-3 grams on short and long answers alike; bench/bench_draft.py compares 0 and 4)
DRAFT_TOKENS = int(os.environ.get("QA_DRAFT_TOKENS", "4"))
DRAFT_NGRAM = 3
DRAFT_AFTER = 8  # answer tokens before the first draft: a one-fact answer ("Pierre Vimont [1].") is over by then


class IkLlamaGenerator:
    """ik_llama.cpp in-process: one context, greedy decoding, KV cache reused across calls."""

    def __init__(
        self,
        model: str | os.PathLike[str] | ModelSpec,
        *,
        threads: int | None = None,  # decode threads; None: see qa.generation.base.llama_threads()
        batch_threads: int | None = None,  # prompt-processing threads; None: likewise
        n_ctx: int = 4096,  # tokens of context: ~1,100-token prompts plus the answer fit easily
        repack: bool = True,  # interleaved weight layout: prompts 66-74 vs 61-65 tokens/s here
        draft_tokens: int = DRAFT_TOKENS,  # prompt-lookup draft checked per step (qa.generation.lookup); 0: off
    ) -> None:
        self.spec = base.gguf_model(model, "ik_llama.cpp")
        base.check_positive(n_ctx=n_ctx)
        self.name = f"ik_llama.cpp:{self.spec.name}"
        self.threads, self.batch_threads = base.llama_threads(threads, batch_threads)
        self.n_ctx = n_ctx
        self.n_batch = 512
        self.repack = repack
        self.draft_tokens = draft_tokens
        self.drafted = self.accepted = 0  # draft tokens checked and kept, over this generator's life
        self._api: _Api | None = None
        self._model: Any = None
        self._ctx: Any = None
        self._template = b""
        self._n_vocab = 0
        self._cached: list[int] = []  # the tokens whose keys and values are in the KV cache, in order
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()

    def warm_up(self) -> None:
        self._load()

    def _load(self) -> _Api:
        with self._load_lock:
            if self._api is None:
                base.ask_openmp_to_sleep()
                api = _Api.load()
                params = api.C.llama_model_default_params()
                params.use_mmap = True
                params.repack_tensors = self.repack
                model = api.C.llama_model_load_from_file(os.fsencode(self.spec.path()), params)
                if not model:
                    raise ModelNotFound(f"ik_llama.cpp could not load {self.spec.name} from {self.spec.path()}")
                options = api.C.llama_context_default_params()
                options.n_ctx = self.n_ctx
                options.n_batch = options.n_ubatch = self.n_batch
                options.n_threads = self.threads
                options.n_threads_batch = self.batch_threads
                options.flash_attn = False  # ik's flash attention asserts on long prompts without AVX-VNNI
                ctx = api.C.llama_init_from_model(model, options)
                if not ctx:
                    api.C.llama_free_model(model)
                    raise BackendUnavailable(f"ik_llama.cpp could not create a context for {self.spec.name}")
                template = api.model_chat_template(model, None)
                if not template:
                    raise BackendUnavailable(f"{self.spec.name} has no chat template; use backend='transformers'")
                self._model, self._ctx, self._template = model, ctx, template
                self._n_vocab = api.n_vocab(model)
                self._api = api
        return self._api

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text, special=False))

    def _tokenize(self, text: str, *, special: bool) -> list[int]:
        api = self._load()
        data = text.encode("utf-8")
        size = len(data) + 8
        while True:
            buffer = (api.C.llama_token * size)()
            n = api.C.llama_tokenize(self._model, data, len(data), buffer, size, special, special)
            if n >= 0:
                return list(buffer[:n])
            size = -n

    def _prompt(self, messages: list[dict]) -> list[int]:
        """The chat template applied by llama.cpp's own template code, tokenised with its specials;
        a last assistant message is the start of the reply, which the model continues."""
        api = self._load()
        started = messages[-1]["content"] if messages[-1]["role"] == "assistant" else None
        if started is not None:
            messages = messages[:-1]
        keep = [(m["role"].encode(), m["content"].encode("utf-8")) for m in messages]  # alive during the call
        chat = (_ChatMessage * len(keep))(*(_ChatMessage(role, content) for role, content in keep))
        size = 2 * sum(len(content) + 16 for _, content in keep) + 256
        for _ in range(2):
            buffer = ctypes.create_string_buffer(size)
            n = api.chat_apply_template(self._template, chat, len(keep), True, buffer, size)
            if n < 0:
                raise BackendUnavailable(f"ik_llama.cpp does not know the chat template of {self.spec.name}")
            if n <= size:
                text = buffer.raw[:n].decode("utf-8")
                if started is not None:  # the reply's own start is text, never a control token
                    return self._tokenize(text, special=True) + self._tokenize(started, special=False)
                return self._tokenize(text, special=True)
            size = n
        raise GenerationError(f"{self.name}: the chat template output kept growing")

    def generate(
        self, messages: Sequence[dict], *, max_tokens: int = 160, stop: Sequence[str] = ()
    ) -> Iterator[str]:
        checked = base.check_messages(messages)
        stop = [s for s in stop if s]
        return base.cut_at_stop(self._stream(checked, base.check_max_tokens(max_tokens)), stop)

    def _stream(self, messages: list[dict], max_tokens: int) -> Iterator[str]:
        tokens = self._prompt(messages)
        if len(tokens) + max_tokens > self.n_ctx:
            raise GenerationError(
                f"{self.name}: the prompt takes {len(tokens)} tokens; with {max_tokens} to answer it exceeds "
                f"the {self.n_ctx}-token context"
            )

        def run(on_chunk: Callable[[Any], bool]) -> None:
            with self._generate_lock:
                for piece in self._decode(tokens, max_tokens):
                    if on_chunk(piece):
                        break

        yield from base.stream_from_thread(run)

    def _decode(self, tokens: list[int], max_tokens: int) -> Iterator[str]:
        """Evaluate ``tokens`` after the longest prefix already cached, then decode greedily."""
        api, ctx = self._api, self._ctx
        assert api is not None
        shared = 0
        for a, b in zip(self._cached, tokens):
            if a != b:
                break
            shared += 1
        shared = min(shared, len(tokens) - 1)  # the last prompt token is always evaluated, for its logits
        if not api.kv_cache_seq_rm(ctx, 0, shared, -1):
            api.C.llama_kv_cache_clear(ctx)
            shared = 0
        self._cached = self._cached[:shared]
        for start in range(shared, len(tokens), self.n_batch):
            chunk = tokens[start : start + self.n_batch]
            self._evaluate(chunk, start, logits=start + self.n_batch >= len(tokens))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        piece = ctypes.create_string_buffer(256)
        for token in self._choose(tokens, max_tokens):
            n = api.C.llama_token_to_piece(self._model, token, piece, len(piece), 0, False)
            text = decoder.decode(piece.raw[: max(n, 0)])
            if text:
                yield text
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail

    def _choose(self, prompt: list[int], max_tokens: int) -> Iterator[int]:
        """The greedy answer's tokens after the evaluated ``prompt``, up to ``max_tokens`` and before
        the end-of-generation token. A token is yielded (shown) before it goes into the cache, with
        the prompt-lookup draft that follows it; the draft tokens the model agrees with are yielded
        next, the rejected ones leave the cache."""
        api = self._api
        lookup = PromptLookup(prompt, min_ngram=DRAFT_NGRAM) if self.draft_tokens else None
        answer: list[int] = []
        accepted: list[int] = []  # draft tokens already in the cache, not yet shown
        token = _argmax(api.C.llama_get_logits_ith(self._ctx, -1), self._n_vocab)
        while True:
            for chosen in (*accepted, token):
                if api.C.llama_token_is_eog(self._model, chosen):
                    return
                yield chosen
                answer.append(chosen)
            if len(answer) >= max_tokens:
                return
            # drafting starts after DRAFT_AFTER (> the n-gram) answer tokens, so the answer alone ends in the n-gram
            room = min(self.draft_tokens, max_tokens - len(answer) - 1) if len(answer) >= DRAFT_AFTER else 0
            draft = lookup.draft(answer, room) if lookup else []
            choices = self._evaluate_draft([token, *draft], len(self._cached))
            kept = next((i for i, (d, c) in enumerate(zip(draft, choices)) if d != c), len(draft))
            if kept < len(draft):  # the rejected draft tokens leave the cache
                self._forget_after(len(self._cached) - (len(draft) - kept))
            self.drafted += len(draft)
            self.accepted += kept
            accepted, token = draft[:kept], choices[kept]

    def _evaluate_draft(self, tokens: list[int], start: int) -> list[int]:
        """Append ``tokens`` at ``start``... and return the greedy choice after each of them."""
        if len(tokens) == 1:
            self._evaluate(tokens, start, logits=True)
            return [_argmax(self._api.C.llama_get_logits_ith(self._ctx, -1), self._n_vocab)]
        self._evaluate(tokens, start, logits=True, every=True)
        return [_argmax(self._api.C.llama_get_logits_ith(self._ctx, i), self._n_vocab) for i in range(len(tokens))]

    def _forget_after(self, position: int) -> None:
        """Drop the KV cache from ``position`` on."""
        if not self._api.kv_cache_seq_rm(self._ctx, 0, position, -1):
            self._api.C.llama_kv_cache_clear(self._ctx)
            self._cached = []
            raise GenerationError(f"{self.name}: could not drop rejected draft tokens from the cache")
        del self._cached[position:]

    def _evaluate(self, tokens: list[int], start: int, *, logits: bool, every: bool = False) -> None:
        """Append ``tokens`` at positions ``start``... to the KV cache (and to ``_cached``); logits for
        the last token when ``logits``, for each when ``every``."""
        from ik_llama_cpp._internals import make_batch_range

        api = self._api
        assert api is not None
        batch = make_batch_range(tokens, pos_start=start, logits_last=logits)
        if every:
            for i in range(len(tokens)):
                batch.logits[i] = 1
        try:
            status = api.C.llama_decode(self._ctx, batch)
        finally:
            api.C.llama_batch_free(batch)
        if status != 0:
            api.C.llama_kv_cache_clear(self._ctx)
            self._cached = []
            raise GenerationError(f"{self.name}: llama_decode failed with status {status}")
        self._cached.extend(tokens)


def _argmax(logits: Any, n: int) -> int:
    import numpy as np

    return int(np.ctypeslib.as_array(logits, shape=(n,)).argmax())


_LogCallback = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_ERROR = 4  # GGML_LOG_LEVEL_ERROR


@_LogCallback
def _LOG_ERRORS_ONLY(level: int, text: bytes | None, user_data: Any) -> None:
    if level == _ERROR and text:
        sys.stderr.write(text.decode("utf-8", "replace"))


class _ChatMessage(ctypes.Structure):
    _fields_ = [("role", ctypes.c_char_p), ("content", ctypes.c_char_p)]


class _Api:
    """The wheel's ctypes bindings plus the few C functions they leave out (from its llama.h)."""

    _loaded: _Api | None = None

    def __init__(self, C: Any) -> None:
        lib = C._lib
        self.C = C
        self.kv_cache_seq_rm = _bind(lib, "llama_kv_cache_seq_rm",
                                     [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32], ctypes.c_bool)
        self.model_chat_template = _bind(lib, "llama_model_chat_template", [ctypes.c_void_p, ctypes.c_char_p],
                                         ctypes.c_char_p)
        self.chat_apply_template = _bind(
            lib, "llama_chat_apply_template",
            [ctypes.c_char_p, ctypes.POINTER(_ChatMessage), ctypes.c_size_t, ctypes.c_bool, ctypes.c_char_p,
             ctypes.c_int32],
            ctypes.c_int32,
        )  # fmt: skip
        self.n_vocab = _bind(lib, "llama_n_vocab", [ctypes.c_void_p], ctypes.c_int32)
        self.log_set = _bind(lib, "llama_log_set", [_LogCallback, ctypes.c_void_p], None)

    @classmethod
    def load(cls) -> _Api:
        if cls._loaded is None:
            try:
                from ik_llama_cpp import _ctypes_api as C
            except (ImportError, OSError) as exc:
                raise BackendUnavailable(
                    f"the ik backend needs ik-llama-cpp-python: {exc}; pip install ik-llama-cpp-python"
                ) from exc
            C.llama_backend_init()
            api = cls(C)
            api.log_set(_LOG_ERRORS_ONLY, None)  # llama.cpp logs every tensor and layer otherwise
            cls._loaded = api
        return cls._loaded


def _bind(lib: ctypes.CDLL, name: str, argtypes: list, restype: Any) -> Callable[..., Any]:
    function = getattr(lib, name)
    function.argtypes, function.restype = argtypes, restype
    return function
