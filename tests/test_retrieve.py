import numpy as np
import pytest

from conftest import PARA, write_corpus
from embeddings.build import build_index
from qa.errors import InvalidArgument, InvalidQuestion
from qa.retrieve import RetrievalSettings, Retriever, clean_question


@pytest.fixture
def retriever(seeds_copy, tmp_path, encoder):
    return Retriever(build_index(seeds_copy, tmp_path / "idx", encoder=encoder), encoder)


def test_hits_carry_offsets_text_and_metadata(retriever):
    hits = retriever.search("Pierre Vimont special envoy strategic dialogue", k=3)
    assert [h.rank for h in hits] == [1, 2, 3]
    assert "Pierre Vimont" in hits[0].passage.text
    top = hits[0]
    document = retriever.stored.documents[top.doc].text
    assert document[top.passage.start : top.passage.end] == top.passage.text
    assert top.passage.start <= top.best_start < top.best_end <= top.passage.end
    assert top.passage.title.startswith("Macron’s Dialogue")
    assert set(top.to_dict()) == {"rank", "doc", "passage_id", "start", "end", "score", "text"}
    assert hits[0].score >= hits[1].score >= hits[2].score


def test_k_larger_than_the_corpus_returns_every_passage_once(retriever):
    hits = retriever.search("Macron", k=10_000)
    assert len(hits) == len(retriever.passages)
    assert len({h.passage.id for h in hits}) == len(hits)


def test_stop_word_only_question_still_answers_from_dense_search(retriever):
    assert not retriever.bm25_scores("the of and is").any()
    assert len(retriever.search("the of and is", k=3)) == 3


@pytest.mark.parametrize("question", ["", "   ", "\n\t", "\x00\x01"])
def test_empty_questions_are_a_typed_error(retriever, question):
    with pytest.raises(InvalidQuestion):
        retriever.search(question)


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "3"])
def test_bad_k_is_a_typed_error(retriever, k):
    with pytest.raises(InvalidArgument, match="k must be"):
        retriever.search("Macron", k=k)


def test_very_long_question_is_cut_not_crashed(retriever):
    hits = retriever.search("Vimont " * 50_000, k=2)
    assert len(hits) == 2


def test_clean_question_strips_control_characters():
    assert clean_question("  Who\x00 is\x1b Vimont?\n") == "Who is Vimont?"


def test_bm25_finds_rare_words_dense_misses(tmp_path, encoder):
    corpus = write_corpus(tmp_path / "c", {f"{i}.txt": PARA.format(f"Topic{i}") for i in range(5)})
    stored = build_index(corpus, tmp_path / "idx", encoder=encoder)
    only_bm25 = Retriever(stored, encoder, RetrievalSettings(dense_weight=0.0))
    assert only_bm25.search("topic3", k=1)[0].doc == "3.txt"


def test_bm25_without_titles_matches_a_passage_on_its_own_words(tmp_path, encoder):
    corpus = write_corpus(tmp_path / "c", {
        "a.txt": "Dialogue With the Harbour Board\n\n" + PARA.format("Fishing") + "\n\n"
                 + PARA.format("The dialogue with the board ended without a deal, and it"),
        "b.txt": "Town Notes\n\n" + PARA.format("The school"),
    })
    retriever = Retriever(build_index(corpus, tmp_path / "idx", encoder=encoder), encoder)
    holding = {p.id for p in retriever.passages if "dialogue" in p.text.lower()}
    titled, untitled = retriever.bm25_scores("dialogue"), retriever.bm25_scores("dialogue", titles=False)
    assert {p.id for p, s in zip(retriever.passages, titled) if s > 0} == \
        {p.id for p in retriever.passages if p.doc == "a.txt"}  # the title's word is every passage's
    assert {p.id for p, s in zip(retriever.passages, untitled) if s > 0} == holding  # only the passages saying it
    assert retriever.search("dialogue", k=1, titles=False)[0].passage.id in holding


def test_a_search_within_documents_keeps_the_corpus_ranking_of_their_passages(retriever):
    everything = retriever.search("Macron Russia dialogue", k=len(retriever.passages))
    doc = everything[-1].doc
    within = retriever.search("Macron Russia dialogue", k=4, within={doc})
    assert [h.passage.id for h in within] == [h.passage.id for h in everything if h.doc == doc][:4]
    assert [h.rank for h in within] == [1, 2, 3, 4]
    assert retriever.search("Macron", k=3, within={"no such document"}) == []


def fusion():
    r = Retriever.__new__(Retriever)
    r.settings = RetrievalSettings(rrf_k=60)
    return r


def test_fusion_rewards_agreement():
    dense = np.linspace(0.9, 0.1, 10, dtype=np.float32)
    bm25 = np.array([0.0, 5.0] + [1.0] * 8, dtype=np.float32)
    fused = fusion().fuse(dense, bm25)
    assert fused.argmax() == 1  # second in dense, first in BM25 beats first in dense alone
    assert fused[0] == pytest.approx(1 / 61 + 0.5 / 70)  # not found by BM25: its last rank, after 9 found


def test_a_search_may_weigh_bm25_more_than_the_settings_do():
    dense = np.array([0.9, 0.8, 0.7], dtype=np.float32)
    bm25 = np.array([0.0, 1.0, 9.0], dtype=np.float32)  # the third is BM25's first, dense's last
    assert fusion().fuse(dense, bm25).argmax() == 0  # the settings' weight, 0.5: dense leads
    assert fusion().fuse(dense, bm25, 2.0).argmax() == 2  # a broad question's search: BM25 leads
    assert fusion().fuse(dense, bm25, 0.5).tolist() == fusion().fuse(dense, bm25).tolist()


def test_a_passage_no_word_matches_is_not_sunk_below_stray_word_matches():
    # first by dense, no word in common; the others share a word like "which", weakly, in reverse order
    dense = np.linspace(0.9, 0.1, 10, dtype=np.float32)
    bm25 = np.array([0.0] + [0.1 * i for i in range(1, 10)], dtype=np.float32)
    assert fusion().fuse(dense, bm25).argmax() == 0


def test_term_weights_follow_rarity_as_bm25_sees_words(retriever):
    assert retriever.terms("The harbours of the town") == ["harbour", "town"]  # stemmed, no stop-words
    rare, common = retriever.term_weight("vimont"), retriever.term_weight("macron")
    assert rare > common > 0
    assert retriever.term_weight("zzyzx") >= rare  # a word no passage holds weighs as the rarest


def scored_sentences(tmp_path, encoder, text: str, question: str) -> tuple[Retriever, dict[str, float]]:
    """A retriever over ``text`` (a.txt) and five fillers about Moscow, and the score
    (qa.prompting.snippets.sentence_scores) of each sentence of a.txt for ``question``."""
    from qa.prompting.snippets import sentence_scores

    fillers = {f"m{i}.txt": PARA.format(f"Moscow story {i}") for i in range(5)}
    corpus = write_corpus(tmp_path / "c", {"a.txt": text, **fillers})
    retriever = Retriever(build_index(corpus, tmp_path / "idx", encoder=encoder), encoder)
    hit = next(h for h in retriever.search(question, k=6) if h.doc == "a.txt")
    document = retriever.document_text("a.txt")
    query = retriever.query_vector(question)
    return retriever, {document[s:e]: score for score, s, e in sentence_scores(hit, retriever, query, question)}


def test_a_sentence_sharing_a_rare_word_outranks_one_sharing_a_common_word(tmp_path, encoder):
    # same length: the same dense cosine to the question
    _, scores = scored_sentences(tmp_path, encoder, "Moscow spoke. Zorblat spoke.", "Moscow Zorblat?")
    assert scores["Zorblat spoke."] > scores["Moscow spoke."]


def test_question_words_are_not_words_a_sentence_can_share(tmp_path, encoder):
    question = "Whom did Zorblat meet?"
    # under four words a sentence has no vector: only shared words score
    retriever, scores = scored_sentences(tmp_path, encoder, "Whom did fight. Zorblat stood still.", question)
    assert {"whom", "did"} <= set(retriever.terms(question))  # rare here, so they would weigh like names
    assert retriever.question_terms(question) == ["zorblat", "meet"]
    assert scores["Whom did fight."] == 0.0
    assert scores["Zorblat stood still."] > 0.0
