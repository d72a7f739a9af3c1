"""The real packaged models on the seed corpus (marked ``model``; CI runs them)."""

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
