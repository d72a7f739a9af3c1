import os

import pytest

from conftest import PARA, SEEDS, write_corpus
from embeddings.documents import guess_meta, load_corpus, make_meta
from embeddings.errors import CorpusError


def test_seed_metadata_comes_from_the_metadata_file():
    corpus = load_corpus(SEEDS)
    meta = {d.path: d.meta for d in corpus.documents}
    assert meta["002_aa9bdb457b1d5462.txt"].author == "Rym Momtaz"
    assert meta["002_aa9bdb457b1d5462.txt"].date == "February 02, 2024"  # "2024-02-02" there, as the text prints it
    assert meta["000_6d54785b39143e23.txt"].author == "Juliette Faure"
    assert meta["000_6d54785b39143e23.txt"].title.startswith("Macron’s Dialogue With Russia")


def test_loader_reads_txt_and_md_recursively_and_skips_the_rest(tmp_path):
    root = write_corpus(tmp_path / "c", {
        "a.txt": PARA.format("A"),
        "sub/b.md": "# Notes\n\n" + PARA.format("B"),
        "sub/deeper/c.TXT": PARA.format("C"),
        "image.png": b"\x89PNG\r\n",
        "empty.txt": "  \n",
        "binary.txt": b"abc\x00def",
        "latin1.txt": "caf\xe9".encode("latin-1"),
    })
    corpus = load_corpus(root)
    assert [d.path for d in corpus.documents] == ["a.txt", "sub/b.md", "sub/deeper/c.TXT"]
    reasons = {s.path: s.reason for s in corpus.skipped}
    assert "unsupported" in reasons["image.png"]
    assert "empty" in reasons["empty.txt"]
    assert "binary" in reasons["binary.txt"]
    assert "UTF-8" in reasons["latin1.txt"]
    assert {d.path: d.meta.title for d in corpus.documents}["sub/b.md"] == "Notes"


def test_same_file_name_in_two_folders_are_two_documents(tmp_path):
    root = write_corpus(tmp_path / "c", {"x/notes.txt": PARA.format("X"), "y/notes.txt": PARA.format("Y")})
    assert [d.path for d in load_corpus(root).documents] == ["x/notes.txt", "y/notes.txt"]


def test_symlink_outside_the_corpus_is_skipped(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text(PARA.format("Secret"))
    root = write_corpus(tmp_path / "c", {"a.txt": PARA.format("A")})
    os.symlink(outside, root / "link.txt")
    corpus = load_corpus(root)
    assert [d.path for d in corpus.documents] == ["a.txt"]
    assert "outside" in {s.path: s.reason for s in corpus.skipped}["link.txt"]


def test_missing_corpus_is_a_typed_error(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(tmp_path / "nope")


def test_guess_meta_from_text():
    meta = guess_meta("x.txt", "A caption.\nThe Real Title\n\nFebruary 02, 2024\nRym Momtaz\n\nBody text.")
    assert (meta.title, meta.date, meta.author) == ("The Real Title", "February 02, 2024", "Rym Momtaz")


@pytest.mark.parametrize(("given", "shown"), [
    ("2024-02-02", "February 02, 2024"),  # the same day: the text's own form, which a model will quote
    ("2024-02-03", "2024-02-03"),  # another day: the metadata file says what the user means
    ("spring 2024", "spring 2024"),
    (None, "February 02, 2024"),
])
def test_a_date_from_the_metadata_file_is_shown_as_the_text_prints_it(given, shown):
    text = "The Real Title\n\nFebruary 02, 2024\nRym Momtaz\n\nBody text."
    assert make_meta("x.txt", text, {"date": given} if given else {"title": "T"}).date == shown
    assert make_meta("x.txt", "Body text without a date.", {"date": given}).date == given
