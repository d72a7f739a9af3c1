"""The web app (app.py): rendering helpers, upload checks, event handlers, and /ask over a real server.

Everything runs on the fake encoder and the scripted generator: the page is built with
``create_app`` and, for the client test, launched in-process on a free port.
"""

from __future__ import annotations

import html
import json
import os
import socket
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import gradio as gr
import pytest

import qa.library
from conftest import KeywordEncoder, ScriptedGenerator, free_port
from qa.errors import QAError
from qa.library import Library, UploadRejected
from qa.pipeline import Pipeline
from qa.settings import Settings
from qa.ui import blocks, handlers, render
from qa.ui import server as ui_server

VIMONT_Q = "Who was Macron's special envoy for the strategic dialogue with Russia?"
VIMONT_A = "Ambassador Pierre Vimont was Macron's special envoy for strategic dialogue with Russia [1]."
INF_Q = "Which treaty did the U.S. withdraw from in 2019?"
INF_A = "In 2019 the U.S. withdrew from the Intermediate-Range Nuclear Forces (INF) Treaty [1]."
NATO_Q = "Who is the current Secretary General of NATO?"


def reply(messages) -> str:
    """The scripted model: a grounded answer for the two known questions, a refusal otherwise."""
    prompt = messages[-1]["content"]
    question = prompt.rsplit("Question:", 1)[-1]
    if "envoy" in question:
        return VIMONT_A
    if "treaty" in question.lower():
        return INF_A
    return "I cannot find the answer in the documents."


@pytest.fixture
def library(tmp_path: Path, seeds_copy: Path, monkeypatch) -> Library:
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    settings = Settings(corpus=seeds_copy, index_dir=tmp_path / "index")
    return Library(settings, encoder=KeywordEncoder(), generator=ScriptedGenerator(reply),
                       uploads_dir=tmp_path / "uploads", models=["default", "small"],
                       load_model=lambda name: ScriptedGenerator(reply))


@pytest.fixture
def ui(library: Library) -> handlers.Handlers:
    return handlers.Handlers(library)


def run_respond(ui: handlers.Handlers, question: str, turns=(), **options) -> list[tuple]:
    """Every update the streaming handler yields for one question."""
    args = dict(collection=ui.library.main, k=5, model="default", show_scores=False) | options
    return list(ui.respond(question, list(turns), **args))


# ------------------------------------------------------------------------------------ offline


def test_importing_the_app_turns_off_everything_that_phones_home():
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    for var in ("no_proxy", "NO_PROXY"):
        assert {"127.0.0.1", "localhost"} <= set(os.environ[var].split(","))
    fonts = [*blocks.THEME._font, *blocks.THEME._font_mono]
    assert fonts and not any(isinstance(f, gr.themes.GoogleFont) for f in fonts)  # system fonts only
    assert not [url for url in blocks.THEME._stylesheets if "://" in url]


# ---------------------------------------------------------------------------------- rendering


@pytest.mark.parametrize(
    ("text", "numbers", "expected"),
    [
        ("Vimont [1].", [1], r"Vimont [\[1\]](#cite-2-1)."),
        ("A [1] and B [2].", [1, 2], r"A [\[1\]](#cite-2-1) and B [\[2\]](#cite-2-2)."),
        ("Not cited [3].", [1], "Not cited [3]."),
        ("<script>x</script> [1]", [1], r"&lt;script&gt;x&lt;/script&gt; [\[1\]](#cite-2-1)"),
        ("", [], ""),
    ],
)
def test_link_citations_links_known_markers_and_escapes_html(text, numbers, expected):
    assert render.link_citations(text, 2, numbers) == expected


@pytest.mark.parametrize(
    ("text", "start", "end", "lo", "hi", "expected"),
    [
        ("a <b> c", 2, 5, 0, 7, "a <mark>&lt;b&gt;</mark> c"),
        ("One. Two & three. Four.", 5, 17, 0, 23, "One. <mark>Two &amp; three.</mark> Four."),
        ("xx One. Two. yy", 3, 7, 3, 12, "<mark>One.</mark> Two."),
        ("abcd", 1, 3, 2, 2, "<mark>bc</mark>"),  # a span outside its passage widens the context
    ],
)
def test_highlight_marks_the_span_inside_its_passage(text, start, end, lo, hi, expected):
    assert render.highlight(text, start, end, lo=lo, hi=hi) == expected


def test_tidy_only_folds_blank_lines():
    assert render.tidy("a\n\n\n \nb\nc") == "a\n\nb\nc"


def test_a_citation_card_marks_the_supporting_sentence_with_its_source(library: Library):
    answer = library.pipeline().answer(VIMONT_Q)
    assert not answer.refused and answer.citations
    documents = library.documents(library.main)
    c = answer.citations[0]
    card = render.render_citation(c, turn=3, collection="seeds", documents=documents)
    document = documents[c.doc]
    assert f'id="cite-3-{c.n}"' in card
    assert f"<mark>{html.escape(c.text)}</mark>" in card
    assert "Pierre Vimont" in c.text and document.text[c.start:c.end] == c.text
    assert html.escape(document.meta.title) in card and html.escape(document.meta.author) in card
    assert f"document/seeds/{c.doc}?start={c.start}&amp;end={c.end}#cited" in card


def test_a_refusal_offers_the_closest_passages(library: Library):
    answer = library.pipeline().answer(NATO_Q)
    assert answer.refused and answer.passages
    panel = render.render_answer_sources(answer, turn=1, collection="seeds", documents=library.documents(library.main))
    assert "do not answer this" in panel
    assert panel.count('class="source retrieved"') == len(answer.passages)
    assert "<mark>" not in panel


def test_a_refusal_says_why_the_models_draft_was_withheld(library: Library):
    refused = library.pipeline().answer(NATO_Q)  # the model itself declined: nothing to explain
    documents = library.documents(library.main)
    assert "withheld" not in render.render_answer_sources(refused, turn=1, collection="seeds", documents=documents)
    draft = replace(refused, raw_text="<b>Roadmap</b> [1].",
                    notes=("dropped a sentence whose document never mentions 2024: Roadmap.",))
    panel = render.render_answer_sources(draft, turn=1, collection="seeds", documents=documents)
    assert "Why the model's draft was withheld" in panel
    assert "&lt;b&gt;Roadmap&lt;/b&gt; [1]." in panel and "never mentions 2024" in panel
    answered = library.pipeline().answer(VIMONT_Q)
    assert "withheld" not in render.render_answer_sources(answered, turn=1, collection="seeds", documents=documents)


def test_a_quoted_answer_says_so_above_its_sources(library: Library):
    documents = library.documents(library.main)
    written = library.pipeline().answer(VIMONT_Q)  # the scripted model wrote it
    assert written.raw_text and "Quoted from the documents" not in render.render_answer_sources(
        written, turn=1, collection="seeds", documents=documents)
    quoted = replace(written, raw_text="")  # an extractive answer: no model text
    assert "Quoted from the documents" in render.render_answer_sources(quoted, turn=1, collection="seeds",
                                                                       documents=documents)


def test_scores_are_shown_only_when_asked(library: Library):
    answer = library.pipeline().answer(VIMONT_Q)
    documents = library.documents(library.main)
    plain = render.render_answer_sources(answer, turn=1, collection="seeds", documents=documents)
    scored = render.render_answer_sources(answer, turn=1, collection="seeds", documents=documents, show_scores=True)
    assert "dense" not in plain
    assert f"rank 1 · fused {answer.passages[0].score:.4f}" in scored


# ------------------------------------------------------------------------------------- uploads


def write(folder: Path, name: str, data: bytes | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


GARDEN = "# Garden notes\n\nThe apple tree in the corner was pruned in February by the neighbour, Tom Baker.\n"


def corpus_state(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_uploads_go_to_their_own_collection_and_leave_the_corpus_untouched(library: Library, tmp_path: Path):
    before = corpus_state(library.settings.corpus)
    incoming = tmp_path / "incoming"
    paths = [write(incoming, "garden.md", GARDEN), write(incoming, "photo.png", b"\x89PNG\x00"),
             write(incoming, "latin.txt", b"caf\xe9"), write(incoming, "empty.txt", b"")]
    progress = []
    name, added, rejected = library.add_files("Garden Notes", paths, progress=lambda d, t: progress.append((d, t)))
    assert (name, added) == ("garden-notes", ["garden.md"])
    assert [r.split(":")[0] for r in rejected] == ["photo.png", "latin.txt", "empty.txt"]
    assert (library.uploads_dir / "garden-notes" / "garden.md").read_text() == GARDEN
    assert progress and progress[-1][0] == progress[-1][1]
    assert library.collections() == [library.main, "garden-notes"]
    hits = library.pipeline("garden-notes").search("Who pruned the apple tree?")
    assert hits[0].doc == "garden.md"
    assert corpus_state(library.settings.corpus) == before


def test_adding_files_to_a_collection_reindexes_it(library: Library, tmp_path: Path):
    library.add_files("notes", [write(tmp_path / "a", "garden.md", GARDEN)])
    library.pipeline("notes").search("apple")  # a pipeline made before the second upload
    library.add_files("notes", [write(tmp_path / "b", "kitchen.txt", "The kettle is blue and whistles loudly.\n")])
    assert sorted(library.documents("notes")) == ["garden.md", "kitchen.txt"]


def test_an_upload_with_nothing_indexable_is_refused_with_reasons(library: Library, tmp_path: Path):
    with pytest.raises(UploadRejected, match=r"photo\.png: only \.txt, \.md, \.pdf, \.docx, \.html, \.htm files"):
        library.add_files("x", [write(tmp_path, "photo.png", b"\x89PNG")])
    assert library.collections() == [library.main]


def test_uploads_never_write_to_the_main_corpus(library: Library, tmp_path: Path):
    with pytest.raises(UploadRejected, match="main corpus"):
        library.add_files(library.main, [write(tmp_path, "garden.md", GARDEN)])


def test_a_collection_holds_a_bounded_number_of_files(library: Library, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(qa.library, "MAX_COLLECTION_FILES", 2)
    paths = [write(tmp_path, f"n{i}.txt", f"Note number {i} is about the garden shed.\n") for i in range(3)]
    _, added, rejected = library.add_files("notes", paths)
    assert added == ["n0.txt", "n1.txt"]
    assert rejected == ["n2.txt: a collection holds at most 2 files"]


def test_an_unknown_collection_is_a_readable_error(library: Library):
    with pytest.raises(QAError, match="no collection named"):
        library.pipeline("nope")


def test_collections_share_the_one_encoder_and_generator(library: Library, tmp_path: Path):
    library.add_files("notes", [write(tmp_path, "garden.md", GARDEN)])
    main, notes = library.pipeline(), library.pipeline("notes")
    assert main is not notes
    assert main.encoder is notes.encoder is library.encoder
    assert main.generator is notes.generator


# ---------------------------------------------------------------------------------- the page


def test_create_app_builds_the_page_without_launching(library: Library):
    demo = blocks.create_app(library)
    assert isinstance(demo, gr.Blocks) and not demo.is_running
    fns = list(demo.fns.values())
    public = [f.api_name for f in fns if f.api_visibility == "public"]
    assert public == ["ask"]
    answering = [f for f in fns if f.name in ("respond", "ask")]
    assert len(answering) == 4  # Enter, the Ask button, an example, and /ask
    assert {(f.concurrency_limit, f.concurrency_id) for f in answering} == {(1, "model")}


def test_examples_come_from_the_collection(library: Library, tmp_path: Path):
    titles = [d.meta.title for d in library.documents(library.main).values()]
    assert library.examples(library.main) == [f"What does “{t}” say?" for t in titles]
    library.add_files("notes", [write(tmp_path, "garden.md", GARDEN)])
    assert library.examples("notes") == ["What does “Garden notes” say?"]


def test_the_seed_corpus_gets_curated_examples(tmp_path: Path):
    lib = Library(Settings(index_dir=tmp_path), encoder=KeywordEncoder(), generator=ScriptedGenerator())
    assert lib.examples(lib.main) == list(qa.library.SEED_EXAMPLES)


def test_the_answer_streams_then_the_verified_text_replaces_it(ui: handlers.Handlers):
    updates = run_respond(ui, VIMONT_Q)
    partial = [u[0][-1]["content"] for u in updates[:-1]]
    assert any(p.endswith("▌") and "Vimont" in p for p in partial)  # tokens as they came
    chat, sources, turns = updates[-1]
    assert [m["role"] for m in chat] == ["user", "assistant"]
    answer = turns[-1].answer
    assert chat[-1]["content"] == render.link_citations(answer.text, 1, [c.n for c in answer.citations])
    assert "(#cite-1-1)" in chat[-1]["content"]
    assert 'id="cite-1-1"' in sources and "Pierre Vimont" in sources.split('id="cite-1-1"')[1].split("</mark>")[0]


def test_a_refusal_is_shown_as_such(ui: handlers.Handlers):
    chat, sources, turns = run_respond(ui, NATO_Q)[-1]
    assert turns[-1].answer.refused
    assert chat[-1]["content"].startswith("**I cannot find the answer")
    assert "closest passages" in chat[-1]["content"] and "do not answer this" in sources


def test_follow_ups_carry_the_conversation(ui: handlers.Handlers, monkeypatch):
    seen = []
    original = Pipeline.stream

    def spy(self, question, *, history=(), k=None):
        seen.append(list(history))
        return original(self, question, history=history, k=k)

    monkeypatch.setattr(Pipeline, "stream", spy)
    _, _, turns = run_respond(ui, VIMONT_Q)[-1]
    chat, sources, turns = run_respond(ui, "And which treaty did the U.S. leave?", turns)[-1]
    assert seen[0] == [] and seen[1] == [(turns[0].answer.standalone_question, turns[0].answer.text)]
    assert len(turns) == 2 and [m["role"] for m in chat] == ["user", "assistant"] * 2
    assert sources.index("And which treaty") < sources.index(html.escape(VIMONT_Q))  # latest first


def test_history_is_bounded_and_kept_to_one_collection(ui: handlers.Handlers, tmp_path: Path, monkeypatch):
    ui.library.add_files("notes", [write(tmp_path, "garden.md", GARDEN)])
    seen = []
    original = Pipeline.stream
    monkeypatch.setattr(Pipeline, "stream",
                        lambda self, q, *, history=(), k=None: seen.append(list(history)) or original(self, q, k=k))
    turns = []
    for _ in range(handlers.MAX_HISTORY + 2):
        _, _, turns = run_respond(ui, VIMONT_Q, turns)[-1]
    assert [len(h) for h in seen] == [0, 1, 2, 3, 4, 4]
    run_respond(ui, "Who pruned the apple tree?", turns, collection="notes")
    assert seen[-1] == []


def test_each_session_keeps_its_own_conversation(ui: handlers.Handlers):
    _, _, alice = run_respond(ui, VIMONT_Q)[-1]
    _, _, bob = run_respond(ui, NATO_Q)[-1]
    assert [t.question for t in alice] == [VIMONT_Q]
    assert [t.question for t in bob] == [NATO_Q]


@pytest.mark.parametrize("question", ["", "   ", "\x00\x01"])
def test_an_empty_question_is_a_readable_error(ui: handlers.Handlers, question):
    with pytest.raises(gr.Error, match="empty"):
        ui.accept(question, [])


def test_pipeline_errors_reach_the_user_as_messages_not_tracebacks(ui: handlers.Handlers):
    with pytest.raises(gr.Error) as caught:
        run_respond(ui, VIMONT_Q, k=0)
    assert "k must be a positive whole number" in caught.value.message
    assert "Traceback" not in caught.value.message


def test_unexpected_errors_are_reported_without_a_traceback(ui: handlers.Handlers, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Pipeline, "stream", boom)
    with pytest.raises(gr.Error, match="RuntimeError: disk on fire"):
        run_respond(ui, VIMONT_Q)


def test_ask_returns_the_answer_as_json(ui: handlers.Handlers, library: Library):
    result = ui.ask(VIMONT_Q)
    assert json.loads(json.dumps(result)) == result
    assert result["refused"] is False and "Vimont" in result["answer"]
    document = library.documents(library.main)[result["citations"][0]["doc"]].text
    for c in result["citations"]:
        assert document[c["start"]:c["end"]] == c["text"]
    assert ui.ask(NATO_Q)["refused"] is True


def test_the_upload_handler_reports_what_was_indexed(ui: handlers.Handlers, tmp_path: Path):
    paths = [str(write(tmp_path, "garden.md", GARDEN)), str(write(tmp_path, "x.pdf", b"%PDF"))]
    selector, report, files = ui.upload(paths, "Garden", progress=lambda *a, **k: None)
    assert selector["value"] == "garden" and "garden" in selector["choices"]
    assert "Indexed 1 file(s) into **garden**: garden.md" in report and "x.pdf: not a PDF" in report
    assert files is None


@pytest.mark.parametrize(("names", "reason"), [([], "choose one or more"), (["x.pdf"], "x.pdf: not a PDF"),
                                              (["x.pptx"], "x.pptx: only .txt, .md, .pdf")])
def test_a_rejected_upload_is_reported_in_the_page(ui: handlers.Handlers, tmp_path: Path, names, reason):
    paths = [str(write(tmp_path, name, b"%PDF")) for name in names]
    with pytest.warns(UserWarning, match=reason):  # outside a request, gradio's toast is a warning
        selector, report, files = ui.upload(paths, "Garden", progress=lambda *a, **k: None)
    assert report.startswith("**Nothing was indexed:**") and reason in report
    assert ui.library.collections() == [ui.library.main]


def test_the_document_page_marks_the_span_and_refuses_unknown_documents(library: Library):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    client = TestClient(Starlette(routes=[ui_server.document_page(library)]))
    doc, document = next(iter(library.documents(library.main).items()))
    start = document.text.index("Pierre Vimont") if "Pierre Vimont" in document.text else 0
    page = client.get(f"/document/{library.main}/{doc}", params={"start": start, "end": start + 13})
    assert page.status_code == 200
    assert f'<mark id="cited">{html.escape(document.text[start:start + 13])}</mark>' in page.text
    assert client.get(f"/document/{library.main}/../../etc/passwd").status_code == 404
    assert client.get(f"/document/nope/{doc}").status_code == 404
    assert client.get(f"/document/{library.main}/{doc}", params={"start": "x"}).status_code == 404


# ------------------------------------------------------------------------ a launched server


LOOPBACK = ("127.0.0.1", "localhost", "::1")


@pytest.fixture
def outbound(monkeypatch) -> list:
    """Every name looked up or address connected to that is not this machine."""
    seen: list = []
    lookup, connect = socket.getaddrinfo, socket.socket.connect

    def watched_lookup(host, *args, **kwargs):
        if host not in LOOPBACK and host is not None:
            seen.append(("lookup", host))
        return lookup(host, *args, **kwargs)

    def watched_connect(sock, address):
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            seen.append(("connect", address))
        return connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", watched_lookup)
    monkeypatch.setattr(socket.socket, "connect", watched_connect)
    # The client in this same process phones huggingface.co (telemetry, an "agent registry") unless
    # offline; app.py sets HF_HUB_OFFLINE before importing gradio, here it was imported first.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    return seen


@contextmanager
def serving(library: Library, outbound: list) -> Iterator[str]:
    """The app launched in this process on a free loopback port; on exit, nothing may have left the machine."""
    demo = blocks.create_app(library)
    port = free_port()
    ui_server.serve(demo, library, port=port, block=False, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
    assert outbound == [], f"the server reached off the machine: {outbound}"


@pytest.fixture
def server(library: Library, outbound: list):
    with serving(library, outbound) as url:
        yield url


def test_ask_endpoint_answers_over_gradio_client(server: str):
    from gradio_client import Client

    client = Client(server, verbose=False)
    result = client.predict(VIMONT_Q, api_name="/ask")
    assert result["question"] == VIMONT_Q and result["refused"] is False
    assert "Vimont" in result["answer"] and result["citations"][0]["n"] == 1
    with pytest.raises(Exception, match="empty"):
        client.predict("   ", api_name="/ask")


def test_concurrent_clients_each_get_their_own_answer(server: str):
    from gradio_client import Client

    questions = [VIMONT_Q, INF_Q, NATO_Q, VIMONT_Q + " Please.", INF_Q + " Briefly."]
    results: dict[int, dict] = {}

    def ask(i: int) -> None:
        results[i] = Client(server, verbose=False).predict(questions[i], api_name="/ask")

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == list(range(len(questions)))
    for i, question in enumerate(questions):
        assert results[i]["question"] == question
        expected = "Vimont" if "envoy" in question else "INF" if "treaty" in question else None
        assert (expected in results[i]["answer"]) if expected else results[i]["refused"]


def test_the_server_serves_the_page_and_the_document_route(server: str, library: Library):
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with direct.open(server, timeout=10) as page:
        assert "Ask your documents" in page.read().decode()
    doc = next(iter(library.documents(library.main)))
    with direct.open(f"{server}document/{library.main}/{doc}?start=0&end=5", timeout=10) as page:
        assert '<mark id="cited">' in page.read().decode()
