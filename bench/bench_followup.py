"""What a follow-up costs: each conversation's first question, then its follow-up (rewritten with the
history before retrieval, `qa.conversation`), timed, with one loaded model, in two configurations:
the rewrite asked after the answer prompt's fixed messages (the product) and, for comparison, with its
own system message, which evicts those messages from the model's prefix cache.

    python bench/bench_followup.py                 # bench/questions/followups.jsonl, seed corpus

Prints each rewrite and answer, and a table of first-token and answer times for first questions and
follow-ups; writes bench/results/followup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before llama.cpp loads libgomp

from bench.common import machine_info, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def own_system_message(question, history, prefix):
    """The rewrite request as it was before it shared the answer prompt's prefix."""
    from qa.conversation import REWRITE_PROMPT, rewrite_messages

    ask = rewrite_messages(question, history, [])[-1]["content"].removeprefix(REWRITE_PROMPT).lstrip()
    return [{"role": "system", "content": REWRITE_PROMPT}, {"role": "user", "content": ask}]


def run(args) -> dict:
    import qa.answer
    from qa import Pipeline, Settings

    conversations = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    pipeline = Pipeline(Settings.from_env())
    pipeline.warm_up()
    pipeline.answer(conversations[0]["first"])  # the fixed prefix goes into the cache once
    shared = qa.answer.rewrite_messages
    runs = {}
    for name, rewrite in (("after the answer prompt", shared), ("own system message", own_system_message)):
        qa.answer.rewrite_messages = rewrite
        rows = []
        try:
            for c in conversations:
                first = pipeline.answer(c["first"])
                second = pipeline.answer(c["follow_up"], history=[(c["first"], first.text)])
                rows.append({"id": c["id"], "first_answer": first.text, "rewritten": second.standalone_question,
                             "answer": second.text,
                             "first": {"ttft_s": first.timings.first_token_s, "total_s": first.timings.total_s},
                             "follow_up": {"ttft_s": second.timings.first_token_s, "total_s": second.timings.total_s}})
                print(f"[{name}] {c['id']}: {c['follow_up']!r} -> {second.standalone_question!r} -> {second.text!r} "
                      f"({second.timings.total_s:.1f} s)", flush=True)
        finally:
            qa.answer.rewrite_messages = shared
        runs[name] = rows
    return runs


def median(rows, turn, key):
    values = [r[turn][key] for r in rows if r[turn][key] is not None]
    return statistics.median(values) if values else None


def table(runs: dict) -> str:
    lines = ["| rewrite asked | first question: first token / answer s | follow-up: first token / answer s "
             "| follow-up / first (answer) |", "|---|---|---|---|"]
    for name, rows in runs.items():
        ft, fa = median(rows, "first", "ttft_s"), median(rows, "first", "total_s")
        ut, ua = median(rows, "follow_up", "ttft_s"), median(rows, "follow_up", "total_s")
        lines.append(f"| {name} | {ft:.2f} / {fa:.2f} | {ut:.2f} / {ua:.2f} | {ua / fa:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, default=ROOT / "bench" / "questions" / "followups.jsonl")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "followup.json")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    runs = run(args)
    text = table(runs)
    print(text)
    write_result(args.out, {"machine": machine_info(load), "questions": str(args.questions),
                            "medians_are": "over conversations", "runs": runs, "table": text})
    return 0


if __name__ == "__main__":
    sys.exit(main())
