"""Benchmark the whole answer path on a question file: latency, first token and decode speed per
backend x model, each beside the memory-bandwidth bound measured in the same run.

The one decision: each configuration runs in its own subprocess through the public
``Pipeline.stream`` (the evaluator's and the app's code path), after ``warm_up()``, so load time and
peak RSS belong to it alone and every question's latency is an answer's latency, not a model load.
Decode speed is timed between the first and the last streamed piece of each answer (the model's
own tokens, counted with its tokenizer); the bound is read bandwidth / bytes of weights read per
token (``bench_generate.measure_bandwidth``). transformers decodes dequantised float32 weights at a
few tokens/s, so it gets fewer questions unless ``--transformers-limit`` says otherwise.
``--context-tokens 200,120`` repeats each configuration per budget of passage tokens in the prompt:
on this CPU the first token waits for the prompt, so this is the speed/accuracy dial.

    .venv/bin/python bench/bench_e2e.py [--backends ik,llama,transformers] [--models default,small]
                                        [--limit N] [--transformers-limit 3] [--context-tokens 200,120]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import decode_bound, error_row, machine_info, write_result  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))

from bench_generate import measure_bandwidth  # noqa: E402

DEV = ROOT.parent / "shared" / "eval" / "dev.jsonl"


def run_one(backend: str, model: str, questions_file: Path, limit: int, embedder: str | None,
            context_tokens: int | None = None) -> dict:
    """One configuration, in this process: warm up, then stream every question once."""
    from qa.evaluation.metrics import score_result
    from qa.evaluation.questions import read_questions
    from qa.evaluation.runner import document_texts
    from qa.evaluation.summary import percentile
    from qa.pipeline import Pipeline
    from qa.settings import Settings
    from qa.types import Answer, Token

    settings = Settings.from_env(model=model, backend=backend, embedder=embedder)
    if context_tokens is not None:
        settings = settings.with_(answer=replace(settings.answer, context_tokens=context_tokens))
    pipeline = Pipeline(settings)
    questions = spread(read_questions(questions_file), limit)
    started = time.perf_counter()
    pipeline.warm_up()  # embedder, index and model loaded; the fixed system prompt cached
    load_s = time.perf_counter() - started
    documents = document_texts(pipeline)
    rows = []
    for question in questions:
        first = last = None
        answer = None
        for event in pipeline.stream(question["question"]):
            if isinstance(event, Token):
                last = time.perf_counter()
                first = first or last
            elif isinstance(event, Answer):
                answer = event
        t = answer.timings
        rows.append({
            "id": question["id"],
            "latency_s": round(t.total_s, 3),
            "ttft_s": None if t.first_token_s is None else round(t.first_token_s, 3),
            "retrieve_s": round(t.retrieve_s, 3),
            "prompt_tokens": t.prompt_tokens,
            "generated_tokens": t.generated_tokens,
            "decode_s": round(last - first, 3) if first is not None else None,
            "refused": answer.refused,
            "correct": score_result(answer.to_dict(), question, documents)["correct"],
        })
    decoded = [r for r in rows if r["decode_s"] and r["generated_tokens"] > 1]
    tokens = sum(r["generated_tokens"] - 1 for r in decoded)
    seconds = sum(r["decode_s"] for r in decoded)
    judged = [r["correct"] for r in rows if r["correct"] is not None]
    return {
        "backend": backend,
        "model": model,
        "embedder": pipeline.settings.embedder,
        "context_tokens": pipeline.settings.answer.budget,
        "questions": len(rows),
        "weights_bytes": weights_bytes(pipeline.generator, backend, model),
        "load_s": round(load_s, 2),
        "latency_p50_s": _round(percentile([r["latency_s"] for r in rows], 50)),
        "latency_p95_s": _round(percentile([r["latency_s"] for r in rows], 95)),
        "ttft_p50_s": _round(percentile([r["ttft_s"] for r in rows], 50)),
        "ttft_p95_s": _round(percentile([r["ttft_s"] for r in rows], 95)),
        "retrieve_p50_s": _round(percentile([r["retrieve_s"] for r in rows], 50)),
        "prompt_tokens_p50": percentile([r["prompt_tokens"] for r in rows if r["prompt_tokens"]], 50),
        "decode_tok_s": round(tokens / seconds, 2) if seconds else None,  # token-weighted over answers
        "answered_by_model": sum(1 for r in rows if r["ttft_s"] is not None),
        "accuracy": round(sum(judged) / len(judged), 3) if judged else None,
        "peak_rss_mib": memory_mib()["VmHWM"],
        "per_question": rows,
    }


def memory_mib() -> dict[str, int]:
    """This process's current and peak resident memory, from /proc (``ru_maxrss`` would include the
    parent's memory at fork time, which survives ``exec``)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) // 1024 for key in ("VmRSS", "VmHWM")}


def spread(items: list, n: int) -> list:
    """``n`` items evenly spaced through ``items`` (all of them when n >= len), so a short run still
    mixes the question types (the dev set ends with its unanswerable questions).

    >>> spread(list(range(10)), 4)
    [0, 2, 5, 7]
    """
    if n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def weights_bytes(generator, backend: str, model: str) -> int:
    """Bytes a decode step reads: the GGUF file for llama.cpp, the in-memory float tensors for
    transformers (it dequantises the GGUF on load)."""
    if backend == "transformers":
        return sum(p.numel() * p.element_size() for p in generator._model.parameters())
    from qa.generation.models import resolve_model

    return os.path.getsize(resolve_model(model).path())


def spawn(backend: str, model: str, questions: Path, limit: int, embedder: str | None, timeout: int,
          context_tokens: int | None = None) -> dict:
    command = [sys.executable, __file__, "--one", backend, model, "--questions", str(questions),
               "--limit", str(limit)]
    if embedder:
        command += ["--embedder", embedder]
    if context_tokens is not None:
        command += ["--context-tokens", str(context_tokens)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"})
    except subprocess.TimeoutExpired:
        return {"backend": backend, "model": model, "error": f"timed out after {timeout} s"}
    if done.returncode != 0:
        return {"backend": backend, "model": model, "error": done.stderr[-800:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict], bandwidth_gb_s: float) -> str:
    lines = [
        "| backend | model | context tokens | questions | load s | latency p50 / p95 s | first token p50 / p95 s "
        "| prompt tokens p50 | decode tok/s | bound tok/s | decode/bound | accuracy | peak RSS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if failed := error_row(r, 160):
            lines.append(failed)
            continue
        bound, ratio = decode_bound(r, bandwidth_gb_s)
        lines.append(
            f"| {r['backend']} | {r['model']} | {r.get('context_tokens', '-')} "
            f"| {r['questions']} ({r['answered_by_model']} generated) "
            f"| {r['load_s']} | {_s(r['latency_p50_s'])} / {_s(r['latency_p95_s'])} "
            f"| {_s(r['ttft_p50_s'])} / {_s(r['ttft_p95_s'])} | {r.get('prompt_tokens_p50', '-')} "
            f"| {r['decode_tok_s']} | {bound:.1f} | {ratio} "
            f"| {r['accuracy']} | {r['peak_rss_mib']} |"
        )
    return "\n".join(lines)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, default=DEV)
    parser.add_argument("--backends", default="ik,llama,transformers")
    parser.add_argument("--models", default="default,small")
    parser.add_argument("--limit", type=int, default=8,
                        help="questions per llama configuration, evenly spread through the file (default 8; "
                             "24 for the whole dev set)")
    parser.add_argument("--transformers-limit", type=int, default=2,
                        help="questions per transformers configuration (default 2: it decodes at ~1-4 tok/s)")
    parser.add_argument("--embedder", help="sentence-transformers model (default: the app's)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per configuration")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "e2e.json")
    parser.add_argument("--context-tokens", default=None,
                        help="comma-separated budgets of passage tokens in the prompt (default: the app's)")
    parser.add_argument("--one", nargs=2, metavar=("BACKEND", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.questions.is_file():
        print(f"question file not found: {args.questions}", file=sys.stderr)
        return 2
    if args.one:
        budget = int(args.context_tokens) if args.context_tokens else None
        print(json.dumps(run_one(*args.one, args.questions, args.limit, args.embedder, budget)))
        return 0

    load_before = os.getloadavg()
    bandwidth = measure_bandwidth()
    print(f"memory bandwidth: {bandwidth}", flush=True)
    rows = []
    budgets = [int(b) for b in args.context_tokens.split(",")] if args.context_tokens else [None]
    for backend in args.backends.split(","):
        for model in args.models.split(","):
            for budget in budgets:
                limit = args.transformers_limit if backend == "transformers" else args.limit
                started = time.perf_counter()
                rows.append(spawn(backend, model, args.questions, limit, args.embedder, args.timeout, budget))
                shown = {k: v for k, v in rows[-1].items() if k != "per_question"}
                print(f"done {backend} {model} {budget or ''} in {time.perf_counter() - started:.0f} s: "
                      f"{json.dumps(shown)[:400]}", flush=True)
    report = table(rows, bandwidth["read_matvec_gb_s"])
    print(report)
    result = {
        "machine": machine_info(load_before, **bandwidth),
        "questions_file": str(args.questions),
        "bound_basis": "read_matvec_gb_s / weights_bytes (GGUF file for llama, float tensors for transformers)",
        "decode_basis": "(generated tokens - 1) / time between first and last streamed piece, summed over answers",
        "runs": rows,
        "table": report,
    }
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
