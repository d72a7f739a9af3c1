"""Tests for qa/evaluation/report.py and charts.py: the page's content as HTML, then rendered in a real headless Chromium."""

from __future__ import annotations

import doctest
import re

import pytest

from qa.evaluation import charts, report
from qa.evaluation.metrics import score_result
from qa.evaluation.report import diagnose, render_report, write_report
from qa.evaluation.summary import summarize

DOC = "Ambassador Pierre Vimont was sent to Moscow. The INF Treaty ended in 2019. Paris hosted talks."
QUESTIONS = [
    {"id": "q1", "question": "Who was sent?", "answers": ["Vimont"], "need": 1, "type": "factoid",
     "evidence": [{"doc": "a.txt", "text": "Pierre Vimont"}]},
    {"id": "q2", "question": "Which <treaty> ended?", "answers": ["INF"], "need": 1, "type": "factoid",
     "evidence": [{"doc": "a.txt", "text": "The INF Treaty ended in 2019"}]},
    {"id": "q3", "question": "Where were the talks?", "answers": ["Paris"], "need": 1, "type": "factoid",
     "evidence": [{"doc": "a.txt", "text": "Paris hosted talks"}]},
    {"id": "q4", "question": "How big is the budget?", "answers": [], "need": 0, "type": "unanswerable",
     "evidence": []},
    {"id": "q5", "question": "Which two cities?", "answers": ["Paris", "Moscow"], "need": 2, "type": "list",
     "evidence": [{"doc": "a.txt", "text": "Paris hosted talks"}]},
]


def passage(rank: int, start: int, end: int) -> dict:
    return {"rank": rank, "doc": "a.txt", "passage_id": f"a#{start}", "start": start, "end": end,
            "score": 1 / rank, "text": DOC[start:end]}


P_VIMONT, P_INF, P_PARIS = passage(1, 0, 44), passage(2, 45, 73), passage(3, 74, 93)


def make_results() -> list[dict]:
    rows = [
        {"id": "q1", "question": "Who was sent?", "answer": "Pierre Vimont [1].", "refused": False,
         "citations": [{"n": 1, "doc": "a.txt", "passage_id": "a#0", "start": 0, "end": 44, "text": DOC[:44]}],
         "passages": [P_VIMONT, P_INF], "latency_s": 2.0, "ttft_s": 0.8},
        {"id": "q2", "question": "Which <treaty> ended?", "answer": "The <script>alert(1)</script> pact [1].",
         "refused": False, "citations": [], "passages": [P_VIMONT, P_INF], "latency_s": 3.5, "ttft_s": 1.1},
        {"id": "q3", "question": "Where were the talks?", "answer": "I cannot find the answer in the documents.",
         "refused": True, "citations": [], "passages": [P_VIMONT, P_INF], "latency_s": 0.4, "ttft_s": None},
        {"id": "q4", "question": "How big is the budget?", "answer": "About 50 billion [1].", "refused": False,
         "citations": [], "passages": [P_PARIS, P_VIMONT], "latency_s": 5.0, "ttft_s": 1.5},
        {"id": "q5", "question": "Which two cities?", "answer": "", "refused": False, "citations": [],
         "passages": [], "latency_s": 0.1, "ttft_s": None, "error": "GenerationError: the model crashed"},
    ]
    by_id = {q["id"]: q for q in QUESTIONS}
    for row in rows:
        row["scores"] = score_result(row, by_id[row["id"]], {"a.txt": DOC})
    return rows


@pytest.fixture
def page_html() -> str:
    results = make_results()
    summary = summarize(results, QUESTIONS, documents={"a.txt": DOC})
    summary["settings"] = {"model": "small", "embedder": "fake"}
    return render_report(results, QUESTIONS, summary, title="Dev run")


def failure_ids(page: str) -> list[str]:
    return re.findall(r'<tr class="failure" id="q-([^"]+)"', page)


def test_docstring_examples_hold():
    failed, attempted = map(sum, zip(doctest.testmod(report), doctest.testmod(charts)))
    assert attempted >= 3 and failed == 0


def test_has_the_three_plots_as_inline_svg(page_html):
    for figure in ("plot-accuracy", "plot-latency", "plot-recall"):
        block = page_html.split(f'<figure id="{figure}">')[1].split("</figure>")[0]
        assert "<svg" in block and "no judged answers" not in block
    accuracy = page_html.split('<figure id="plot-accuracy">')[1].split("</figure>")[0]
    assert accuracy.count('class="bar"') == 4  # factoid, list, unanswerable, all questions
    assert "factoid: 33.3% of 3" in accuracy and "unanswerable: 0.0% of 1" in accuracy
    recall = page_html.split('<figure id="plot-recall">')[1].split("</figure>")[0]
    # answerable questions with evidence: q1 rank 1, q2 rank 2, q3 missed, q5 missed (no passages)
    assert "recall@1: 25.0% of 4" in recall and "recall@2: 50.0% of 4" in recall
    latency = page_html.split('<figure id="plot-latency">')[1].split("</figure>")[0]
    assert "p50 2.00 s" in latency and "p95 4.70 s" in latency and "first token p50 1.10 s" in latency


def test_failures_table_lists_every_failure_with_why(page_html):
    assert failure_ids(page_html) == ["q2", "q3", "q4", "q5"]
    rows = dict(zip(failure_ids(page_html), page_html.split('<tr class="failure"')[1:]))
    assert "wrong answer; the evidence was retrieved at rank 2" in rows["q2"]
    assert "refused: the evidence was not retrieved" in rows["q3"]
    assert "answered a question the documents do not answer" in rows["q4"]
    assert "error: GenerationError: the model crashed" in rows["q5"]
    assert "needs 2 of these" in rows["q5"]
    assert '<span class="gold">INF</span>' in rows["q2"]
    assert "<mark>The INF Treaty ended in 2019</mark>" in rows["q2"]
    assert "evidence at rank 2" in rows["q2"]


def test_everything_from_the_run_is_escaped(page_html):
    assert "<script>" not in page_html and "<treaty>" not in page_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page_html and "Which &lt;treaty&gt; ended?" in page_html


def test_page_needs_nothing_from_outside(page_html):
    assert "<script" not in page_html and "<link" not in page_html and "<img" not in page_html
    assert "@import" not in page_html and "url(" not in page_html
    assert set(re.findall(r"https?://[^\s\"'<>]+", page_html)) == {"http://www.w3.org/2000/svg"}


def test_without_gold_or_failures_the_page_still_renders():
    results = [{"id": "x", "question": "Who?", "answer": "Someone.", "refused": False, "citations": [],
                "passages": [], "latency_s": 1.0, "ttft_s": 0.5, "scores": {"correct": None}}]
    page = render_report(results, [{"id": "x", "question": "Who?"}], summarize(results, []))
    assert "no judged answers" in page and "no questions with evidence to find" in page
    assert "No failures." in page and failure_ids(page) == []


def test_write_report_writes_one_file(tmp_path):
    path = write_report(tmp_path / "rep", make_results(), QUESTIONS, {"n": 5})
    assert path == tmp_path / "rep" / "index.html"
    assert [p.name for p in (tmp_path / "rep").iterdir()] == ["index.html"]
    assert path.read_text(encoding="utf-8").startswith("<!doctype html>")


@pytest.mark.parametrize(
    ("result", "question", "expected"),
    [
        ({"error": "X: y"}, {"answers": ["a"]}, "error: X: y"),
        ({"refused": False, "scores": {}}, {"answers": []}, "answered a question the documents do not answer"),
        ({"refused": True, "scores": {"evidence_rank": None}}, {"answers": ["a"]},
         "refused: the evidence was not retrieved"),
        ({"refused": False, "scores": {"evidence_rank": 3}}, {"answers": ["a"]},
         "wrong answer; the evidence was retrieved at rank 3"),
        ({"refused": False, "scores": {"paragraph_rank": None}}, {"answers": ["a"]},
         "wrong answer; its paragraph was not retrieved"),
    ],
)
def test_diagnose(result, question, expected):
    assert diagnose(result, question) == expected


# --- broad questions -------------------------------------------------------------------------------

BROAD = [
    {"id": "b1", "question": "Which cities and what?", "answers": ["Paris", "Moscow", "INF"], "need": 2,
     "points": [["Paris"], ["Moscow", "Russian capital"], ["INF", "treaty"]], "type": "list",
     "evidence": [{"doc": "a.txt", "text": "Paris hosted talks"}]},
    {"id": "b2", "question": "Why were talks held?", "answers": ["Vimont", "Moscow"], "need": 1,
     "points": [["Vimont"], ["Moscow"]], "type": "explain", "evidence": [{"doc": "a.txt", "text": "Pierre Vimont"}]},
]


def broad_page() -> tuple[str, list[dict]]:
    results = make_results()[:2] + [  # q1 right, q2 wrong (one-fact); b1 one point of three, b2 two of two
        {"id": "b1", "question": "Which cities and what?", "answer": "Talks in PARIS [1].", "refused": False,
         "citations": [], "passages": [P_PARIS], "latency_s": 6.0, "ttft_s": 2.0},
        {"id": "b2", "question": "Why were talks held?", "answer": "Vimont went to Moscow [1].", "refused": False,
         "citations": [], "passages": [P_VIMONT], "latency_s": 8.0, "ttft_s": 3.0},
    ]
    questions = QUESTIONS[:2] + BROAD
    by_id = {q["id"]: q for q in questions}
    for row in results[2:]:
        row["scores"] = score_result(row, by_id[row["id"]], {"a.txt": DOC})
    summary = summarize(results, questions, documents={"a.txt": DOC})
    return render_report(results, questions, summary), results


def test_summary_has_a_column_per_family_when_both_are_present():
    page, _ = broad_page()
    table = page.split('<table id="summary-table">')[1].split("</table>")[0]
    assert "<th>all</th><th>one-fact</th><th>broad</th>" in table
    rows = {re.sub(r"<.*?>", "", cells[0]): [re.sub(r"<.*?>", "", c) for c in cells[1:]]
            for cells in (re.findall(r"<td>.*?</td>", row) for row in re.findall(r"<tr><td>.*?</tr>", table))}
    assert rows["answer accuracy (answerable)"] == ["50.0%", "50.0%", "50.0%"]  # q1, b2 right of four
    assert rows["point recall (questions with points)"] == ["66.7%", "n/a", "66.7%"]  # (1/3 + 2/2) / 2
    # one-fact 2 and 3 ("<script>alert(1)</script>" is one word), broad 3 and 4
    assert rows["answer words, median (answered)"] == ["3", "2.5", "3.5"]


def test_one_family_keeps_the_metric_cards(page_html):
    assert 'id="summary-table"' not in page_html and '<div class="metrics">' in page_html
    assert "answer words, median (answered)" in page_html and "point recall" not in page_html


def test_failures_show_the_points_covered_and_missed():
    page, _ = broad_page()
    assert failure_ids(page) == ["q2", "b1"]
    row = page.split('<tr class="failure" id="q-b1">')[1].split("</tr>")[0]
    assert "key points: 1 of 3 covered, needs 2" in row
    assert '<li class="point covered">✓ Paris</li>' in row
    assert '<li class="point missed">✗ Moscow / Russian capital</li>' in row
    assert '<li class="point missed">✗ INF / treaty</li>' in row
    assert "covers 1 of 3 key points, needs 2; the evidence was retrieved at rank 1" in row


def test_accuracy_chart_keeps_broad_and_one_fact_lists_apart():
    questions = [QUESTIONS[4], BROAD[0]]  # a one-fact list and a broad one
    rows = [({"scores": {"correct": False}}, questions[0]), ({"scores": {"correct": True}}, questions[1])]
    chart = charts.accuracy_chart(rows)
    assert "list: 0.0% of 1" in chart and "broad list: 100.0% of 1" in chart


def test_diagnose_a_refused_broad_question():
    scores = {"evidence_rank": 2, "points_covered": 0}
    assert diagnose({"refused": True, "scores": scores}, BROAD[1]) == \
        "refused, although the evidence was retrieved at rank 2"


# --- in a real browser -----------------------------------------------------------------------------


@pytest.mark.browser
def test_report_renders_in_chromium(browser, tmp_path, page_html):
    path = tmp_path / "index.html"
    path.write_text(page_html, encoding="utf-8")
    requests = []
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri())
        for figure in ("#plot-accuracy", "#plot-latency", "#plot-recall"):
            box = page.locator(f"{figure} svg").bounding_box()
            assert box and box["width"] > 300 and box["height"] > 40, figure
        assert page.locator("#plot-accuracy rect.bar").count() == 4
        assert page.locator("#plot-latency rect.bar").count() == 12
        assert page.locator("#plot-recall polyline.curve").count() == 1
        widths = [page.locator("#plot-accuracy rect.bar").nth(i).bounding_box()["width"] for i in range(4)]
        assert widths[2] < 5 < widths[0]  # unanswerable 0%, factoid 33%
        rows = page.locator("#failures-table tbody tr")
        assert rows.count() == 4
        assert page.locator("#failures h2").inner_text() == "Failures (4 of 5)"
        first = rows.first
        assert not first.locator("ol").is_visible()  # passages start folded
        first.locator("details summary").click()
        assert first.locator("ol li").count() == 2 and first.locator("mark").first.is_visible()
        assert "wrong answer" in first.locator("td.why").inner_text()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    finally:
        page.close()
    assert requests == [path.as_uri()]
    assert (tmp_path / "report.png").stat().st_size > 10_000


@pytest.mark.browser
def test_chart_labels_stay_inside_their_plot(browser, tmp_path):
    """A 1,000-question run once showed its "n=1000" clipped to "n=100" at the plot's right edge."""
    rows = [({"scores": {"correct": True}}, {"type": "answerable"}) for _ in range(1000)]
    rows += [({"scores": {"correct": i % 2 == 0}}, {"type": "unanswerable"}) for i in range(10000)]
    path = tmp_path / "chart.html"
    path.write_text(f"<!doctype html><html><body>{charts.accuracy_chart(rows)}</body></html>", encoding="utf-8")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(path.as_uri())
        plot = page.locator("svg").bounding_box()
        texts = page.locator("svg text")
        labels = [texts.nth(i).inner_html() for i in range(texts.count())]
        assert any("n=10000" in label for label in labels) and any("100%" in label for label in labels)
        for i in range(texts.count()):
            box = texts.nth(i).bounding_box()
            assert box["x"] >= plot["x"] and box["x"] + box["width"] <= plot["x"] + plot["width"], labels[i]
    finally:
        page.close()
