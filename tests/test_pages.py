"""Page-exact citations of a real PDF: the answer's citation names its page, the results file and the
CLI show it, and the web app renders that page from the collection's own file with the span marked."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import format_files as fx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from conftest import KeywordEncoder, ScriptedGenerator
from qa.cli.commands import print_sources
from qa.library import Library
from qa.pipeline import Pipeline
from qa.settings import Settings
from qa.ui import render
from qa.ui import server as ui_server

QUESTION = "What colour was the harbour lighthouse painted in 1987?"
REPLY = "The harbour lighthouse was painted blue in 1987 [1]."


@pytest.fixture
def pdf_corpus(tmp_path: Path, format_files) -> Path:
    corpus = tmp_path / "reports"
    corpus.mkdir()
    shutil.copy(format_files["report.pdf"], corpus / "report.pdf")
    return corpus


@pytest.fixture
def library(pdf_corpus: Path, tmp_path: Path) -> Library:
    return Library(Settings(corpus=pdf_corpus, index_dir=tmp_path / "idx"), encoder=KeywordEncoder(),
                   generator=ScriptedGenerator([REPLY]), uploads_dir=tmp_path / "uploads")


def test_a_pdf_citation_names_the_page_its_sentence_is_on(library: Library):
    answer = library.pipeline().answer(QUESTION)
    assert not answer.refused and answer.citations, answer.notes
    citation = answer.citations[0]
    document = library.documents(library.main)["report.pdf"]
    assert document.text[citation.start:citation.end] == citation.text
    assert "painted blue in 1987" in citation.text
    assert citation.page == 2 == document.page_at(document.text.index(fx.PAGE2_SENTENCE))
    row = answer.to_dict()
    assert row["citations"][0]["page"] == 2
    assert all(p["page"] >= 1 for p in row["passages"])


def test_citations_of_a_text_file_carry_no_page(tmp_path: Path):
    corpus = tmp_path / "notes"
    corpus.mkdir()
    (corpus / "lighthouse.txt").write_text(fx.PAGE2_SENTENCE + " " + "The paint had faded by the time of the audit.")
    pipeline = Pipeline(Settings(corpus=corpus, index_dir=tmp_path / "idx"), encoder=KeywordEncoder(),
                        generator=ScriptedGenerator([REPLY]))
    row = pipeline.answer(QUESTION).to_dict()
    assert row["citations"] and "page" not in row["citations"][0] and "page" not in row["passages"][0]


def test_the_cli_prints_the_page_of_each_source(library: Library, capsys):
    print_sources(library.pipeline().answer(QUESTION))
    assert "report.pdf, p. 2" in capsys.readouterr().out


def test_a_pdf_source_card_shows_its_rendered_page(library: Library):
    answer = library.pipeline().answer(QUESTION)
    card = render.render_citation(answer.citations[0], turn=1, collection=library.main,
                                  documents=library.documents(library.main))
    assert '<div class="where">p. 2' in card
    assert f'src="page/{library.main}/report.pdf?page=2&amp;start={answer.citations[0].start}' in card


def _pixels(png: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(png)).convert("RGB")


def test_the_app_renders_the_cited_page_with_the_sentence_marked(library: Library):
    answer = library.pipeline().answer(QUESTION)
    c = answer.citations[0]
    client = TestClient(Starlette(routes=[ui_server.pdf_page(library)]))
    marked = client.get(f"/page/{library.main}/report.pdf", params={"page": 2, "start": c.start, "end": c.end})
    plain = client.get(f"/page/{library.main}/report.pdf", params={"page": 2})
    assert marked.status_code == plain.status_code == 200 and marked.headers["content-type"] == "image/png"
    a, b = _pixels(marked.content), _pixels(plain.content)
    assert a.size == b.size and a.width > 500
    changed = sum(1 for x, y in zip(a.getdata(), b.getdata()) if x != y)
    assert changed > 500  # the sentence's boxes are filled; the rest of the page is the same render
    yellowish = sum(1 for r, g, bl in a.getdata() if r > 200 and g > 150 and bl < 150)
    assert yellowish > 500


@pytest.mark.parametrize("path", ["/page/reports/nothere.pdf", "/page/reports/..%2F..%2Fetc%2Fpasswd",
                                  "/page/elsewhere/report.pdf"])
def test_the_page_route_serves_only_indexed_pdfs_of_the_collection(library: Library, path: str):
    library.pipeline().index  # noqa: B018 - build the index
    client = TestClient(Starlette(routes=[ui_server.pdf_page(library)]))
    assert client.get(path, params={"page": 1}).status_code == 404


def test_a_page_out_of_range_or_a_changed_pdf_is_refused(library: Library, pdf_corpus: Path, format_files):
    library.pipeline().index  # noqa: B018 - build the index
    client = TestClient(Starlette(routes=[ui_server.pdf_page(library)]))
    assert client.get(f"/page/{library.main}/report.pdf", params={"page": 99}).status_code == 409
    shutil.copy(format_files["scan.pdf"], pdf_corpus / "report.pdf")  # replaced after indexing
    response = client.get(f"/page/{library.main}/report.pdf", params={"page": 1})
    assert response.status_code == 409 and "changed since it was indexed" in response.text
