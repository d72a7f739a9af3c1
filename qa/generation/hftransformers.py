"""Generate step, transformers backend: any causal language model Hugging Face transformers loads.

The one decision: this is the backend for models that are not GGUF files (a transformers model
folder, or a hub id for users who are online) and the fallback when no llama.cpp build is
installed; a GGUF file is dequantised to float32 on loading (1-2 minutes, 4-9 GB of RAM for the
1.5B model), so it is several times slower than the llama.cpp backends on CPU.

    >>> gen = TransformersGenerator("small")
    >>> "".join(gen.generate([{"role": "user", "content": "Capital of France? One word."}]))
    'Paris'
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Callable

from qa.errors import BackendUnavailable, ModelNotFound
from qa.generation.base import check_max_tokens, check_messages, cut_at_stop, stream_from_thread
from qa.generation.models import ModelSpec, resolve_model


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
        self.spec = resolve_model(model)
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
        if messages[-1]["role"] == "assistant":  # the reply's start: the prefix ends before the question
            messages = messages[:-1]
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
        checked = check_messages(messages)
        stop = [s for s in stop if s]
        return cut_at_stop(self._stream(checked, check_max_tokens(max_tokens), stop), stop)

    def _stream(self, messages: list[dict], max_tokens: int, stop: list[str]) -> Iterator[str]:
        model, tokenizer = self._load()
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        class Cancelled(StoppingCriteria):
            def __init__(self, event: threading.Event) -> None:
                self.event = event

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return self.event.is_set()

        started = messages[-1]["role"] == "assistant"  # the start of the reply, which the model continues
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=not started, continue_final_message=started, return_tensors="pt",
            return_dict=True
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

        yield from stream_from_thread(run)
