"""Tiny deterministic fakes for fast unit tests, and shared fixtures."""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
SHARED = ROOT.parent / "shared"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's; never downloaded (make browser installs it)
CHROMIUM_ARGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # nothing but loopback resolves
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


class KeywordEncoder:
    """A bag-of-words hashing encoder: texts sharing words get similar vectors. Counts its calls."""

    name = "fake-keywords"
    dim = 1024
    max_tokens = 256

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def encode(self, texts, *, progress=None) -> np.ndarray:
        self.encoded += list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                if len(word) > 2:
                    out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
            norm = np.linalg.norm(out[i])
            out[i] = out[i] / norm if norm else out[i]
        if progress:
            progress(len(texts), len(texts))
        return out


class SlowKeywordEncoder(KeywordEncoder):
    """The keyword encoder taking ``delay_s`` per call: a job that can be killed halfway (test_distributed.py)."""

    def __init__(self, delay_s: float = 1.0) -> None:
        super().__init__()
        self.delay_s = delay_s

    def encode(self, texts, *, progress=None) -> np.ndarray:
        time.sleep(self.delay_s)
        return super().encode(texts, progress=progress)


@pytest.fixture
def encoder() -> KeywordEncoder:
    return KeywordEncoder()


@pytest.fixture
def seeds_copy(tmp_path: Path) -> Path:
    """A writable copy of the seed corpus."""
    target = tmp_path / "corpus"
    shutil.copytree(SEEDS, target)
    return target


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(log: Path, *, env: dict | None = None, start_timeout_s: float = 900,
                args: tuple[str, ...] = ()) -> Iterator[tuple[str, int]]:
    """``python app.py`` on a free loopback port, as a user starts it: yields (url, port) once the page
    answers (the first start builds the index and loads the model), stops the server afterwards.
    Fails with the end of the app's log if it exits or never answers."""
    port = free_port()
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "app.py", "--port", str(port), *args], cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if process.poll() is not None:
                pytest.fail(f"app.py exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                direct.open(url, timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"app.py did not answer on {url} within {start_timeout_s} s:\n{log.read_text()[-3000:]}")
                time.sleep(2)
        yield url, port
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def write_corpus(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return root


PARA = "{} is a paragraph that is long enough to stand on its own, with several words in it."


def user_turn(messages) -> str:
    """The last user message of a prompt: the question's turn, which a broad answer's started reply
    (a last assistant message) follows."""
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


class ScriptedGenerator:
    """A fake language model: replies with scripted texts in order (or a function of the prompt),
    streamed word by word. Records every prompt it was given. A scripted reply is the whole reply:
    when the prompt starts it (a last assistant message), only the rest is streamed, like a model's."""

    name = "scripted"

    def __init__(self, replies=("I cannot find the answer in the documents.",)) -> None:
        self.replies = list(replies) if not callable(replies) else replies
        self.prompts: list[list[dict]] = []
        self.warmed = 0

    def warm_up(self) -> None:
        self.warmed += 1

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, messages, *, max_tokens: int = 160, stop=()):
        self.prompts.append(list(messages))
        if callable(self.replies):
            reply = self.replies(messages)
        else:
            reply = self.replies[min(len(self.prompts), len(self.replies)) - 1]
        started = messages[-1]["content"] if messages[-1]["role"] == "assistant" else ""
        if started and reply.startswith(started):
            reply = reply[len(started):]
        for piece in re.findall(r"\s*\S+\s*", reply):
            yield piece


def fake_pipelines(monkeypatch, reply) -> list:
    """Make every ``qa.pipeline.Pipeline(settings)`` built from now on (as ``qa eval`` builds one) use the
    keyword encoder and a generator scripted by ``reply``; returns the list of pipelines made, in order."""
    import qa.pipeline

    real, made = qa.pipeline.Pipeline, []

    def make(settings):
        made.append(real(settings, encoder=KeywordEncoder(), generator=ScriptedGenerator(reply)))
        return made[-1]

    monkeypatch.setattr(qa.pipeline, "Pipeline", make)
    return made


@pytest.fixture
def scripted():
    return ScriptedGenerator


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium, kept on loopback; a browser test fails (not skips) without it."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make browser, or apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def format_files(tmp_path_factory) -> dict[str, Path]:
    """Real PDF, Word and HTML files, good and bad (``tests/format_files.py``), built once a session.

    Skips when Debian's chromium, which prints the PDFs, is missing (the CI installs it first).
    """
    import format_files as builders

    if not builders.CHROMIUM.exists():
        pytest.skip("the PDF fixtures are printed by /usr/bin/chromium: apt-get install chromium")
    return builders.build_all(tmp_path_factory.mktemp("formats"))
