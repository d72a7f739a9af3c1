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
    the mean ``correct`` per question ``type`` (for "unanswerable" that is the refusal rate).
    Any rate with nothing to measure is None.

    >>> qs = [{"id": "a", "answers": ["2017"], "need": 1, "evidence": [], "type": "factoid"},
    ...       {"id": "b", "answers": [], "need": 0, "evidence": [], "type": "unanswerable"}]
    >>> rs = [{"id": "a", "answer": "In 2017.", "refused": False, "latency_s": 2.0},
    ...       {"id": "b", "answer": "Not in the documents.", "refused": True, "latency_s": 4.0}]
    >>> s = summarize(rs, qs)
    >>> s["answer_accuracy"], s["refusal_rate"], s["latency_p50"], s["accuracy_by_type"]
    (1.0, 1.0, 3.0, {'factoid': 1.0, 'unanswerable': 1.0})
    """
    by_id = {q.get("id"): q for q in questions}
    rows = [(r, by_id.get(r.get("id"), {})) for r in results]
    scored = [question_scores(r, q, documents) for r, q in rows]
    scores, counts = [s for s, _ in scored], [c for _, c in scored]
    answerable = [s for s, (_, q) in zip(scores, rows) if is_answerable(q)]
    unanswerable = [s for s, (_, q) in zip(scores, rows) if is_answerable(q) is False]
    ranks = [s["evidence_rank"] for s, (_, q) in zip(scores, rows) if is_answerable(q) and q.get("evidence")]
    by_type: dict[str, list[bool]] = defaultdict(list)
    for s, (_, q) in zip(scores, rows):
        if s["correct"] is not None:
            by_type[q.get("type") or "untyped"].append(s["correct"])
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
        "accuracy_by_type": {t: _mean(v) for t, v in sorted(by_type.items())},
    }


def format_summary_table(summary: Mapping[str, Any]) -> str:
    """A two-column text table of `summarize`'s output for the terminal; None shows as "n/a".

    >>> print(format_summary_table({"n": 2, "answer_accuracy": 0.5, "latency_p50": 1.25, "mrr": None}))
    questions         2
    answer accuracy   0.500
    MRR               n/a
    latency p50       1.25 s
    """
    rows: list[tuple[str, str]] = []
    for key, label, unit in _TABLE_ROWS:
        if key in summary:
            rows.append((label, _format_value(summary[key], unit)))
    for kind, accuracy in (summary.get("accuracy_by_type") or {}).items():
        rows.append((f"  accuracy: {kind}", _format_value(accuracy, "rate")))
    width = max((len(label) for label, _ in rows), default=0)
    return "\n".join(f"{label:<{width}}   {value}" for label, value in rows)


_TABLE_ROWS = (  # (summary key, label, unit)
    ("n", "questions", "count"),
    ("n_answerable", "answerable", "count"),
    ("n_unanswerable", "unanswerable", "count"),
    ("n_errors", "errors", "count"),
    ("answer_accuracy", "answer accuracy", "rate"),
    ("refusal_rate", "refusal rate", "rate"),
    ("false_refusal_rate", "false-refusal rate", "rate"),
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
    return str(value)






def _mean(values: Sequence[bool | float]) -> float | None:
    return sum(values) / len(values) if values else None
