"""Bulk indexing and batch evaluation on a real local Ray cluster (embeddings/distributed.py, qa/evaluation/distributed.py).

The cluster runs in a private network namespace that holds only loopback (``unshare -n``, then
``ip link set lo up``): Ray binds the machine's interface address even when told 127.0.0.1, and its
core probes 8.8.8.8 to find that address; in the namespace there is no way off the machine. One Ray
head is started per session; every driver (``qa index --ray ADDRESS``, ``qa eval --ray ADDRESS``, a
script) joins the namespace with ``nsenter --net=/proc/<head>/ns/net``. Drivers and workers run under
the subprocess harness of test_bad_input.py (fake encoder and scripted generator, egress recorded and
refused), and a sampler reads the namespace's socket tables the whole time: every address must be
loopback. Needs root (or CAP_SYS_ADMIN) for ``unshare -n``; skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_bad_input import VIMONT_A, harness_env

from conftest import PARA, ROOT, SEEDS, SHARED, KeywordEncoder, write_corpus
from embeddings.build import build_index

pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")

HOST = """
import ray, sys
context = ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
                   log_to_driver=False)
print(context.address_info["gcs_address"], flush=True)
sys.stdin.read()  # until the fixture closes stdin
"""
LOOPBACK_HEX = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}
WILDCARD_HEX = {"00000000", "00000000000000000000000000000000"}


def _unshare_problem() -> str | None:
    if not (shutil.which("unshare") and shutil.which("nsenter") and shutil.which("ip")):
        return "unshare, nsenter or ip is missing (util-linux, iproute2)"
    done = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    if done.returncode:
        return f"`unshare -n` is not permitted here ({done.stderr.strip()[:120]}): needs root or CAP_SYS_ADMIN"
    return None


class RayNamespace:
    """A Ray head in its own network namespace, and a way to run drivers inside that namespace."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.egress_log = folder / "egress.log"
        env = harness_env(folder, fakes="encoder,generator", reply=VIMONT_A,
                          extra={"QA_TEST_EGRESS_LOG": str(self.egress_log)})
        env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(ROOT)])  # workers import the worktree
        env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
        self.env = env
        self.head = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {sys.executable} -c '{HOST}'"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(folder / "head.log", "w"), text=True,
            cwd=ROOT, env=env, start_new_session=True)
        self.address = self.head.stdout.readline().strip()
        if not self.address:
            raise RuntimeError(f"the Ray head did not start:\n{(folder / 'head.log').read_text()[-3000:]}")
        self.addresses: set[str] = set()  # every (local, remote) address seen in the namespace
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            for table in ("tcp", "tcp6", "udp", "udp6"):
                try:
                    lines = Path(f"/proc/{self.head.pid}/net/{table}").read_text().splitlines()[1:]
                except OSError:
                    return
                for line in lines:
                    for field in line.split()[1:3]:
                        self.addresses.add(field.rsplit(":", 1)[0])
            self._stop.wait(0.2)

    def off_loopback(self) -> list[str]:
        return sorted(a for a in self.addresses if a not in LOOPBACK_HEX | WILDCARD_HEX)

    def command(self, args: list[str]) -> list[str]:
        return ["nsenter", f"--net=/proc/{self.head.pid}/ns/net", *args]

    def run(self, args: list[str], *, timeout: float = 300) -> subprocess.CompletedProcess:
        done = subprocess.run(self.command(args), capture_output=True, text=True, cwd=ROOT, env=self.env,
                              timeout=timeout)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    def qa(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.run([sys.executable, "-m", "qa.cli", *args], timeout=timeout)

    def close(self) -> None:
        self._stop.set()
        self.head.stdin.close()  # the head calls ray.shutdown() on its way out
        try:
            self.head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.head.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def ray_ns(tmp_path_factory) -> RayNamespace:
    problem = _unshare_problem()
    if problem:
        pytest.skip(problem)
    cluster = RayNamespace(tmp_path_factory.mktemp("ray"))
    yield cluster
    cluster.close()


def script(ray_ns: RayNamespace, body: str) -> Path:
    """A driver script that joins the namespace's cluster; ``body`` runs after ``ray.init``."""
    path = ray_ns.folder / f"driver-{time.monotonic_ns()}.py"
    path.write_text(f"import ray\nray.init(address={ray_ns.address!r}, log_to_driver=False)\n" + textwrap.dedent(body))
    return path


def same_index(a, b) -> None:
    """Same passages, units, manifest (but its time and checksum), and vectors within 1e-4."""
    assert [p.id for p in a.passages] == [p.id for p in b.passages] and a.passages == b.passages
    assert np.array_equal(a.units, b.units)
    assert a.vectors.shape == b.vectors.shape and float(np.abs(a.vectors - b.vectors).max()) <= 1e-4
    drop = ("created_at", "checksum", "artefacts")
    assert {k: v for k, v in a.manifest.items() if k not in drop} == {k: v for k, v in b.manifest.items() if k not in drop}


# --------------------------------------------------------------------------------------- tests


def test_the_namespace_has_only_loopback(ray_ns: RayNamespace):
    links = ray_ns.run(["ip", "-o", "link"]).stdout.splitlines()
    assert len(links) == 1 and ": lo:" in links[0], links


def test_qa_index_on_ray_writes_the_local_build_s_index(ray_ns: RayNamespace, tmp_path: Path):
    from embeddings.store import load_index

    done = ray_ns.qa("--corpus", str(SEEDS), "--index-dir", str(tmp_path / "ray"), "index", "--ray", ray_ns.address)
    assert "1 of 1 shards embedded" in done.stderr
    local = build_index(SEEDS, tmp_path / "local", encoder=KeywordEncoder())
    on_ray = load_index(tmp_path / "ray")
    same_index(local, on_ray)
    assert local.manifest["artefacts"] == on_ray.manifest["artefacts"]  # the fake encoder is exact: same bytes
    assert not (tmp_path / "ray" / ".ray-shards").exists()


def test_a_killed_job_resumes_embedding_only_the_unfinished_shards(ray_ns: RayNamespace, tmp_path: Path):
    corpus = write_corpus(tmp_path / "corpus", {f"d{i:02d}.txt": PARA.format(f"Document {i}") for i in range(12)})
    index = tmp_path / "idx"
    driver = script(ray_ns, f"""
        import functools, json, sys
        from conftest import SlowKeywordEncoder
        from embeddings.distributed import build_index_on_ray
        stored, stats = build_index_on_ray({str(corpus)!r}, {str(index)!r}, embedder="fake-keywords", actors=2,
                                           shard_chars=1, encoder_factory=functools.partial(SlowKeywordEncoder, 1.0))
        print(json.dumps({{"shards": stats.shards, "embedded": stats.embedded, "reused": stats.reused,
                          "ids": stats.embedded_ids}}))
    """)
    first = subprocess.Popen(ray_ns.command([sys.executable, str(driver)]), cwd=ROOT, env=ray_ns.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 180
    while not (shards := list(index.glob(".ray-shards/*/shard-*.npz"))) or len(shards) < 3:
        assert first.poll() is None, first.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no shard was finished in time"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the driver dies halfway; its actors go with its job
    first.wait()
    finished = {int(p.name[6:11]) for p in index.glob(".ray-shards/*/shard-*.npz")}
    assert 3 <= len(finished) < 12

    stats = json.loads(ray_ns.run([sys.executable, str(driver)]).stdout.splitlines()[-1])
    assert stats["shards"] == 12 and stats["reused"] == len(finished)
    assert stats["embedded"] == 12 - len(finished) and not finished & set(stats["ids"])
    from embeddings.store import load_index

    same_index(build_index(corpus, tmp_path / "local", encoder=KeywordEncoder()), load_index(index))


def test_qa_eval_on_ray_gives_the_sequential_results_in_input_order(ray_ns: RayNamespace, tmp_path: Path):
    questions = tmp_path / "questions.jsonl"
    lines = (SHARED / "eval" / "dev.jsonl").read_text().splitlines()[:4]
    questions.write_text("\n".join(lines) + "\n")
    common = ["--corpus", str(SEEDS), "--index-dir", str(tmp_path / "idx"), "eval", str(questions)]
    ray_ns.qa(*common, "--out", str(tmp_path / "seq.jsonl"))
    ray_ns.qa(*common, "--out", str(tmp_path / "ray.jsonl"), f"--ray={ray_ns.address}", "--ray-actors", "2")

    def rows(name: str) -> list[dict]:
        found = [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]
        return [{k: v for k, v in row.items() if k not in ("latency_s", "ttft_s")} for row in found]

    sequential = rows("seq.jsonl")
    assert [r["id"] for r in sequential] == [json.loads(line)["id"] for line in lines]
    assert rows("ray.jsonl") == sequential
    assert any(r["citations"] for r in sequential)  # the scripted answer was verified against the seeds

    # --resume on Ray: only the questions missing from the file are asked again
    kept = (tmp_path / "ray.jsonl").read_text().splitlines()[:2]
    (tmp_path / "ray.jsonl").write_text("\n".join(kept) + "\n")
    ray_ns.qa(*common, "--out", str(tmp_path / "ray.jsonl"), "--resume", f"--ray={ray_ns.address}")
    assert rows("ray.jsonl") == sequential


# Ray's head starts a dashboard process even with include_dashboard=False (only its UsageStatsHead
# module), and that module asks the AWS, Azure and GCP metadata services which cloud it runs on before
# it reads RAY_USAGE_STATS_ENABLED=0 (ray 2.60, dashboard/modules/usage_stats/usage_stats_head.py,
# run()). The harness refuses these lookups and the namespace has no route for them; outside such a
# namespace they would leave the machine, which is why a local Ray must run in one (docs/RAY.md).
RAY_CLOUD_PROBES = {"getaddrinfo '169.254.169.254'", "getaddrinfo 'metadata.google.internal'"}


def test_nothing_left_loopback_during_the_ray_tests(ray_ns: RayNamespace):
    time.sleep(0.5)  # one more round of the sampler
    assert ray_ns.addresses and ray_ns.off_loopback() == [], ray_ns.off_loopback()
    recorded = ray_ns.egress_log.read_text().splitlines() if ray_ns.egress_log.exists() else []
    assert set(recorded) <= RAY_CLOUD_PROBES, recorded  # every attempt was refused; none but Ray's own probes


@pytest.mark.model
def test_qa_index_on_a_local_ray_with_the_real_embedder_matches_the_local_build(tmp_path: Path):
    """The real packaged all-MiniLM-L6-v2 on actors of a Ray that ``qa index --ray`` starts itself."""
    problem = _unshare_problem()
    if problem:
        pytest.skip(problem)
    from embeddings.encoder import load_encoder
    from embeddings.store import load_index

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "QA_EMBEDDER": "all-MiniLM-L6-v2",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("QA_RAY_ADDRESS", None)
    command = f"ip link set lo up && exec {sys.executable} -m qa.cli --corpus {SEEDS} --index-dir {tmp_path / 'ray'} index --ray"
    done = subprocess.run(["unshare", "-n", "sh", "-c", command], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    local = build_index(SEEDS, tmp_path / "local", encoder=load_encoder("all-MiniLM-L6-v2"))
    same_index(local, load_index(tmp_path / "ray"))
