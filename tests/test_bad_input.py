"""The bad-input catalogue (SECURITY.md): every case, on every surface, gets a typed error or a
documented skip, never a traceback and never a half-written index.

Surfaces: the Python API (``Pipeline``, ``load_corpus``, ``build_index``, ``Settings``), the CLI
(``python -m qa.cli`` as real subprocesses), and the web app's handlers.
Fast: the keyword encoder and the scripted generator stand in for the models. In subprocesses they are
installed by a ``sitecustomize.py`` written to a temporary folder on ``PYTHONPATH`` (``SITECUSTOMIZE``,
shared with test_crash.py and test_egress.py), which can also pause a build at a named point and record
every attempt to reach the network.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gradio as gr
import pytest

from conftest import PARA, ROOT, SEEDS, KeywordEncoder, ScriptedGenerator, write_corpus
from embeddings import documents as documents_module
from embeddings.build import build_index
from embeddings.documents import MAX_FILE_BYTES, load_corpus
from embeddings.errors import CorpusError, IndexNotFound, QAError
from embeddings.store import check_index, load_index
from qa.errors import InvalidArgument, InvalidQuestion, ModelNotFound
from qa.generation.factory import load_generator
from qa.library import Library
from qa.pipeline import Pipeline
from qa.retrieve import MAX_QUESTION_CHARS, clean_question
from qa.settings import Settings
from qa.types import REFUSAL
from qa.ui import handlers, render, server

TESTS = Path(__file__).resolve().parent
VIMONT_Q = "Who was Macron's special envoy Pierre Vimont for the strategic dialogue?"
VIMONT_A = "Ambassador Pierre Vimont was Macron's special envoy [1]."

# --------------------------------------------------------------------------------- the harness

SITECUSTOMIZE = textwrap.dedent('''
    """Test harness for subprocesses, written by tests/test_bad_input.py; Python imports it at start-up.

    QA_TEST_FAKES=encoder[,generator]  the keyword encoder / a scripted generator replying QA_TEST_REPLY
    QA_TEST_PAUSE=<point>              at that point of an index build, write the point's name to
                                       QA_TEST_SIGNAL and sleep QA_TEST_PAUSE_S seconds (default 600):
                                       embed, write, manifest, pointer, swap, swapped
    QA_TEST_EGRESS_LOG=<file>          record, and refuse, every lookup or connection off this machine
    """
    import os
    import sys


    def _pause(point):
        if os.environ.get("QA_TEST_PAUSE") == point:
            with open(os.environ["QA_TEST_SIGNAL"], "w") as handle:
                handle.write(point)
            import time

            time.sleep(float(os.environ.get("QA_TEST_PAUSE_S", "600")))


    def _guard_egress(log):
        import ipaddress
        import socket

        def local(host):
            if isinstance(host, bytes):
                host = host.decode("ascii", "replace")
            if host is None or host in ("", "localhost", "localhost.localdomain", "ip6-localhost"):
                return True
            try:
                return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
            except ValueError:
                return False

        def refuse(kind, where):
            with open(log, "a") as handle:
                handle.write(f"{kind} {where!r}\\n")
            raise ConnectionRefusedError(f"test harness: no egress allowed ({kind} {where!r})")

        def lookup(real):
            def wrapped(host, *args, **kwargs):
                if not local(host):
                    refuse(real.__name__, host)
                return real(host, *args, **kwargs)
            return wrapped

        for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
            setattr(socket, name, lookup(getattr(socket, name)))

        def connect(real):
            def wrapped(self, address, *args):
                if self.family in (socket.AF_INET, socket.AF_INET6) and not local(address[0]):
                    refuse(real.__name__, address)
                return real(self, address, *args)
            return wrapped

        for name in ("connect", "connect_ex"):
            setattr(socket.socket, name, connect(getattr(socket.socket, name)))
        real_sendto = socket.socket.sendto

        def sendto(self, data, *args):
            if self.family in (socket.AF_INET, socket.AF_INET6) and not local(args[-1][0]):
                refuse("sendto", args[-1])
            return real_sendto(self, data, *args)

        socket.socket.sendto = sendto


    if os.environ.get("QA_TEST_EGRESS_LOG"):
        _guard_egress(os.environ["QA_TEST_EGRESS_LOG"])

    if os.environ.get("QA_TEST_PAUSE"):
        # a test that interrupts the build needs Ctrl-C to work even when pytest itself was started as
        # a background job, which makes the shell ignore SIGINT in it and in every process it starts
        import signal

        signal.signal(signal.SIGINT, signal.default_int_handler)

    _fakes = set(filter(None, os.environ.get("QA_TEST_FAKES", "").split(",")))
    if _fakes or os.environ.get("QA_TEST_PAUSE"):
        sys.path.insert(0, os.environ["QA_TEST_DIR"])
        import conftest
        import embeddings.encoder
        from embeddings import build, files

        if "encoder" in _fakes:
            class _Encoder(conftest.KeywordEncoder):
                def encode(self, texts, *, progress=None):
                    _pause("embed")
                    return super().encode(texts, progress=progress)

            embeddings.encoder.load_encoder = lambda name=None, **kwargs: _Encoder()
        if "generator" in _fakes:
            import qa.generation.factory

            _reply = os.environ.get("QA_TEST_REPLY", "I cannot find the answer in the documents.")
            qa.generation.factory.load_generator = lambda model=None, **kwargs: conftest.ScriptedGenerator([_reply])

        _write_bytes, _swap_current, _write_atomic = files.write_synced, build._swap_current, files.write_atomic

        def _paused_write_bytes(path, data):
            _write_bytes(path, data)
            name = os.path.basename(path)
            if name == "passages.jsonl":
                _pause("write")  # half the version folder written
            elif name == "manifest.json":
                _pause("manifest")  # the version folder complete, not yet renamed into place
            elif name.startswith(".CURRENT."):
                _pause("pointer")  # the new pointer written, not yet swapped in

        def _paused_swap_current(index_dir, version):
            _pause("swap")  # the version folder in place, CURRENT not yet changed
            _swap_current(index_dir, version)

        def _paused_write_atomic(path, data):
            _write_atomic(path, data)
            if os.path.basename(path) == "CURRENT":
                _pause("swapped")  # CURRENT swapped, old versions not yet cleaned up

        files.write_synced = _paused_write_bytes
        build._swap_current = _paused_swap_current
        files.write_atomic = _paused_write_atomic
''')


def harness_env(tmp_path: Path, *, fakes: str = "encoder,generator", reply: str | None = None,
                extra: dict | None = None) -> dict:
    """The environment of a subprocess running under ``SITECUSTOMIZE`` (no QA_* settings inherited)."""
    site = tmp_path / "harness"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
               QA_TEST_DIR=str(TESTS), QA_TEST_FAKES=fakes, QA_CACHE_DIR=str(tmp_path / "cache"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_WAIT_POLICY="PASSIVE")
    if reply is not None:
        env["QA_TEST_REPLY"] = reply
    env.update(extra or {})
    return env


def run_module(module: str, *args: str | bytes, env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, cwd=ROOT, env=env,
                          timeout=timeout)
    done.stdout = done.stdout.decode("utf-8", "replace")
    done.stderr = done.stderr.decode("utf-8", "replace")
    return done


def assert_one_error_line(done: subprocess.CompletedProcess, message: str, *, code: int = 2) -> None:
    """Exit ``code``, no traceback, and exactly one ``qa: error:`` line, which holds ``message``."""
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert done.returncode == code, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("qa: error:")]
    assert len(errors) == 1, done.stderr
    assert message in errors[0], errors[0]


# ------------------------------------------------------------------------- Python API: questions


@pytest.fixture
def pipeline(seeds_copy: Path, tmp_path: Path) -> Pipeline:
    """The seed corpus with the fakes; the scripted model answers the Vimont question, refuses the rest."""
    def reply(messages):
        return VIMONT_A if "Vimont" in messages[-1]["content"].rsplit("Question:", 1)[-1] else REFUSAL

    return Pipeline(Settings(corpus=seeds_copy, index_dir=tmp_path / "idx"), encoder=KeywordEncoder(),
                    generator=ScriptedGenerator(reply))


@pytest.mark.parametrize("question", [
    pytest.param("", id="A01-empty"),
    pytest.param("   \t\n\r  ", id="A02-whitespace-only"),
    pytest.param("\x00\x01\x02\x1b\x7f\x9f", id="A03-control-characters-only"),
    pytest.param("\x00" * 1000, id="A04-nul-bytes-only"),
    pytest.param(None, id="A05-none"),
    pytest.param(b"Who was the envoy?", id="A06-bytes-not-text"),
    pytest.param(42, id="A07-a-number"),
    pytest.param("\u200b\u200c\u200d\u2060\ufeff", id="A13-zero-width-only"),
    pytest.param("\udcff\ud800", id="A13b-lone-surrogates-only"),
])
def test_api_unusable_questions_are_a_typed_error(pipeline: Pipeline, question):
    for call in (pipeline.answer, pipeline.search):
        with pytest.raises(InvalidQuestion, match="empty|must be text"):
            call(question)


@pytest.mark.parametrize(("question", "answered"), [
    pytest.param("Who was\x00 Macron's special\x1b envoy Pierre\x07 Vimont?", True, id="A08-nul-and-control-inside"),
    pytest.param("Pierre Vimont envoy? " + "x" * 100_000, True, id="A09-100000-characters"),
    pytest.param("Vimont" + "a" * 100_000, False, id="A10-100000-characters-one-word"),
    pytest.param("🤔🤔🤔 ❓", False, id="A11-emoji-only"),
    pytest.param("מי היה השליח המיוחד של מקרון?", False, id="A12-right-to-left"),

    pytest.param("Pierre Vimont e\u0301" + "\u0301" * 10_000 + "?", True, id="A14-combining-mark-flood"),
    pytest.param("<script>alert(1)</script> Who was the envoy Pierre Vimont?", True, id="A15-html-markup"),
])
def test_api_odd_questions_are_answered_or_refused_never_crash(pipeline: Pipeline, question, answered):
    answer = pipeline.answer(question)
    assert answer.question == question  # the answer says which question it answers
    assert answer.refused is not answered
    assert answer.text == (REFUSAL if not answered else VIMONT_A)
    document_of = pipeline.document_text
    assert all(document_of(c.doc)[c.start:c.end] == c.text for c in answer.citations)
    assert len(clean_question(question)) <= MAX_QUESTION_CHARS


@pytest.mark.parametrize("k", [
    pytest.param(0, id="A16-k-zero"),
    pytest.param(-1, id="A17-k-negative"),
    pytest.param(2.5, id="A18-k-fraction"),
    pytest.param(True, id="A19-k-bool"),
    pytest.param("3", id="A20-k-string"),
])
def test_api_bad_k_is_a_typed_error(pipeline: Pipeline, k):
    for call in (pipeline.answer, pipeline.search):
        with pytest.raises(InvalidArgument, match="k must be a positive whole number"):
            call(VIMONT_Q, k=k)
    with pytest.raises(InvalidArgument, match="k must be a positive whole number"):
        Settings(k=k)


def test_api_huge_k_returns_every_passage_once(pipeline: Pipeline):  # A21
    hits = pipeline.search(VIMONT_Q, k=10**12)
    assert len(hits) == len(pipeline.index.passages) == len({h.passage.id for h in hits})
    assert not pipeline.answer(VIMONT_Q, k=10**12).refused


@pytest.mark.parametrize(("env", "message"), [
    pytest.param({"QA_K": "abc"}, "QA_K must be a whole number, got 'abc'", id="A22-QA_K-not-a-number"),
    pytest.param({"QA_K": "0"}, "k must be a positive whole number, got 0", id="A23-QA_K-zero"),
    pytest.param({"QA_K": "-4"}, "k must be a positive whole number, got -4", id="A24-QA_K-negative"),
    pytest.param({"QA_K": "2.5"}, "QA_K must be a whole number, got '2.5'", id="A25-QA_K-fraction"),
    pytest.param({"QA_CONTEXT_TOKENS": "lots"}, "QA_CONTEXT_TOKENS must be a whole number, got 'lots'",
                 id="A36-QA_CONTEXT_TOKENS-not-a-number"),
    pytest.param({"QA_CONTEXT_TOKENS": "0"}, "context tokens must be a positive whole number, got 0",
                 id="A37-QA_CONTEXT_TOKENS-zero"),
    pytest.param({"QA_BACKEND": "vllm"}, "backend must be one of ik, llama, transformers", id="A26-QA_BACKEND-unknown"),
])
def test_settings_from_bad_environment_are_a_typed_error(env, message):
    with pytest.raises(InvalidArgument) as caught:
        Settings.from_env(env)
    assert message in str(caught.value)


@pytest.mark.parametrize("field", [pytest.param("corpus", id="A32-corpus-empty-path"),
                                   pytest.param("index_dir", id="A33-index-dir-empty-path")])
def test_an_empty_folder_path_is_refused_not_read_as_the_current_folder(field):
    for empty in ("", "   "):
        with pytest.raises(InvalidArgument, match=f"{field.replace('_', ' ')} must be a folder, got an empty path"):
            Settings.from_env({}, **{field: empty})


# ---------------------------------------------------------------------------- Python API: models


@pytest.mark.parametrize(("make", "message"), [
    pytest.param(lambda tmp: tmp / "missing" / "model.gguf", "does not exist", id="A27-model-path-missing"),
    pytest.param(lambda tmp: (tmp / "notes.txt", (tmp / "notes.txt").write_text("hi"))[0], "not a .gguf",
                 id="A28-model-not-gguf"),
    pytest.param(lambda tmp: (tmp / "m", (tmp / "m").mkdir())[0], "no config.json and no .gguf",
                 id="A29-model-folder-without-config"),
    pytest.param(lambda tmp: "no-such-model", "unknown model", id="A30-model-unknown-name"),
])
def test_unknown_model_is_a_typed_error_before_anything_loads(tmp_path: Path, make, message):
    with pytest.raises(ModelNotFound, match=message):
        load_generator(make(tmp_path))


def test_corrupted_model_file_is_a_typed_error(tmp_path: Path):  # A31
    model = tmp_path / "broken.gguf"
    model.write_bytes(b"GGUF" + b"\x00\xff" * 512)  # a GGUF header and garbage: a cut or damaged download
    for backend in ("llama", "ik"):
        generator = load_generator(model, backend=backend)
        with pytest.raises(ModelNotFound, match="could not load broken.gguf"):
            generator.warm_up()


# ---------------------------------------------------------------------- Python API: corpus files

GOOD = PARA.format("Pierre Vimont")


def sparse_file(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk space (a hole), so a 50 MB case costs nothing."""
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def _symlink(target: str):
    return lambda root: os.symlink(target, root / "link.txt")


@pytest.mark.parametrize(("name", "make", "reason"), [
    pytest.param("latin1.txt", "caf\xe9 cr\xe8me".encode("latin-1"), "not UTF-8 text (byte 3)", id="D01-not-utf8"),
    pytest.param("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file", id="D02-binary"),
    pytest.param("nul.md", b"A fine start.\x00 And then a NUL byte.", "binary file (contains NUL bytes)",
                 id="D03-nul-byte"),
    pytest.param("empty.txt", b"", "empty file", id="D04-empty"),
    pytest.param("blank.md", b" \n\t\n  \r\n", "empty file", id="D05-whitespace-only"),
    pytest.param("big.txt", lambda root: sparse_file(root / "big.txt", 50 * 1024 * 1024),
                 "file too large (52.4 MB > 21 MB)", id="D06-50-MB"),
    pytest.param("paper.pdf", b"%PDF-1.4", "corrupt or truncated PDF", id="D07-truncated-pdf"),
    pytest.param("page.html", b"<script>steal()</script><style>p{}</style>", "no text", id="D08-html-only-scripts"),
    pytest.param("notes.rtf", b"{\\rtf1 Hi}", "unsupported file type (only .txt, .md, .pdf, .docx, .html, .htm)",
                 id="D08b-unsupported-rtf"),
    pytest.param("link.txt", lambda root: os.symlink(root.parent / "secret.txt", root / "link.txt"),
                 "symbolic link pointing outside the corpus folder", id="D09-symlink-outside"),
    pytest.param("link.txt", _symlink("/dev/zero"), "symbolic link pointing outside", id="D10-symlink-to-device"),
    pytest.param("link.txt", _symlink("link.txt"), "broken symbolic link", id="D11-symlink-loop"),
    pytest.param("link.txt", _symlink("nowhere.txt"), "broken symbolic link", id="D12-symlink-dangling"),
    pytest.param("pipe.txt", lambda root: os.mkfifo(root / "pipe.txt"), "not a regular file", id="D13-fifo"),
    pytest.param("\udcff\udcfe.txt", lambda root: Path(os.fsdecode(os.path.join(os.fsencode(root), b"\xff\xfe.txt")))
                 .write_bytes(GOOD.encode()), "file name is not valid UTF-8", id="D14-file-name-not-utf8"),
])
def test_files_that_cannot_be_indexed_are_skipped_with_the_reason(tmp_path: Path, encoder, name, make, reason):
    (tmp_path / "secret.txt").write_text("A secret outside the corpus, never to be indexed.")
    root = write_corpus(tmp_path / "corpus", {"good.txt": GOOD})
    if callable(make):
        make(root)
    else:
        (root / name).write_bytes(make)
    corpus = load_corpus(root)
    assert [d.path for d in corpus.documents] == ["good.txt"]
    skipped = {s.path.encode("utf-8", "replace"): s.reason for s in corpus.skipped}
    shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace").encode()
    assert reason in skipped[shown]
    stored = build_index(root, tmp_path / "idx", encoder=encoder)  # the skip is recorded, the rest indexed
    assert sorted(stored.documents) == ["good.txt"]
    assert reason in stored.manifest["skipped"][shown.decode()]
    assert "secret" not in " ".join(p.text for p in stored.passages)
    check_index(stored, root, encoder)


def test_a_huge_file_is_refused_without_being_read(tmp_path: Path, monkeypatch):  # D06
    root = write_corpus(tmp_path / "corpus", {"good.txt": GOOD})
    sparse_file(root / "huge.txt", 8 * MAX_FILE_BYTES)
    read = []
    real = Path.read_bytes
    monkeypatch.setattr(documents_module.Path, "read_bytes", lambda self: read.append(self.name) or real(self))
    corpus = load_corpus(root)
    assert "too large" in {s.path: s.reason for s in corpus.skipped}["huge.txt"]
    assert read == ["good.txt"]


def test_same_file_name_in_two_folders_and_deep_nesting_are_separate_documents(tmp_path: Path, encoder):  # D15, D16
    deep = "/".join(f"d{i}" for i in range(60))
    root = write_corpus(tmp_path / "corpus", {"x/notes.txt": PARA.format("Alpha"), "y/notes.txt": PARA.format("Bravo"),
                                              f"{deep}/notes.md": PARA.format("Charlie")})
    stored = build_index(root, tmp_path / "idx", encoder=encoder)
    assert sorted(stored.documents) == sorted(["x/notes.txt", "y/notes.txt", f"{deep}/notes.md"])
    assert {p.doc for p in stored.passages if "Bravo" in p.text} == {"y/notes.txt"}


def test_metadata_of_the_wrong_type_becomes_text(tmp_path: Path, encoder):  # D29
    root = write_corpus(tmp_path / "corpus", {"good.txt": GOOD, "metadata.json": (
        '{"good.txt": {"title": 7, "author": {"name": "Ada"}, "date": ["2024"], "publisher": null}, "x.txt": 5}')})
    meta = build_index(root, tmp_path / "idx", encoder=encoder).documents["good.txt"].meta
    assert (meta.title, meta.author, meta.date, meta.publisher) == ("7", '{"name": "Ada"}', '["2024"]', None)
    assert "Ada" in render._byline(load_corpus(root).documents[0], "good.txt")  # the app can render it


def test_hidden_files_and_folders_are_ignored(tmp_path: Path):  # D17
    root = write_corpus(tmp_path / "corpus", {"good.txt": GOOD, ".secret.txt": GOOD, ".git/notes.md": GOOD})
    corpus = load_corpus(root)
    assert [d.path for d in corpus.documents] == ["good.txt"] and corpus.skipped == ()


def test_an_enormous_single_line_document_is_cut_into_bounded_passages(tmp_path: Path, encoder):  # D18
    text = " ".join(f"word{i % 997}" for i in range(200_000))  # 1.6 MB, one line, no sentence end
    root = write_corpus(tmp_path / "corpus", {"line.txt": text})
    stored = build_index(root, tmp_path / "idx", encoder=encoder)
    assert len(stored.passages) >= 200_000 // 200
    assert all(encoder.count_tokens(p.text) <= 200 for p in stored.passages)
    assert all(text[p.start:p.end] == p.text for p in stored.passages)


def test_a_file_that_vanishes_while_indexing_is_skipped(tmp_path: Path, encoder, monkeypatch):  # D19
    root = write_corpus(tmp_path / "corpus", {"good.txt": GOOD, "gone.txt": PARA.format("Gone")})
    listing = documents_module.list_corpus_files

    def list_then_delete(folder):
        found = listing(folder)
        (root / "gone.txt").unlink(missing_ok=True)  # deleted between listing and reading
        return found

    monkeypatch.setattr(documents_module, "list_corpus_files", list_then_delete)
    stored = build_index(root, tmp_path / "idx", encoder=encoder)
    assert sorted(stored.documents) == ["good.txt"]
    assert "cannot read (No such file or directory)" in stored.manifest["skipped"]["gone.txt"]


def test_a_file_deleted_after_it_was_read_makes_the_index_out_of_date(tmp_path: Path, encoder, monkeypatch):  # D20
    from embeddings import build, store

    root = write_corpus(tmp_path / "corpus", {"good.txt": GOOD, "gone.txt": PARA.format("Gone")})
    embed = build.embed_documents

    def embed_then_delete(*args, **kwargs):
        result = embed(*args, **kwargs)
        (root / "gone.txt").unlink()  # deleted while the index is being written
        return result

    monkeypatch.setattr(build, "embed_documents", embed_then_delete)
    stored = build_index(root, tmp_path / "idx", encoder=encoder)
    monkeypatch.undo()
    with pytest.raises(store.IndexOutOfDate, match="deleted: gone.txt"):
        check_index(stored, root, encoder)
    assert sorted(build_index(root, tmp_path / "idx", encoder=encoder).documents) == ["good.txt"]


@pytest.mark.parametrize(("make", "error", "message"), [
    pytest.param(lambda tmp: tmp / "nope", CorpusError, "corpus folder not found", id="D21-corpus-missing"),
    pytest.param(lambda tmp: (tmp / "c.txt", (tmp / "c.txt").write_text(GOOD))[0], CorpusError,
                 "corpus folder is a file, not a folder", id="D22-corpus-is-a-file"),
    pytest.param(lambda tmp: (tmp / "c", (tmp / "c").mkdir())[0], CorpusError,
                 "nothing to index in .*: no .txt, .md, .pdf, .docx, .html, .htm files found", id="D23-corpus-empty"),
    pytest.param(lambda tmp: write_corpus(tmp / "c", {"a.pdf": b"%PDF", "b.txt": b"", "c.md": b"\xff\xfe"}),
                 CorpusError, r"nothing to index .*a.pdf: not a PDF: the file is plain text.*b.txt: empty file; c.md: not UTF-8",
                 id="D24-corpus-nothing-indexable"),
    pytest.param(lambda tmp: write_corpus(tmp / "c", {"a.txt": GOOD, "metadata.json": "{not json"}), CorpusError,
                 "not valid JSON metadata", id="D25-metadata-malformed"),
])
def test_unusable_corpus_folders_are_a_typed_error_and_write_no_index(tmp_path: Path, encoder, make, error, message):
    corpus = make(tmp_path)
    with pytest.raises(error, match=message):
        build_index(corpus, tmp_path / "idx", encoder=encoder)
    with pytest.raises(IndexNotFound):
        load_index(tmp_path / "idx")
    assert not [p for p in (tmp_path / "idx").glob("*") if p.name != ".lock"]  # nothing half-written


@pytest.mark.parametrize(("make", "message"), [
    pytest.param(lambda tmp: (tmp / "f", (tmp / "f").write_text("x"))[0], "is a file, not a folder",
                 id="D26-index-dir-is-a-file"),
    pytest.param(lambda tmp: (tmp / "f" / "idx", (tmp / "f").write_text("x"))[0], "cannot write the index in",
                 id="D27-index-dir-under-a-file"),
])
def test_an_index_folder_that_cannot_be_written_is_a_typed_error(tmp_path: Path, encoder, make, message):
    root = write_corpus(tmp_path / "corpus", {"good.txt": GOOD})
    with pytest.raises(QAError, match=message):
        build_index(root, make(tmp_path), encoder=encoder)


def test_a_full_disk_while_writing_keeps_the_previous_index(tmp_path: Path, encoder, monkeypatch):  # D28
    from embeddings import files

    root = write_corpus(tmp_path / "corpus", {"good.txt": GOOD})
    before = build_index(root, tmp_path / "idx", encoder=encoder)
    (root / "new.txt").write_text(PARA.format("New"))
    write = files.write_synced

    def disk_full(path, data):
        if path.name == "vectors.npy" or path.name == "index.faiss":
            raise OSError(28, "No space left on device")
        write(path, data)

    monkeypatch.setattr(files, "write_synced", disk_full)
    with pytest.raises(QAError, match=r"cannot write the index .*No space left on device.*previous index"):
        build_index(root, tmp_path / "idx", encoder=encoder)
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == sorted([".lock", "CURRENT", before.path.name])
    assert load_index(tmp_path / "idx").path == before.path


# --------------------------------------------------------------------------------- the web app


@pytest.fixture
def ui(tmp_path: Path, seeds_copy: Path, monkeypatch, pipeline: Pipeline) -> handlers.Handlers:
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    library = Library(pipeline.settings, encoder=pipeline.encoder, generator=pipeline.generator,
                          uploads_dir=tmp_path / "uploads")
    return handlers.Handlers(library)


@pytest.mark.parametrize(("question", "k", "collection", "message"), [
    pytest.param("", 0, "", "the question is empty", id="W01-empty"),
    pytest.param(" \n\t ", 0, "", "the question is empty", id="W02-whitespace-only"),
    pytest.param("\x00\x01\x1b", 0, "", "the question is empty", id="W03-control-only"),
    pytest.param(None, 0, "", "the question must be text", id="W04-no-question"),
    pytest.param(VIMONT_Q, -1, "", "k must be a positive whole number, got -1", id="W05-k-negative"),
    pytest.param(VIMONT_Q, "abc", "", "k must be a whole number of passages, got 'abc'", id="W06-k-not-a-number"),
    pytest.param(VIMONT_Q, 2.5, "", "k must be a whole number of passages, got 2.5", id="W07-k-fraction"),
    pytest.param(VIMONT_Q, 0, "../../etc", "no collection named '../../etc'", id="W08-collection-traversal"),
])
def test_app_ask_refuses_bad_input_with_a_message(ui: handlers.Handlers, question, k, collection, message):
    with pytest.raises(gr.Error) as caught:
        ui.ask(question, collection, k)
    assert message in caught.value.message and "Traceback" not in caught.value.message


@pytest.mark.parametrize(("question", "k", "refused"), [
    pytest.param("Pierre Vimont " + "é" * 100_000, 0, False, id="W09-100000-characters"),
    pytest.param(VIMONT_Q, 10**9, False, id="W10-k-huge"),
    pytest.param(VIMONT_Q, "3", False, id="W11-k-as-text"),
    pytest.param("🙂\u200b\u202e", 0, True, id="W12-emoji-and-invisible-characters"),
])
def test_app_ask_answers_odd_input(ui: handlers.Handlers, question, k, refused):
    result = ui.ask(question, "", k)
    assert result["question"] == question and result["refused"] is refused


def test_app_chat_cuts_a_huge_question_and_escapes_markup(ui: handlers.Handlers):  # W13
    _, pending, chat, _ = ui.accept("<script>alert(1)</script> " + "Vimont " * 50_000, [])
    assert len(pending) <= MAX_QUESTION_CHARS
    assert "<script>" not in chat[-2]["content"] and "&lt;script&gt;" in chat[-2]["content"]
    *_, (chat, sources, turns) = ui.respond(pending, [], ui.library.main, 5, "default", False)
    assert "<script>" not in chat[-2]["content"] + sources and turns[-1].answer.question == pending


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(["--port", "99999"], "argument --port: a port is a number from 1 to 65535, got '99999'",
                 id="W25-port-out-of-range"),
    pytest.param(["--port", "http"], "argument --port: a port is a number from 1 to 65535", id="W26-port-not-a-number"),
    pytest.param(["--corpus", ""], "app: error: corpus must be a folder, got an empty path",
                 id="W27-corpus-empty-path"),
    pytest.param(["--corpus", "/definitely/not/here"], "corpus folder not found", id="W28-corpus-missing"),
])
def test_app_start_up_mistakes_are_one_line_before_any_model_loads(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(Pipeline, "generator", property(lambda self: pytest.fail("the model was loaded")))
    started = time.monotonic()
    try:
        code = server.main(argv)
    except SystemExit as exit:
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert time.monotonic() - started < 30  # said at once, not after minutes of loading


# ------------------------------------------------------------------------- the CLI, as a process


def _prepare(kind: str, tmp: Path) -> None:
    """Files some CLI cases need, made inside ``tmp``."""
    if kind == "corpus-file":
        (tmp / "notes.txt").write_text(GOOD)
    elif kind == "nothing-indexable":
        write_corpus(tmp / "junk", {"a.pdf": b"%PDF", "b.txt": b"", "c.md": b"caf\xe9"})
    elif kind == "empty-corpus":
        (tmp / "junk").mkdir()
    elif kind == "index-dir-file":
        (tmp / "idx").write_text("not a folder")
    elif kind == "models":
        (tmp / "notes.txt").write_text("hello")
        (tmp / "model-dir").mkdir()
        (tmp / "broken.gguf").write_bytes(b"GGUF" + b"\x00\xff" * 512)
    elif kind == "metadata":
        write_corpus(tmp / "junk", {"a.txt": GOOD, "metadata.json": "{oops"})


CLI_CASES = [
    # (id, prepare, arguments (``{tmp}`` is the test's folder), extra environment, fakes, expected message)
    ("C01-empty-question", None, ["search", ""], {}, "the question is empty"),
    ("C02-whitespace-question", None, ["search", "  \t \n"], {}, "the question is empty"),
    ("C03-control-character-question", None, ["ask", "\x01\x02\x1b\x7f"], {}, "the question is empty"),
    ("C04-k-zero", None, ["search", "Vimont", "-k", "0"], {}, "k must be a positive whole number, got 0"),
    ("C05-k-negative", None, ["ask", "Vimont", "-k", "-3"], {}, "k must be a positive whole number, got -3"),
    ("C06-k-not-a-number", None, ["search", "Vimont", "-k", "abc"], {}, "argument -k: invalid int value: 'abc'"),
    ("C07-unknown-backend", None, ["ask", "--backend", "vllm", "Vimont"], {}, "argument --backend: invalid choice"),
    ("C08-QA_K-not-a-number", None, ["search", "Vimont"], {"QA_K": "abc"}, "QA_K must be a whole number, got 'abc'"),
    ("C09-QA_BACKEND-unknown", None, ["ask", "Vimont"], {"QA_BACKEND": "vllm"}, "backend must be one of"),
    ("C10-unknown-command", None, ["frobnicate"], {}, "argument COMMAND: invalid choice: 'frobnicate'"),
    ("C11-no-command", None, [], {}, "the following arguments are required: COMMAND"),
    ("C12-corpus-missing", None, ["--corpus", "{tmp}/nope", "search", "Vimont"], {}, "corpus folder not found"),
    ("C13-corpus-is-a-file", "corpus-file", ["index", "{tmp}/notes.txt"], {}, "corpus folder is a file"),
    ("C14-nothing-indexable", "nothing-indexable", ["index", "{tmp}/junk"], {},
     "nothing to index in {tmp}/junk: a.pdf: not a PDF: the file is plain text"),
    ("C15-empty-corpus", "empty-corpus", ["--corpus", "{tmp}/junk", "search", "Vimont"], {},
     "no .txt, .md, .pdf, .docx, .html, .htm files found"),
    ("C16-index-dir-is-a-file", "index-dir-file", ["--index-dir", "{tmp}/idx", "search", "Vimont"], {},
     "is a file, not a folder"),
    ("C17-metadata-malformed", "metadata", ["index", "{tmp}/junk"], {}, "not valid JSON metadata"),
    ("C18-model-missing", "models", ["ask", "--model", "{tmp}/missing.gguf", VIMONT_Q], {"fakes": "encoder"},
     "does not exist"),
    ("C19-model-not-gguf", "models", ["ask", "--model", "{tmp}/notes.txt", VIMONT_Q], {"fakes": "encoder"},
     "is a file but not a .gguf model"),
    ("C20-model-folder-without-config", "models", ["ask", "--model", "{tmp}/model-dir", VIMONT_Q],
     {"fakes": "encoder"}, "has no config.json and no .gguf file"),
    ("C21-model-corrupted", "models", ["ask", "--model", "{tmp}/broken.gguf", VIMONT_Q], {"fakes": "encoder"},
     "llama.cpp could not load broken.gguf"),
    ("C22-model-unknown-name", None, ["ask", "--model", "gpt-17", VIMONT_Q], {"fakes": "encoder"},
     "unknown model 'gpt-17'"),
    ("C28-corpus-empty-path", None, ["--corpus", "", "search", "Vimont"], {}, "corpus must be a folder"),
    ("C29-index-dir-empty-path", None, ["--index-dir", "", "index"], {}, "index dir must be a folder"),
    ("C30-model-empty-name", None, ["ask", "--model", " ", VIMONT_Q], {"fakes": "encoder"}, "empty model name"),
]


@pytest.mark.parametrize(("prepare", "args", "env", "message"), [
    pytest.param(prepare, args, env, message, id=case) for case, prepare, args, env, message in CLI_CASES])
def test_cli_mistakes_print_one_line_and_exit_2(tmp_path: Path, prepare, args, env, message):
    if prepare:
        _prepare(prepare, tmp_path)
    env = dict(env)
    fakes = env.pop("fakes", "encoder,generator")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if not any(a == "--index-dir" for a in args):
        args = ["--index-dir", str(tmp_path / "index"), *args]
    done = run_module("qa.cli", *args, env=harness_env(tmp_path, fakes=fakes, reply=VIMONT_A, extra=env))
    assert_one_error_line(done, message.replace("{tmp}", str(tmp_path)))


def test_cli_a_real_embedder_that_cannot_load_is_one_line(tmp_path: Path):  # C23 (no fakes)
    done = run_module("qa.cli", "--index-dir", str(tmp_path / "idx"), "--embedder", str(tmp_path / "no-model"),
                      "search", "Vimont", env=harness_env(tmp_path, fakes=""), timeout=300)
    assert_one_error_line(done, f"cannot load embedder '{tmp_path / 'no-model'}'")
    assert not (tmp_path / "idx" / "CURRENT").exists()


def test_cli_a_huge_k_lists_every_passage(tmp_path: Path):  # C31
    done = run_module("qa.cli", "--index-dir", str(tmp_path / "idx"), "search", "Vimont", "-k", str(10**30),
                      "--json", env=harness_env(tmp_path))
    assert done.returncode == 0, done.stderr
    hits = __import__("json").loads(done.stdout)
    assert len(hits) == len(load_index(tmp_path / "idx").passages) > 5


@pytest.mark.parametrize("question", [
    pytest.param("Vimont " * 14_000, id="C24-100000-character-question"),
    pytest.param(b"Pierre Vimont \xff\xfe envoy?", id="C25-question-not-utf8"),
    pytest.param("\u202eVimont\u200b 🤔", id="C26-emoji-rtl-zero-width"),
])
def test_cli_odd_questions_are_answered(tmp_path: Path, question):
    for command in (["search", "-k", "2"], ["ask", "--json"]):
        done = run_module("qa.cli", "--index-dir", str(tmp_path / "idx"), *command, question,
                          env=harness_env(tmp_path, reply=VIMONT_A))
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert "qa: error" not in done.stderr and done.stdout.strip()


def test_cli_index_reports_every_skipped_file_and_indexes_the_rest(tmp_path: Path):  # C27
    root = write_corpus(tmp_path / "corpus", {"good.txt": GOOD, "latin1.txt": b"caf\xe9", "bin.md": b"a\x00b",
                                              "empty.txt": b"", "paper.pdf": b"%PDF"})
    sparse_file(root / "big.txt", 50 * 1024 * 1024)
    (tmp_path / "secret.txt").write_text("A secret outside the corpus.")
    os.symlink(tmp_path / "secret.txt", root / "outside.txt")
    os.symlink("loop.md", root / "loop.md")
    done = run_module("qa.cli", "--index-dir", str(tmp_path / "idx"), "index", str(root),
                      env=harness_env(tmp_path))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "indexed 1 documents" in done.stdout
    skipped = dict(re.findall(r"^skipped (\S+): (.+)$", done.stderr, re.M))
    assert sorted(skipped) == sorted(["latin1.txt", "bin.md", "empty.txt", "paper.pdf", "big.txt", "outside.txt",
                                      "loop.md"])
    assert "too large" in skipped["big.txt"] and "outside the corpus" in skipped["outside.txt"]


# ----------------------------------------------------------------------- the evaluator, as a process


EVAL_CASES = [
    # (id, question file content (None: no file), extra arguments, expected message)
    ("E01-bad-json-line", b'{"id": "a", "question": "Who?"}\n{"id": "b", "question": }\n', [],
     "line 2: not valid JSON"),
    ("E02-missing-question", b'{"id": "a"}\n', [], "line 1: missing `question`"),
    ("E03-duplicate-ids", b'{"id": "a", "question": "Who?"}\n{"id": "a", "question": "Why?"}\n', [],
     "line 2: duplicate id 'a' (first on line 1)"),
    ("E04-empty-file", b"", [], "no questions (the file is empty)"),
    ("E05-not-utf8", b'{"id": "a", "question": "caf\xe9?"}\n', [], "line 1: not UTF-8 text"),
    ("E06-question-empty", b'{"id": "a", "question": "  "}\n', [], "line 1: `question` is empty"),
    ("E07-question-not-text", b'{"id": "a", "question": 7}\n', [], "`question` must be a string, got 7"),
    ("E08-file-missing", None, [], "question file not found"),
    ("E09-out-is-a-folder", b'{"id": "a", "question": "Who?"}\n', ["--out", "{tmp}"], "is a folder"),
    ("E10-binary-file", b"\x00\x01\x02GGUF\xff", [], "not UTF-8 text"),
]


@pytest.mark.parametrize(("content", "extra", "message"), [
    pytest.param(content, extra, message, id=case) for case, content, extra, message in EVAL_CASES])
def test_evaluator_bad_question_files_print_one_line_and_exit_2(tmp_path: Path, content, extra, message):
    questions = tmp_path / "q.jsonl"
    if content is not None:
        questions.write_bytes(content)
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    out = [] if "--out" in extra else ["--out", str(tmp_path / "r.jsonl")]
    done = run_module("qa.cli", "eval", str(questions), *out, *extra, "--corpus", str(SEEDS),
                      "--index-dir", str(tmp_path / "idx"), env=harness_env(tmp_path))
    assert_one_error_line(done, message)
    assert not (tmp_path / "r.jsonl").exists() and not (tmp_path / "idx" / "CURRENT").exists()


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["--limit", "0"], "argument --limit: must be >= 1, got 0", id="E11-limit-zero"),
    pytest.param(["-k", "-2"], "argument -k: must be >= 1, got -2", id="E12-k-negative"),
])
def test_evaluator_bad_options_exit_2_without_a_traceback(tmp_path: Path, args, message):
    (tmp_path / "q.jsonl").write_text('{"id": "a", "question": "Who?"}\n')
    done = run_module("qa.cli", "eval", str(tmp_path / "q.jsonl"), *args, env=harness_env(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert message in done.stderr


def test_evaluator_answers_odd_questions_and_records_them(tmp_path: Path):  # E13
    import json

    odd = ["Who was\u0000 the envoy Pierre Vimont?", "Vimont " * 20_000, "🤔 \u200b", "\u05de\u05d9?"]
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"id": f"q{i}", "question": q}) + "\n" for i, q in enumerate(odd)))
    done = run_module("qa.cli", "eval", str(questions), "--out", str(tmp_path / "r.jsonl"), "--corpus", str(SEEDS),
                      "--index-dir", str(tmp_path / "idx"), env=harness_env(tmp_path, reply=VIMONT_A))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q0", "q1", "q2", "q3"] and not any("error" in r for r in rows)
    assert [r["question"] for r in rows] == odd
