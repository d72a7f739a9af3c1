"""How each shape of question fares: accuracy, key-point recall, answer length and speed per question
type, one-fact and broad apart, read from the results files of ``qa eval`` runs.

    qa eval ../shared/eval/dev.jsonl --out dev.results.jsonl
    qa eval ../shared/eval/dev_broad.jsonl --out broad.results.jsonl
    python bench/bench_shapes.py dev.results.jsonl ../shared/eval/dev.jsonl \
        broad.results.jsonl ../shared/eval/dev_broad.jsonl

It reads results rather than asking questions itself, so one ``qa eval`` run serves both the summary
and this table, and the times are those of that run (on the machine that ran it, with its model).
Arguments come in pairs: a results file (JSON Lines, ``shared/eval/FORMAT.md``) and the question file
it answered; each results line is scored again against its own question file (`score_result`, so
older results without ``points`` scores are scored the current way). Prints a table per shape (the
question ``type``; "broad list" for a list with points), then per family and for all, with n,
accuracy (share of judged questions scored correct: for an unanswerable one, refused; so the "all"
rows are not the summary's ``answer_accuracy``, which is over answerable questions only), point
recall, the median answer length in words over answered (not refused) questions, and first-token and
complete-answer p50/p95; writes bench/results/shapes.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine_info, write_result  # noqa: E402
from qa.evaluation import read_questions, read_results, score_result  # noqa: E402
from qa.evaluation.questions import FAMILIES, file_families, question_shape  # noqa: E402
from qa.evaluation.summary import percentile  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def scored_rows(pairs: list[tuple[Path, Path]]) -> list[dict]:
    """One row per results line: its shape, family, scores and times (ids matched within each pair)."""
    rows = []
    for results_path, questions_path in pairs:
        questions = read_questions(questions_path)
        by_id = {q["id"]: q for q in questions}
        family = file_families(questions)
        for result in read_results(results_path):
            question = by_id.get(result["id"])
            if question is None:
                raise SystemExit(f"{results_path}: id {result['id']!r} is not in {questions_path}")
            rows.append({"shape": question_shape(question), "family": family[result["id"]],
                         "scores": score_result(result, question), "error": bool(result.get("error")),
                         "latency_s": result.get("latency_s"), "ttft_s": result.get("ttft_s")})
    return rows


def shape_stats(name: str, family: str, rows: list[dict]) -> dict:
    """n, accuracy (judged questions), point recall (questions with points), median answer words
    (answered: not refused, no error) and first-token / complete-answer p50 and p95 of ``rows``."""
    judged = [r["scores"]["correct"] for r in rows if r["scores"]["correct"] is not None]
    recalls = [r["scores"]["point_recall"] for r in rows if r["scores"]["point_recall"] is not None]
    words = [r["scores"]["answer_words"] for r in rows if not r["scores"]["refused"] and not r["error"]]
    return {"shape": name, "family": family, "n": len(rows),
            "accuracy": sum(judged) / len(judged) if judged else None,
            "point_recall": sum(recalls) / len(recalls) if recalls else None,
            "answer_words_median": percentile(words, 50),
            "ttft_p50": percentile((r["ttft_s"] for r in rows), 50),
            "ttft_p95": percentile((r["ttft_s"] for r in rows), 95),
            "latency_p50": percentile((r["latency_s"] for r in rows), 50),
            "latency_p95": percentile((r["latency_s"] for r in rows), 95),
            "n_errors": sum(r["error"] for r in rows)}


def shapes(rows: list[dict]) -> list[dict]:
    """A stats row per (family, shape), then one per family present, then one for all questions."""
    out = []
    for family in FAMILIES:
        mine = [r for r in rows if r["family"] == family]
        for name in sorted({r["shape"] for r in mine}):
            out.append(shape_stats(name, family, [r for r in mine if r["shape"] == name]))
    out += [shape_stats(f"all {family}", family, [r for r in rows if r["family"] == family])
            for family in FAMILIES if any(r["family"] == family for r in rows)]
    return out + [shape_stats("all questions", "all", rows)]


def table(stats: list[dict]) -> str:
    lines = [("| shape | family | n | accuracy | point recall | words, median (answered) | first token p50 / p95 s "
              "| answer p50 / p95 s |"), "|---|---|---|---|---|---|---|---|"]
    for s in stats:
        lines.append(f"| {s['shape']} | {s['family']} | {s['n']} | {_f(s['accuracy'], '.3f')} | "
                     f"{_f(s['point_recall'], '.3f')} | {_f(s['answer_words_median'], 'g')} | "
                     f"{_f(s['ttft_p50'], '.2f')} / {_f(s['ttft_p95'], '.2f')} | "
                     f"{_f(s['latency_p50'], '.2f')} / {_f(s['latency_p95'], '.2f')} |")
    return "\n".join(lines)


def _f(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def run_info(results_path: Path) -> dict:
    """The settings and start time of the run, from its summary file beside it (``qa eval``'s default
    name) when there is one."""
    summary = results_path.with_name(re.sub(r"(\.results)?\.jsonl?$", "", results_path.name) + ".summary.json")
    if not summary.exists():
        return {}
    data = json.loads(summary.read_text(encoding="utf-8"))
    return {k: data[k] for k in ("settings", "started_at", "questions_file") if k in data}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, metavar="RESULTS QUESTIONS",
                        help="pairs: a qa eval results file, then the question file it answered")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "shapes.json")
    args = parser.parse_args(argv)
    if len(args.files) % 2:
        parser.error("give the files in pairs: RESULTS QUESTIONS [RESULTS QUESTIONS ...]")
    pairs = list(zip(args.files[::2], args.files[1::2]))
    load = os.getloadavg()
    stats = shapes(scored_rows(pairs))
    text = table(stats)
    print(text)
    write_result(args.out, {"machine": machine_info(load, note="this machine only read the files; the times "
                                                                 "are those of the qa eval runs"),
                            "runs": [{"results": str(r), "questions": str(q), **run_info(r)} for r, q in pairs],
                            "medians_are": "answer words over answered (not refused, no error) questions",
                            "accuracy_is": "share of judged questions correct (unanswerable: refused)",
                            "shapes": stats, "table": text})
    return 0


if __name__ == "__main__":
    sys.exit(main())
