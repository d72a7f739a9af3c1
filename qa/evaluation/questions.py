"""Evaluate step, files: read a question file and a results file (formats: ``shared/eval/FORMAT.md``).

The one decision: a malformed question file is refused whole, with the line and the reason, before
any question is asked; a results file's cut-off last line (an interrupted run) is dropped. A question
is *broad* when it has key ``points`` or a broad-only type, else *one-fact*.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qa.errors import QuestionFileError

BROAD_TYPES = frozenset({"explain", "who", "summary", "compare"})  # types only broad questions have
FAMILIES = ("one_fact", "broad")


def question_points(question: Any) -> list[list[str]] | None:
    """The question's key points, or None when it has none (a missing or empty ``points``)."""
    points = question.get("points") if isinstance(question, Mapping) else None
    return [list(p) for p in points] if points else None


def question_family(question: Any) -> str:
    """The question's family: "broad" for a question with ``points`` or of a broad-only type, else
    "one_fact" (unanswerable questions without points included).

    >>> question_family({"type": "list", "points": [["a"], ["b"]]}), question_family({"type": "list"})
    ('broad', 'one_fact')
    """
    broad = question_points(question) is not None or question.get("type") in BROAD_TYPES
    return "broad" if broad else "one_fact"


def file_families(questions: Sequence[Any]) -> dict[Any, str]:
    """Each question's family by id, where an unanswerable question (no answers, no points) is counted
    with the file's answerable questions when they are all broad: a broad question set's refusals
    are broad refusals.

    >>> file_families([{"id": 1, "type": "explain"}, {"id": 2, "type": "unanswerable"}])
    {1: 'broad', 2: 'broad'}
    >>> file_families([{"id": 1, "type": "factoid", "answers": ["x"]}, {"id": 2, "type": "unanswerable"}])
    {1: 'one_fact', 2: 'one_fact'}
    """
    def unanswerable(q: Any) -> bool:
        return not q.get("answers") and question_points(q) is None and q.get("type") not in BROAD_TYPES

    answerable = [question_family(q) for q in questions if not unanswerable(q)]
    all_broad = bool(answerable) and all(family == "broad" for family in answerable)
    return {q.get("id"): "broad" if unanswerable(q) and all_broad else question_family(q) for q in questions}


def question_shape(question: Any) -> str:
    """The question's ``type`` ("untyped" without one), as "broad <type>" for a broad question whose
    type one-fact questions share, so the two kinds of list never merge.

    >>> question_shape({"type": "list", "points": [["a"]]}), question_shape({"type": "explain"})
    ('broad list', 'explain')
    """
    kind = question.get("type") or "untyped"
    return f"broad {kind}" if question_family(question) == "broad" and kind not in BROAD_TYPES else kind


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
    points = item.get("points", [])
    if not isinstance(points, list) or not all(
        isinstance(p, list) and p and all(isinstance(a, str) for a in p) for p in points
    ):
        return "`points` must be a list of non-empty lists of strings"
    need = item.get("need", 1 if answers or points else 0)
    if isinstance(need, bool) or not isinstance(need, int) or need < 0:
        return f"`need` must be a whole number >= 0, got {json.dumps(need)}"
    if points and need > len(points):
        return f"`need` is {need} but there are only {len(points)} points"
    if not points and need > len(answers):
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
