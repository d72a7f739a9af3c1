"""Evaluate step, scoring: pure functions that turn results and gold questions into metrics.

The one decision: every metric is a plain function of the plain values found in the question and
results JSON Lines files (see ``shared/eval/FORMAT.md``); nothing here reads files or runs a model.
Text is compared after normalisation, never raw, except citation validity, which is exact by
definition (``document[start:end] == text``). A metric that has nothing to measure is ``None``,
never 0.

Text overlap between a citation or passage and an evidence fragment uses one rule throughout
(`_covers`): both are compared as token sequences (`normalize_text` tokens), and they overlap the way
two spans of the same document would (one inside the other, or the end of one is the start of the
other); the shared run must hold at least half of the fragment's tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from qa.evaluation.matching import (
    answer_correct,
    answer_words,
    normalize_evidence,  # noqa: F401  (re-exported: bench_retrieval)
    normalize_text,
    points_covered,
)
from qa.evaluation.questions import question_points

# --- citations -------------------------------------------------------------------------------------


def citation_valid(citation: Mapping[str, Any], documents: Mapping[str, str]) -> bool:
    """True when the citation's offsets reproduce its text exactly: ``documents[doc][start:end] == text``.

    No normalisation. Invalid as well: an unknown doc, offsets that are not ints, out of range, or an
    empty span (start >= end).

    >>> docs = {"a.txt": "Ambassador Pierre Vimont was sent."}
    >>> citation_valid({"doc": "a.txt", "start": 11, "end": 24, "text": "Pierre Vimont"}, docs)
    True
    >>> citation_valid({"doc": "a.txt", "start": 10, "end": 24, "text": "Pierre Vimont"}, docs)
    False
    """
    document = documents.get(citation.get("doc"))
    start, end = citation.get("start"), citation.get("end")
    if document is None or type(start) is not int or type(end) is not int:
        return False
    return 0 <= start < end <= len(document) and document[start:end] == citation.get("text")


def citation_supports(citation: Mapping[str, Any], evidence: Sequence[Mapping[str, str]]) -> bool | None:
    """Whether the citation points at the question's evidence; None when there is no evidence to check.

    A citation supports the evidence when, for at least one evidence item, (1) its doc is the item's
    doc (equal paths, or one is a bare file name equal to the other's last component), and (2) its
    text covers the item's fragment: comparing `normalize_text` token sequences, the citation contains
    the whole fragment, or it lies inside the fragment, or the end of one is the start of the other,
    and the shared run holds at least half of the fragment's tokens (rounded up). Sharing scattered
    words does not count.

    >>> ev = [{"doc": "a.txt", "text": "Ambassador Pierre Vimont"}]
    >>> citation_supports({"doc": "a.txt", "text": "Macron sent Ambassador Pierre Vimont."}, ev)
    True
    >>> citation_supports({"doc": "a.txt", "text": "Pierre Vimont"}, ev)  # 2 of 3 tokens
    True
    >>> citation_supports({"doc": "a.txt", "text": "Vimont"}, ev)  # 1 of 3 tokens
    False
    >>> citation_supports({"doc": "a.txt", "text": "anything"}, []) is None
    True
    """
    if not evidence:
        return None
    return any(
        _same_doc(citation.get("doc", ""), item["doc"]) and _covers(citation.get("text", ""), item["text"])
        for item in evidence
    )


# --- retrieval -------------------------------------------------------------------------------------


def evidence_rank(passages: Sequence[Mapping[str, Any]], evidence: Sequence[Mapping[str, str]]) -> int | None:
    """1-based position of the first passage that holds an evidence fragment of its own doc, else None.

    `passages` are in rank order (their position, not their ``rank`` field, is the rank). A passage
    holds a fragment under the same rule as `citation_supports`: it contains the whole fragment, or,
    for a fragment cut by a passage boundary, it starts or ends with a run of at least half of the
    fragment's tokens (so of two passages sharing a fragment, the one with the larger part counts,
    and both count at an exact half).

    >>> ev = [{"doc": "a.txt", "text": "a dozen working groups"}]
    >>> ps = [{"doc": "a.txt", "text": "Talks began."},
    ...       {"doc": "a.txt", "text": "A dozen working groups met."}]
    >>> evidence_rank(ps, ev)
    2
    >>> evidence_rank(ps[:1], ev) is None
    True
    """
    for position, passage in enumerate(passages, start=1):
        if citation_supports(passage, evidence):
            return position
    return None






# --- per question and summary ----------------------------------------------------------------------




def score_result(
    result: Mapping[str, Any], question: Mapping[str, Any], documents: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """This question's ``scores`` object (FORMAT.md's results file).

    - ``correct``: answerable: not refused and `answer_correct` (``need`` defaults to 1); unanswerable
      (``answers`` empty): refused; no ``answers`` field: None.
    - ``refused``: the result's flag.  ``false_refusal``: refused, for answerable questions only.
    - ``citation_validity``: share of citations passing `citation_valid`; None without documents or
      citations.
    - ``citation_precision``: share of citations passing `citation_supports`, for answered (not
      refused) answerable questions with evidence and at least one citation; else None.
    - ``evidence_rank``: `evidence_rank` of the passages, for answerable questions with evidence.
    - ``points_covered``, ``points_total``, ``point_recall``: for a question with ``points``, how many
      key points the answer covers (`points_covered`; a refusal covers none), of how many, and the
      share; None without points. Where points exist they replace ``answers`` for ``correct``:
      correct when at least ``need`` points are covered.
    - ``answer_words``: `answer_words` of the answer (markers stripped).

    >>> q = {"id": "d1", "answers": ["Vimont"], "need": 1,
    ...      "evidence": [{"doc": "a.txt", "text": "Pierre Vimont"}]}
    >>> r = {"answer": "Pierre Vimont [1].", "refused": False,
    ...      "citations": [{"n": 1, "doc": "a.txt", "start": 11, "end": 24, "text": "Pierre Vimont"}],
    ...      "passages": [{"rank": 1, "doc": "a.txt", "text": "Ambassador Pierre Vimont was sent."}]}
    >>> for key, value in score_result(r, q, {"a.txt": "Ambassador Pierre Vimont was sent."}).items():
    ...     print(key, value)
    correct True
    refused False
    false_refusal False
    citation_validity 1.0
    citation_precision 1.0
    evidence_rank 1
    points_covered None
    points_total None
    point_recall None
    answer_words 2
    """
    return question_scores(result, question, documents)[0]


def question_scores(
    result: Mapping[str, Any], question: Mapping[str, Any], documents: Mapping[str, str] | None
) -> tuple[dict[str, Any], tuple[int, int | None, int, int]]:
    """`score_result`'s scores, with the citation counts behind them (see `citation_counts`)."""
    answerable = is_answerable(question)
    refused = bool(result.get("refused"))
    evidence = question.get("evidence") or []
    passages = result.get("passages") or []
    counts = n, valid, scored, supporting = citation_counts(result, question, documents)
    answer, points = result.get("answer") or "", question_points(question)
    covered = None if points is None else 0 if refused else sum(points_covered(answer, points))
    need = max(1, question.get("need") or 1)
    if answerable is None:
        correct = None
    elif points is not None:
        correct = not refused and covered >= need
    elif answerable:
        correct = not refused and answer_correct(answer, question["answers"], need)
    else:
        correct = refused
    scores = {
        "correct": correct,
        "refused": refused,
        "false_refusal": refused if answerable else None,
        "citation_validity": None if valid is None else ratio(valid, n),
        "citation_precision": ratio(supporting, scored),
        "evidence_rank": evidence_rank(passages, evidence) if answerable and evidence else None,
        "points_covered": covered,
        "points_total": None if points is None else len(points),
        "point_recall": None if points is None else covered / len(points),
        "answer_words": answer_words(answer),
    }
    return scores, counts








# --- helpers ---------------------------------------------------------------------------------------




def is_answerable(question: Mapping[str, Any]) -> bool | None:
    """True/False from the gold ``answers`` (True too for a question with ``points``); None for a
    question without gold fields."""
    if question_points(question) is not None:
        return True
    return None if "answers" not in question else bool(question["answers"])




def _same_doc(a: str, b: str) -> bool:
    """Equal paths, or one is a bare file name equal to the other's last component."""
    pa, pb = PurePosixPath(a.replace("\\", "/")), PurePosixPath(b.replace("\\", "/"))
    return pa == pb or ((len(pa.parts) == 1 or len(pb.parts) == 1) and pa.name == pb.name)


def _covers(text: str, fragment: str) -> bool:
    """Whether `text` and `fragment` overlap like two spans of one document, sharing a contiguous run
    of at least half of the fragment's tokens (see `citation_supports`)."""
    t, f = normalize_text(text).split(), normalize_text(fragment).split()
    if not t or not f:
        return False
    need = (len(f) + 1) // 2
    if _contains(t, f) or (len(t) >= need and _contains(f, t)):
        return True
    return any(t[-n:] == f[:n] or t[:n] == f[-n:] for n in range(need, min(len(t), len(f)) + 1))


def _contains(haystack: list[str], needle: list[str]) -> bool:
    """Whether `needle` occurs as a contiguous run of whole tokens in `haystack`."""
    return f" {' '.join(needle)} " in f" {' '.join(haystack)} "


def citation_counts(
    result: Mapping[str, Any], question: Mapping[str, Any], documents: Mapping[str, str] | None
) -> tuple[int, int | None, int, int]:
    """(citations, valid ones or None without documents, ones scored for support, supporting ones)."""
    citations = result.get("citations") or []
    valid = None if documents is None else sum(citation_valid(c, documents) for c in citations)
    evidence = question.get("evidence") or []
    if not (is_answerable(question) and evidence) or result.get("refused"):
        return len(citations), valid, 0, 0
    return len(citations), valid, len(citations), sum(bool(citation_supports(c, evidence)) for c in citations)


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None
