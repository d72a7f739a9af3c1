"""Evaluate step, files: read a question file and a results file (formats: ``shared/eval/FORMAT.md``).

The one decision: a malformed question file is refused whole, with the line and the reason, before
any question is asked; a results file's cut-off last line (an interrupted run) is dropped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qa.errors import QuestionFileError


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
