"""No egress, no exposure: answering a question (CLI and web app) opens no connection off the machine;
the app listens on 127.0.0.1 only, never makes a share link, and uploads stay in their folder.

Subprocesses run under the harness of test_bad_input.py with ``QA_TEST_EGRESS_LOG``: every name lookup
and every connection (TCP or UDP) to anything but loopback is recorded and refused. The offline
variables (``HF_HUB_OFFLINE``...) are removed from their environment, so the tool itself must keep
everything local. The in-process server tests of test_app.py check the same with the ``outbound``
fixture, which this file reuses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import gradio as gr
import pytest
from test_app import VIMONT_Q, outbound, reply  # noqa: F401 - outbound is a fixture
from test_bad_input import harness_env

import qa.library as library_module
from conftest import ROOT, SEEDS, KeywordEncoder, ScriptedGenerator, free_port, running_app
from qa.settings import Settings
from qa.ui import blocks, server

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "GRADIO_ANALYTICS_ENABLED",
                     "HF_HUB_DISABLE_TELEMETRY", "DO_NOT_TRACK")
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def guarded_env(tmp_path: Path, *, fakes: str, own_cache: bool = True) -> tuple[dict, Path]:
    """A harness environment that records egress to a log and lets nothing switch the tool offline for it."""
    log = tmp_path / "egress.log"
    env = harness_env(tmp_path, fakes=fakes, reply="Ambassador Pierre Vimont was Macron's special envoy [1].",
                      extra={"QA_TEST_EGRESS_LOG": str(log)})
    for name in OFFLINE_VARIABLES:
        env.pop(name, None)
    if not own_cache:  # the real models: use the installed cache instead of assembling them again
        env.pop("QA_CACHE_DIR")
        if os.environ.get("QA_CACHE_DIR"):
            env["QA_CACHE_DIR"] = os.environ["QA_CACHE_DIR"]
    return env, log


def egress(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def listening_addresses(port: int) -> list[str]:
    """Hex local addresses of the sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 and ::1 as /proc writes them


def rest_ask(url: str, question: str, timeout: float = 600) -> dict:
    """``/ask`` over Gradio's plain HTTP API (no client library: it has telemetry of its own)."""
    request = urllib.request.Request(f"{url}gradio_api/call/ask", data=json.dumps({"data": [question, "", 0]}).encode(),
                                     headers={"Content-Type": "application/json"})
    event = json.load(DIRECT.open(request, timeout=30))["event_id"]
    stream = DIRECT.open(f"{url}gradio_api/call/ask/{event}", timeout=timeout).read().decode()
    assert "event: complete" in stream, stream
    return json.loads(stream.split("event: complete\ndata:", 1)[1].strip().splitlines()[0])[0]


# ------------------------------------------------------------------------------------ the guard


def test_the_guard_records_and_refuses_every_way_off_the_machine(tmp_path: Path):
    env, log = guarded_env(tmp_path, fakes="")
    probe = """
import socket, urllib.request
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen()
socket.create_connection(server.getsockname(), timeout=5).close()  # loopback is fine
for attempt in (lambda: socket.create_connection(("192.0.2.1", 80), timeout=1),
                lambda: socket.getaddrinfo("huggingface.co", 443),
                lambda: urllib.request.urlopen("http://example.com/", timeout=1),
                lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("8.8.8.8", 53))):
    try:
        attempt()
        print("NOT BLOCKED")
    except OSError:
        pass
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert done.returncode == 0 and "NOT BLOCKED" not in done.stdout, done.stderr
    recorded = egress(log)
    assert len(recorded) == 4 and "192.0.2.1" in recorded[0] and "huggingface.co" in recorded[1]
    assert "example.com" in recorded[2] and "8.8.8.8" in recorded[3]


# ---------------------------------------------------------------------------------------- CLI


def test_cli_ask_opens_no_connection_off_the_machine(tmp_path: Path):
    env, log = guarded_env(tmp_path, fakes="encoder,generator")
    done = subprocess.run([sys.executable, "-m", "qa.cli", "--index-dir", str(tmp_path / "idx"), "ask", "--json",
                           VIMONT_Q], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["citations"] and egress(log) == []


@pytest.mark.model
def test_cli_ask_with_the_real_models_opens_no_connection_off_the_machine(tmp_path: Path):
    env, log = guarded_env(tmp_path, fakes="", own_cache=False)
    done = subprocess.run([sys.executable, "-m", "qa.cli", "ask", "--json", VIMONT_Q], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["question"] == VIMONT_Q and result["passages"]
    assert egress(log) == [], egress(log)


# ------------------------------------------------------------------------------------ the app


def test_the_app_binds_loopback_and_never_shares_by_default(monkeypatch):
    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs))
    monkeypatch.setattr(gr.Blocks, "queue", lambda self, **kwargs: self)
    server.serve(gr.Blocks(), library=None, block=False)
    assert launched["server_name"] == "127.0.0.1" and launched["share"] is False
    assert server.build_parser().parse_args([]).host == "127.0.0.1"

    served = {}

    class Demo:
        def block_thread(self):
            raise KeyboardInterrupt

    monkeypatch.setattr(server, "load_library", lambda settings: None)
    monkeypatch.setattr(server, "create_app", lambda library: Demo())
    monkeypatch.setattr(server, "serve", lambda demo, library, **kwargs: served.update(kwargs))
    assert server.main([]) == 130
    assert served["host"] == "127.0.0.1"


@pytest.fixture
def library(tmp_path: Path, monkeypatch) -> library_module.Library:
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    return library_module.Library(Settings(corpus=SEEDS, index_dir=tmp_path / "idx"), encoder=KeywordEncoder(),
                       generator=ScriptedGenerator(reply), uploads_dir=tmp_path / "uploads")


def test_a_launched_app_listens_on_loopback_only_even_if_the_environment_asks_otherwise(
        library: library_module.Library, monkeypatch, outbound):  # noqa: F811 - the fixture imported above
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SHARE", "True")
    demo = blocks.create_app(library)
    port = free_port()
    server.serve(demo, library, port=port, block=False, quiet=True)
    try:
        addresses = listening_addresses(port)
        assert addresses and set(addresses) <= LOOPBACK, addresses
        assert not demo.share and demo.share_url is None
        url = f"http://127.0.0.1:{port}/"
        assert rest_ask(url, VIMONT_Q)["citations"]

        # uploads: the server keeps a hostile name inside its own folder and refuses big files
        def upload(name: str, size: int) -> tuple[int, str]:
            boundary = uuid.uuid4().hex
            body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                    "Content-Type: text/plain\r\n\r\n").encode() + b"a" * size + f"\r\n--{boundary}--\r\n".encode()
            request = urllib.request.Request(f"{url}gradio_api/upload", data=body,
                                             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
            try:
                with DIRECT.open(request, timeout=30) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()

        status, body = upload("../../../../etc/evil.txt", 100)
        (stored,) = json.loads(body)
        assert status == 200 and Path(stored).name == "evil.txt" and not stored.startswith("/etc")
        status, body = upload("big.txt", library_module.MAX_UPLOAD_BYTES + 1)
        assert status == 413 and "maximum allowed size" in body
    finally:
        demo.close()
    assert outbound == []


def test_uploaded_file_names_cannot_escape_the_upload_folder(library: library_module.Library, tmp_path: Path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    names = ["..\\..\\..\\evil.txt", "\u202eevil.md", ".hidden.txt", "notes.txt", "a\x01b.md"]
    paths = []
    for i, name in enumerate(names):
        folder = incoming / str(i)  # each in its own folder: several would clean to the same name
        folder.mkdir()
        (folder / name).write_text(f"The garden shed number {i} is painted a lovely shade of green.\n")
        paths.append(folder / name)
    collection, added, rejected = library.add_files("../../outside", paths)
    target = (library.uploads_dir / collection).resolve()
    assert collection == "outside" and target.parent == library.uploads_dir.resolve()
    written = [p for p in library.uploads_dir.rglob("*") if p.is_file()]
    assert written and all(p.resolve().parent == target for p in written)
    assert sorted(added) == sorted(p.name for p in written)
    assert not (tmp_path / "evil.txt").exists() and not list(tmp_path.glob("*evil*"))
    assert "evil.txt" in added and "hidden.txt" in added and rejected == []


@pytest.mark.model
def test_the_real_app_answers_with_no_connection_off_the_machine(tmp_path: Path):
    env, log = guarded_env(tmp_path, fakes="", own_cache=False)
    with running_app(tmp_path / "handlers.log", env=env) as (url, port):
        assert set(listening_addresses(port)) <= LOOPBACK
        result = rest_ask(url, VIMONT_Q)
        assert result["question"] == VIMONT_Q and result["passages"]
        assert not result["refused"] and "Vimont" in result["answer"]
    assert egress(log) == [], egress(log)
