import pytest

from conftest import SEEDS
from embeddings.documents import Document, DocumentMeta, load_corpus
from embeddings.paragraphs import normalize, split_blocks, split_passages, split_sentences


def doc(text: str, path: str = "a.txt") -> Document:
    return Document(path, text, "x", DocumentMeta(title="T"))


def test_every_seed_passage_reproduces_its_text_exactly():
    corpus = load_corpus(SEEDS)
    assert len(corpus.documents) == 2
    for document in corpus.documents:
        passages = split_passages(document)
        assert passages
        for p in passages:
            assert document.text[p.start : p.end] == p.text
        covered = "".join(document.text[p.start : p.end] for p in passages)
        # no content lost: every non-space character of the document is in some passage
        assert "".join(covered.split()) == "".join(document.text.split())


def test_short_lines_are_glued_to_a_paragraph_not_left_alone():
    text = "Big Title\n\nMay 1, 2024\nJane Doe\n\n" + "A real paragraph " * 5 + "ends here.\n\nRead more here."
    passages = split_passages(doc(text))
    assert len(passages) == 1
    assert passages[0].text.startswith("Big Title") and passages[0].text.endswith("Read more here.")


def test_headings_become_section_metadata():
    body = "This paragraph has more than fifteen words so that it is treated as real content here."
    text = f"{body}\n\nRussia’s Place\xa0\n\n{body}"
    passages = split_passages(doc(text))
    assert [p.section for p in passages] == [None, "Russia’s Place"]
    assert passages[1].text.startswith("Russia’s Place")


def test_long_paragraph_is_split_at_sentences_under_the_budget():
    sentences = [f"Sentence number {i} talks about topic {i} at some length here." for i in range(30)]
    text = " ".join(sentences)
    passages = split_passages(doc(text), max_tokens=40)
    assert len(passages) > 1
    for p in passages:
        assert len(p.text.split()) <= 40
        assert p.text.endswith(".")
        assert text[p.start : p.end] == p.text


def test_a_sentence_longer_than_the_budget_is_cut_at_words():
    text = " ".join(f"w{i}" for i in range(500))
    passages = split_passages(doc(text), max_tokens=50)
    assert all(len(p.text.split()) <= 50 for p in passages)
    assert sum(len(p.text.split()) for p in passages) == 500


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The U.S. left in 2019. Paris stayed.", ["The U.S. left in 2019.", "Paris stayed."]),
        ("He met then-U.S. President Trump. Then he left.", ["He met then-U.S. President Trump.", "Then he left."]),
        ("It runs at 100 Gbit/s. Then it stops.", ["It runs at 100 Gbit/s.", "Then it stops."]),
        ("On Jan. 31, 2024, he spoke. Then he left!", ["On Jan. 31, 2024, he spoke.", "Then he left!"]),
        ("“It must fail… because” he said. Yes.", ["“It must fail… because” he said.", "Yes."]),
        ("Line one\nLine two", ["Line one", "Line two"]),
        ("", []),
        ("   ", []),
    ],
)
def test_split_sentences(text, expected):
    assert [text[s:e] for s, e in split_sentences(text)] == expected


def test_split_blocks_keeps_offsets():
    text = "One.\n\n Two.\n \n\nThree."
    assert [text[s:e] for s, e in split_blocks(text)] == ["One.", "Two.", "Three."]


def test_passage_ids_are_stable_and_unique():
    text = ("Same words in a paragraph long enough to count as a real paragraph of text here.\n\n") * 2
    first, second = split_passages(doc(text)), split_passages(doc(text))
    assert [p.id for p in first] == [p.id for p in second]
    assert len({p.id for p in first}) == len(first) == 2


def test_normalize_is_for_matching_only():
    assert normalize("Macron\u2019s\u00a0 \u201cvision\u201d") == "Macron's \"vision\""


@pytest.mark.parametrize("bad", [0, 7, -1])
def test_budget_must_be_sensible(bad):
    with pytest.raises(ValueError, match="max_tokens"):
        split_passages(doc("text"), max_tokens=bad)
