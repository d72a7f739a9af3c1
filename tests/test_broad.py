"""Broad answers end to end with fakes: central sentences, per-document snippets, the prompt, refusals."""

import re

import numpy as np
import pytest

from conftest import KeywordEncoder, ScriptedGenerator, write_corpus
from qa.answer import AnswerSettings
from qa.pipeline import Pipeline
from qa.prompting.broad import central_sentences, central_snippets, per_document_snippets
from qa.settings import Settings
from qa.types import REFUSAL, Answer, Retrieved, Token

HARBOUR = """Harbour Days

The harbour of Larsholm was rebuilt after the storm of 1990 destroyed the old pier and most boats.
The new pier was paid for by the fishermen, the town council and a loan from the regional bank.

Fishing boats now land cod and herring at the new pier every morning before the market opens.
The council says the harbour rebuilt after the storm now lands more fish than before the storm.

A small museum about the storm opened beside the pier, with photographs of the destroyed boats.
"""
TOWN = """Town Notes

Tom Berg argues that the town spent too much on the harbour and too little on its only school.
The school roof has leaked for ten years, and the town council keeps postponing the repairs.

Berg also writes that the new pier brought tourists, who now fill the cafes every summer weekend.
"""


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "c", {"a_harbour.txt": HARBOUR, "b_town.txt": TOWN})


def make(corpus, tmp_path, replies, **answer):
    generator = ScriptedGenerator(replies)
    settings = Settings(corpus=corpus, index_dir=tmp_path / "idx", answer=AnswerSettings(**answer))
    return Pipeline(settings, encoder=KeywordEncoder(), generator=generator), generator


def test_central_sentences_prefer_the_centre_and_spread_out():
    # three sentences about the same thing (near-duplicates), one in between, one outlier
    v = np.array([[1, 0, 0], [0.98, 0.2, 0], [0.97, 0.24, 0], [0.7, 0.7, 0], [0, 0, 1]], dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    picked = central_sentences(v, k=2)
    assert 4 not in picked  # the outlier is not central
    assert len({0, 1, 2} & set(picked)) == 1  # one of the near-duplicates, not two
    assert picked == sorted(picked)  # in document order
    assert central_sentences(v, k=2, query=v[4], focus=0.9)[-1] == 4  # a topic pulls toward itself
    assert central_sentences(v[:0], k=3) == [] and central_sentences(v, k=0) == []


def test_central_snippets_are_exact_sentences_of_the_document_in_order_under_budget(corpus, tmp_path):
    pipeline, _ = make(corpus, tmp_path, [REFUSAL])
    retriever = pipeline.retriever
    snippets = central_snippets(retriever, ["a_harbour.txt"], "Summarize it.", budget=40,
                                count_tokens=lambda t: len(t.split()))
    document = retriever.document_text("a_harbour.txt")
    assert 1 <= len(snippets) <= 3 and [s.n for s in snippets] == list(range(1, len(snippets) + 1))
    assert all(document[s.start : s.end] == s.text and s.passage.doc == "a_harbour.txt" for s in snippets)
    assert [s.start for s in snippets] == sorted(s.start for s in snippets)
    assert all(s.text != "Harbour Days" for s in snippets)  # a heading is not a sentence that says something
    assert sum(len(s.text.split()) for s in snippets) <= 40


def test_a_comparison_reads_every_document_even_when_one_matches_the_words_best(corpus, tmp_path):
    pipeline, _ = make(corpus, tmp_path, [REFUSAL])
    question = "How do the harbour pier storm boats fish accounts compare with the school?"
    top = pipeline.search(question, k=3)
    assert {h.doc for h in top} == {"a_harbour.txt"}  # the ranking alone would read one document
    snippets, _ = per_document_snippets(pipeline.retriever, ["a_harbour.txt", "b_town.txt"], question, budget=60,
                                        count_tokens=lambda t: len(t.split()))
    assert {s.passage.doc for s in snippets} == {"a_harbour.txt", "b_town.txt"}
    assert [s.n for s in snippets] == list(range(1, len(snippets) + 1))
    docs = [s.passage.doc for s in snippets]
    assert docs == sorted(docs)  # numbered document by document


def test_a_summary_streams_retrieved_first_and_cites_the_named_document(corpus, tmp_path):
    pipeline, generator = make(corpus, tmp_path, ["The harbour of Larsholm was rebuilt after the storm [1]. "
                                                  "The fishermen and the council paid for the new pier [2]."])
    events = list(pipeline.stream("Summarize the first article."))
    assert isinstance(events[0], Retrieved) and isinstance(events[-1], Answer)
    assert all(isinstance(e, Token) for e in events[1:-1])
    answer = events[-1]
    user = generator.prompts[0][-1]["content"]
    assert "Summarize them" in user and "Tom Berg" not in user  # only the first article
    assert not answer.refused and {c.doc for c in answer.citations} == {"a_harbour.txt"}
    for c in answer.citations:
        assert pipeline.document_text(c.doc)[c.start : c.end] == c.text


def test_broad_answers_keep_the_one_fact_prefix_so_the_cache_serves_both(corpus, tmp_path):
    pipeline, generator = make(corpus, tmp_path, [REFUSAL, REFUSAL])
    pipeline.answer("Why was the harbour rebuilt?")
    pipeline.answer("When was the harbour rebuilt?")
    broad, fact = generator.prompts
    assert broad[:-1] == fact[:-1]  # system prompt and worked exchanges: one cached prefix
    assert "two or three sentences" in broad[-1]["content"]
    assert fact[-1]["content"].rstrip().endswith("Question: When was the harbour rebuilt?")  # unchanged


def test_a_list_answer_is_shown_as_cited_bullet_lines(corpus, tmp_path):
    reply = "- cod [1]\n- herring [1]"
    pipeline, _ = make(corpus, tmp_path, [reply])
    answer = pipeline.answer("Which two fishes do the boats land at the new pier?")
    assert not answer.refused
    assert re.fullmatch(r"- cod \[1\]\n- herring \[1\]", answer.text)


@pytest.mark.parametrize("question", [
    'Summarize the article "The Lighthouse Keepers".',  # a quoted title no document has
    "How does the harbour compare with the one in Rotterdam?",  # a name no document mentions
])
def test_a_question_about_what_no_document_holds_is_refused_without_the_model(corpus, tmp_path, question):
    pipeline, generator = make(corpus, tmp_path, ["The harbour was rebuilt after the storm [1]."])
    answer = pipeline.answer(question)
    assert answer.refused and answer.text == REFUSAL and generator.prompts == []
    assert answer.passages  # the closest passages are still listed


def test_shapes_can_be_turned_off(corpus, tmp_path):
    pipeline, generator = make(corpus, tmp_path, [REFUSAL], shapes=False)
    pipeline.answer("Why was the harbour rebuilt?")
    assert generator.prompts[0][-1]["content"].rstrip().endswith("Question: Why was the harbour rebuilt?")


def test_an_extractive_comparison_quotes_each_document_under_its_source_without_the_model(corpus, tmp_path):
    pipeline, generator = make(corpus, tmp_path, [], extractive=("summary", "compare"))
    events = list(pipeline.stream("How do the two articles differ about the harbour?"))
    answer = events[-1]
    assert generator.prompts == []  # no model call
    assert isinstance(events[0], Retrieved) and [e.text for e in events[1:-1]] == [answer.text]
    assert not answer.refused and {c.doc for c in answer.citations} == {"a_harbour.txt", "b_town.txt"}
    for c in answer.citations:  # every sentence is the document's own, cited at its exact span
        assert pipeline.document_text(c.doc)[c.start : c.end] == c.text
        assert " ".join(c.text.split()).rstrip(".") in answer.text
    lines = answer.text.splitlines()
    assert len(lines) == 2 and lines[0].startswith("«Harbour Days»: ") and lines[1].startswith("«Town Notes»: ")
    assert len(answer.text.split()) <= 120


def test_an_extractive_summary_stays_within_its_words_and_in_document_order(corpus, tmp_path):
    pipeline, generator = make(corpus, tmp_path, [], extractive=("summary",))
    answer = pipeline.answer("Summarize the first article.")
    assert generator.prompts == [] and not answer.refused
    assert {c.doc for c in answer.citations} == {"a_harbour.txt"}
    starts = [c.start for c in answer.citations]
    assert starts == sorted(starts) and 10 <= len(answer.text.split()) <= 120
    assert [f"[{c.n}]" in answer.text for c in answer.citations] == [True] * len(answer.citations)


def test_only_broad_shapes_can_be_extractive(monkeypatch):
    from qa.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="fact"):
        AnswerSettings(extractive=("fact",))
    with pytest.raises(InvalidArgument, match="poem"):
        AnswerSettings(extractive=("poem",))
    monkeypatch.setenv("QA_EXTRACTIVE", "summary, compare")
    assert Settings.from_env().answer.extractive == ("summary", "compare")
    monkeypatch.setenv("QA_EXTRACTIVE", "none")
    assert Settings.from_env().answer.extractive == ()
