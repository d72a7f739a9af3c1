"""Evaluate step, charts: the report's plots as inline SVG (no plotting library, nothing fetched).

The one decision: each chart is a pure function from results to an ``<svg>`` string, drawn with the
page's own fonts, so the report stays one self-contained file.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from qa.evaluation.questions import question_shape
from qa.evaluation.summary import percentile, recall_at_k

BLUE, GREEN, RED, GREY, INK = "#2f6db5", "#2e8b57", "#c0392b", "#d5d9de", "#222"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def accuracy_chart(rows: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> str:
    """Horizontal bars: share correct per question shape (`question_shape`: the ``type``, "broad list"
    for a list with points; for "unanswerable": refused), with n."""
    by_type: dict[str, list[bool]] = defaultdict(list)
    for result, question in rows:
        correct = (result.get("scores") or {}).get("correct")
        if correct is not None:
            by_type[question_shape(question)].append(bool(correct))
    if not by_type:
        return _empty_chart("no judged answers (the questions have no gold answers)")
    judged = [c for values in by_type.values() for c in values]
    bars = sorted(by_type.items()) + ([("all questions", judged)] if len(by_type) > 1 else [])
    width, left, row = 460, 118, 30
    span = width - left - 100  # room on the right for "100% n=10000"
    height = row * len(bars) + 36
    parts = [_grid_x(left, span, 10, height - 22, [0, 0.25, 0.5, 0.75, 1.0], lambda v: f"{v:.0%}")]
    for i, (name, values) in enumerate(bars):
        y, share = 8 + i * row, sum(values) / len(values)
        colour = INK if name == "all questions" else BLUE
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" class="label">{_e(name)}</text>'
                     f'<rect x="{left}" y="{y + 2}" width="{span}" height="18" fill="{GREY}" opacity="0.35"/>'
                     f'<rect class="bar" x="{left}" y="{y + 2}" width="{max(share * span, 1):.1f}" height="18" '
                     f'fill="{colour}"><title>{_e(name)}: {share:.1%} of {len(values)}</title></rect>'
                     f'<text x="{left + span + 6}" y="{y + 15}" class="value">{share:.0%} '
                     f'<tspan class="n">n={len(values)}</tspan></text>')
    return _svg(width, height, "accuracy by question type", parts)


def latency_chart(results: Sequence[Mapping[str, Any]]) -> str:
    """Histogram of total latency, with p50 / p95 lines (and first-token p50) marked."""
    values = [float(r["latency_s"]) for r in results if isinstance(r.get("latency_s"), (int, float))]
    if not values:
        return _empty_chart("no latencies recorded")
    top = _nice_ceiling(max(values))
    n_bins = 12
    counts = [0] * n_bins
    for v in values:
        counts[min(int(v / top * n_bins), n_bins - 1)] += 1
    width, height, left, bottom = 460, 230, 40, 36
    plot_w, plot_h = width - left - 14, height - bottom - 28
    highest = max(counts)
    parts = [_axis_y(left, plot_w, 28, plot_h, highest)]
    bin_w = plot_w / n_bins
    for i, count in enumerate(counts):
        h = plot_h * count / highest
        lo, hi = top * i / n_bins, top * (i + 1) / n_bins
        parts.append(f'<rect class="bar" x="{left + i * bin_w + 1:.1f}" y="{28 + plot_h - h:.1f}" '
                     f'width="{bin_w - 2:.1f}" height="{h:.1f}" fill="{BLUE}"><title>{lo:.2f}–{hi:.2f} s: '
                     f'{count} questions</title></rect>')
    for j in range(5):
        x = left + plot_w * j / 4
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle" class="tick">'
                     f'{_seconds(top * j / 4)}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle" class="tick">'
                 'seconds from question to complete answer</text>')
    marks = [("p50", percentile(values, 50), INK), ("p95", percentile(values, 95), RED)]
    ttft = percentile((r.get("ttft_s") for r in results), 50)
    if ttft is not None:
        marks.append(("first token p50", ttft, GREEN))
    legend_x = left
    for name, value, colour in marks:  # dashed lines, named in a legend above the plot
        x = left + plot_w * min(value / top, 1.0)
        label = f"{name} {value:.2f} s"
        parts.append(f'<line class="marker" x1="{x:.1f}" y1="24" x2="{x:.1f}" y2="{28 + plot_h}" stroke="{colour}" '
                     f'stroke-width="2" stroke-dasharray="5 3"><title>{label}</title></line>'
                     f'<line x1="{legend_x}" y1="10" x2="{legend_x + 16}" y2="10" stroke="{colour}" '
                     f'stroke-width="2" stroke-dasharray="5 3"/>'
                     f'<text x="{legend_x + 20}" y="14" class="mark" fill="{colour}">{label}</text>')
        legend_x += 28 + 6.2 * len(label)
    return _svg(width, height, "latency distribution", parts)


def recall_chart(rows: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> str:
    """recall@k for k = 1..(passages retrieved): the share of answerable questions with evidence
    whose evidence (for SQuAD: whose own paragraph) is among the first k passages."""
    ranks, depth = [], 0
    for result, question in rows:
        scores = result.get("scores") or {}
        depth = max(depth, len(result.get("passages") or []))
        if "paragraph_rank" in scores:
            ranks.append(scores["paragraph_rank"])
        elif (question.get("answers") or question.get("points")) and question.get("evidence"):
            ranks.append(scores.get("evidence_rank"))
    if not ranks or depth == 0:
        return _empty_chart("no questions with evidence to find")
    points = [(k, recall_at_k(ranks, k)) for k in range(1, depth + 1)]
    width, height, left, bottom = 460, 230, 44, 36
    plot_w, plot_h = width - left - 24, height - bottom - 20
    x_of = (lambda k: left + plot_w * (k - 1) / (depth - 1)) if depth > 1 else (lambda k: left + plot_w / 2)
    y_of = lambda v: 20 + plot_h * (1 - v)  # noqa: E731
    parts = []
    for v in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line x1="{left}" y1="{y_of(v):.1f}" x2="{left + plot_w}" y2="{y_of(v):.1f}" '
                     f'stroke="{GREY}"/><text x="{left - 6}" y="{y_of(v) + 4:.1f}" text-anchor="end" '
                     f'class="tick">{v:.0%}</text>')
    line = " ".join(f"{x_of(k):.1f},{y_of(v):.1f}" for k, v in points)
    parts.append(f'<polyline class="curve" points="{line}" fill="none" stroke="{BLUE}" stroke-width="2.5"/>')
    for k, v in points:
        parts.append(f'<circle cx="{x_of(k):.1f}" cy="{y_of(v):.1f}" r="4" fill="{BLUE}"><title>recall@{k}: '
                     f'{v:.1%} of {len(ranks)}</title></circle><text x="{x_of(k):.1f}" y="{y_of(v) - 9:.1f}" '
                     f'text-anchor="middle" class="value">{v:.0%}</text><text x="{x_of(k):.1f}" '
                     f'y="{height - bottom + 16}" text-anchor="middle" class="tick">{k}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle" class="tick">k (passages '
                 f'retrieved), {len(ranks)} questions</text>')
    return _svg(width, height, "retrieval recall at k", parts)


def _svg(width: int, height: int, label: str, parts: Sequence[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{_e(label)}"><title>{_e(label)}</title>{"".join(parts)}</svg>')


def _empty_chart(message: str) -> str:
    return _svg(460, 60, message, [f'<text x="230" y="34" text-anchor="middle" class="tick">{_e(message)}</text>'])


def _grid_x(left: float, span: float, top: float, bottom: float, ticks, fmt) -> str:
    return "".join(f'<line x1="{left + span * t:.1f}" y1="{top}" x2="{left + span * t:.1f}" y2="{bottom}" '
                   f'stroke="{GREY}"/><text x="{left + span * t:.1f}" y="{bottom + 14}" text-anchor="middle" '
                   f'class="tick">{fmt(t)}</text>' for t in ticks)


def _axis_y(left: float, plot_w: float, top: float, plot_h: float, highest: int) -> str:
    step = max(1, math.ceil(highest / 4))
    out = []
    for count in range(0, highest + 1, step):
        y = top + plot_h * (1 - count / highest)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="{GREY}"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{count}</text>')
    return "".join(out)


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above ``value``.

    >>> _nice_ceiling(7.3), _nice_ceiling(0.31), _nice_ceiling(0)
    (10.0, 0.5, 1.0)
    """
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value)


def _seconds(value: float) -> str:
    return f"{value:g}"

