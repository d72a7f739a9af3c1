"""The real packaged models on the seed corpus (marked ``model``; CI runs them)."""

import json

import pytest

from qa.pipeline import Pipeline
from qa.settings import Settings
from qa.types import REFUSAL


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    p = Pipeline(Settings(index_dir=tmp_path_factory.mktemp("idx")))
    p.warm_up()
    return p


@pytest.mark.model
def test_known_answer_with_a_valid_citation(pipeline):
    answer = pipeline.answer("Who was Macron's special envoy for the strategic dialogue with Russia?")
    assert not answer.refused
    assert "Vimont" in answer.text
    assert answer.citations
    for c in answer.citations:
        assert pipeline.document_text(c.doc)[c.start : c.end] == c.text
    assert any("Pierre Vimont" in c.text for c in answer.citations)


@pytest.mark.model
def test_unanswerable_question_is_refused(pipeline):
    answer = pipeline.answer("Who is the current Secretary General of NATO?")
    assert answer.refused and answer.text == REFUSAL and answer.citations == ()
    assert answer.passages  # the closest passages are still offered


@pytest.mark.model
def test_short_style_answers_with_only_the_words_that_answer(pipeline, capsys):
    from qa.cli import main

    index = str(pipeline.settings.resolved_index_dir)  # the index the fixture built
    assert main(["--index-dir", index, "ask", "--short", "--json", "Who was Macron's special envoy for the strategic dialogue with Russia?"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert not result["refused"] and "Vimont" in result["answer"]
    assert len(result["answer"].split()) <= 5  # "Pierre Vimont [1]." rather than a sentence about him
    text = pipeline.document_text(result["citations"][0]["doc"])
    assert all(text[c["start"]:c["end"]] == c["text"] for c in result["citations"])


@pytest.mark.model
def test_follow_up_is_rewritten_with_the_conversation_and_answered(pipeline):
    first_q = "When did Macron propose a strategic dialogue with Russia?"
    first = pipeline.answer(first_q)
    second = pipeline.answer("how many working groups met for it?", history=[(first_q, first.text)])
    assert "dialogue" in second.standalone_question.lower()  # "it" replaced from the conversation
    assert not second.refused and "12" in second.text
    for c in second.citations:
        assert pipeline.document_text(c.doc)[c.start : c.end] == c.text
