"""Evaluate step, batch runner: answer every question of a JSON Lines file and write the results.

The one decision: the results file is the run's state. Each result is appended and flushed the moment
it exists, so an interrupted run loses at most the question in flight, and ``--resume`` skips the ids
already answered (a last line cut off mid-write is dropped; questions that failed are asked again).
When the run ends the file is rewritten, atomically, in the question file's order. Answers come from
``Pipeline.answer`` like everywhere else; scores from ``qa.evaluation.metrics`` (or
``qa.evaluation.squad``). Formats: ``shared/eval/FORMAT.md``; the command: ``qa.cli.eval``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from embeddings.files import write_atomic
from qa.errors import SETUP_ERRORS, QuestionFileError
from qa.evaluation.questions import read_results

Score = Callable[[Mapping[str, Any], Mapping[str, Any]], dict]








# --- running ---------------------------------------------------------------------------------------


def answered(answer: Callable[[str], Any], question: str) -> dict:
    """The pipeline's answer as a results dict, or the error it raised as a failed one (empty answer,
    ``error`` "GenerationError: ..."); errors of the setup (``SETUP_ERRORS``) are raised instead.
    ``qa.evaluation.distributed`` calls this on each Ray actor."""
    started = time.perf_counter()
    try:
        return answer(question).to_dict()
    except SETUP_ERRORS:
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
    which scores as wrong; errors of the setup (``SETUP_ERRORS``) are raised instead.
    """
    return results_row(question, answered(answer, question["question"]), score, extra)


# (questions) -> (position in questions, results dict) as each is answered, in any order: qa.evaluation.distributed
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



















