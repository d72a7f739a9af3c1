"""Evaluate step, summary: one run's metrics over all its questions, as JSON and as a terminal table.

The one decision: a metric that has nothing to measure is ``None``, never 0, and every rate says
what it is a rate of (answerable questions, unanswerable ones, citations).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from qa.evaluation.metrics import is_answerable, question_scores, ratio
from qa.evaluation.questions import FAMILIES, file_families, question_shape


def recall_at_k(ranks: Sequence[int | None], k: int) -> float | None:
    """Share of questions whose first evidence passage is ranked within the top `k` (None = missed).

    >>> recall_at_k([1, 3, None, 2], 3)
    0.75
    >>> recall_at_k([], 3) is None
    True
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return _mean([r is not None and r <= k for r in ranks])


def mrr(ranks: Sequence[int | None]) -> float | None:
    """Mean reciprocal rank: the mean of 1/rank, a miss (None) counting 0.

    >>> mrr([1, 2, None, 4])
    0.4375
    """
    return _mean([0.0 if r is None else 1.0 / r for r in ranks])


def percentile(values: Iterable[float | None], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks, as numpy's
    default; None values are ignored; None when nothing is left.

    >>> percentile([4.0, 1.0, None, 3.0, 2.0], 50)
    2.5
    >>> percentile([1, 2, 3, 4], 95)  # position 0.95 * 3 = 2.85 -> 3 + 0.85 * (4 - 3)
    3.85
    """
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    xs = sorted(float(v) for v in values if v is not None)
    if not xs:
        return None
    position = (len(xs) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(xs) - 1)
    return xs[low] + (xs[high] - xs[low]) * (position - low)


def summarize(
    results: Sequence[Mapping[str, Any]],
    questions: Sequence[Mapping[str, Any]],
    *,
    documents: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The run's summary; results are matched to questions by ``id`` (an unknown id has no gold).

    Rates are over the questions they concern: ``answer_accuracy`` and ``false_refusal_rate`` over
    answerable questions (a refusal counts as wrong), ``refusal_rate`` over unanswerable ones,
    ``recall@k`` and ``mrr`` over answerable questions with evidence (a missed evidence counts as
    rank infinity). Citation rates pool the citations of all questions concerned (micro average):
    ``citation_precision`` those of answered answerable questions with evidence,
    ``citation_validity`` all citations (None without `documents`). Latency percentiles ignore
    missing values; ``n_errors`` counts results with a non-empty ``error``; ``accuracy_by_type`` is
    the mean ``correct`` per question shape (`question_shape`: the ``type``, "broad list" for a list
    with points; for "unanswerable" it is the refusal rate). ``point_recall`` is the mean over
    questions with ``points``; ``answer_words_median`` the median `answer_words` over answered
    questions (not refused, no error); ``by_type`` gives n, accuracy, point recall and median words
    per shape. ``by_family`` repeats all of these (but itself) for the "one_fact" and the "broad"
    questions (`file_families`). Any rate with nothing to measure is None.

    >>> qs = [{"id": "a", "answers": ["2017"], "need": 1, "evidence": [], "type": "factoid"},
    ...       {"id": "b", "answers": [], "need": 0, "evidence": [], "type": "unanswerable"}]
    >>> rs = [{"id": "a", "answer": "In 2017.", "refused": False, "latency_s": 2.0},
    ...       {"id": "b", "answer": "Not in the documents.", "refused": True, "latency_s": 4.0}]
    >>> s = summarize(rs, qs)
    >>> s["answer_accuracy"], s["refusal_rate"], s["latency_p50"], s["accuracy_by_type"]
    (1.0, 1.0, 3.0, {'factoid': 1.0, 'unanswerable': 1.0})
    >>> s["answer_words_median"], s["by_family"]["one_fact"]["n"], s["by_family"]["broad"]["n"]
    (2.0, 2, 0)
    """
    by_id = {q.get("id"): q for q in questions}
    rows = [(r, by_id.get(r.get("id"), {})) for r in results]
    scored = [(r, q, *question_scores(r, q, documents)) for r, q in rows]
    summary = _block(scored, documents)
    family = file_families(questions)
    summary["by_family"] = {name: _block([row for row in scored if family.get(row[0].get("id")) == name], documents)
                            for name in FAMILIES}
    return summary


def _block(scored: Sequence[tuple], documents: Mapping[str, str] | None) -> dict[str, Any]:
    """`summarize`'s metrics (without ``by_family``) over (result, question, scores, counts) rows."""
    results = [r for r, *_ in scored]
    answerable = [s for _, q, s, _ in scored if is_answerable(q)]
    unanswerable = [s for _, q, s, _ in scored if is_answerable(q) is False]
    ranks = [s["evidence_rank"] for _, q, s, _ in scored if is_answerable(q) and q.get("evidence")]
    counts = [c for *_, c in scored]
    shapes: dict[str, list[tuple]] = defaultdict(list)
    for row in scored:
        shapes[question_shape(row[1])].append(row)
    n_citations = sum(c[0] for c in counts)
    return {
        "n": len(results),
        "n_answerable": len(answerable),
        "n_unanswerable": len(unanswerable),
        "answer_accuracy": _mean([s["correct"] for s in answerable]),
        "refusal_rate": _mean([s["refused"] for s in unanswerable]),
        "false_refusal_rate": _mean([s["refused"] for s in answerable]),
        "n_citations": n_citations,
        "citation_precision": ratio(sum(c[3] for c in counts), sum(c[2] for c in counts)),
        "citation_validity": None if documents is None else ratio(sum(c[1] for c in counts), n_citations),
        "recall@1": recall_at_k(ranks, 1),
        "recall@3": recall_at_k(ranks, 3),
        "recall@5": recall_at_k(ranks, 5),
        "mrr": mrr(ranks),
        "latency_p50": percentile((r.get("latency_s") for r in results), 50),
        "latency_p95": percentile((r.get("latency_s") for r in results), 95),
        "ttft_p50": percentile((r.get("ttft_s") for r in results), 50),
        "ttft_p95": percentile((r.get("ttft_s") for r in results), 95),
        "n_errors": sum(1 for r in results if r.get("error")),
        "accuracy_by_type": {t: acc for t, rows in sorted(shapes.items()) if (acc := _accuracy(rows)) is not None},
        "point_recall": _point_recall(scored),
        "answer_words_median": _words_median(scored),
        "by_type": {t: {"n": len(rows), "accuracy": _accuracy(rows), "point_recall": _point_recall(rows),
                        "answer_words_median": _words_median(rows)} for t, rows in sorted(shapes.items())},
    }


def _accuracy(scored: Sequence[tuple]) -> float | None:
    return _mean([s["correct"] for _, _, s, _ in scored if s["correct"] is not None])


def _point_recall(scored: Sequence[tuple]) -> float | None:
    return _mean([s["point_recall"] for _, _, s, _ in scored if s["point_recall"] is not None])


def _words_median(scored: Sequence[tuple]) -> float | None:
    return percentile((s["answer_words"] for r, _, s, _ in scored if not s["refused"] and not r.get("error")), 50)


def format_summary_table(summary: Mapping[str, Any]) -> str:
    """A text table of `summarize`'s output for the terminal; None shows as "n/a". When the run has
    both one-fact and broad questions, their ``by_family`` blocks stand in two more columns beside
    "all" (a blank: that kind of question is not in the family).

    >>> print(format_summary_table({"n": 2, "answer_accuracy": 0.5, "latency_p50": 1.25, "mrr": None}))
    questions         2
    answer accuracy   0.500
    MRR               n/a
    latency p50       1.25 s
    """
    families = summary.get("by_family") or {}
    both = all((families.get(f) or {}).get("n") for f in FAMILIES)
    columns = [summary, *(families[f] for f in FAMILIES)] if both else [summary]
    rows: list[list[str]] = [["", "all", "one-fact", "broad"]] if both else []
    for key, label, unit in _TABLE_ROWS:
        if key in summary and (key != "point_recall" or summary[key] is not None):
            rows.append([label, *(_format_value(c.get(key), unit) for c in columns)])
    for kind, accuracy in (summary.get("accuracy_by_type") or {}).items():
        by_kind = [(c.get("accuracy_by_type") or {}) for c in columns[1:]]
        rows.append([f"  accuracy: {kind}", _format_value(accuracy, "rate"),
                     *(_format_value(b[kind], "rate") if kind in b else "" for b in by_kind)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows else []
    return "\n".join("   ".join(f"{cell:<{w}}" for cell, w in zip(row, widths)).rstrip() for row in rows)


_TABLE_ROWS = (  # (summary key, label, unit)
    ("n", "questions", "count"),
    ("n_answerable", "answerable", "count"),
    ("n_unanswerable", "unanswerable", "count"),
    ("n_errors", "errors", "count"),
    ("answer_accuracy", "answer accuracy", "rate"),
    ("refusal_rate", "refusal rate", "rate"),
    ("false_refusal_rate", "false-refusal rate", "rate"),
    ("point_recall", "point recall", "rate"),
    ("answer_words_median", "answer words, median (answered)", "words"),
    ("n_citations", "citations", "count"),
    ("citation_precision", "citation precision", "rate"),
    ("citation_validity", "citation validity", "rate"),
    ("recall@1", "recall@1", "rate"),
    ("recall@3", "recall@3", "rate"),
    ("recall@5", "recall@5", "rate"),
    ("mrr", "MRR", "rate"),
    ("latency_p50", "latency p50", "seconds"),
    ("latency_p95", "latency p95", "seconds"),
    ("ttft_p50", "first token p50", "seconds"),
    ("ttft_p95", "first token p95", "seconds"),
)


def _format_value(value: Any, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "rate":
        return f"{value:.3f}"
    if unit == "seconds":
        return f"{value:.2f} s"
    if unit == "words":
        return f"{value:g}"
    return str(value)






def _mean(values: Sequence[bool | float]) -> float | None:
    return sum(values) / len(values) if values else None
