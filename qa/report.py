"""Evaluate step, presentation: one self-contained HTML page for a run (``qa eval --report DIR``).

The one decision: the page is a single ``index.html`` with no outside resources at all (no
JavaScript, fonts, stylesheets or images to fetch): the charts are SVG written by hand and inlined,
and everything from the run is HTML-escaped. It opens offline, from disk, in any browser, and can
be mailed or archived as one file. Charts: accuracy by question type, latency distribution, and
retrieval recall@k; then a table of every failure with what is needed to see why it failed.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from embeddings.files import write_atomic
from qa.metrics import citation_supports, percentile, recall_at_k

BLUE, GREEN, RED, GREY, INK = "#2f6db5", "#2e8b57", "#c0392b", "#d5d9de", "#222"
PASSAGE_CHARS = 700  # passage text shown per retrieved passage in the failures table


def write_report(folder: str | Path, results: Sequence[Mapping[str, Any]], questions: Sequence[Mapping[str, Any]],
                 summary: Mapping[str, Any], *, title: str = "Evaluation report") -> Path:
    """Write ``folder/index.html`` (atomically) and return its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "index.html"
    write_atomic(path, render_report(results, questions, summary, title=title).encode("utf-8"))
    return path


def render_report(results: Sequence[Mapping[str, Any]], questions: Sequence[Mapping[str, Any]],
                  summary: Mapping[str, Any], *, title: str = "Evaluation report") -> str:
    """The report page as one HTML string."""
    by_id = {q.get("id"): q for q in questions}
    rows = [(r, by_id.get(r.get("id"), {})) for r in results]
    failures = [(r, q) for r, q in rows if r.get("error") or (r.get("scores") or {}).get("correct") is False]
    settings = summary.get("settings") or {}
    source = summary.get("squad_file") or summary.get("questions_file") or ""
    meta = " · ".join(_e(str(x)) for x in (
        source, f"{len(results)} questions", settings.get("model") and f"model {settings['model']}",
        settings.get("backend") and f"backend {settings['backend']}",
        settings.get("embedder") and f"embedder {settings['embedder']}", summary.get("started_at"),
    ) if x)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body>
<header><h1>{_e(title)}</h1><p class="meta">{meta}</p></header>
<section id="summary"><h2>Summary</h2>{_summary_table(summary)}</section>
<section id="plots"><h2>Plots</h2><div class="plots">
<figure id="plot-accuracy"><figcaption>Accuracy by question type</figcaption>{accuracy_chart(rows)}</figure>
<figure id="plot-latency"><figcaption>Latency per question</figcaption>{latency_chart(results)}</figure>
<figure id="plot-recall"><figcaption>Retrieval recall@k</figcaption>{recall_chart(rows)}</figure>
</div></section>
<section id="failures"><h2>Failures ({len(failures)} of {len(results)})</h2>
{_failures_table(failures) if failures else '<p class="none">No failures.</p>'}
</section>
</body></html>
"""


# --- charts ----------------------------------------------------------------------------------------


def accuracy_chart(rows: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> str:
    """Horizontal bars: share correct per question ``type`` (for "unanswerable": refused), with n."""
    by_type: dict[str, list[bool]] = defaultdict(list)
    for result, question in rows:
        correct = (result.get("scores") or {}).get("correct")
        if correct is not None:
            by_type[question.get("type") or "untyped"].append(bool(correct))
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
        elif question.get("answers") and question.get("evidence"):
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


# --- tables ----------------------------------------------------------------------------------------


_SUMMARY_ROWS = (  # (key, label, unit)
    ("n", "questions", "count"), ("n_errors", "errors", "count"),
    ("answer_accuracy", "answer accuracy (answerable)", "rate"), ("exact_match", "SQuAD exact match", "rate"),
    ("f1", "SQuAD F1", "rate"), ("refusal_rate", "refusal rate (unanswerable)", "rate"),
    ("false_refusal_rate", "false-refusal rate (answerable)", "rate"),
    ("citation_precision", "citation precision", "rate"), ("citation_validity", "citation validity", "rate"),
    ("recall@1", "recall@1", "rate"), ("recall@3", "recall@3", "rate"), ("recall@5", "recall@5", "rate"),
    ("mrr", "MRR", "rate"), ("latency_p50", "latency p50", "s"), ("latency_p95", "latency p95", "s"),
    ("ttft_p50", "first token p50", "s"), ("ttft_p95", "first token p95", "s"),
)


def _summary_table(summary: Mapping[str, Any]) -> str:
    cells = []
    for key, label, unit in _SUMMARY_ROWS:
        if key not in summary:
            continue
        value = summary[key]
        shown = "n/a" if value is None else f"{value:.1%}" if unit == "rate" else (
            f"{value:.2f} s" if unit == "s" else str(value))
        cells.append(f'<div class="metric"><span class="v">{_e(shown)}</span><span class="k">{_e(label)}</span></div>')
    return f'<div class="metrics">{"".join(cells)}</div>'


def diagnose(result: Mapping[str, Any], question: Mapping[str, Any]) -> str:
    """One line saying how a question failed, from its scores.

    >>> diagnose({"refused": True, "scores": {"evidence_rank": 2}}, {"answers": ["x"]})
    'refused, although the evidence was retrieved at rank 2'
    """
    if result.get("error"):
        return f"error: {result['error']}"
    scores = result.get("scores") or {}
    if not question.get("answers"):
        return "answered a question the documents do not answer"
    rank = scores.get("paragraph_rank", scores.get("evidence_rank"))
    what = "its paragraph" if "paragraph_rank" in scores else "the evidence"
    where = f"{what} was retrieved at rank {rank}" if rank else f"{what} was not retrieved"
    f1 = f" (SQuAD F1 {scores['f1']:.2f})" if scores.get("f1") is not None else ""
    if result.get("refused"):
        return f"refused, although {where}" if rank else f"refused: {where}"
    return f"wrong answer{f1}; {where}"


def _failures_table(failures: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> str:
    head = ("<tr><th>question</th><th>answer</th><th>expected</th><th>why it failed</th>"
            "<th>retrieved passages</th></tr>")
    body = []
    for result, question in failures:
        evidence = question.get("evidence") or []
        answers = question.get("answers") or []
        expected = ("<em>not answerable from the documents: should refuse</em>" if "answers" in question and not answers
                    else "".join(f'<span class="gold">{_e(a)}</span>' for a in answers))
        if len(answers) > 1 and question.get("need", 1) > 1:
            expected += f'<div class="small">needs {question["need"]} of these</div>'
        expected += "".join(f'<div class="evidence"><b>{_e(e["doc"])}</b>: “{_e(e["text"])}”</div>'
                            for e in evidence if e.get("text") not in answers)
        answer = (f'<span class="badge">refused</span> ' if result.get("refused") else "") + _e(result.get("answer") or "")
        citations = "".join(f'<div class="small">[{c.get("n")}] {_e(c.get("doc", ""))} '
                            f'{c.get("start")}–{c.get("end")}</div>' for c in result.get("citations") or [])
        body.append(
            f'<tr class="failure" id="q-{_e(str(result.get("id")))}">'
            f'<td><div class="qid">{_e(str(result.get("id")))} · {_e(question.get("type") or "")}</div>'
            f'{_e(result.get("question") or question.get("question") or "")}</td>'
            f'<td>{answer}{citations}</td><td>{expected}</td>'
            f'<td class="why">{_e(diagnose(result, question))}</td>'
            f'<td>{_passages(result, question)}</td></tr>'
        )
    return f'<table id="failures-table"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'


def _passages(result: Mapping[str, Any], question: Mapping[str, Any]) -> str:
    passages = result.get("passages") or []
    if not passages:
        return '<span class="small">none</span>'
    evidence = question.get("evidence") or []
    fragments = [e["text"] for e in evidence] + list(question.get("answers") or [])
    own = question.get("squad_doc")  # SQuAD: a hit is a passage of the question's own paragraph
    what = "its paragraph" if own else "evidence"
    items, ranks = [], []
    for rank, p in enumerate(passages, start=1):
        hit = p.get("doc") == own if own else bool(citation_supports(p, evidence))
        ranks += [rank] if hit else []
        text = p.get("text") or ""
        shown = text if len(text) <= PASSAGE_CHARS else text[:PASSAGE_CHARS] + "…"
        items.append(f'<li class="{"hit" if hit else "miss"}"><div class="small">{_e(p.get("doc", ""))} '
                     f'[{p.get("start")}:{p.get("end")}] · score {p.get("score", 0):.4f}'
                     f'{" · " + what if hit else ""}</div>{_highlight(shown, fragments)}</li>')
    found = f" · {what} at rank {ranks[0]}" if ranks else f" · {what} not among them" if (own or evidence) else ""
    return f'<details><summary>{len(passages)} passages{found}</summary><ol>{"".join(items)}</ol></details>'


def _highlight(text: str, fragments: Sequence[str]) -> str:
    """HTML-escaped ``text`` with each verbatim occurrence of a fragment in ``<mark>``.

    >>> _highlight("a <b> Vimont", ["Vimont"])
    'a &lt;b&gt; <mark>Vimont</mark>'
    """
    spans = []
    for fragment in filter(None, set(fragments)):
        start = text.find(fragment)
        while start >= 0:
            spans.append((start, start + len(fragment)))
            start = text.find(fragment, start + 1)
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, at = [], 0
    for start, end in merged:
        out += [_e(text[at:start]), f"<mark>{_e(text[start:end])}</mark>"]
        at = end
    return "".join(out) + _e(text[at:])


def _e(text: str) -> str:
    return html.escape(text, quote=True)


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0 auto;max-width:1500px;
padding:20px 28px;background:#fafbfc}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 10px;border-bottom:1px solid #e1e4e8;padding-bottom:4px}
.meta{color:#666;margin:0}.metrics{display:flex;flex-wrap:wrap;gap:10px}
.metric{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:8px 12px;min-width:120px}
.metric .v{display:block;font-size:20px;font-weight:600}.metric .k{display:block;color:#666;font-size:12px}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:16px;align-items:start}figure{margin:0;background:#fff;border:1px solid #e1e4e8;border-radius:6px;
padding:10px}figcaption{font-weight:600;margin-bottom:6px}svg{display:block;width:100%;height:auto}
svg .label{font-size:13px;fill:#222}svg .value{font-size:12px;fill:#222}svg .n{fill:#888}
svg .tick{font-size:11px;fill:#666}svg .mark{font-size:11px;font-weight:600}
table{border-collapse:collapse;width:100%;background:#fff}th,td{border:1px solid #e1e4e8;padding:6px 8px;
vertical-align:top;text-align:left}th{background:#f3f5f7}td:nth-child(1){width:20%}td:nth-child(2){width:20%}
td:nth-child(3){width:16%}td:nth-child(4){width:12%}.qid{color:#888;font-size:12px}
.gold{display:inline-block;background:#e6f4ea;border-radius:4px;padding:0 5px;margin:0 4px 3px 0}
.evidence{font-size:12px;color:#555;margin-top:4px}.small{font-size:12px;color:#666}
.badge{background:#fdecea;color:#c0392b;border-radius:4px;padding:0 5px;font-size:12px}.why{color:#c0392b}
details summary{cursor:pointer;color:#2f6db5}ol{padding-left:20px;margin:6px 0}li{margin-bottom:8px;font-size:13px}
li.hit{border-left:3px solid #2e8b57;padding-left:6px}li.miss{border-left:3px solid #e1e4e8;padding-left:6px}
mark{background:#fff1a8}.none{color:#2e8b57}
"""
