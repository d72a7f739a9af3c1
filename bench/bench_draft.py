"""Speculative decoding from prompt lookup against plain greedy decoding, on real questions.

Every question of the given files is answered by the default pipeline once per draft size, one pass
over all the questions per size (question by question turns would let the second size find the
first one's whole prompt in the model's cache); the first size is the reference. Reports per file and
size: complete-answer and first-token p50/p95, the answers identical to the reference's, and the share
of drafted tokens the model kept.

    .venv/bin/python bench/bench_draft.py ../shared/eval/dev.jsonl ../shared/eval/dev_broad.jsonl --drafts 0,4
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import machine_info, write_result  # noqa: E402
from qa import Pipeline  # noqa: E402
from qa.evaluation import read_questions  # noqa: E402
from qa.evaluation.summary import percentile  # noqa: E402


def run(files: list[Path], drafts: list[int]) -> list[dict]:
    pipeline = Pipeline()
    pipeline.warm_up()
    generator = pipeline.generator
    if not hasattr(generator, "draft_tokens"):
        raise SystemExit(f"{generator.name} does not draft (only the ik_llama.cpp backend does)")
    rows = []
    for size in drafts:
        generator.draft_tokens = size
        for path in files:
            for question in read_questions(path):
                drafted, accepted = generator.drafted, generator.accepted
                answer = pipeline.answer(question["question"]).to_dict()
                rows.append({"file": path.name, "id": question["id"], "draft": size, "answer": answer["answer"],
                             "latency_s": answer["latency_s"], "ttft_s": answer["ttft_s"],
                             "drafted": generator.drafted - drafted, "accepted": generator.accepted - accepted})
                print(f"draft {size} {question['id']}: {answer['latency_s']:.2f} s", flush=True)
    return rows


def stats(rows: list[dict], drafts: list[int]) -> list[dict]:
    out = []
    reference = {(r["file"], r["id"]): r["answer"] for r in rows if r["draft"] == drafts[0]}
    for file in dict.fromkeys(r["file"] for r in rows):
        for size in drafts:
            mine = [r for r in rows if r["file"] == file and r["draft"] == size]
            drafted = sum(r["drafted"] for r in mine)
            out.append({"file": file, "draft": size, "n": len(mine),
                        "latency_p50": percentile((r["latency_s"] for r in mine), 50),
                        "latency_p95": percentile((r["latency_s"] for r in mine), 95),
                        "ttft_p50": percentile((r["ttft_s"] for r in mine), 50),
                        "same_answers": sum(r["answer"] == reference[(file, r["id"])] for r in mine),
                        "kept": sum(r["accepted"] for r in mine) / drafted if drafted else None})
    return out


def table(rows: list[dict]) -> str:
    lines = ["| file | draft tokens | n | answer p50 / p95 s | first token p50 s | same answers | drafts kept |",
             "|---|---|---|---|---|---|---|"]
    for s in rows:
        kept = "-" if s["kept"] is None else f"{s['kept']:.2f}"
        lines.append(f"| {s['file']} | {s['draft']} | {s['n']} | {s['latency_p50']:.2f} / {s['latency_p95']:.2f} "
                     f"| {s['ttft_p50']:.2f} | {s['same_answers']}/{s['n']} | {kept} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="question files (shared/eval/FORMAT.md)")
    parser.add_argument("--drafts", default="0,4", help="draft sizes, the first is the reference")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "draft.json")
    args = parser.parse_args(argv)
    drafts = [int(d) for d in args.drafts.split(",")]
    load = os.getloadavg()
    rows = run(args.files, drafts)
    summary = stats(rows, drafts)
    text = table(summary)
    print(text)
    write_result(args.out, {"machine": machine_info(load), "command": " ".join(sys.argv), "drafts": drafts,
                            "stats": summary, "table": text, "answers": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
