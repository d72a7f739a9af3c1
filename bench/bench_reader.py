"""How much of the answer error is the reader's: the same questions with the retrieved passages and with
the evidence passage forced to rank 1 (the "gold" run), in one process, with one loaded model.

    python bench/bench_reader.py ../shared/eval/dev.jsonl bench/questions/heldout.jsonl
    python bench/bench_reader.py --squad ../shared/data/squad/dev-v1.1.json --limit 100 --seed 0 \
        --embedder all-MiniLM-L6-v2

Only answerable questions with evidence are asked. In the gold run the passage that holds the evidence
(for SQuAD: the question's own paragraph, its part that holds a gold answer) is put first and the
retrieved passages follow it, so the prompt is built exactly as in a real answer, by the same sentence
selection and budget. ``in prompt`` is the share of questions whose evidence (SQuAD: a gold answer)
reached the prompt. If the gold run is not much better than the retrieved one, retrieval is not what
limits accuracy; if it is still short of a target, no retrieval can reach that target with this model
and prompt.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine_info, write_result  # noqa: E402


class GoldFirst:
    """A retriever whose ``search`` puts one chosen passage first; everything else is the real one's."""

    def __init__(self, retriever, passage):
        self._retriever, self._passage = retriever, passage

    def __getattr__(self, name):
        return getattr(self._retriever, name)

    def search(self, question: str, *, k: int = 5):
        from qa.retrieve import Hit

        p = self._passage
        others = [h for h in self._retriever.search(question, k=k) if h.passage.id != p.id]
        gold = Hit(1, 1.0, p, 1.0, 0.0, p.start, p.end)  # dense 1.0: never judged irrelevant
        return [gold] + [replace(h, rank=i) for i, h in enumerate(others[: k - 1], start=2)]


def file_questions(paths, retriever):
    """(question, gold passage, does-this-snippet-hold-the-evidence test, scorer) for the answerable
    questions of FORMAT.md files."""
    from qa.evaluation.metrics import citation_supports, score_result
    from qa.evaluation.questions import read_questions

    documents = {p.doc: retriever.document_text(p.doc) for p in retriever.passages}
    for path in paths:
        for q in read_questions(path):
            if not q.get("answers") or not q.get("evidence"):
                continue
            gold = next((p for p in retriever.passages if citation_supports({"doc": p.doc, "text": p.text},
                                                                           q["evidence"])), None)
            if gold is None:
                print(f"{q['id']}: no passage holds its evidence; skipped", file=sys.stderr)
                continue
            yield (q, gold, lambda snippet, q=q: citation_supports({"doc": snippet.passage.doc, "text": snippet.text},
                                                                 q["evidence"]),
                   lambda row, q=q: {"score": float(score_result(row, q, documents)["correct"])})


def squad_questions(squad, limit, seed, retriever):
    """The same for a seeded SQuAD sample: the gold passage is the part of the question's own paragraph
    that holds a gold answer; the score is the official F1 (EM beside it)."""
    from qa.citation.claims import strip_citations
    from qa.evaluation.squad import question_record, sample_questions, squad_exact_match, squad_f1, squad_normalize

    by_doc: dict[str, list] = {}
    for p in retriever.passages:
        by_doc.setdefault(p.doc, []).append(p)

    def holds(text, answers):
        return any(squad_normalize(a) in squad_normalize(text) for a in answers)

    for q in map(question_record, sample_questions(squad.questions, limit, seed)):
        if not q["answers"]:
            continue
        parts = by_doc[q["squad_doc"]]
        gold = next((p for p in parts if holds(p.text, q["answers"])), parts[0])

        def score(row, q=q):
            text = "" if row["refused"] else strip_citations(row["answer"])
            return {"score": squad_f1(text, q["answers"], refused=row["refused"]),
                    "em": squad_exact_match(text, q["answers"], refused=row["refused"])}

        yield q, gold, lambda snippet, q=q: holds(snippet.text, q["answers"]), score


def run(args) -> dict:
    from qa.answer import stream_answer
    from qa.pipeline import Pipeline
    from qa.prompting.snippets import select_snippets
    from qa.settings import Settings

    settings = Settings.from_env(embedder=args.embedder, model=args.model, backend=args.backend)
    squad = None
    if args.squad:
        from qa.evaluation.squad import load_squad, open_book

        squad = load_squad(args.squad)
        settings = open_book(squad, settings.with_(answer=replace(settings.answer, style="short")))
    pipeline = Pipeline(settings)
    pipeline.warm_up()
    retriever, generator, answer_settings = pipeline.retriever, pipeline.generator, settings.answer
    items = (squad_questions(squad, args.limit, args.seed, retriever) if squad
             else file_questions(args.questions, retriever))
    rows = []
    for q, gold, in_prompt, score in items:
        row = {"id": q["id"], "question": q["question"]}
        for mode, proxy in (("retrieved", retriever), ("gold", GoldFirst(retriever, gold))):
            started = time.perf_counter()
            *_, final = stream_answer(q["question"], retriever=proxy, generator=generator, k=settings.k,
                                      settings=answer_settings)
            result = final.to_dict()
            snippets = select_snippets(final.passages, retriever, final.standalone_question,
                                       budget=answer_settings.budget,
                                       max_passages=answer_settings.max_passages,
                                       count_tokens=generator.count_tokens)
            row[mode] = {"answer": result["answer"], "refused": result["refused"],
                         "in_prompt": any(in_prompt(s) for s in snippets),
                         "seconds": round(time.perf_counter() - started, 2), **score(result)}
        rows.append(row)
        print(f"{q['id']}: retrieved {row['retrieved']['score']:.2f} gold {row['gold']['score']:.2f} "
              f"| {row['gold']['answer'][:70]!r}", file=sys.stderr, flush=True)
    return {"rows": rows, "summary": summarize(rows)}


def summarize(rows: list[dict]) -> dict:
    def mean(mode, key):
        values = [float(r[mode][key]) for r in rows if key in r[mode]]
        return round(sum(values) / len(values), 4) if values else None

    return {mode: {"n": len(rows), "score": mean(mode, "score"), "em": mean(mode, "em"),
                   "refused": mean(mode, "refused"), "in_prompt": mean(mode, "in_prompt")}
            for mode in ("retrieved", "gold")}


def table(summary: dict, metric: str) -> str:
    lines = [f"| passages | n | {metric} | EM | refused | evidence in prompt |", "|---|---|---|---|---|---|"]
    for mode, s in summary.items():
        cells = [mode, s["n"], s["score"], s["em"], s["refused"], s["in_prompt"]]
        lines.append("| " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines)


def source_parser(description: str, *, limit: int, out: str) -> argparse.ArgumentParser:
    """The options of a bench that asks FORMAT.md question files or a seeded SQuAD sample."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("questions", nargs="*", type=Path, help="question files (FORMAT.md)")
    parser.add_argument("--squad", type=Path, help="a SQuAD json file instead of question files")
    parser.add_argument("--limit", type=int, default=limit)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embedder")
    parser.add_argument("--model")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / out)
    return parser


def parse_source(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    if bool(args.questions) == bool(args.squad):
        parser.error("give question files or --squad FILE")
    return args


def main() -> None:
    parser = source_parser(__doc__.split("\n\n")[0], limit=100, out="reader.json")
    parser.add_argument("--backend")
    args = parse_source(parser)
    load = os.getloadavg()
    result = run(args)
    metric = "F1" if args.squad else "accuracy"
    print(table(result["summary"], metric))
    write_result(args.out, {"machine": machine_info(load), "metric": metric,
                            "source": [str(p) for p in args.questions] or str(args.squad), **result})


if __name__ == "__main__":
    main()
