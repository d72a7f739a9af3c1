"""qa/generation: the shared base, the factory and the backends (ikllama, llamacpp, hftransformers): backend choice, streaming
plumbing with fakes, and the real packaged models."""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings

import pytest

from qa.errors import BackendUnavailable, GenerationError, InvalidArgument, ModelNotFound
from qa.generation import base, factory
from qa.generation.base import Generator, cut_at_stop
from qa.generation.factory import load_generator
from qa.generation.hftransformers import TransformersGenerator
from qa.generation.ikllama import IkLlamaGenerator
from qa.generation.llamacpp import LlamaCppGenerator
from qa.generation.models import resolve_model

QUESTION = [
    {"role": "system", "content": "Answer in one short sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]


@pytest.fixture
def gguf_file(tmp_path):
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF not really a model")
    return path


@pytest.fixture
def transformers_dir(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    return tmp_path


class ScriptedServer:
    """Stands in for xllamacpp.Server: streams OpenAI-style chunks to the callback."""

    def __init__(self, pieces, error=None, delay=0.0):
        self.pieces, self.error, self.delay = pieces, error, delay
        self.requests, self.stopped_early = [], False

    def handle_chat_completions(self, request, callback):
        self.requests.append(request)
        chunks = [{"choices": [{"delta": {"role": "assistant", "content": None}}]}]
        chunks += [{"choices": [{"delta": {"content": p}}]} for p in self.pieces]
        if self.error:
            chunks.append({"error": {"code": 400, "message": self.error}})
        for chunk in chunks:
            time.sleep(self.delay)  # a real server decodes tokens one by one
            if callback(chunk):
                self.stopped_early = True
                return


# --- stop strings and streaming plumbing -------------------------------------------------


@pytest.mark.parametrize(
    "pieces,stop,expected",
    [
        (["Paris", " is", " nice"], [], "Paris is nice"),
        (["Paris.", "\n", "\nQuestion"], ["\n\n"], "Paris."),
        (["Par", "is", "END", "more"], ["EN", "is"], "Par"),  # earliest stop wins
        (["STOP", "x"], ["STOP"], ""),
        (["ab", "c"], ["abcd"], "abc"),  # a held-back prefix that never completes
        (["", "a", ""], ["", "zz"], "a"),  # empty stop strings are ignored
        ([], ["x"], ""),
    ],
)
def test_cut_at_stop(pieces, stop, expected):
    out = list(cut_at_stop(iter(pieces), stop))
    assert "".join(out) == expected
    assert all(out)  # never yields empty pieces


def test_cut_at_stop_streams_each_piece_unless_it_could_begin_a_stop_string():
    consumed = []

    def pieces():
        for piece in ["2014", " [1]", ".", "\n", "Que", "stion:"]:
            consumed.append(piece)
            yield piece

    stream = cut_at_stop(pieces(), ["\n\n", "Question:"])
    assert next(stream) == "2014" and len(consumed) == 1  # not held back for a stop string's length
    assert list(stream) == [" [1]", ".", "\n"] and consumed[-1] == "stion:"  # "\nQue" waited, then "Que" ended


def test_stream_from_thread_passes_items_and_errors():
    assert list(base.stream_from_thread(lambda emit: [emit(i) for i in range(3)])) == [0, 1, 2]

    def boom(emit):
        emit("first")
        raise RuntimeError("native failure")

    stream = base.stream_from_thread(boom)
    assert next(stream) == "first"
    with pytest.raises(GenerationError, match="native failure"):
        next(stream)


def test_stream_from_thread_tells_the_producer_when_the_consumer_stops():
    answers = []

    def produce(emit):
        for i in range(1000):
            answers.append(emit(i))
            if answers[-1]:
                return
            time.sleep(0.001)

    stream = base.stream_from_thread(produce)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()  # joins the worker
    assert answers[-1] is True and len(answers) < 1000


# --- backend choice ----------------------------------------------------------------------


def test_load_generator_prefers_ik_llama_then_llama_for_gguf_without_loading(gguf_file, monkeypatch):
    gen = load_generator(gguf_file)
    assert isinstance(gen, IkLlamaGenerator) and isinstance(gen, Generator)
    assert gen.name == "ik_llama.cpp:tiny.gguf" and gen._api is None
    real = factory._importable
    monkeypatch.setattr(factory, "_importable", lambda m: m != "ik_llama_cpp" and real(m))
    gen = load_generator(gguf_file)
    assert isinstance(gen, LlamaCppGenerator) and gen.name == "llama.cpp:tiny.gguf" and gen._server is None
    with pytest.raises(BackendUnavailable, match="pip install ik-llama-cpp-python"):
        load_generator(gguf_file, backend="ik")


def test_load_generator_uses_transformers_for_directories(transformers_dir):
    gen = load_generator(transformers_dir)
    assert isinstance(gen, TransformersGenerator) and gen._model is None
    for backend in ("llama", "ik"):
        with pytest.raises(BackendUnavailable, match="needs a GGUF"):
            load_generator(transformers_dir, backend=backend)


def test_load_generator_falls_back_without_xllamacpp(gguf_file, monkeypatch):
    real = factory._importable
    monkeypatch.setattr(factory, "_importable", lambda m: m not in ("xllamacpp", "ik_llama_cpp") and real(m))
    assert isinstance(load_generator(gguf_file), TransformersGenerator)
    with pytest.raises(BackendUnavailable, match="pip install xllamacpp"):
        load_generator(gguf_file, backend="llama")


def test_load_generator_without_transformers(transformers_dir, monkeypatch):
    monkeypatch.setattr(factory, "_importable", lambda m: m not in ("torch", "transformers"))
    with pytest.raises(BackendUnavailable, match="pip install torch transformers"):
        load_generator(transformers_dir)


def test_load_generator_rejects_unknown_backend(gguf_file):
    with pytest.raises(InvalidArgument, match="unknown backend"):
        load_generator(gguf_file, backend="vllm")


def test_broken_gguf_fails_with_a_typed_error(gguf_file):
    gen = LlamaCppGenerator(gguf_file)
    with pytest.raises(ModelNotFound, match="tiny.gguf"):
        gen.warm_up()


@pytest.mark.parametrize(
    "messages,max_tokens,match",
    [
        ([], 10, "empty"),
        ([{"role": "robot", "content": "hi"}], 10, "role"),
        ([{"role": "user", "content": None}], 10, "content"),
        (["hello"], 10, "dict"),
        (QUESTION, 0, "max_tokens"),
        ([{"role": "assistant", "content": "-"}], 10, "must follow a user message"),
    ],
)
def test_generate_validates_before_loading(gguf_file, transformers_dir, messages, max_tokens, match):
    for gen in (LlamaCppGenerator(gguf_file), TransformersGenerator(transformers_dir)):
        with pytest.raises(InvalidArgument, match=match):
            gen.generate(messages, max_tokens=max_tokens)


def test_openmp_is_asked_to_sleep_and_late_setting_warns(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    base.ask_openmp_to_sleep()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"  # an explicit choice is kept
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.delitem(sys.modules, "xllamacpp", raising=False)
    monkeypatch.delitem(sys.modules, "ik_llama_cpp", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        base.ask_openmp_to_sleep()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setitem(sys.modules, "torch", object())
    with pytest.warns(RuntimeWarning, match="before starting Python"):
        base.ask_openmp_to_sleep()


def test_default_threads_split_decode_and_prompt():
    decode, prompt = base.default_threads()
    assert 1 <= decode <= prompt and decode == max(1, prompt // 2)
    gen = LlamaCppGenerator(resolve_model("small"), threads=3)
    assert (gen.threads, gen.batch_threads) == (3, 3)
    with pytest.raises(InvalidArgument, match="threads"):
        LlamaCppGenerator(resolve_model("small"), batch_threads=0)


# --- llama.cpp stream handling against a scripted server ---------------------------------


def test_llama_streams_content_deltas_greedily(gguf_file):
    gen = LlamaCppGenerator(gguf_file)
    gen._server = ScriptedServer(["Paris", " is", "", " the capital."])
    assert list(gen.generate(QUESTION, max_tokens=7, stop=["\n\n", ""])) == [
        "Paris", " is", " the capital."
    ]  # fmt: skip
    request = gen._server.requests[0]
    assert request["temperature"] == 0 and request["top_k"] == 1 and request["stream"]
    assert request["max_tokens"] == 7 and request["stop"] == ["\n\n"]
    assert request["cache_prompt"] and request["messages"] == QUESTION


def test_llama_error_chunk_raises(gguf_file):
    gen = LlamaCppGenerator(gguf_file)
    gen._server = ScriptedServer(["Par"], error="request exceeds the available context size")
    with pytest.raises(GenerationError, match="context size"):
        list(gen.generate(QUESTION))


def test_llama_stops_decoding_when_the_consumer_stops(gguf_file):
    gen = LlamaCppGenerator(gguf_file)
    gen._server = ScriptedServer([str(i) for i in range(100)], delay=0.005)
    stream = gen.generate(QUESTION)
    assert next(stream) == "0"
    stream.close()
    assert gen._server.stopped_early
    assert not gen._generate_lock.locked()


def test_prompt_lookup_drafts_what_followed_the_longest_matching_ngram():
    import doctest

    from qa.generation import lookup

    assert doctest.testmod(lookup).failed == 0
    table = lookup.PromptLookup([1, 2, 3, 4, 5, 2, 3, 9], max_ngram=3, min_ngram=2)
    assert table.draft([7, 2, 3], 2) == [9]  # the last occurrence of "2 3"
    assert table.draft([1, 2, 3], 2) == [4, 5]  # "1 2 3" is longer than "2 3"
    assert table.draft([2, 3], 0) == [] and table.draft([3], 4) == []  # no room; shorter than min_ngram
    assert lookup.PromptLookup([]).draft([1, 2, 3], 4) == []
    with pytest.raises(ValueError):
        lookup.PromptLookup([1], max_ngram=2, min_ngram=3)


# --- the real packaged models ------------------------------------------------------------


@pytest.fixture(scope="module", params=["llama", "ik"])
def llama_small(request):
    """The small packaged model on each llama.cpp backend: xllamacpp's server and ik_llama.cpp."""
    gen = load_generator("small", backend=request.param)
    gen.warm_up()
    return gen


@pytest.mark.model
def test_llama_small_answers_greedily_and_streams(llama_small):
    pieces = list(llama_small.generate(QUESTION, max_tokens=24))
    assert "Paris" in "".join(pieces)
    assert list(llama_small.generate(QUESTION, max_tokens=24)) == pieces  # greedy: repeatable
    counting = list(llama_small.generate([{"role": "user", "content": "Count from 1 to 5."}], max_tokens=24))
    assert len(counting) >= 5 and "3" in "".join(counting)  # streamed piece by piece, not in one block
    assert llama_small.count_tokens("Hello world") == 2
    assert llama_small.count_tokens("") == 0


@pytest.mark.model
def test_llama_stop_strings_and_early_close(llama_small):
    text = "".join(llama_small.generate(QUESTION, max_tokens=24, stop=["capital"]))
    assert "capital" not in text and text.startswith("Paris")
    stream = llama_small.generate([{"role": "user", "content": "Count from 1 to 300."}], max_tokens=400)
    start = time.perf_counter()
    next(stream)
    stream.close()
    assert time.perf_counter() - start < 10  # did not decode 400 tokens
    assert "Paris" in "".join(llama_small.generate(QUESTION, max_tokens=24))


@pytest.mark.model
def test_llama_serves_concurrent_callers_one_at_a_time(llama_small):
    expected = "".join(llama_small.generate(QUESTION, max_tokens=16))
    results = []
    threads = [
        threading.Thread(target=lambda: results.append("".join(llama_small.generate(QUESTION, max_tokens=16))))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == [expected] * 3


@pytest.mark.model
def test_llama_prompt_too_long_is_a_generation_error(llama_small):
    with pytest.raises(GenerationError, match="context"):
        list(llama_small.generate([{"role": "user", "content": "word " * 6000}], max_tokens=4))


@pytest.mark.model
def test_llama_the_other_weight_layout_still_answers(llama_small):
    # xllamacpp defaults to the plain mmapped layout, ik_llama.cpp to repacked: both were faster there
    assert llama_small.repack is isinstance(llama_small, IkLlamaGenerator)
    other = type(llama_small)(resolve_model("small"), repack=not llama_small.repack)
    assert "Paris" in "".join(other.generate(QUESTION, max_tokens=24))


@pytest.mark.model
def test_ik_reuses_the_cached_prefix_and_answers_as_from_scratch():
    gen = load_generator("small", backend="ik")
    prefix = [
        {"role": "system", "content": "Answer from the passage in a few words and cite it as [1]."},
        {"role": "user", "content": "[1] The lighthouse of Vimont was built in 1811.\n\nWhen was it built?"},
        {"role": "assistant", "content": "1811 [1]."},
    ]
    ask = lambda q: prefix + [{"role": "user", "content": q}]  # noqa: E731
    "".join(gen.generate(ask("[1] Vimont has a harbour.\n\nWhat does Vimont have?"), max_tokens=12))
    mayor = ask("[1] Marie Duval was the first mayor of Vimont.\n\nWho was the first mayor of Vimont?")
    evaluated = []
    real = gen._evaluate
    gen._evaluate = lambda tokens, start, **kw: (evaluated.append((start, len(tokens))), real(tokens, start, **kw))
    cached = "".join(gen.generate(mayor, max_tokens=12))
    shared = len(gen._prompt(prefix))  # the previous question's prompt began with these tokens too
    assert evaluated[0][0] >= shared - 4  # the prompt is evaluated from the end of the shared prefix on
    gen._cached = []  # forget what the KV cache holds: everything is evaluated again
    evaluated.clear()
    assert "".join(gen.generate(mayor, max_tokens=12)) == cached and "Duval" in cached
    assert evaluated[0][0] == 0


@pytest.mark.model
def test_ik_prompt_lookup_drafts_copied_words_and_answers_as_plain_greedy_decoding():
    passage = ("[1] The harbour town of Vimont was founded in 1642 by fishermen from the northern coast, and its "
               "granite lighthouse, built in 1811, still guides the fishing boats past the reef every night.")
    copy = [{"role": "user", "content": f"{passage}\n\nCopy passage [1] word for word, without its number."}]
    plain = IkLlamaGenerator(resolve_model("small"), draft_tokens=0)
    drafting = IkLlamaGenerator(resolve_model("small"), draft_tokens=4)
    expected = "".join(plain.generate(copy, max_tokens=48))
    assert "granite lighthouse" in expected
    assert "".join(drafting.generate(copy, max_tokens=48)) == expected  # no near-tie in this copy
    assert plain.drafted == 0 and drafting.accepted >= 16  # most of the copy came from checked drafts
    for cap in (1, 9, 12):  # a draft never carries the answer past max_tokens (drafts start at token 8)
        assert drafting.count_tokens("".join(drafting.generate(copy, max_tokens=cap))) <= cap + 1
        assert "".join(drafting.generate(copy, max_tokens=cap)) == "".join(plain.generate(copy, max_tokens=cap))
    "".join(drafting.generate(copy, max_tokens=12))
    prompt = drafting._prompt(copy)  # the cache holds the prompt and the answer but its last token, no rejected draft
    assert drafting._cached[: len(prompt)] == prompt and len(drafting._cached) == len(prompt) + 11


FRUITS = [{"role": "user", "content": "Name three fruits, one per line, each starting with a dash."},
          {"role": "assistant", "content": "- Apple\n-"}]


@pytest.mark.model
@pytest.mark.parametrize("backend", ["ik", "llama", "transformers"])
def test_every_backend_goes_on_from_the_start_of_a_reply_it_is_given(backend):
    # a broad answer's first line is started for the model (qa.broad): the reply continues it
    text = "".join(load_generator("small", backend=backend, threads=2).generate(FRUITS, max_tokens=12))
    assert text.startswith(" ") and text.split()[0].isalpha()  # the next item's word, not "-" or a new reply
    assert "Apple" not in text


@pytest.mark.model
def test_llama_default_from_a_local_gguf_path():
    path = resolve_model("default").path()  # the assembled packaged file, loaded as a path
    gen = load_generator(path)
    assert isinstance(gen, IkLlamaGenerator) and gen.spec.source == "file"
    passages = (
        "Answer from the passages and cite [n].\n\n[1] The lighthouse of Vimont was built "
        "of grey granite in 1811.\n\n[2] Marie Duval was the first mayor of Vimont."
    )
    ask = lambda q: [{"role": "system", "content": passages}, {"role": "user", "content": q}]  # noqa: E731
    assert "1811" in "".join(gen.generate(ask("When was the lighthouse built?"), max_tokens=40))
    start = time.perf_counter()
    pieces = list(gen.generate(ask("Who was the first mayor of Vimont?"), max_tokens=40))
    assert "Duval" in "".join(pieces) and len(pieces) >= 3
    assert time.perf_counter() - start < 60  # generous: CI machines are shared


@pytest.mark.model
def test_transformers_small_gguf_streams_the_same_answer(llama_small):
    gen = load_generator("small", backend="transformers", threads=2)
    assert isinstance(gen, TransformersGenerator)
    gen.warm_up()
    gen.warm_up()  # second call is a no-op
    pieces = list(gen.generate(QUESTION, max_tokens=12))
    assert len(pieces) >= 3 and all(pieces)
    assert "Paris" in "".join(pieces)
    assert "capital" not in "".join(gen.generate(QUESTION, max_tokens=12, stop=["capital"]))
    assert gen.count_tokens("Hello world") == llama_small.count_tokens("Hello world")


@pytest.mark.model
def test_transformers_reuses_the_kv_cache_of_the_fixed_prefix_and_answers_as_without_it():
    gen = load_generator("small", backend="transformers", threads=2)
    prefix = [
        {"role": "system", "content": "Answer from the passage in a few words and cite it as [1]."},
        {"role": "user", "content": "[1] The lighthouse of Vimont was built in 1811.\n\nWhen was it built?"},
        {"role": "assistant", "content": "1811 [1]."},
    ]
    ask = lambda q: prefix + [{"role": "user", "content": q}]  # noqa: E731
    mayor = ask("[1] Marie Duval was the first mayor of Vimont.\n\nWho was the first mayor of Vimont?")
    cached = "".join(gen.generate(mayor, max_tokens=12))
    key, cache = gen._prefix
    assert len(key) > 20  # the system and worked-example turns, tokenised
    list(gen.generate(ask("[1] The reef lies north of Vimont.\n\nWhere is the reef?"), max_tokens=4))
    assert gen._prefix[0] == key and gen._prefix[1] is cache  # same prefix: computed once, reused
    gen._prefix_cache = lambda messages, input_ids: None  # the same generator without prefix reuse
    assert "Duval" in cached and "".join(gen.generate(mayor, max_tokens=12)) == cached
