"""Benchmark the generate step: each backend x packaged model, llama.cpp weight layouts and thread counts.

The one decision: every configuration runs in its own subprocess, so load time and peak RSS
belong to that configuration alone, and OMP_WAIT_POLICY is set before OpenMP starts.
Decode speed is compared with the memory-bandwidth bound measured in the same run: a decode
step reads every weight once, so tokens/s <= bandwidth / model-file bytes.

    .venv/bin/python bench/bench_generate.py --out bench/results/generate.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import decode_bound, error_row, machine_info, write_result  # noqa: E402
from qa.generation.factory import GGUF_BACKENDS  # noqa: E402  (imports no model library)

PASSAGE = (
    "The harbour town of Vimont was founded in 1642 by fishermen from the northern coast. "
    "Its lighthouse, built of grey granite in 1811, still guides boats past the reef. "
    "In 1903 the town elected Marie Duval as its first mayor; she served for twelve years. "
)
SYSTEM = (
    "Answer the question from the numbered passages in one short sentence and cite the "
    "passage as [n]. If the passages do not contain the answer reply exactly: "
    "I cannot find the answer in the documents.\n\n"
)
QUESTIONS = ("Who was the first mayor of Vimont?", "When was the lighthouse built?")
LONG_ANSWER = [{"role": "user", "content": "Count from 1 to 200, separated by commas."}]


def messages(nonce: str, question: str, passages: int = 4) -> list[dict]:
    """A ~300-token prompt; `nonce` first so a new nonce defeats the prefix cache."""
    body = "\n\n".join(f"[{i}] {PASSAGE}" for i in range(1, passages + 1))
    return [
        {"role": "system", "content": f"Session {nonce}. {SYSTEM}{body}"},
        {"role": "user", "content": question},
    ]


def timed(gen, msgs: list[dict], max_tokens: int) -> dict:
    """Time to first piece, decode tokens/s after it, and the text."""
    start = time.perf_counter()
    first = last = None
    pieces = []
    for piece in gen.generate(msgs, max_tokens=max_tokens):
        last = time.perf_counter()
        first = first or last
        pieces.append(piece)
    text = "".join(pieces)
    tokens = gen.count_tokens(text)
    decode_s = (last - first) if first and last else 0.0
    return {
        "ttft_s": round((first or time.perf_counter()) - start, 3),
        "tokens": tokens,
        "decode_tok_s": round((tokens - 1) / decode_s, 2) if tokens > 1 and decode_s else None,
        "text": text,
    }


def run_one(
    backend: str, model: str, threads: int | None, batch_threads: int | None, max_tokens: int,
    repack: bool = False,
) -> dict:  # fmt: skip
    """One configuration, in this process: load, uncached prompt, cached prefix, decode."""
    from qa.generation.factory import load_generator
    from qa.generation.ikllama import IkLlamaGenerator
    from qa.generation.llamacpp import LlamaCppGenerator
    from qa.generation.models import resolve_model

    spec = resolve_model(model)
    path = spec.path()
    if backend in LLAMA_CPP:
        kind = IkLlamaGenerator if backend == "ik" else LlamaCppGenerator
        gen = kind(spec, threads=threads, batch_threads=batch_threads, repack=repack)
    else:
        gen = load_generator(spec, backend=backend, threads=threads)
    start = time.perf_counter()
    gen.warm_up()
    load_s = time.perf_counter() - start
    weights = os.path.getsize(path)  # llama.cpp reads the quantised file's bytes per token
    if backend == "transformers":  # transformers holds dequantised float32 tensors instead
        weights = sum(p.numel() * p.element_size() for p in gen._model.parameters())
    nonce = uuid.uuid4().hex[:8]
    prompt_tokens = sum(gen.count_tokens(m["content"]) for m in messages(nonce, QUESTIONS[0]))
    cold = timed(gen, messages(nonce, QUESTIONS[0]), 24)
    warm = timed(gen, messages(nonce, QUESTIONS[1]), 24)
    decode = timed(gen, LONG_ANSWER, max_tokens)  # a short prompt, then max_tokens of decoding
    return {
        "backend": backend,
        "model": model,
        "threads": getattr(gen, "threads", None),
        "batch_threads": getattr(gen, "batch_threads", None),
        "repack": getattr(gen, "repack", None),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "model_file_bytes": os.path.getsize(path),
        "weights_bytes": weights,
        "load_s": round(load_s, 2),
        "prompt_tokens": prompt_tokens,
        "prompt_tok_s": round(prompt_tokens / cold["ttft_s"], 1),
        "uncached_ttft_s": cold["ttft_s"],
        "cached_prefix_ttft_s": warm["ttft_s"],
        "decode_tokens": decode["tokens"],
        "decode_tok_s": decode["decode_tok_s"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "answers": [cold["text"], warm["text"]],
    }


def measure_bandwidth(repeats: int = 5) -> dict:
    """Best-of-`repeats` GB/s: float32 mat-vec over 512 MiB (what a decode step does) and a
    STREAM-style copy (read + write bytes counted)."""
    import numpy as np

    matrix = np.ones((1 << 17, 1024), dtype=np.float32)  # (131072, 1024) float32, 512 MiB
    vector = np.ones(1024, dtype=np.float32)
    copy = np.empty_like(matrix)
    read = write = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        matrix @ vector
        read = max(read, matrix.nbytes / (time.perf_counter() - start) / 1e9)
        start = time.perf_counter()
        np.copyto(copy, matrix)
        write = max(write, 2 * matrix.nbytes / (time.perf_counter() - start) / 1e9)
    return {"read_matvec_gb_s": round(read, 1), "copy_gb_s": round(write, 1)}


def spawn(
    backend: str, model: str, max_tokens: int, env: dict, threads: int | None = None,
    batch_threads: int | None = None, timeout: float = 600, repack: bool = False,
) -> dict:  # fmt: skip
    """Run one configuration in a fresh interpreter; returns its JSON line."""
    command = [sys.executable, __file__, "--one", backend, model, "--max-tokens", str(max_tokens)]
    if repack:
        command.append("--repack")
    if threads:
        command += ["--threads", str(threads)]
    if batch_threads:
        command += ["--batch-threads", str(batch_threads)]
    failed = {
        "backend": backend, "model": model, "threads": threads, "batch_threads": batch_threads, "repack": repack,
    }  # fmt: skip
    try:
        done = subprocess.run(
            command, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {**failed, "error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        return {**failed, "error": done.stderr[-800:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


SWEEP = (  # (OMP_WAIT_POLICY, decode threads, prompt threads); "" leaves libgomp's default
    ("PASSIVE", 1, 1),
    ("PASSIVE", 1, 2),  # the default: qa.generation.base.default_threads() on 2 cores
    ("PASSIVE", 2, 2),
    ("", 2, 2),
)
LLAMA_CPP = tuple(GGUF_BACKENDS)  # the llama.cpp builds: ik_llama.cpp and xllamacpp's
SWEEP_TIMEOUT_S = 150  # spinning threads next to a busy core can crawl at ~1 token/s


def thread_sweep(model: str, max_tokens: int, backend: str = "ik") -> list[dict]:
    """llama.cpp prompt/decode speed per SWEEP entry, on a quiet machine and with a busy core."""
    rows = []
    for busy in (False, True):
        hog = None
        if busy:  # another process holding one of the two cores
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            for policy, threads, batch in SWEEP:
                env = {"OMP_WAIT_POLICY": policy}
                row = spawn(backend, model, max_tokens, env, threads, batch, SWEEP_TIMEOUT_S, repack=backend == "ik")
                row["busy_core"] = busy
                row["omp_wait_policy"] = policy or "(libgomp default)"
                rows.append(row)
                print(_sweep_line(row), flush=True)
        finally:
            if hog:
                hog.kill()
                hog.wait()
    return rows


def _sweep_line(row: dict) -> str:
    if "error" in row:
        return (
            f"  busy={row['busy_core']!s:5} wait={row['omp_wait_policy']:18} "
            f"threads decode={row['threads']} prompt={row['batch_threads']}  {row['error'][-200:]}"
        )
    return (
        f"  busy={row['busy_core']!s:5} wait={row['omp_wait_policy']:18} "
        f"threads decode={row['threads']} prompt={row['batch_threads']}"
        f"  prompt {row['prompt_tok_s']:6.1f} tok/s  decode {row['decode_tok_s']} tok/s"
    )


def table(rows: list[dict], bandwidth_gb_s: float) -> str:
    head = (
        "| backend | model | load s | prompt tok/s (uncached) | cached-prefix TTFT s "
        "| decode tok/s | bound tok/s | decode/bound | peak RSS MiB |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    lines = [head]
    for r in rows:
        if failed := error_row(r, 120):
            lines.append(failed)
            continue
        bound, frac = decode_bound(r, bandwidth_gb_s)
        backend = r["backend"] + (" (repacked)" if r.get("repack") else "")
        lines.append(
            f"| {backend} | {r['model']} | {r['load_s']} | {r['prompt_tok_s']} "
            f"({r['prompt_tokens']} tok in {r['uncached_ttft_s']} s) | {r['cached_prefix_ttft_s']} "
            f"| {r['decode_tok_s']} | {bound:.1f} | {frac} | {r['peak_rss_mib']} |"
        )
    return "\n".join(lines)


def layout_table(rows: list[dict]) -> str:
    """Each llama.cpp build's plain (mmapped) weight layout against its repacked one, as ratios from this run."""
    lines = ["| backend | model | prompt tok/s plain / repacked | decode tok/s plain / repacked |",
             "| --- | --- | --- | --- |"]
    for backend, model in dict.fromkeys((r["backend"], r["model"]) for r in rows if r["backend"] in LLAMA_CPP):
        runs = [r for r in rows if r["backend"] == backend and r["model"] == model and "error" not in r]
        pair = {r.get("repack"): r for r in runs}
        if False in pair and True in pair:
            plain, packed = pair[False], pair[True]
            lines.append(
                f"| {backend} | {model} | {plain['prompt_tok_s'] / packed['prompt_tok_s']:.2f} "
                f"| {plain['decode_tok_s'] / packed['decode_tok_s']:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "generate.json")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens decoded for decode speed")
    parser.add_argument("--backends", default="ik,llama,transformers")
    parser.add_argument("--models", default="small,default")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-threads", type=int, default=None)
    parser.add_argument("--no-sweep", action="store_true", help="skip the llama thread sweep")
    parser.add_argument("--repack", action="store_true", help=argparse.SUPPRESS)  # with --one
    parser.add_argument("--one", nargs=2, metavar=("BACKEND", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args.threads, args.batch_threads, args.max_tokens, args.repack)))
        return

    load_before = os.getloadavg()
    bandwidth = measure_bandwidth()
    print(f"memory bandwidth: {bandwidth}", flush=True)
    rows = []
    for backend in args.backends.split(","):
        for model in args.models.split(","):
            # transformers on CPU decodes float32 weights at a few tokens/s: keep it short
            tokens = args.max_tokens if backend in LLAMA_CPP else min(args.max_tokens, 16)
            # both llama.cpp builds run with the plain and the repacked weight layout, to compare in this run
            for repack in (False, True) if backend in LLAMA_CPP else (False,):
                rows.append(spawn(backend, model, tokens, {}, args.threads, args.batch_threads, repack=repack))
                print(f"done {backend} {model}: {json.dumps(rows[-1])[:300]}", flush=True)
    sweep = [] if args.no_sweep else thread_sweep("default", min(args.max_tokens, 48))
    report = table(rows, bandwidth["read_matvec_gb_s"]) + "\n\n" + layout_table(rows)
    print(report)
    result = {
        "machine": machine_info(load_before, **bandwidth),
        "bound_basis": "read_matvec_gb_s / model file bytes",
        "runs": rows,
        "thread_sweep": sweep,
        "table": report,
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
