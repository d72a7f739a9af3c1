"""Load on the web app: N concurrent ``gradio_client`` clients each asking M questions through ``/ask``.

Starts ``python app.py`` on a free loopback port (or uses ``--url``), runs the clients in threads,
and checks that there are no errors and that every reply belongs to its own question (the reply
names the question it answers). Questions asked by several clients whose answers differ are listed
for information: decoding is greedy, but llama.cpp's prompt cache can change a token between a
cached and an uncached prompt. Prints p50/p95 latency (what a client waits, the server's own answer
time, and the difference: time queued for the one model) and writes JSON.

    .venv/bin/python bench/bench_load.py [--clients 8] [--questions 10] [--model small] [--deadline 1500]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"  # loopback only, never a proxy
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"  # gradio_client otherwise sends telemetry to huggingface.co
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

QUESTIONS = (  # used when no question file is given or found
    "Who was Macron's special envoy for the strategic dialogue with Russia?",
    "Which treaty did the U.S. leave in 2019?",
    "What are the three pillars of Macron's security vision?",
    "What would a Russian victory mean for Europe, according to Macron?",
    "Who is the current Secretary General of NATO?",
    "Who wrote the analysis published with Russia Matters?",
    "What did Macron call NATO in 2019?",
    "What is the capital of Australia?",
)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: ``percentile([1, 2, 3, 4], 0.5) -> 2``."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))]


def load_questions(path: str | None) -> list[str]:
    if path and Path(path).is_file():
        lines = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
        return [line["question"] for line in lines]
    return list(QUESTIONS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(model: str | None, log_path: Path, timeout_s: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, str(ROOT / "app.py"), "--port", str(port)] + (["--model", model] if model else [])
    log = open(log_path, "w")
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"app.py exited with {process.returncode}; see {log_path}")
        try:
            with direct.open(url, timeout=5):
                return process, url
        except OSError:
            time.sleep(1)
    process.terminate()
    raise SystemExit(f"app.py did not start within {timeout_s:.0f} s; see {log_path}")


def run_client(url: str, client_id: int, questions: list[str], stop_at: float, records: list[dict],
               lock: threading.Lock) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False)
    for i, question in enumerate(questions):
        record = {"client": client_id, "i": i, "question": question}
        if time.monotonic() > stop_at:
            record["skipped"] = True  # past the deadline: not asked
        else:
            started = time.perf_counter()
            try:
                reply = client.predict(question, api_name="/ask")
                record.update(
                    latency_s=time.perf_counter() - started,
                    server_s=reply.get("latency_s"),
                    ttft_s=reply.get("ttft_s"),
                    refused=reply.get("refused"),
                    answer=reply.get("answer"),
                    matched=reply.get("question") == question,
                )
            except Exception as exc:  # noqa: BLE001 - counted and reported
                record.update(latency_s=time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")
        with lock:
            records.append(record)


def summarise(records: list[dict]) -> dict:
    done = [r for r in records if not r.get("skipped")]
    ok = [r for r in done if "error" not in r]
    answers: dict[str, set[str]] = defaultdict(set)
    for r in ok:
        answers[r["question"]].add(r["answer"])

    def stats(key: str) -> dict:
        values = [r[key] for r in ok if r.get(key) is not None]
        return {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95),
                "mean": statistics.fmean(values) if values else None}

    for r in ok:
        if r.get("server_s") is not None:
            r["queued_s"] = max(0.0, r["latency_s"] - r["server_s"])
    return {
        "asked": len(done),
        "skipped": len(records) - len(done),
        "errors": len(done) - len(ok),
        "mismatched": sum(not r["matched"] for r in ok),
        "differing_repeats": sorted(q for q, texts in answers.items() if len(texts) > 1),
        "refused": sum(bool(r["refused"]) for r in ok),
        "latency_s": stats("latency_s"),
        "server_s": stats("server_s"),
        "queued_s": stats("queued_s"),
        "ttft_s": stats("ttft_s"),
    }


def print_table(summary: dict, wall_s: float) -> None:
    def fmt(value) -> str:
        return "-" if value is None else f"{value:.2f}"

    print(f"\n{'':<28}{'p50 s':>8}{'p95 s':>8}{'mean s':>8}")
    for key, label in (("latency_s", "client wait (question->JSON)"), ("queued_s", "queued for the model"),
                       ("server_s", "server answer time"), ("ttft_s", "server first token")):
        s = summary[key]
        print(f"{label:<28}{fmt(s['p50']):>8}{fmt(s['p95']):>8}{fmt(s['mean']):>8}")
    rate = summary["asked"] / wall_s * 60 if wall_s else 0
    print(f"\nasked {summary['asked']} (skipped {summary['skipped']}) in {wall_s:.0f} s = {rate:.1f}/min; "
          f"errors {summary['errors']}, replies to another question {summary['mismatched']}, "
          f"refused {summary['refused']}; repeated questions answered differently {len(summary['differing_repeats'])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--questions", type=int, default=10, help="questions per client")
    parser.add_argument("--question-file", default=str(ROOT.parent / "shared/eval/dev.jsonl"),
                        help="JSON Lines with a 'question' field (default: the dev set; built-in list if absent)")
    parser.add_argument("--url", help="an app already running (default: start app.py on a free port)")
    parser.add_argument("--model", help="model for the started app (e.g. small)")
    parser.add_argument("--deadline", type=float, default=1500, help="seconds after which no new question is asked")
    parser.add_argument("--start-timeout", type=float, default=900)
    parser.add_argument("--out", default=str(ROOT / "bench/results/load.json"))
    args = parser.parse_args()
    if args.clients < 1 or args.questions < 1:
        parser.error("--clients and --questions must be >= 1")

    pool = load_questions(args.question_file)
    process = None
    log_path = Path(tempfile.mkdtemp(prefix="bench-load-")) / "app.log"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    url = args.url
    if url is None:
        print(f"starting app.py (log: {log_path}) ...", flush=True)
        process, url = start_app(args.model, log_path, args.start_timeout)
    records: list[dict] = []
    lock = threading.Lock()
    try:
        started = time.monotonic()
        stop_at = started + args.deadline
        threads = []
        for c in range(args.clients):  # each client starts at a different place in the pool
            mine = [pool[(c * args.questions + i) % len(pool)] for i in range(args.questions)]
            threads.append(threading.Thread(target=run_client, args=(url, c, mine, stop_at, records, lock)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall_s = time.monotonic() - started
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)

    summary = summarise(records)
    print_table(summary, wall_s)
    for r in records:
        if "error" in r:
            print(f"error (client {r['client']}, question {r['i']}): {r['error']}", file=sys.stderr)
    result = {"config": {"clients": args.clients, "questions_per_client": args.questions, "model": args.model,
                         "url": args.url, "question_pool": len(pool), "deadline_s": args.deadline},
              "wall_s": round(wall_s, 2), "summary": summary,
              "requests": sorted(records, key=lambda r: (r["client"], r["i"]))}
    tmp = Path(args.out).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0 if summary["errors"] == 0 and summary["mismatched"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
