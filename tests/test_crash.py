"""Faults and load: kill -9 during indexing, damaged index files, concurrent writers and readers, and
8 clients x 10 questions through the web app's API at once.

Indexing runs as a real ``qa index`` process under the harness of test_bad_input.py (keyword encoder;
``QA_TEST_PAUSE`` stops the build at a named point so it can be killed exactly there). Every damaged
index must be refused with a message that says how to rebuild, and the command in that message must
work; nothing is ever answered from a damaged index.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_app import outbound, serving  # noqa: F401 - outbound is a fixture: nothing may leave the machine
from test_bad_input import assert_one_error_line, harness_env, run_module

import qa.library as library_module
from conftest import PARA, ROOT, KeywordEncoder, ScriptedGenerator, write_corpus
from embeddings import files, store
from embeddings.build import build_index
from embeddings.errors import IndexCorrupt, IndexLocked, IndexOutOfDate
from embeddings.store import FORMAT_VERSION, check_index, load_index, manifest_checksum
from qa.answer import stream_answer
from qa.retrieve import Retriever
from qa.settings import Settings
from qa.types import Answer

ALPHA = "The alpha lighthouse keeper, Ada Quill, logged forty storms in the winter of 1911."
BRAVO = "The bravo harbour master, Ben Stroud, counted ninety ships in the summer of 1912."


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus", {"alpha.txt": ALPHA})


def answer_from(stored, question: str, reply: str) -> Answer:
    """Answer with a loaded index, the keyword encoder and a scripted model (no corpus check)."""
    *_, final = stream_answer(question, retriever=Retriever(stored, KeywordEncoder()),
                              generator=ScriptedGenerator([reply]), k=3)
    return final


def assert_answers_alpha(stored) -> None:
    result = answer_from(stored, "How many storms did the alpha lighthouse keeper log?", "Forty storms [1].")
    assert not result.refused and result.citations
    for c in result.citations:
        assert stored.documents[c.doc].text[c.start:c.end] == c.text and "forty storms" in c.text


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the build ended before its pause point:\n{process.stderr.read().decode()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the build never reached its pause point")
        time.sleep(0.05)


def start_paused_index(tmp_path: Path, corpus: Path, index_dir: Path, point: str, *, pause_s: float = 600,
                       name: str = "signal") -> tuple[subprocess.Popen, Path]:
    """``qa index`` in a process that stops at ``point`` (see SITECUSTOMIZE) and says so in a file."""
    signal_file = tmp_path / f"{name}-{point}"
    env = harness_env(tmp_path, fakes="encoder", extra={
        "QA_TEST_PAUSE": point, "QA_TEST_SIGNAL": str(signal_file), "QA_TEST_PAUSE_S": str(pause_s)})
    process = subprocess.Popen([sys.executable, "-m", "qa.cli", "--index-dir", str(index_dir), "index", str(corpus)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return process, signal_file


# ------------------------------------------------------------------------------- kill -9 while indexing

# point -> (debris the kill leaves behind, whether the new version is live after the kill)
KILL_POINTS = {
    "embed": (None, False),  # while embedding: nothing written yet
    "write": (".tmp-v-*", False),  # half of the new version folder written
    "manifest": (".tmp-v-*", False),  # the version folder complete but not renamed into place
    "pointer": (".CURRENT.*.tmp", False),  # the new pointer written beside CURRENT, not swapped in
    "swap": ("v-*", False),  # the new version in place, CURRENT still naming the old one
    "swapped": (None, True),  # CURRENT swapped, old versions not yet cleaned up
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_during_indexing_leaves_a_working_index(tmp_path: Path, corpus: Path, point: str):
    index_dir = tmp_path / "idx"
    before = build_index(corpus, index_dir, encoder=KeywordEncoder())
    (corpus / "bravo.txt").write_text(BRAVO)
    process, signal_file = start_paused_index(tmp_path, corpus, index_dir, point)
    wait_for(signal_file, process)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    debris, swapped = KILL_POINTS[point]
    if debris:  # the kill really happened mid-write
        found = [p for p in index_dir.glob(debris) if p.name != before.path.name]
        assert found, f"expected debris {debris} after a kill at {point}"

    after = load_index(index_dir)  # verifies every checksum
    check_index(after, None, KeywordEncoder())
    if swapped:
        assert sorted(after.documents) == ["alpha.txt", "bravo.txt"] and after.path != before.path
    else:
        assert after.path == before.path and sorted(after.documents) == ["alpha.txt"]
    assert_answers_alpha(after)

    # the next build takes the dead process's lock, clears its debris and finishes the job
    rebuilt = build_index(corpus, index_dir, encoder=KeywordEncoder(), lock_timeout=10)
    assert sorted(rebuilt.documents) == ["alpha.txt", "bravo.txt"]
    leftovers = [p.name for p in index_dir.iterdir() if p.name.startswith(".") and p.name != ".lock"]
    assert leftovers == []
    assert len([p for p in index_dir.iterdir() if p.name.startswith("v-")]) <= 2  # live + previous
    check_index(load_index(index_dir), corpus, KeywordEncoder())


def test_ctrl_c_during_indexing_removes_the_half_written_version(tmp_path: Path, corpus: Path):
    index_dir = tmp_path / "idx"
    before = build_index(corpus, index_dir, encoder=KeywordEncoder())
    (corpus / "bravo.txt").write_text(BRAVO)
    process, signal_file = start_paused_index(tmp_path, corpus, index_dir, "write")
    wait_for(signal_file, process)
    assert list(index_dir.glob(".tmp-v-*"))
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err.decode().strip().splitlines()[-1] == "qa: interrupted"
    assert "Traceback" not in err.decode()
    assert sorted(p.name for p in index_dir.iterdir()) == sorted([".lock", "CURRENT", before.path.name])
    assert_answers_alpha(load_index(index_dir))


def test_debris_is_cleared_even_when_nothing_needs_rebuilding(tmp_path: Path, corpus: Path):
    index_dir = tmp_path / "idx"
    build_index(corpus, index_dir, encoder=KeywordEncoder())
    (index_dir / ".tmp-v-123").mkdir()
    (index_dir / ".tmp-v-123" / "passages.jsonl").write_text("{half")
    (index_dir / ".CURRENT.999.tmp").write_text("v-123\n")
    stored = build_index(corpus, index_dir, encoder=KeywordEncoder())  # corpus unchanged: no new version
    assert not (index_dir / ".tmp-v-123").exists() and not (index_dir / ".CURRENT.999.tmp").exists()
    assert_answers_alpha(stored)


# ------------------------------------------------------------------------- damaged index files


def _edit_json_line(path: Path, change) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    row = json.loads(lines[0])
    change(row)
    lines[0] = json.dumps(row, ensure_ascii=False) + "\n"
    path.write_text("".join(lines), encoding="utf-8")


def _same_length_text(row: dict) -> None:
    row["text"] = row["text"].replace("forty", "fifty")  # same length: offsets still fit


def _flip_byte(path: Path, at: int = -7) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _reforge_manifest(version: Path, change) -> None:
    """An edit by someone who also fixes every checksum: only the consistency checks can notice."""
    change(version)
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["artefacts"] = {n: files.sha256_file(version / n) for n in store.ARTEFACTS}
    manifest["checksum"] = manifest_checksum(manifest)
    (version / "manifest.json").write_text(json.dumps(manifest))


def _units_past_the_passages(version: Path) -> None:
    units = np.load(version / "units.npy")
    units[0, 0] = 10**6
    with open(version / "units.npy", "wb") as handle:
        np.save(handle, units)


def _manifest(change):
    def edit(version: Path) -> None:
        manifest = json.loads((version / "manifest.json").read_text())
        change(manifest)
        (version / "manifest.json").write_text(json.dumps(manifest))
    return edit


DAMAGE = {
    # name -> (what is done to the live version folder (or the index folder), error, message)
    "current-garbage-bytes": (lambda v: (v.parent / "CURRENT").write_bytes(b"\xff\xfe\x00garbage"), IndexCorrupt,
                              "CURRENT cannot be read"),
    "current-empty": (lambda v: (v.parent / "CURRENT").write_text(""), IndexCorrupt, "does not name an index version"),
    "current-escapes": (lambda v: (v.parent / "CURRENT").write_text(f"../{v.parent.name}/{v.name}\n"), IndexCorrupt,
                        "does not name an index version"),
    "current-dot-dot": (lambda v: (v.parent / "CURRENT").write_text(".."), IndexCorrupt,
                        "does not name an index version"),
    "current-missing-version": (lambda v: (v.parent / "CURRENT").write_text("v-1\n"), IndexCorrupt,
                                "points at a missing version v-1"),
    "version-folder-deleted": (lambda v: [p.unlink() for p in v.iterdir()] and v.rmdir(), IndexCorrupt,
                               "points at a missing version"),
    "manifest-truncated": (lambda v: (v / "manifest.json").write_text((v / "manifest.json").read_text()[:100]),
                           IndexCorrupt, "cannot be read"),
    "manifest-deleted": (lambda v: (v / "manifest.json").unlink(), IndexCorrupt, "cannot be read"),
    "manifest-not-an-object": (lambda v: (v / "manifest.json").write_text("[1, 2]"), IndexCorrupt, "is not a manifest"),
    "manifest-edited-embedder": (_manifest(lambda m: m["embedder"].update(name="another-model")), IndexCorrupt,
                                 "manifest.json was edited"),
    "manifest-edited-kind": (_manifest(lambda m: m.update(index_kind="hnsw")), IndexCorrupt, "was edited"),
    "manifest-edited-file-list": (_manifest(lambda m: m["files"].clear()), IndexCorrupt, "was edited"),
    "manifest-wrong-format": (_manifest(lambda m: m.update(format_version=0)), IndexOutOfDate,
                              f"index format 0 is not {FORMAT_VERSION}"),
    "passage-text-edited-same-length": (lambda v: _edit_json_line(v / "passages.jsonl", _same_length_text),
                                        IndexCorrupt, "passages.jsonl was modified or truncated"),
    "passages-truncated": (lambda v: (v / "passages.jsonl").write_bytes((v / "passages.jsonl").read_bytes()[:-30]),
                           IndexCorrupt, "passages.jsonl was modified or truncated"),
    "document-text-edited": (lambda v: _edit_json_line(v / "documents.jsonl", _same_length_text), IndexCorrupt,
                             "documents.jsonl was modified or truncated"),
    "faiss-truncated": (lambda v: (v / "index.faiss").write_bytes((v / "index.faiss").read_bytes()[:50]), IndexCorrupt,
                        "index.faiss was modified or truncated"),
    "faiss-zeroed": (lambda v: (v / "index.faiss").write_bytes(bytes(len((v / "index.faiss").read_bytes()))),
                     IndexCorrupt, "index.faiss was modified or truncated"),
    "vectors-bit-flip": (lambda v: _flip_byte(v / "vectors.npy"), IndexCorrupt, "vectors.npy was modified"),
    "units-deleted": (lambda v: (v / "units.npy").unlink(), IndexCorrupt, "cannot be read"),
    "reforged-inconsistent-units": (lambda v: _reforge_manifest(v, _units_past_the_passages), IndexCorrupt,
                                    "is inconsistent"),
    "reforged-garbage-faiss": (lambda v: _reforge_manifest(v, lambda v: (v / "index.faiss").write_bytes(b"\0" * 64)),
                               IndexCorrupt, "FAISS index file cannot be read"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_index_files_are_refused_with_how_to_rebuild(tmp_path: Path, corpus: Path, damage: str):
    index_dir = tmp_path / "idx"
    stored = build_index(corpus, index_dir, encoder=KeywordEncoder())
    harm, error, message = DAMAGE[damage]
    harm(stored.path)
    with pytest.raises(error) as caught:
        load_index(index_dir)
    assert message in str(caught.value)
    hint = re.search(r"rebuild it with `(qa [^`]+)`", str(caught.value))
    assert hint, str(caught.value)
    command = shlex.split(hint.group(1))
    assert command[:4] == ["qa", "--index-dir", str(index_dir), "index"] and "--rebuild" in command
    assert command[-1] in (str(corpus.resolve()), "CORPUS_FOLDER")

    # `qa search` never answers from it: one line, exit 2 (an old format is rebuilt, with a note)
    env = harness_env(tmp_path, fakes="encoder")
    done = run_module("qa.cli", "--corpus", str(corpus), "--index-dir", str(index_dir), "search", "storms", env=env)
    if error is IndexOutOfDate:
        assert done.returncode == 0 and f"qa: note: index format 0 is not {FORMAT_VERSION}" in done.stderr
        assert load_index(index_dir).manifest["format_version"] == FORMAT_VERSION
        return
    assert_one_error_line(done, message)
    assert "rebuild it with `qa --index-dir" in done.stderr and done.stdout == ""

    # and the command it names repairs it
    args = [str(corpus) if a == "CORPUS_FOLDER" else a for a in command[1:]]
    rebuilt = run_module("qa.cli", *args, env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert_answers_alpha(load_index(index_dir))


# --------------------------------------------------------------------- concurrent writers and readers


def test_concurrent_qa_index_runs_wait_for_the_lock_and_agree(tmp_path: Path, corpus: Path):
    index_dir = tmp_path / "idx"
    (corpus / "bravo.txt").write_text(BRAVO)
    first, signal_file = start_paused_index(tmp_path, corpus, index_dir, "write", pause_s=5)
    wait_for(signal_file, first)  # the first writer holds the lock, half-way through writing
    with pytest.raises(IndexLocked, match="being written by another process"):
        build_index(corpus, index_dir, encoder=KeywordEncoder(), lock_timeout=0.5)
    env = harness_env(tmp_path, fakes="encoder")
    others = [subprocess.Popen([sys.executable, "-m", "qa.cli", "--index-dir", str(index_dir), "index", str(corpus)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    for process in [first, *others]:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
        assert b"indexed 2 documents" in out
    stored = load_index(index_dir)
    check_index(stored, corpus, KeywordEncoder())
    assert [p.name for p in index_dir.iterdir() if p.name.startswith(("v-", ".tmp"))] == [stored.path.name]


def test_a_reader_racing_two_rebuilds_reads_the_new_version(tmp_path: Path, corpus: Path, monkeypatch):
    index_dir = tmp_path / "idx"
    old = build_index(corpus, index_dir, encoder=KeywordEncoder())
    (corpus / "bravo.txt").write_text(BRAVO)
    new = build_index(corpus, index_dir, encoder=KeywordEncoder())
    (index_dir / "CURRENT").write_text(old.path.name + "\n")  # a reader reads CURRENT naming the old version...
    real = files.sha256_file

    def while_reading(path):  # ...and two builds finish under its feet: the version it reads is gone
        if old.path.exists():
            (index_dir / "CURRENT").write_text(new.path.name + "\n")
            for f in old.path.iterdir():
                f.unlink()
            old.path.rmdir()
        return real(path)

    monkeypatch.setattr(store, "sha256_file", while_reading)
    assert load_index(index_dir).path == new.path


def test_readers_never_see_a_damaged_index_while_a_writer_rebuilds(tmp_path: Path, corpus: Path):
    index_dir = tmp_path / "idx"
    build_index(corpus, index_dir, encoder=KeywordEncoder())
    stop, failures, loads = threading.Event(), [], []

    def read() -> None:
        while not stop.is_set():
            try:
                loads.append(len(load_index(index_dir).documents))
            except Exception as exc:  # noqa: BLE001 - any error is a failure of the test
                failures.append(repr(exc))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for i in range(15):  # the corpus changes under the readers: every build writes a new version
            (corpus / "bravo.txt").write_text(BRAVO.replace("ninety", f"{i + 2} times ninety"))
            build_index(corpus, index_dir, encoder=KeywordEncoder())
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert failures == [] and len(loads) > 15 and set(loads) <= {1, 2}


# ------------------------------------------------------------ 8 clients x 10 questions through /ask

LOCKERS = dict(zip(
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec "
    "romeo sierra tango".split(),
    "umbrella violin telescope compass lantern anchor kettle saddle trumpet hammock "
    "accordion binoculars chessboard harmonica lighthouse microscope parachute sextant tambourine xylophone".split(),
))


def locker_reply(messages) -> str:
    """The scripted model: finds the locker named in the question and names its object, citing [1]."""
    question = messages[-1]["content"].rsplit("Question:", 1)[-1]
    name = re.search(r"locker (\w+)", question).group(1)
    return f"Locker {name} holds the {LOCKERS[name]} [1]."


@pytest.fixture
def locker_server(tmp_path: Path, monkeypatch, outbound):  # noqa: F811 - the fixture imported above
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    corpus = write_corpus(tmp_path / "lockers", {
        f"{name}.txt": f"Locker {name} holds the {thing}. " + PARA.format(f"The {name} locker note")
        for name, thing in LOCKERS.items()})
    library = library_module.Library(Settings(corpus=corpus, index_dir=tmp_path / "idx"), encoder=KeywordEncoder(),
                          generator=ScriptedGenerator(locker_reply), uploads_dir=tmp_path / "uploads")
    library.pipeline().index  # build it before the clients arrive
    with serving(library, outbound) as url:
        yield url


def test_8_clients_asking_10_questions_each_get_their_own_complete_answers(locker_server: str):
    from gradio_client import Client

    names = list(LOCKERS)
    results: dict[tuple[int, int], dict | str] = {}

    def client(c: int) -> None:
        session = Client(locker_server, verbose=False)
        for i in range(10):
            question = f"What does locker {names[(3 * c + i) % len(names)]} hold?"
            try:
                results[c, i] = {"asked": question, **session.predict(question, "", 0, api_name="/ask")}
            except Exception as exc:  # noqa: BLE001 - counted as an error below
                results[c, i] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    errors = [r for r in results.values() if isinstance(r, str)]
    assert errors == [] and len(results) == 80
    for result in results.values():
        name = re.search(r"locker (\w+)", result["asked"]).group(1)
        assert result["question"] == result["asked"]  # matched to its own question
        assert result["refused"] is False and result["answer"] == f"Locker {name} holds the {LOCKERS[name]} [1]."
        (citation,) = result["citations"]
        assert citation["doc"] == f"{name}.txt" and LOCKERS[name] in citation["text"]
