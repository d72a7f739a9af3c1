"""Embedding units (``embeddings/units.py``): what each stored vector stands for."""

from embeddings.paragraphs import Passage
from embeddings.units import embedding_units

DOC = "Intro line. The lighthouse opened in 1811 on the rock. Its first keeper was Marie Duval. She kept it lit for years."


def passage(text: str, start: int = 0) -> Passage:
    return Passage("a#1", "a.txt", start, start + len(text), text, title="Harbour")


def texts_of(units, text: str, start: int = 0) -> list[str]:
    return [text[s - start : e - start] for _, s, e in units.tolist()]


def test_passage_then_its_sentences_with_exact_offsets():
    units, texts = embedding_units([passage(DOC, 7)], pairs=False)
    assert texts[0] == "Harbour\n" + DOC  # the whole passage, with its title as a header
    assert texts_of(units, DOC, 7)[1:] == texts[1:]  # every other unit is an exact span of the passage
    assert texts[1:] == ["The lighthouse opened in 1811 on the rock.", "Its first keeper was Marie Duval.",
                         "She kept it lit for years."]  # "Intro line." is too short to stand alone
    assert units[:, 0].tolist() == [0] * 4


def test_sentence_pairs_add_each_two_neighbours():
    units, texts = embedding_units([passage(DOC)], pairs=True)
    pairs = texts[4:]
    assert pairs == ["Intro line. The lighthouse opened in 1811 on the rock.",
                     "The lighthouse opened in 1811 on the rock. Its first keeper was Marie Duval.",
                     "Its first keeper was Marie Duval. She kept it lit for years."]
    assert texts_of(units, DOC)[4:] == pairs


def test_no_sentence_units_for_a_single_sentence_or_when_off():
    one = "The lighthouse opened in 1811 on the rock."
    assert len(embedding_units([passage(one)], pairs=True)[1]) == 1
    assert len(embedding_units([passage(DOC)], sentences=False)[1]) == 1
