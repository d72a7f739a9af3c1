"""What an extractive answer (the passages' own sentences, no model call) holds, for several ways of
choosing them, in one run: the key points it covers and the share of its citations that quote the
evidence, per shape. The model is loaded for its tokenizer only.

    python bench/bench_extractive.py ../shared/eval/dev_broad.jsonl bench/questions/heldout_broad.jsonl

For each question with ``points`` and ``evidence`` (shared/eval/FORMAT.md) whose shape is an
explanation, a description or a list, the plan is the product's (`qa.shapes.classify`,
`qa.broad.plan_broad`); the answer is `qa.citation.broad.extract` of:

- ``all within 110 words``: the plan's snippets, best first, as many as fit in 110 words;
- ``best snippet``: `qa.extractive.best_snippet` (the product for explanations and descriptions): the
  best-scoring snippet, with the sentence before it when it opens by pointing back, cut to its best
  sentence and the next when over 110 words;
- ``best snippet, cut over 40``: the same, cut when over 40 words;
- ``best sentence and the next``: cut always.

A point is covered when one of its strings is in the answer, a citation supports the answer when
its text holds an evidence fragment (the evaluator's rules: `qa.evaluation.matching.points_covered`,
`qa.evaluation.metrics.citation_supports`). Prints a table and writes bench/results/extractive.json.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine_info, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ("explain", "describe", "list")
VARIANTS = {"all within 110 words": None, "best snippet": 110, "best snippet, cut over 40": 40,
            "best sentence and the next": 0}


def run(paths: list[Path]) -> list[dict]:
    from qa.broad import plan_broad
    from qa.extractive import best_snippet
    from qa.citation.broad import extract
    from qa.evaluation import read_questions
    from qa.evaluation.matching import answer_words, points_covered
    from qa.evaluation.metrics import citation_supports
    from qa.pipeline import Pipeline
    from qa.shapes import classify

    pipeline = Pipeline()
    retriever, count = pipeline.retriever, pipeline.generator.count_tokens
    rows = []
    for q in (q for path in paths for q in read_questions(path) if q.get("points") and q.get("evidence")):
        shape = classify(q["question"])
        if shape.name not in SHAPES:
            continue
        hits = tuple(retriever.search(q["question"], k=shape.passages))
        plan = plan_broad(shape, q["question"], q["question"], hits, retriever, count_tokens=count,
                          max_passages=shape.passages)
        documents = {s.passage.doc: retriever.document_text(s.passage.doc) for s in plan.snippets}
        for variant, words in VARIANTS.items():
            if words is None:
                answer = extract(plan.snippets, documents, k=0, words=110)
            else:
                best = best_snippet(plan.snippets, retriever, q["question"], words=words,
                                    naming=shape.name == "describe")
                answer = extract([best] if best else [], documents, k=1)
            covered = sum(points_covered(answer.text, q["points"]))
            supports = [bool(citation_supports({"doc": c.doc, "text": c.text}, q["evidence"]))
                        for c in answer.citations]
            rows.append({"variant": variant, "id": q["id"], "shape": shape.name, "points": len(q["points"]),
                         "covered": covered, "need": q.get("need", 1), "citations": len(supports),
                         "supporting": sum(supports), "words": answer_words(answer.text)})
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Per variant and shape (and "all"): n, accuracy (``need`` points covered), point recall,
    citation precision, citations and words per answer."""
    out = []
    for variant in VARIANTS:
        mine = [r for r in rows if r["variant"] == variant]
        for shape in sorted({r["shape"] for r in mine}) + ["all"]:
            some = [r for r in mine if shape in ("all", r["shape"])]
            n, cited = len(some), sum(r["citations"] for r in some)
            out.append({"variant": variant, "shape": shape, "n": n,
                        "accuracy": round(sum(r["covered"] >= max(1, r["need"]) for r in some) / n, 3),
                        "point_recall": round(sum(r["covered"] / r["points"] for r in some) / n, 3),
                        "citation_precision": round(sum(r["supporting"] for r in some) / cited, 3) if cited else None,
                        "citations": round(cited / n, 2), "words": round(sum(r["words"] for r in some) / n, 1)})
    return out


def table(summary: list[dict]) -> str:
    lines = ["| variant | shape | n | accuracy | point recall | citation precision | citations | words |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {s['variant']} | {s['shape']} | {s['n']} | {s['accuracy']:.3f} | {s['point_recall']:.3f} | "
              f"{s['citation_precision'] if s['citation_precision'] is not None else '-'} | {s['citations']:.2f} | "
              f"{s['words']:.0f} |" for s in summary]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("questions", type=Path, nargs="+", help="question files with points (FORMAT.md)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "extractive.json")
    args = parser.parse_args()
    load = os.getloadavg()
    rows = run(args.questions)
    summary = summarise(rows)
    print(table(summary))
    write_result(args.out, {"machine": machine_info(load), "questions": [str(p) for p in args.questions],
                            "summary": summary, "rows": rows})


if __name__ == "__main__":
    main()
