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


@pytest.mark.model
def test_encoding_longest_first_returns_each_vector_in_its_texts_place():
    from embeddings.encoder import load_encoder

    encoder = load_encoder("all-MiniLM-L6-v2")
    encoder.batch_size = 2  # several batches, each of texts far from their input positions
    texts = ["Paris.", "The U.S. left the INF Treaty in 2019, over Russia's alleged violations of it.",
             "Pierre Vimont was the envoy.", "A dozen working groups met to discuss the panoply of issues."]
    together = encoder.encode(texts)
    for text, vector in zip(texts, together):
        alone = encoder.encode([text])[0]
        assert float(vector @ alone) > 0.9999
