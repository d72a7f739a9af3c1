"""How many of a broad question's key points reach the prompt: the ceiling of an answer that copies
its snippets, per shape, for several ways of choosing them, in one run and without generating (the
model is loaded for its tokenizer only).

    python bench/bench_context.py ../shared/eval/dev_broad.jsonl bench/questions/heldout_broad.jsonl

For each question with ``points`` (shared/eval/FORMAT.md), the shape and plan are the product's
(`qa.shapes.classify`, `qa.broad.plan_broad`); a point is in the prompt when one of its strings is in
the snippets' text (the evaluator's matching rule). The variants switch one choice each, cumulatively:

- ``centre``: a summary's sentences by closeness to the mean of its document's sentences only, and
  no shape reads on past the sentence that matches best;
- ``+ title``: a summary also weighs closeness to its document's title (`qa.broad.TITLE_FOCUS`);
- ``+ follow``: explanations, lists and comparisons take the sentence after each best one first,
  over the budget for the best of all, from the next paragraph when it ends its own (the product).

Prints a table (point recall in the prompt, share of questions whose prompt holds ``need`` points,
mean passage tokens; per shape and all) and writes bench/results/context.json.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine_info, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("centre", "+ title", "+ follow")


def variant_settings(name: str, title_focus: float) -> tuple[float, bool]:
    """(title focus, follow) of a variant, ``title_focus`` being the product's."""
    return {"centre": (0.0, False), "+ title": (title_focus, False), "+ follow": (title_focus, True)}[name]


def run(paths: list[Path]) -> list[dict]:
    import qa.broad as broad
    from qa.evaluation import read_questions
    from qa.evaluation.matching import points_covered
    from qa.pipeline import Pipeline
    from qa.shapes import classify

    pipeline = Pipeline()
    retriever, count = pipeline.retriever, pipeline.generator.count_tokens
    questions = [q for path in paths for q in read_questions(path) if q.get("points")]
    title_focus = broad.TITLE_FOCUS
    rows = []
    try:
        for variant in VARIANTS:
            broad.TITLE_FOCUS, follow = variant_settings(variant, title_focus)
            for q in questions:
                shape = classify(q["question"])
                if not shape.broad:
                    continue
                shape = replace(shape, follow=shape.follow and follow)
                hits = tuple(retriever.search(q["question"], k=shape.passages))
                plan = broad.plan_broad(shape, q["question"], q["question"], hits, retriever, count_tokens=count,
                                        max_passages=shape.passages)
                covered = points_covered(" ".join(s.text for s in plan.snippets), q["points"])
                rows.append({"variant": variant, "id": q["id"], "shape": shape.name, "points": len(covered),
                             "covered": sum(covered), "need": q.get("need", 1),
                             "tokens": sum(count(s.text) for s in plan.snippets)})
    finally:
        broad.TITLE_FOCUS = title_focus
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Per variant and shape (and "all"): n, mean point recall in the prompt, share holding ``need``
    points, mean passage tokens."""
    out = []
    for variant in VARIANTS:
        mine = [r for r in rows if r["variant"] == variant]
        for shape in sorted({r["shape"] for r in mine}) + ["all"]:
            some = [r for r in mine if shape in ("all", r["shape"])]
            n = len(some)
            out.append({"variant": variant, "shape": shape, "n": n,
                        "point_recall": round(sum(r["covered"] / r["points"] for r in some) / n, 3),
                        "enough": round(sum(r["covered"] >= r["need"] for r in some) / n, 3),
                        "tokens": round(sum(r["tokens"] for r in some) / n, 1)})
    return out


def table(summary: list[dict]) -> str:
    lines = ["| variant | shape | n | point recall in prompt | holds `need` points | passage tokens |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {s['variant']} | {s['shape']} | {s['n']} | {s['point_recall']:.3f} | {s['enough']:.3f} | "
              f"{s['tokens']:.0f} |" for s in summary]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("questions", type=Path, nargs="+", help="question files with points (FORMAT.md)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "context.json")
    args = parser.parse_args()
    load = os.getloadavg()
    rows = run(args.questions)
    summary = summarise(rows)
    print(table(summary))
    write_result(args.out, {"machine": machine_info(load), "questions": [str(p) for p in args.questions],
                            "summary": summary, "rows": rows})


if __name__ == "__main__":
    main()
