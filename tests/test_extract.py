"""PDF, Word and HTML files: each indexes with exact offsets, pages and sections; bad ones are skipped
with one clear reason while the good ones index. Fixtures are real files (``format_files.py``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import format_files as fx
import pytest

from conftest import PARA
from embeddings.build import build_index
from embeddings.extract import Block, Piece, assemble, extract, page_at, section_at, sniff
from embeddings.extract.bounded import BoundedReader
from embeddings.extract.pdf import extract_pdf
from embeddings.store import load_index

GOOD = ("report.pdf", "guide.docx", "news.html")
BAD = {
    "encrypted.pdf": "encrypted: password needed",
    "scan.pdf": "no text layer (a scan?); OCR is not supported",
    "truncated.pdf": "corrupt or truncated PDF",
    "bomb.docx": "suspicious Word file: word/media/zeros.bin is compressed",
    "truncated.docx": "corrupt or truncated Word file",
    "pdf-named.docx": "not a Word file: the file is a PDF; rename it",
    "html-named.pdf": "not a PDF: the file is an HTML page; rename it",
    "scripts.html": "no text (only scripts, styles or navigation)",
    "huge.pdf": "file too large (524.3 MB > 105 MB)",
}


def corpus_of(folder: Path, files: dict[str, Path], names) -> Path:
    folder.mkdir()
    for name in names:
        shutil.copy(files[name], folder / name)
    return folder


@pytest.fixture(scope="module")
def mixed_index(format_files, tmp_path_factory):
    """One index of the good files, every bad one, and a text file."""
    from conftest import KeywordEncoder

    root = corpus_of(tmp_path_factory.mktemp("mixed") / "corpus", format_files, GOOD + tuple(n for n in BAD if n != "huge.pdf"))
    (root / "notes.txt").write_text(PARA.format("Notes"), encoding="utf-8")
    with open(root / "huge.pdf", "wb") as handle:  # 500 MB, sparse: nothing is written
        handle.truncate(500 * 1024 * 1024)
    index = build_index(root, tmp_path_factory.mktemp("mixed-index"), encoder=KeywordEncoder())
    return root, index


def test_each_format_indexes_and_every_passage_is_exact(mixed_index):
    _, index = mixed_index
    assert sorted(index.documents) == sorted(GOOD + ("notes.txt",))
    for passage in index.passages:
        assert index.documents[passage.doc].text[passage.start:passage.end] == passage.text
    assert {p.doc for p in index.passages} == set(index.documents)


def test_each_bad_file_gets_one_clear_reason_and_the_rest_indexes(mixed_index):
    root, index = mixed_index
    skipped = index.manifest["skipped"]
    assert sorted(skipped) == sorted(BAD)
    for name, reason in BAD.items():
        assert skipped[name].startswith(reason), (name, skipped[name])
        assert "\n" not in skipped[name]


def test_a_sentence_on_page_n_gets_page_n_and_reloads(mixed_index):
    _, index = mixed_index
    report = index.documents["report.pdf"]
    assert len(report.pages) == 3 and report.pages[0] == 0
    for sentence, page in ((fx.PAGE2_SENTENCE, 2), (fx.PAGE3_SENTENCE, 3)):
        assert report.page_at(report.text.index(sentence)) == page
        (passage,) = [p for p in index.passages if p.doc == "report.pdf" and sentence in p.text]
        assert passage.page == page
    assert all(p.page is None for p in index.passages if p.doc != "report.pdf")


def test_a_paragraph_cut_by_a_page_break_is_one_passage_on_its_start_page(mixed_index):
    _, index = mixed_index
    report = index.documents["report.pdf"]
    start = report.text.index(fx.ACROSS_PAGES)  # "...moored in the" | "northern basin..."
    assert report.page_at(start) == 2
    assert report.page_at(report.text.index("northern basin")) == 3
    (passage,) = [p for p in index.passages if fx.ACROSS_PAGES in p.text]
    assert passage.page == 2


def test_headings_become_section_paths(mixed_index):
    _, index = mixed_index
    section = {(p.doc, s): p.section for p in index.passages
               for s in (fx.PAGE2_SENTENCE, fx.PAGE3_SENTENCE, fx.HERON, fx.HTML_SENTENCE) if s in p.text}
    assert section[("report.pdf", fx.PAGE2_SENTENCE)] == "Chapter 1 Security › Results"
    assert section[("report.pdf", fx.PAGE3_SENTENCE)] == "Chapter 2 Thanks"
    assert section[("guide.docx", fx.HERON)] == "Birds › Herons"
    assert section[("news.html", fx.HTML_SENTENCE)] == "Museum news › New wing"


def test_boilerplate_is_dropped_and_hyphenated_words_joined(mixed_index):
    _, index = mixed_index
    report, guide, news = (index.documents[n].text for n in GOOD)
    assert fx.RUNNING_HEADER not in report and "page 2" not in report
    assert not any(line.strip().isdigit() for line in report.splitlines())  # page numbers
    assert "found that security depended" in report and "secu" not in report.replace("security", "")
    assert "WORD-HEADER" not in guide and "WORD-FOOTER" not in guide and "Pike | Winter" in guide
    assert "MUST-GO" not in news and "Archive" not in news and "Museum news" in news


def test_metadata_comes_from_the_file(mixed_index):
    _, index = mixed_index
    assert index.documents["guide.docx"].meta.title == "Field guide to the lake"
    assert index.documents["guide.docx"].meta.author == "Ada Lovelace"
    assert index.documents["news.html"].meta.title == "Harbour museum news"
    assert index.documents["report.pdf"].meta.title == "Harbour report"


def test_reloaded_index_keeps_pages_and_sections(mixed_index):
    _, index = mixed_index
    again = load_index(index.path.parent)
    assert again.documents["report.pdf"].pages == index.documents["report.pdf"].pages
    assert again.documents["news.html"].sections == index.documents["news.html"].sections
    assert [p.page for p in again.passages] == [p.page for p in index.passages]


def test_text_files_are_untouched_by_the_new_formats(mixed_index):
    _, index = mixed_index
    notes = index.documents["notes.txt"]
    assert notes.pages == () and notes.sections == ()


def test_the_pdf_character_runs_reproduce_the_text(format_files):
    import pypdfium2 as pdfium

    extracted = extract_pdf(format_files["report.pdf"].read_bytes())
    pdf = pdfium.PdfDocument(format_files["report.pdf"].read_bytes())
    for offset, page, origin, length in extracted.spans:
        printed = pdf[page - 1].get_textpage().get_text_range(origin, length)
        assert printed == extracted.text[offset:offset + length]


@pytest.mark.parametrize("data, kind", [
    (b"%PDF-1.7\n", "pdf"), (b"PK\x03\x04....word/document.xml", "docx"), (b"PK\x03\x04....", "zip"),
    (b"\xef\xbb\xbf<!DOCTYPE html><p>", "html"), (b"  <html>", "html"), (b"Plain words.", "text"),
    (b"\x89PNG\r\n\x1a\n\x00", "png"), (b"", "text"), (b"\x00\x01\x02", "binary"),
])
def test_sniff_tells_a_file_from_its_first_bytes(data, kind):
    assert sniff(data) == kind


@pytest.mark.parametrize("html, expected", [
    (b"<p>caf\xe9</p>", "café"),  # not UTF-8, no charset: Windows-1252
    (b"<meta charset='iso-8859-1'><p>cr\xe8me</p>", "crème"),
    (b"<div>" * 50_000 + b"deep" + b"</div>" * 50_000, "deep"),  # no recursion limit
    (b"<p>one<br><br>two</p>", "one\ntwo"),  # never a blank line inside a paragraph
])
def test_html_edge_cases(html, expected):
    assert extract("page.html", html).text == expected


@pytest.mark.parametrize("name, data, reason", [
    ("a.html", b"", "empty file"),
    ("a.html", b"  \n ", "empty file"),
    ("a.docx", b"PK\x03\x04" + b"\x00" * 40, "not a Word file: the file is a zip archive"),
    ("a.docx", b"PK\x03\x04[Content_Types].xml" + b"\x00" * 40, "corrupt or truncated Word file"),
    ("a.pdf", b"%PDF-1.4\n%%EOF", "corrupt or truncated PDF"),
    ("a.pdf", "caf\xe9".encode("latin-1"), "not a PDF: the file is plain text"),
])
def test_bad_bytes_give_one_reason(name, data, reason):
    with pytest.raises(ValueError, match=reason):
        extract(name, data)


def test_a_reader_past_its_time_is_killed_and_the_next_file_reads(format_files):
    data = format_files["news.html"].read_bytes()
    with BoundedReader(timeout_s=0.001) as reader:
        with pytest.raises(ValueError, match="took longer than"):
            reader.read("news.html", data)
        reader.timeout_s = 60
        assert fx.HTML_SENTENCE in reader.read("news.html", data).text


def test_a_reader_out_of_memory_is_one_skip_not_a_crash(format_files):
    page = b"<p>" + b"word " * 3_000_000 + b"</p>"  # 15 MB of HTML: its tree needs far more than 128 MB
    with BoundedReader(memory_bytes=128 << 20) as reader:
        with pytest.raises(ValueError, match="needs more than 128 MB of memory"):
            reader.read("big.html", page)
        assert fx.HTML_SENTENCE in reader.read("news.html", format_files["news.html"].read_bytes()).text


def test_assemble_page_and_section_lookups():
    blocks = [Block((Piece("Intro", page=1),), heading=1), Block((Piece("one", page=1), Piece("two", page=2))),
              Block((Piece("Deeper", page=2),), heading=2), Block((Piece("three.", page=3),))]
    e = assemble(blocks, n_pages=4)
    assert e.text == "Intro\n\none two\n\nDeeper\n\nthree."
    assert e.pages == (0, 11, 24, 30)  # page 4 has no text: it starts where the text ends
    assert [page_at(e.pages, i) for i in (0, 10, 11, 23, 24)] == [1, 1, 2, 2, 3]
    assert section_at(e.sections, 7, 14) == "Intro"
    assert section_at(e.sections, 16, 29) == "Intro › Deeper"
    assert page_at((), 5) is None and section_at((), 0, 1) is None


def test_uploads_check_formats_by_name(format_files):
    from embeddings.documents import read_document_text

    data = format_files["report.pdf"].read_bytes()
    assert fx.PAGE3_SENTENCE in read_document_text(data, name="report.pdf")
    with pytest.raises(ValueError, match="binary file"):
        read_document_text(data)  # no name: read as text, as before


def test_pdf_layout_breaks_paragraphs_at_wide_gaps_and_joins_hyphenated_words():
    from embeddings.extract.pdf import Line, layout

    def line(n: int, text: str, top: float, size: float = 10.0) -> Line:
        return Line(page=1, origin=n * 100, text=text, size=size, top=top, bottom=top - 10)

    lines = [line(0, "Big title", 700, size=20), line(1, "The first para-", 680), line(2, "graph goes on here.", 665),
             line(3, "A second paragraph", 640), line(4, "after a wide gap.", 625)]  # 0.5 vs 1.5 line heights apart
    text = assemble(layout(lines)).text
    assert text == "Big title\n\nThe first paragraph goes on here.\n\nA second paragraph after a wide gap."
