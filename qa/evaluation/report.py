"""Evaluate step, presentation: one self-contained HTML page for a run (``qa eval --report DIR``).

The one decision: the page is a single ``index.html`` with no outside resources at all (no
JavaScript, fonts, stylesheets or images to fetch): the charts are SVG written by hand and inlined,
and everything from the run is HTML-escaped. It opens offline, from disk, in any browser, and can
be mailed or archived as one file. Charts: accuracy by question type, latency distribution, and
retrieval recall@k; then a table of every failure with what is needed to see why it failed (for a
broad question: which key points the answer covered and which it missed). A run with both one-fact
and broad questions shows its summary as a table with a column for each family.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from embeddings.files import write_atomic
from qa.evaluation.charts import accuracy_chart, latency_chart, recall_chart
from qa.evaluation.matching import points_covered
from qa.evaluation.metrics import citation_supports
from qa.evaluation.questions import FAMILIES, question_points

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


# --- tables ----------------------------------------------------------------------------------------


_SUMMARY_ROWS = (  # (key, label, unit)
    ("n", "questions", "count"), ("n_errors", "errors", "count"),
    ("answer_accuracy", "answer accuracy (answerable)", "rate"), ("exact_match", "SQuAD exact match", "rate"),
    ("f1", "SQuAD F1", "rate"), ("refusal_rate", "refusal rate (unanswerable)", "rate"),
    ("false_refusal_rate", "false-refusal rate (answerable)", "rate"),
    ("point_recall", "point recall (questions with points)", "rate"),
    ("answer_words_median", "answer words, median (answered)", "words"),
    ("citation_precision", "citation precision", "rate"), ("citation_validity", "citation validity", "rate"),
    ("recall@1", "recall@1", "rate"), ("recall@3", "recall@3", "rate"), ("recall@5", "recall@5", "rate"),
    ("mrr", "MRR", "rate"), ("latency_p50", "latency p50", "s"), ("latency_p95", "latency p95", "s"),
    ("ttft_p50", "first token p50", "s"), ("ttft_p95", "first token p95", "s"),
)


def _summary_table(summary: Mapping[str, Any]) -> str:
    """Metric cards; a table with "all", "one-fact" and "broad" columns when both families are present."""
    families = summary.get("by_family") or {}
    rows = [(key, label, unit) for key, label, unit in _SUMMARY_ROWS
            if key in summary and (key != "point_recall" or summary[key] is not None)]
    if all((families.get(f) or {}).get("n") for f in FAMILIES):
        columns = [summary, *(families[f] for f in FAMILIES)]
        body = "".join(f'<tr><td>{_e(label)}</td>{"".join(f"<td>{_e(_shown(c.get(key), unit))}</td>" for c in columns)}'
                       "</tr>" for key, label, unit in rows)
        return (f'<table id="summary-table"><thead><tr><th></th><th>all</th><th>one-fact</th><th>broad</th></tr>'
                f"</thead><tbody>{body}</tbody></table>")
    cells = [f'<div class="metric"><span class="v">{_e(_shown(summary[key], unit))}</span>'
             f'<span class="k">{_e(label)}</span></div>' for key, label, unit in rows]
    return f'<div class="metrics">{"".join(cells)}</div>'


def _shown(value: Any, unit: str) -> str:
    if value is None:
        return "n/a"
    return {"rate": f"{value:.1%}", "s": f"{value:.2f} s", "words": f"{value:g}"}.get(unit, str(value))


def diagnose(result: Mapping[str, Any], question: Mapping[str, Any]) -> str:
    """One line saying how a question failed, from its scores.

    >>> diagnose({"refused": True, "scores": {"evidence_rank": 2}}, {"answers": ["x"]})
    'refused, although the evidence was retrieved at rank 2'
    """
    if result.get("error"):
        return f"error: {result['error']}"
    scores = result.get("scores") or {}
    if not question.get("answers") and question_points(question) is None:
        return "answered a question the documents do not answer"
    rank = scores.get("paragraph_rank", scores.get("evidence_rank"))
    what = "its paragraph" if "paragraph_rank" in scores else "the evidence"
    where = f"{what} was retrieved at rank {rank}" if rank else f"{what} was not retrieved"
    f1 = f" (SQuAD F1 {scores['f1']:.2f})" if scores.get("f1") is not None else ""
    if result.get("refused"):
        return f"refused, although {where}" if rank else f"refused: {where}"
    points = question_points(question)
    if points is not None:
        covered = sum(points_covered(result.get("answer") or "", points))
        return f"covers {covered} of {len(points)} key points, needs {question.get('need') or 1}; {where}"
    return f"wrong answer{f1}; {where}"


def _failures_table(failures: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> str:
    head = ("<tr><th>question</th><th>answer</th><th>expected</th><th>why it failed</th>"
            "<th>retrieved passages</th></tr>")
    body = []
    for result, question in failures:
        evidence = question.get("evidence") or []
        answers, points = question.get("answers") or [], question_points(question)
        if points is not None:
            expected, answers = _points(result, question, points), [a for p in points for a in p]
        elif "answers" in question and not answers:
            expected = "<em>not answerable from the documents: should refuse</em>"
        else:
            expected = "".join(f'<span class="gold">{_e(a)}</span>' for a in answers)
            if len(answers) > 1 and question.get("need", 1) > 1:
                expected += f'<div class="small">needs {question["need"]} of these</div>'
        expected += "".join(f'<div class="evidence"><b>{_e(e["doc"])}</b>: “{_e(e["text"])}”</div>'
                            for e in evidence if e.get("text") not in answers)
        answer = ('<span class="badge">refused</span> ' if result.get("refused") else "") + _e(result.get("answer") or "")
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


def _points(result: Mapping[str, Any], question: Mapping[str, Any], points: Sequence[Sequence[str]]) -> str:
    """The key points, each marked covered or missed by the answer (a refusal covers none)."""
    covered = [False] * len(points) if result.get("refused") else points_covered(result.get("answer") or "", points)
    items = "".join(f'<li class="point {"covered" if hit else "missed"}">{"✓" if hit else "✗"} '
                    f'{" / ".join(_e(a) for a in point)}</li>' for point, hit in zip(points, covered))
    return (f'<div class="small">key points: {sum(covered)} of {len(points)} covered, needs '
            f'{question.get("need") or 1}</div><ul class="points">{items}</ul>')


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
ul.points{list-style:none;padding-left:0;margin:4px 0}li.point{margin-bottom:2px}li.covered{color:#2e8b57}
li.missed{color:#c0392b}#summary-table{width:auto}#summary-table td,#summary-table th{width:auto;text-align:right}
#summary-table td:first-child{text-align:left}
"""
