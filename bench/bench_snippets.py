"""How often the evidence reaches the prompt: sentence selection alone, for several passage budgets
and numbers of contributing passages, without generating (the model is loaded for its tokenizer).

    python bench/bench_snippets.py ../shared/eval/dev.jsonl bench/questions/heldout.jsonl
    python bench/bench_snippets.py --squad ../shared/data/squad/dev-v1.1.json --limit 400 \
        --embedder all-MiniLM-L6-v2

Questions and evidence tests are bench_reader's (FORMAT.md evidence; SQuAD: a gold answer in the
snippet). To compare with an older selection, copy this script into a checkout of that commit and run
it there: it only calls ``select_snippets``, ``Retriever.search`` and bench_reader's question lists.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_reader import file_questions, parse_source, source_parser, squad_questions  # noqa: E402
from bench.common import machine_info, write_result  # noqa: E402


def run(args) -> list[dict]:
    from qa.pipeline import Pipeline
    from qa.prompting.snippets import select_snippets
    from qa.settings import Settings

    settings = Settings.from_env(embedder=args.embedder, model=args.model)
    squad = None
    if args.squad:
        from qa.evaluation.squad import load_squad, open_book

        squad = load_squad(args.squad)
        settings = open_book(squad, settings)
    pipeline = Pipeline(settings)
    retriever, count = pipeline.retriever, pipeline.generator.count_tokens
    items = list(squad_questions(squad, args.limit, args.seed, retriever) if squad
                 else file_questions(args.questions, retriever))
    hits = [retriever.search(q["question"], k=settings.k) for q, *_ in items]
    rows = []
    for budget in args.budgets:
        for max_passages in args.max_passages:
            found, tokens = 0, 0
            for (q, _, in_prompt, _), found_hits in zip(items, hits):
                snippets = select_snippets(found_hits, retriever, q["question"], budget=budget,
                                           max_passages=max_passages, count_tokens=count)
                found += any(in_prompt(s) for s in snippets)
                tokens += sum(count(s.text) for s in snippets)
            rows.append({"budget": budget, "max_passages": max_passages, "n": len(items), "in_prompt": found,
                         "share": round(found / max(1, len(items)), 4),
                         "mean_text_tokens": round(tokens / max(1, len(items)), 1)})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| budget | passages | evidence in prompt | share | mean passage tokens |", "|---|---|---|---|---|"]
    lines += [f"| {r['budget']} | {r['max_passages']} | {r['in_prompt']} / {r['n']} | {r['share']} | "
              f"{r['mean_text_tokens']} |" for r in rows]
    return "\n".join(lines)


def whole_numbers(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main() -> None:
    parser = source_parser(__doc__.split("\n\n")[0], limit=400, out="snippets.json")
    parser.add_argument("--budgets", type=whole_numbers, default=[60, 200], help="e.g. 60,200")
    parser.add_argument("--max-passages", type=whole_numbers, default=[3, 5], help="e.g. 3,5")
    args = parse_source(parser)
    load = os.getloadavg()
    rows = run(args)
    print(table(rows))
    write_result(args.out, {"machine": machine_info(load), "source": [str(p) for p in args.questions] or str(args.squad),
                            "rows": rows})


if __name__ == "__main__":
    main()
