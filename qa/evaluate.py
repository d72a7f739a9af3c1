"""Evaluate step, batch runner: answer every question of a JSON Lines file and write the results.

The one decision: the results file is the run's state. Each result is appended and flushed the moment
it exists, so an interrupted run loses at most the question in flight, and ``--resume`` skips the ids
already answered (a last line cut off mid-write is dropped; questions that failed are asked again).
When the run ends the file is rewritten, atomically, in the question file's order. Answers come from
``Pipeline.answer`` like everywhere else; scores from ``qa.metrics`` (or ``qa.squad``). Formats:
``shared/eval/FORMAT.md``.

    qa eval questions.jsonl --out results.jsonl [--summary s.json] [--limit N] [--resume] [--report DIR]
    qa eval --squad ../shared/data/squad/dev-v1.1.json --limit 20 --seed 0 --embedder all-MiniLM-L6-v2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from embeddings.files import write_atomic
from qa.errors import (
    BackendUnavailable,
    CorpusError,
    EncoderError,
    IndexCorrupt,
    IndexLocked,
    IndexNotFound,
    IndexOutOfDate,
    InvalidArgument,
    ModelChecksumError,
    ModelNotFound,
    QAError,
    QuestionFileError,
)
from qa.metrics import format_summary_table, score_result, summarize
from qa.settings import BACKENDS

Score = Callable[[Mapping[str, Any], Mapping[str, Any]], dict]
# errors of the setup, not of one question: every later question would fail the same way
FATAL = (BackendUnavailable, CorpusError, EncoderError, IndexCorrupt, IndexLocked, IndexNotFound, IndexOutOfDate,
         ModelChecksumError, ModelNotFound)
SQUAD_DEFAULT_LIMIT = 200  # questions sampled from a SQuAD file when --limit is not given


# --- reading ---------------------------------------------------------------------------------------


def question_problem(item: Any) -> str | None:
    """What is wrong with one parsed question line, or None. Only ``id`` and ``question`` are required.

    >>> question_problem({"id": "q1", "question": "Who?", "answers": ["A"], "need": 2})
    '`need` is 2 but there are only 1 accepted answers'
    """
    if not isinstance(item, dict):
        return f"expected a JSON object, got {type(item).__name__}"
    for key in ("id", "question"):
        if key not in item:
            return f"missing `{key}`"
        if not isinstance(item[key], str):
            return f"`{key}` must be a string, got {json.dumps(item[key])[:40]}"
        if not item[key].strip():
            return f"`{key}` is empty"
    answers = item.get("answers", [])
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        return "`answers` must be a list of strings"
    need = item.get("need", 1 if answers else 0)
    if isinstance(need, bool) or not isinstance(need, int) or need < 0:
        return f"`need` must be a whole number >= 0, got {json.dumps(need)}"
    if need > len(answers):
        return f"`need` is {need} but there are only {len(answers)} accepted answers"
    evidence = item.get("evidence", [])
    if not isinstance(evidence, list) or not all(
        isinstance(e, dict) and isinstance(e.get("doc"), str) and isinstance(e.get("text"), str) for e in evidence
    ):
        return "`evidence` must be a list of {\"doc\": ..., \"text\": ...} objects"
    if not isinstance(item.get("type", ""), str):
        return "`type` must be a string"
    return None


def read_questions(path: str | Path) -> list[dict]:
    """The questions of a JSON Lines file, in order; ``QuestionFileError`` names the first problem
    and its line. Blank lines and a UTF-8 byte-order mark are allowed."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise QuestionFileError(f"question file not found: {path}") from None
    except OSError as exc:
        raise QuestionFileError(f"cannot read question file {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise QuestionFileError(f"{path} line {line}: not UTF-8 text (byte {exc.start})") from None
    questions: list[dict] = []
    first_seen: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QuestionFileError(f"{path} line {number}: not valid JSON ({exc.msg}, column {exc.colno})") from None
        problem = question_problem(item)
        if problem:
            raise QuestionFileError(f"{path} line {number}: {problem}")
        if item["id"] in first_seen:
            raise QuestionFileError(
                f"{path} line {number}: duplicate id {item['id']!r} (first on line {first_seen[item['id']]})"
            )
        first_seen[item["id"]] = number
        questions.append(item)
    if not questions:
        raise QuestionFileError(f"{path}: no questions (the file is empty)")
    return questions


def read_results(path: str | Path) -> list[dict]:
    """The results lines already in ``path`` (none when it does not exist). A last line without its
    newline that does not parse was cut off by an interruption and is ignored; any other bad line
    raises ``QuestionFileError``."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    results = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            if number == len(lines):
                break
            raise QuestionFileError(
                f"{path} line {number}: not a results line; fix or delete the file, or run without --resume"
            ) from None
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise QuestionFileError(f"{path} line {number}: a results line needs a string `id`")
        results.append(row)
    return results


# --- running ---------------------------------------------------------------------------------------


def answered(answer: Callable[[str], Any], question: str) -> dict:
    """The pipeline's answer as a results dict, or the error it raised as a failed one (empty answer,
    ``error`` "GenerationError: ..."); errors of the setup (``FATAL``) are raised instead.
    ``qa.distributed`` calls this on each Ray actor."""
    started = time.perf_counter()
    try:
        return answer(question).to_dict()
    except FATAL:
        raise
    except Exception as exc:  # one question's failure must not end the run
        return {"question": question, "answer": "", "refused": False, "citations": [], "passages": [],
                "latency_s": round(time.perf_counter() - started, 4), "ttft_s": None,
                "error": f"{type(exc).__name__}: {exc}"}


def results_row(question: Mapping[str, Any], result: Mapping[str, Any], score: Score,
                extra: Mapping[str, Any] | None = None) -> dict:
    """One results line: id, the answer's fields, ``extra``, then its ``scores``."""
    row = {"id": question["id"], **result, **(extra or {})}
    row["scores"] = score(row, question)
    return row


def ask(answer: Callable[[str], Any], question: Mapping[str, Any], score: Score,
        extra: Mapping[str, Any] | None = None) -> dict:
    """One results line: the pipeline's answer, or the error it raised, then its ``scores``.

    A failed question is recorded with an ``error`` ("GenerationError: ...") and an empty answer,
    which scores as wrong; errors of the setup (``FATAL``) are raised instead.
    """
    return results_row(question, answered(answer, question["question"]), score, extra)


# (questions) -> (position in questions, results dict) as each is answered, in any order: qa.distributed
AnswerAll = Callable[[list[str]], Iterator[tuple[int, dict]]]


def run_eval(
    answer: Callable[[str], Any],
    questions: Sequence[Mapping[str, Any]],
    out: str | Path,
    *,
    score: Score,
    limit: int | None = None,
    resume: bool = False,
    extra: Callable[[Mapping[str, Any]], dict] | None = None,
    progress: bool | None = None,
    answer_all: AnswerAll | None = None,
) -> list[dict]:
    """Ask the first ``limit`` questions (all when None) and write their results lines to ``out``.

    Returns every result now in ``out``, in question order. With ``resume``, ids already answered
    there without an error are skipped and kept (even beyond ``limit``); without it ``out`` starts
    empty. ``progress``: a tqdm bar with the running accuracy (None: only on a terminal).
    ``answer_all`` answers the questions elsewhere (a pool of Ray actors) instead of ``answer`` here; its
    results may come in any order, and are written in question order as soon as they can be.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    order = {q["id"]: i for i, q in enumerate(questions)}
    done: dict[str, dict] = {}
    if resume:
        previous = read_results(out)
        strangers = [r["id"] for r in previous if r["id"] not in order]
        if strangers:
            raise QuestionFileError(f"{out} holds results for ids that are not in the question file "
                                    f"({', '.join(strangers[:3])}): is it the results of another run?")
        done = {r["id"]: r for r in previous if not r.get("error")}
    _write_results(out, done, order)  # drops a cut-off last line and the failures to ask again
    todo = [q for q in questions[:limit] if q["id"] not in done]
    from tqdm import tqdm

    with open(out, "a", encoding="utf-8") as handle, tqdm(
        total=len(todo), desc="eval", unit="q", file=sys.stderr, disable=None if progress is None else not progress
    ) as bar:
        if answer_all is None:
            results = ((i, answered(answer, q["question"])) for i, q in enumerate(todo))
        else:
            results = answer_all([q["question"] for q in todo])
        waiting: dict[int, dict] = {}  # answered, not yet written: an earlier question is still out
        written = 0  # todo[:written] are in the file
        try:
            for i, result in results:
                waiting[i] = result
                while written in waiting:
                    question, result = todo[written], waiting.pop(written)
                    written += 1
                    row = results_row(question, result, score, extra(question) if extra else None)
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                    handle.flush()
                    done[question["id"]] = row
                    bar.set_postfix_str(_running_accuracy(done.values()), refresh=False)
                    bar.update()
        except KeyboardInterrupt:
            print(f"\ninterrupted: {len(done)} results are in {out}; add --resume to continue", file=sys.stderr)
            raise
    _write_results(out, done, order)
    return sorted(done.values(), key=lambda r: order[r["id"]])


def _running_accuracy(rows) -> str:
    judged = [r["scores"].get("correct") for r in rows if r.get("scores", {}).get("correct") is not None]
    errors = sum(1 for r in rows if r.get("error"))
    accuracy = f"acc {sum(judged) / len(judged):.3f} ({sum(judged)}/{len(judged)})" if judged else "acc n/a"
    return accuracy + (f" errors {errors}" if errors else "")


def _write_results(out: Path, done: Mapping[str, dict], order: Mapping[str, int]) -> None:
    rows = sorted(done.values(), key=lambda r: order[r["id"]])
    write_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8"))


def document_texts(pipeline) -> dict[str, str]:
    """Every indexed document's exact text, for citation validity."""
    return {path: document.text for path, document in pipeline.index.documents.items()}


# --- the command -----------------------------------------------------------------------------------


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
                        "and optionally answers, need, evidence, type)")
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
    from qa.distributed import add_ray_options

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
        from qa.distributed import answer_on_ray

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
        from qa.report import write_report

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
    from qa.pipeline import Pipeline
    from qa.squad import (format_squad_table, load_squad, open_book, question_record, sample_questions, score_squad,
                          summarize_squad)

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


def main(argv: list[str] | None = None) -> int:
    """``python -m qa.evaluate ...``: the same command outside ``qa`` (until it is wired into qa.cli)."""
    parser = argparse.ArgumentParser(prog="qa eval", description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", help="folder of .txt/.md documents (env QA_CORPUS)")
    parser.add_argument("--index-dir", help="where the index lives (env QA_INDEX_DIR)")
    parser.add_argument("--embedder", help="sentence-transformers model (env QA_EMBEDDER)")
    args = configure_parser(parser).parse_args(argv)
    for name, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("OMP_WAIT_POLICY", "PASSIVE"),
                        ("TRANSFORMERS_VERBOSITY", "error"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1")):
        os.environ.setdefault(name, value)
    logging.basicConfig(level=logging.WARNING, format="qa: note: %(message)s")
    try:
        return cmd_eval(args)
    except (QAError, OSError) as exc:  # OSError: an unwritable --out, a full disk
        print(f"qa: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: one line, not a traceback
        if os.environ.get("QA_DEBUG"):
            raise
        print(f"qa: error: unexpected {type(exc).__name__}: {exc} (a bug; QA_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
