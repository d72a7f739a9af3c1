"""The ``qa eval`` command: read a question file (or a SQuAD sample), run it, write results and summary.

    qa eval questions.jsonl --out results.jsonl [--summary s.json] [--limit N] [--resume] [--report DIR]
    qa eval --squad ../shared/data/squad/dev-v1.1.json --limit 20 --seed 0 --embedder all-MiniLM-L6-v2
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from embeddings.files import write_atomic
from qa.cli.options import add_ray_options
from qa.errors import InvalidArgument
from qa.evaluation.metrics import score_result
from qa.evaluation.questions import read_questions
from qa.evaluation.runner import Score, document_texts, run_eval
from qa.evaluation.summary import format_summary_table, summarize
from qa.generation.factory import BACKENDS

SQUAD_DEFAULT_LIMIT = 200  # questions sampled from a SQuAD file when --limit is not given


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``qa eval`` options (the global --corpus, --index-dir and --embedder are read from ``args``
    when present)."""
    parser.add_argument("questions", nargs="?", type=Path, help="question file (JSON Lines: id, question, "
                        "and optionally answers, points, need, evidence, type)")
    parser.add_argument("--out", type=Path, help="results file to write (JSON Lines; default: "
                        "<questions name>.results.jsonl in the current folder)")
    parser.add_argument("--summary", type=Path, help="summary JSON (default: the results file's name "
                        "with .summary.json)")
    parser.add_argument("--limit", type=_positive, help="ask only the first N questions (with --squad: "
                        f"sample N; default {SQUAD_DEFAULT_LIMIT})")
    parser.add_argument("--resume", action="store_true", help="keep the results already in --out and ask "
                        "only the rest (failed questions are asked again)")
    parser.add_argument("--report", type=Path, metavar="DIR", help="also write an HTML report DIR/index.html")
    parser.add_argument("--squad", type=Path, metavar="FILE", help="SQuAD open-book mode: index every "
                        "paragraph of this SQuAD JSON file and ask a seeded sample of its questions")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the SQuAD sample (default 0)")
    parser.add_argument("--style", choices=["sentence", "short"], help="answer style: a few words plus an "
                        "optional sentence (default), or only the answering words (default with --squad)")
    parser.add_argument("--context-tokens", type=_positive, metavar="N",
                        help="tokens of passage text in each prompt (default: the answer settings'); more "
                             "context costs prompt time before the first token")
    # SUPPRESS: a missing option leaves any value the main parser set (qa --model ... eval) alone
    parser.add_argument("--model", default=argparse.SUPPRESS,
                        help="language model: default, small, a .gguf file or a folder (env QA_MODEL)")
    parser.add_argument("--backend", default=argparse.SUPPRESS, choices=list(BACKENDS),
                        help="generation backend (env QA_BACKEND)")
    parser.add_argument("-k", type=_positive, default=argparse.SUPPRESS,
                        help="passages retrieved per question (env QA_K; default 5)")
    add_ray_options(parser, "answer with a pool of Ray actors, each holding one pipeline")
    return parser


def add_eval_command(subparsers) -> argparse.ArgumentParser:
    """Add ``qa eval`` to the ``qa`` command's subparsers."""
    parser = subparsers.add_parser("eval", help="answer a question file (or a SQuAD sample) and score it")
    configure_parser(parser)
    parser.set_defaults(func=cmd_eval)
    return parser


@dataclass
class Plan:
    """What one ``qa eval`` run asks, where it writes, and how it scores and summarises."""

    pipeline: Any
    questions: list[dict]
    out: Path
    score: Score
    summarize: Callable[..., dict]  # (results, questions, *, documents) -> summary
    table: Callable[[Mapping[str, Any]], str]  # summary -> terminal table
    limit: int | None = None  # ask only the first `limit` questions
    extra: Callable[[Mapping[str, Any]], dict] | None = None  # more fields for each results line


def cmd_eval(args: argparse.Namespace) -> int:
    if (args.questions is None) == (args.squad is None):
        raise InvalidArgument("give either a question file or --squad FILE, not both")
    for option, path in (("--out", args.out), ("--summary", args.summary)):
        if path is not None and path.is_dir():
            raise InvalidArgument(f"{option} {path} is a folder; give a file name")
    from qa.settings import Settings

    settings = Settings.from_env(corpus=getattr(args, "corpus", None), index_dir=getattr(args, "index_dir", None),
                                 embedder=getattr(args, "embedder", None), model=getattr(args, "model", None),
                                 backend=getattr(args, "backend", None), k=getattr(args, "k", None))
    style = args.style or ("short" if args.squad is not None else "sentence")
    settings = settings.with_(answer=replace(settings.answer, style=style,
                                             context_tokens=args.context_tokens or settings.answer.context_tokens))
    info: dict[str, Any] = {"started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    started = time.perf_counter()
    plan = _squad_plan(args, settings, info) if args.squad is not None else _file_plan(args, settings, info)
    pipeline = plan.pipeline
    answer_all = None
    if getattr(args, "ray", None) is not None:  # the actors load the models; this process only scores
        from embeddings.distributed import ray_address
        from qa.evaluation.distributed import answer_on_ray

        address = ray_address(args.ray)
        answer_all = lambda texts: answer_on_ray(texts, pipeline.settings, address=address,  # noqa: E731
                                                 actors=args.ray_actors)
        info.update(ray_address=address or "local", ray_actors=args.ray_actors)
    else:
        warm = time.perf_counter()
        pipeline.warm_up()  # load the models now, so the first question's latency is an answer's
        info["warm_up_s"] = round(time.perf_counter() - warm, 2)
    results = run_eval(pipeline.answer, plan.questions, plan.out, score=plan.score, limit=plan.limit,
                       resume=args.resume, extra=plan.extra, answer_all=answer_all)
    summary = plan.summarize(results, plan.questions, documents=document_texts(pipeline))
    s = pipeline.settings
    summary.update(info, results_file=str(plan.out), wall_s=round(time.perf_counter() - started, 1),
                   settings={"corpus": str(s.corpus), "embedder": s.embedder, "model": s.model,
                             "backend": s.backend, "k": s.k, "style": s.answer.style,
                             "context_tokens": s.answer.budget})
    summary_path = args.summary or plan.out.with_name(
        re.sub(r"(\.results)?\.jsonl?$", "", plan.out.name) + ".summary.json")
    write_atomic(summary_path, (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    print(plan.table(summary))
    print(f"results: {plan.out}\nsummary: {summary_path}")
    if args.report is not None:
        from qa.evaluation.report import write_report

        title = f"qa eval: {(args.squad or args.questions).name}"
        print(f"report: {write_report(args.report, results, plan.questions, summary, title=title)}")
    return 0


def _file_plan(args: argparse.Namespace, settings, info: dict) -> Plan:
    """A question file against the configured corpus."""
    from qa.pipeline import Pipeline

    questions = read_questions(args.questions)
    out = args.out or Path(f"{args.questions.stem}.results.jsonl")
    if out.resolve() == args.questions.resolve():
        raise InvalidArgument(f"--out {out} is the question file itself")
    pipeline = Pipeline(settings)
    documents = document_texts(pipeline)  # loads (or builds) the index before any question
    info.update(mode="questions", questions_file=str(args.questions), limit=args.limit)
    return Plan(pipeline, questions, out, lambda r, q: score_result(r, q, documents), summarize,
                format_summary_table, limit=args.limit)


def _squad_plan(args: argparse.Namespace, settings, info: dict) -> Plan:
    """SQuAD open-book: the file's paragraphs as the corpus (its own index), a seeded question sample."""
    from qa.evaluation.squad import (
        format_squad_table,
        load_squad,
        open_book,
        question_record,
        sample_questions,
        score_squad,
        summarize_squad,
    )
    from qa.pipeline import Pipeline

    if getattr(args, "corpus", None) or getattr(args, "index_dir", None):
        raise InvalidArgument("--corpus and --index-dir do not apply to --squad: it builds its own corpus and index")
    squad = load_squad(args.squad)
    pipeline = Pipeline(open_book(squad, settings))
    limit = args.limit or SQUAD_DEFAULT_LIMIT
    questions = [question_record(q) for q in sample_questions(squad.questions, limit, args.seed)]
    print(f"SQuAD {squad.version}: asking {len(questions)} of {len(squad.questions)} questions (seed {args.seed}) "
          f"against all {len(squad.paragraphs)} paragraphs in {pipeline.settings.corpus}", file=sys.stderr)
    embedded, build = [], time.perf_counter()
    stored = pipeline.build_index(progress=_index_progress(embedded))
    info.update(mode="squad", squad_file=str(args.squad), squad_version=squad.version, seed=args.seed, limit=limit,
                n_paragraphs=len(squad.paragraphs), n_squad_questions=len(squad.questions),
                n_passages=len(stored.passages), n_vectors=len(stored.index),
                index_build_s=round(time.perf_counter() - build, 1) if embedded else None,
                index_reused=not embedded)
    documents = document_texts(pipeline)
    out = args.out or Path(f"squad-{args.squad.stem}-n{len(questions)}-seed{args.seed}.results.jsonl")
    return Plan(pipeline, questions, out, lambda r, q: score_squad(r, q, documents), summarize_squad,
                format_squad_table, extra=lambda q: {"squad_doc": q["squad_doc"], "gold_answers": q["answers"]})


def _index_progress(embedded: list) -> Callable[[int, int], None]:
    """A tqdm bar for embedding; records that embedding happened (the index was not reused)."""
    from tqdm import tqdm

    state: dict = {}

    def update(done: int, total: int) -> None:
        if "bar" not in state:
            embedded.append(total)
            state["bar"] = tqdm(total=total, desc="embedding", unit="text", file=sys.stderr, disable=None)
        state["bar"].update(done - state["bar"].n)
        if done >= total:
            state["bar"].close()

    return update
