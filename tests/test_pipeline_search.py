"""Search over the seed corpus with the real packaged embedder (marked ``model``)."""

import pytest

from qa.pipeline import Pipeline
from qa.settings import Settings


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return Pipeline(Settings(index_dir=tmp_path_factory.mktemp("idx")))


@pytest.mark.model
def test_envoy_question_ranks_the_vimont_passage_first(pipeline):
    hits = pipeline.search("Who was Macron's special envoy for the strategic dialogue with Russia?")
    assert "Pierre Vimont" in hits[0].passage.text


@pytest.mark.model
def test_no_seed_passage_exceeds_the_embedder_window(pipeline):
    encoder = pipeline.encoder
    assert all(encoder.count_tokens(p.text) <= 256 for p in pipeline.index.passages)
    for p in pipeline.index.passages:
        assert pipeline.index.documents[p.doc].text[p.start : p.end] == p.text
