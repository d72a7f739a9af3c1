"""Tests for qa/evaluation/metrics.py and summary.py: hand-made cases with hand-computed expected values."""

from __future__ import annotations

import doctest
import json
import re
from pathlib import Path

import numpy as np
import pytest

from qa.citation.claims import strip_citations
from qa.evaluation import metrics, summary
from qa.evaluation.metrics import (
    answer_correct,
    citation_supports,
    citation_valid,
    evidence_rank,
    normalize_evidence,
    normalize_text,
    score_result,
)
from qa.evaluation.summary import format_summary_table, mrr, percentile, recall_at_k, summarize

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "eval" / "dev.jsonl"


def test_docstring_examples_hold():
    failed, attempted = map(sum, zip(doctest.testmod(metrics), doctest.testmod(summary)))
    assert attempted > 20
    assert failed == 0


# --- normalisation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        (" \t\n\u00a0 ", ""),
        ("Pierre VIMONT", "pierre vimont"),
        ("Élysée", "elysee"),
        ("São Paulo, Zürich", "sao paulo zurich"),
        ("Straße", "strasse"),
        ("ﬁnal", "final"),  # NFKC ligature
        ("“brain death”", "brain death"),
        ("Zelensky’s victory", "zelensky s victory"),
        ("Zelensky's victory", "zelensky s victory"),
        ("CC\u00a0BY\u00a04.0", "cc by 4 0"),
        ("the U.S. and", "the u s and"),
        ("less on the U.S", "less on the u s"),
        ("155mm", "155 mm"),
        ("155-mm rounds", "155 mm rounds"),
        ("humil\u00adiating", "humiliating"),  # soft hyphen is deleted, not spaced
        ("zero\u200bwidth", "zerowidth"),
        ("Ça va?!  (oui)", "ca va oui"),
        ("line one\nline two", "line one line two"),
    ],
)
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("   ", ""),
        ("a CC\u00a0BY 4.0  license", "a CC BY 4.0 license"),
        ("two\n\n lines ", "two lines"),
        ("“Curly” stays", "“Curly” stays"),  # NFKC does not straighten quotes
        ("ﬁ", "fi"),
    ],
)
def test_normalize_evidence(text, expected):
    assert normalize_evidence(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("   ", ""),
        ("[2]", ""),
        ("Pierre Vimont [1].", "Pierre Vimont."),
        ("Pierre Vimont[1].", "Pierre Vimont."),
        ("Vimont [1, 2] and Faure [3]", "Vimont and Faure"),
        ("Vimont [1][2].", "Vimont."),
        ("Vimont [1-3]; Faure [ 4 ]!", "Vimont; Faure!"),
        ("In 2019 [1] , he left", "In 2019, he left"),
        ("See [note] and [a]", "See [note] and [a]"),
        ("First [1].\nSecond [2].", "First.\nSecond."),
    ],
)
def test_strip_citations(text, expected):
    assert strip_citations(text) == expected


# --- answers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "answers", "need", "expected"),
    [
        ("Pierre Vimont [1].", ["Pierre Vimont", "Vimont"], 1, True),
        ("", ["Vimont"], 1, False),
        ("   ", ["Vimont"], 1, False),
        ("I cannot find the answer in the documents.", ["Vimont"], 1, False),
        ("He cautioned against humiliating Russia [2].", ["humiliat"], 1, True),
        ("It depends less on the U.S. and more on Europe.", ["less on the U.S"], 1, True),
        ("Putin sees the U.S. as his counterpart.", ["U.S.", "United States"], 1, True),
        ("A million 155-mm shells.", ["155mm"], 1, True),
        ("The ÉLYSÉE said so.", ["Elysee"], 1, True),
        ("Elysee", ["Élysée"], 1, True),
        ("He spoke of “brain death”.", ["brain death"], 1, True),
        ("Shared under CC\u00a0BY\u00a04.0.", ["CC BY 4.0"], 1, True),
        ("Shared under CC BY 3.0.", ["CC BY 4.0"], 1, False),
        ("A deficit of credibility and of means.", ["credibility", "means"], 2, True),
        ("A deficit of credibility [1].", ["credibility", "means"], 2, False),
        ("arms control, terrorism", ["arms control", "terrorism", "cybersecurity", "space"], 2, True),
        ("The U.S.", ["U.S.", "U.S", "u s"], 2, False),  # one normalised string, counted once
        ("[2]", ["2"], 1, False),  # a citation marker is not an answer
        ("It has 2 parts [1].", ["2"], 1, True),
        ("Anything", ["", "..."], 1, False),  # accepted strings that normalise to nothing never match
        ("Anything", [], 1, False),
    ],
)
def test_answer_correct(answer, answers, need, expected):
    assert answer_correct(answer, answers, need) is expected


@pytest.mark.parametrize("need", [0, -1])
def test_answer_correct_rejects_need_below_one(need):
    with pytest.raises(ValueError, match=f"need must be >= 1, got {need}"):
        answer_correct("Vimont", ["Vimont"], need)


# --- citations -------------------------------------------------------------------------------------

DOC_A = "Ambassador Pierre Vimont led the talks. A deficit of credibility and of means remains."
DOC_B = "Since the annexation of Crimea in 2014, the EU combined sanctions\u00a0with dialogue."
DOCS = {"a.txt": DOC_A, "b.txt": DOC_B}


def _cite(doc: str, text: str, *, shift: int = 0, n: int = 1) -> dict:
    start = DOCS[doc].index(text) + shift
    end = start + len(text)
    return {"n": n, "doc": doc, "passage_id": f"{doc}#p", "start": start, "end": end, "text": text}


def _span(doc: str, text: str) -> dict:
    """A citation or passage reduced to what support and rank look at."""
    return {"doc": doc, "text": text}


@pytest.mark.parametrize(
    ("citation", "expected"),
    [
        ({"doc": "a.txt", "start": 11, "end": 24, "text": "Pierre Vimont"}, True),
        ({"doc": "a.txt", "start": 0, "end": len(DOC_A), "text": DOC_A}, True),
        ({"doc": "a.txt", "start": 12, "end": 25, "text": "Pierre Vimont"}, False),  # shifted
        ({"doc": "a.txt", "start": 11, "end": 24, "text": "pierre vimont"}, False),  # exact, not normalised
        ({"doc": "c.txt", "start": 11, "end": 24, "text": "Pierre Vimont"}, False),  # unknown doc
        ({"doc": "a.txt", "start": 11, "end": 11, "text": ""}, False),  # empty span
        ({"doc": "a.txt", "start": 80, "end": 200, "text": DOC_A[80:]}, False),  # end past the text
        ({"doc": "a.txt", "start": -5, "end": len(DOC_A), "text": DOC_A[-5:]}, False),
        ({"doc": "a.txt", "start": "11", "end": "24", "text": "Pierre Vimont"}, False),
        ({"doc": "a.txt", "text": "Pierre Vimont"}, False),  # no offsets
        (_cite("b.txt", "sanctions\u00a0with"), True),
        ({**_cite("b.txt", "sanctions\u00a0with"), "text": "sanctions with"}, False),  # NBSP != space
    ],
)
def test_citation_valid(citation, expected):
    assert citation_valid(citation, DOCS) is expected


EVIDENCE_A = [{"doc": "a.txt", "text": "Ambassador Pierre Vimont"}]
EVIDENCE_LONG = [{"doc": "a.txt", "text": "A deficit of credibility and of means"}]  # 7 tokens, 4 needed


@pytest.mark.parametrize(
    ("citation", "evidence", "expected"),
    [
        ({"doc": "a.txt", "text": "Ambassador Pierre Vimont led the talks."}, EVIDENCE_A, True),
        ({"doc": "a.txt", "text": "AMBASSADOR   pierre\u00a0Vimont"}, EVIDENCE_A, True),
        ({"doc": "a.txt", "text": "Pierre Vimont"}, EVIDENCE_A, True),  # inside, 2 of 3
        ({"doc": "a.txt", "text": "Vimont"}, EVIDENCE_A, False),  # inside, 1 of 3
        ({"doc": "a.txt", "text": "He sent Ambassador Pierre"}, EVIDENCE_A, True),  # ends with 2 of 3
        ({"doc": "a.txt", "text": "He sent Ambassador"}, EVIDENCE_A, False),  # ends with 1 of 3
        ({"doc": "a.txt", "text": "Pierre met the Ambassador Vimont"}, EVIDENCE_A, False),  # scattered words
        ({"doc": "b.txt", "text": "Ambassador Pierre Vimont"}, EVIDENCE_A, False),  # other doc
        ({"doc": "seeds/a.txt", "text": "Ambassador Pierre Vimont"}, EVIDENCE_A, True),  # path vs file name
        (_span("x/a.txt", "Ambassador Pierre Vimont"), [_span("x/a.txt", "Pierre Vimont")], True),
        (_span("x/a.txt", "Ambassador Pierre Vimont"), [_span("y/a.txt", "Pierre Vimont")], False),
        ({"doc": "a.txt", "text": ""}, EVIDENCE_A, False),
        (_span("a.txt", "credibility and of means remains."), EVIDENCE_LONG, True),  # starts with 4 of 7
        ({"doc": "a.txt", "text": "and of means remains."}, EVIDENCE_LONG, False),  # starts with 3 of 7
        ({"doc": "a.txt", "text": "deficit of credibility and"}, EVIDENCE_LONG, True),  # inside, 4 of 7
        ({"doc": "a.txt", "text": "of credibility and"}, EVIDENCE_LONG, False),  # inside, 3 of 7
        ({"doc": "a.txt", "text": "Vimont"}, EVIDENCE_A + [{"doc": "a.txt", "text": "Vimont led"}], True),
    ],
)
def test_citation_supports(citation, evidence, expected):
    assert citation_supports(citation, evidence) is expected


def test_citation_supports_is_none_without_evidence():
    assert citation_supports({"doc": "a.txt", "text": "Ambassador Pierre Vimont"}, []) is None


# --- retrieval -------------------------------------------------------------------------------------

EVIDENCE_SPLIT = [
    _span(
        "a.txt",
        "supercharging European defense, depending less on the U.S. "
        "and establishing a new dynamic with Russia",
    )
]  # 17 tokens; a passage needs 9 of them


@pytest.mark.parametrize(
    ("passages", "evidence", "expected"),
    [
        ([], EVIDENCE_A, None),
        ([{"doc": "a.txt", "text": "Nothing here."}], EVIDENCE_A, None),
        ([_span("a.txt", "x"), _span("a.txt", "Ambassador Pierre Vimont led.")], EVIDENCE_A, 2),
        ([_span("b.txt", "Ambassador Pierre Vimont"), _span("a.txt", "Ambassador Pierre")], EVIDENCE_A, 2),
        ([{"doc": "a.txt", "text": "Ambassador Pierre Vimont"}], [], None),
        (
            [  # the fragment is cut between two passages: 6 tokens in the first, 11 in the third
                {"doc": "a.txt", "text": "He has been supercharging European defense, depending less on"},
                {"doc": "a.txt", "text": "Unrelated text."},
                {"doc": "a.txt", "text": "the U.S. and establishing a new dynamic with Russia. Then more."},
            ],
            EVIDENCE_SPLIT,
            3,
        ),
        (
            [{"doc": "b.txt", "text": "Crimea"}, {"doc": "a.txt", "text": "Vimont"}],
            EVIDENCE_A + [{"doc": "b.txt", "text": "Crimea"}],
            1,
        ),
    ],
)
def test_evidence_rank(passages, evidence, expected):
    assert evidence_rank(passages, evidence) == expected


@pytest.mark.parametrize(
    ("ranks", "k", "expected"),
    [
        ([1, 3, None, 2], 1, 0.25),
        ([1, 3, None, 2], 3, 0.75),
        ([1, 3, None, 2], 5, 0.75),
        ([None, None], 5, 0.0),
        ([6], 5, 0.0),
        ([], 5, None),
    ],
)
def test_recall_at_k(ranks, k, expected):
    assert recall_at_k(ranks, k) == expected


def test_recall_at_k_rejects_k_below_one():
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        recall_at_k([1], 0)


@pytest.mark.parametrize(
    ("ranks", "expected"),
    [([1, 3, None, 2], (1 + 1 / 3 + 0 + 1 / 2) / 4), ([1], 1.0), ([None], 0.0), ([4, 4], 0.25)],
)
def test_mrr(ranks, expected):
    assert mrr(ranks) == pytest.approx(expected)


def test_mrr_is_none_without_ranks():
    assert mrr([]) is None


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1, 2, 3, 4], 50, 2.5),
        ([1, 2, 3, 4], 95, 3.85),
        ([1, 2, 3, 4], 0, 1.0),
        ([1, 2, 3, 4], 100, 4.0),
        ([4.0, None, 1.0, 3.0, 2.0, None], 50, 2.5),
        ([7.5], 95, 7.5),
    ],
)
def test_percentile(values, q, expected):
    assert percentile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize("values", [[], [None, None]])
def test_percentile_is_none_without_values(values):
    assert percentile(values, 50) is None


@pytest.mark.parametrize("q", [5, 25, 50, 90, 95, 99])
def test_percentile_agrees_with_numpy(q):
    values = [0.3, 9.1, 2.2, 4.4, 4.4, 7.0, 1.5]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_rejects_q_out_of_range(q):
    with pytest.raises(ValueError, match="q must be in"):
        percentile([1.0], q)


# --- per question and summary ----------------------------------------------------------------------

PARA_A = {"rank": 1, "doc": "a.txt", "passage_id": "a#0", "start": 0, "end": len(DOC_A), "score": 0.9,
          "text": DOC_A}
PARA_B = {"rank": 1, "doc": "b.txt", "passage_id": "b#0", "start": 0, "end": len(DOC_B), "score": 0.8,
          "text": DOC_B}

QUESTIONS = [
    {"id": "q1", "question": "Who?", "answers": ["Pierre Vimont", "Vimont"], "need": 1,
     "evidence": EVIDENCE_A, "type": "factoid"},
    {"id": "q2", "question": "Which two gaps?", "answers": ["credibility", "means"], "need": 2,
     "evidence": EVIDENCE_LONG, "type": "list"},
    {"id": "q3", "question": "Since when?", "answers": ["2014"], "need": 1,
     "evidence": [{"doc": "b.txt", "text": "Since the annexation of Crimea in 2014"}], "type": "factoid"},
    {"id": "q4", "question": "Budget?", "answers": [], "need": 0, "evidence": [], "type": "unanswerable"},
    {"id": "q5", "question": "Troops?", "answers": [], "need": 0, "evidence": [], "type": "unanswerable"},
    {"id": "q6", "question": "No gold fields here"},
]
REFUSAL = "I cannot find the answer in the documents."
RESULTS = [
    {"id": "q1", "answer": "Pierre Vimont [1].", "refused": False, "latency_s": 2.0, "ttft_s": 0.5,
     "citations": [_cite("a.txt", "Ambassador Pierre Vimont led the talks."),
                   _cite("b.txt", "the EU combined", n=2)],
     "passages": [PARA_B, {**PARA_A, "rank": 2}]},
    {"id": "q2", "answer": "A deficit of credibility [1].", "refused": False, "latency_s": 4.0, "ttft_s": 1.0,
     "citations": [_cite("a.txt", "A deficit of credibility and of means remains.", shift=1)],
     "passages": [PARA_A]},
    {"id": "q3", "answer": REFUSAL, "refused": True, "latency_s": 1.0, "ttft_s": None,
     "citations": [_cite("b.txt", "Since the annexation of Crimea in 2014")], "passages": [PARA_A]},
    {"id": "q4", "answer": REFUSAL, "refused": True, "latency_s": 3.0, "ttft_s": 0.7, "citations": [],
     "passages": [PARA_B]},
    {"id": "q5", "answer": "About 2,000 troops [1].", "refused": False, "latency_s": 5.0, "ttft_s": 0.9,
     "citations": [_cite("a.txt", "Pierre Vimont")], "passages": [PARA_A]},
    {"id": "q6", "answer": "", "refused": False, "latency_s": None, "ttft_s": None, "citations": [],
     "passages": [], "error": "generator crashed"},
]


def _scores(correct, refused, false_refusal, validity, precision, rank, words, points=(None, None, None)):
    return {"correct": correct, "refused": refused, "false_refusal": false_refusal,
            "citation_validity": validity, "citation_precision": precision, "evidence_rank": rank,
            "points_covered": points[0], "points_total": points[1], "point_recall": points[2],
            "answer_words": words}


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (0, _scores(True, False, False, 1.0, 0.5, 2, 2)),  # 2 valid citations, 1 supports; evidence in passage 2
        (1, _scores(False, False, False, 0.0, 1.0, 1, 4)),  # 1 of 2 list items; offsets off, text supports
        (2, _scores(False, True, True, 1.0, None, None, 8)),  # refused: no precision; evidence not retrieved
        (3, _scores(True, True, None, None, None, None, 8)),  # unanswerable, refused
        (4, _scores(False, False, None, 1.0, None, None, 3)),  # unanswerable, answered: no precision to score
        (5, _scores(None, False, None, None, None, None, 0)),  # no gold fields
    ],
)
def test_score_result(index, expected):
    assert score_result(RESULTS[index], QUESTIONS[index], DOCS) == expected


def test_score_result_without_documents_has_no_validity():
    assert score_result(RESULTS[0], QUESTIONS[0], None)["citation_validity"] is None
    assert score_result(RESULTS[0], QUESTIONS[0])["citation_precision"] == 0.5


def test_score_result_refused_answer_containing_gold_is_wrong():
    result = {"answer": f"Vimont? {REFUSAL}", "refused": True, "citations": []}
    assert score_result(result, QUESTIONS[0])["correct"] is False


def test_score_result_tolerates_missing_result_fields():
    assert score_result({"id": "q1"}, QUESTIONS[0]) == _scores(False, False, False, None, None, None, 0)


EXPECTED_SUMMARY = {
    "n": 6,
    "n_answerable": 3,
    "n_unanswerable": 2,
    "answer_accuracy": 1 / 3,  # q1 right; q2 half a list; q3 refused
    "refusal_rate": 1 / 2,  # q4 refused, q5 answered
    "false_refusal_rate": 1 / 3,  # q3
    "n_citations": 5,
    "citation_precision": 2 / 3,  # q1: 1 of 2, q2: 1 of 1; q3 (refused) and q5 (unanswerable) not scored
    "citation_validity": 4 / 5,  # q1: 2, q2: 0 (shifted), q3: 1, q5: 1
    "recall@1": 1 / 3,  # ranks 2, 1, None
    "recall@3": 2 / 3,
    "recall@5": 2 / 3,
    "mrr": (1 / 2 + 1 + 0) / 3,
    "latency_p50": 3.0,  # of 1, 2, 3, 4, 5
    "latency_p95": 4.8,  # position 3.8
    "ttft_p50": 0.8,  # of 0.5, 0.7, 0.9, 1.0: position 1.5
    "ttft_p95": 0.985,  # position 2.85
    "n_errors": 1,
    "accuracy_by_type": {"factoid": 0.5, "list": 0.0, "unanswerable": 0.5},
    "point_recall": None,  # no question has points
    "answer_words_median": 3.0,  # answered: q1 2 words, q2 4, q5 3 (q3, q4 refused; q6 an error)
    "by_type": {
        "factoid": {"n": 2, "accuracy": 0.5, "point_recall": None, "answer_words_median": 2.0},  # q3 refused
        "list": {"n": 1, "accuracy": 0.0, "point_recall": None, "answer_words_median": 4.0},
        "unanswerable": {"n": 2, "accuracy": 0.5, "point_recall": None, "answer_words_median": 3.0},
        "untyped": {"n": 1, "accuracy": None, "point_recall": None, "answer_words_median": None},
    },
}
EMPTY_BLOCK = {
    "n": 0, "n_answerable": 0, "n_unanswerable": 0, "answer_accuracy": None, "refusal_rate": None,
    "false_refusal_rate": None, "n_citations": 0, "citation_precision": None, "citation_validity": None,
    "recall@1": None, "recall@3": None, "recall@5": None, "mrr": None, "latency_p50": None, "latency_p95": None,
    "ttft_p50": None, "ttft_p95": None, "n_errors": 0, "accuracy_by_type": {}, "point_recall": None,
    "answer_words_median": None, "by_type": {},
}
EXPECTED_SUMMARY["by_family"] = {"one_fact": dict(EXPECTED_SUMMARY), "broad": EMPTY_BLOCK}  # all one-fact


def _assert_summary(actual: dict, expected: dict) -> None:
    assert list(actual) == list(expected)
    for key, value in expected.items():
        if isinstance(value, dict):
            _assert_summary(actual[key], value)
        else:
            assert actual[key] == pytest.approx(value), key


def test_summarize():
    _assert_summary(summarize(RESULTS, QUESTIONS, documents=DOCS), EXPECTED_SUMMARY)


def test_summarize_matches_results_to_questions_by_id():
    _assert_summary(summarize(RESULTS[::-1], QUESTIONS, documents=DOCS), EXPECTED_SUMMARY)


def test_summarize_without_documents_or_gold():
    summary = summarize(RESULTS, QUESTIONS)
    assert summary["citation_validity"] is None
    assert summary["citation_precision"] == pytest.approx(2 / 3)
    bare_result = {"id": "x", "answer": "hi", "refused": False, "latency_s": 1.0, "error": None}
    bare = summarize([bare_result], [{"id": "x", "question": "?"}])
    assert bare["n"] == 1 and bare["n_answerable"] == 0 and bare["n_unanswerable"] == 0
    assert bare["n_errors"] == 0  # an empty error field is no error
    rates = ("answer_accuracy", "refusal_rate", "false_refusal_rate", "citation_precision", "recall@1", "mrr")
    for key in rates:
        assert bare[key] is None, key
    assert bare["latency_p50"] == 1.0 and bare["ttft_p50"] is None
    assert bare["accuracy_by_type"] == {}


def test_summarize_empty():
    summary = summarize([], [])
    assert summary["n"] == 0 and summary["n_errors"] == 0 and summary["answer_accuracy"] is None


def test_format_summary_table():
    table = format_summary_table(summarize(RESULTS, QUESTIONS, documents=DOCS))
    lines = table.splitlines()
    rows = dict((label.strip(), value) for label, value in (line.rsplit("   ", 1) for line in lines))
    assert rows["questions"] == "6"
    assert rows["answer accuracy"] == "0.333"
    assert rows["citation validity"] == "0.800"
    assert rows["latency p95"] == "4.80 s"
    assert rows["first token p50"] == "0.80 s"
    assert rows["accuracy: factoid"] == "0.500"
    assert len({len(line) - len(line.rsplit("   ", 1)[1]) for line in lines}) == 1  # values share a column


def test_format_summary_table_shows_missing_values():
    table = format_summary_table(summarize([], []))
    assert "answer accuracy" in table and "n/a" in table


# --- one-fact and broad questions together ---------------------------------------------------------

MIXED_QUESTIONS = [
    {"id": "f1", "question": "Who?", "answers": ["Vimont"], "need": 1, "type": "factoid"},
    {"id": "f2", "question": "Budget?", "answers": [], "need": 0, "type": "unanswerable"},
    {"id": "b1", "question": "Which subjects?", "answers": ["frozen conflicts", "arms control", "space"],
     "points": [["frozen conflicts"], ["arms control"], ["space"]], "need": 2, "type": "list"},
    {"id": "b2", "question": "Why?", "answers": ["dialogue", "trust"], "points": [["dialogue"], ["trust"]],
     "need": 1, "type": "explain"},
    {"id": "b3", "question": "Summarise.", "answers": ["credibility", "means", "European defense", "less on the U.S"],
     "points": [["credibility"], ["means"], ["European defense", "defence"], ["less on the U.S"]], "need": 2,
     "type": "summary"},
]
MIXED_RESULTS = [
    {"id": "f1", "answer": "Pierre Vimont [1].", "refused": False, "latency_s": 1.0, "ttft_s": 0.2},
    {"id": "f2", "answer": REFUSAL, "refused": True, "latency_s": 3.0, "ttft_s": 0.4},
    {"id": "b1", "answer": "Frozen conflicts and arms control [1].", "refused": False, "latency_s": 10.0,
     "ttft_s": 2.0},  # 2 of 3 points, 5 words
    {"id": "b2", "answer": REFUSAL, "refused": True, "latency_s": 2.0, "ttft_s": None},  # 0 of 2
    {"id": "b3", "answer": "Credibility, means and European defense, with a long explanation of why it matters [1][2].",
     "refused": False, "latency_s": 20.0, "ttft_s": 4.0},  # 3 of 4 points, 13 words
]


def test_summarize_splits_one_fact_and_broad_questions():
    s = summarize(MIXED_RESULTS, MIXED_QUESTIONS)
    assert s["n"] == 5 and s["answer_accuracy"] == pytest.approx(3 / 4)  # f1, b1, b3 of f1, b1, b2, b3
    assert s["point_recall"] == pytest.approx((2 / 3 + 0 + 3 / 4) / 3)
    assert s["answer_words_median"] == 5.0  # of 2, 5, 13 (f2 and b2 refused)
    one, broad = s["by_family"]["one_fact"], s["by_family"]["broad"]
    assert (one["n"], one["n_answerable"], one["n_unanswerable"]) == (2, 1, 1)
    assert (broad["n"], broad["n_answerable"], broad["n_unanswerable"]) == (3, 3, 0)
    assert one["answer_accuracy"] == 1.0 and one["refusal_rate"] == 1.0 and one["false_refusal_rate"] == 0.0
    assert one["point_recall"] is None and one["answer_words_median"] == 2.0
    assert broad["answer_accuracy"] == pytest.approx(2 / 3) and broad["refusal_rate"] is None
    assert broad["false_refusal_rate"] == pytest.approx(1 / 3)
    assert broad["point_recall"] == pytest.approx(17 / 36)
    assert broad["answer_words_median"] == 9.0  # of 5 and 13
    assert broad["latency_p50"] == 10.0 and broad["latency_p95"] == pytest.approx(19.0)  # of 2, 10, 20
    assert broad["ttft_p50"] == 3.0 and broad["ttft_p95"] == pytest.approx(3.9)  # of 2, 4
    assert one["latency_p50"] == 2.0 and one["ttft_p95"] == pytest.approx(0.39)
    assert s["accuracy_by_type"] == {"broad list": 1.0, "explain": 0.0, "factoid": 1.0, "summary": 1.0,
                                     "unanswerable": 1.0}
    assert broad["by_type"]["explain"] == {"n": 1, "accuracy": 0.0, "point_recall": 0.0, "answer_words_median": None}
    assert broad["by_type"]["summary"]["point_recall"] == 0.75
    assert list(broad["by_type"]) == ["broad list", "explain", "summary"]


def test_format_summary_table_puts_the_families_side_by_side():
    table = format_summary_table(summarize(MIXED_RESULTS, MIXED_QUESTIONS))
    lines = table.splitlines()
    cells = {re.split(r" {3,}", line.strip())[0]: re.split(r" {3,}", line.strip())[1:] for line in lines[1:]}
    assert re.split(r" {3,}", lines[0].strip()) == ["all", "one-fact", "broad"]
    assert cells["questions"] == ["5", "2", "3"]
    assert cells["answer accuracy"] == ["0.750", "1.000", "0.667"]
    assert cells["refusal rate"] == ["1.000", "1.000", "n/a"]
    assert cells["point recall"] == ["0.472", "n/a", "0.472"]
    assert cells["answer words, median (answered)"] == ["5", "2", "9"]
    assert cells["latency p50"] == ["3.00 s", "2.00 s", "10.00 s"]
    assert cells["accuracy: factoid"] == ["1.000", "1.000"]  # not a broad type: the broad column is blank
    assert cells["accuracy: broad list"][0] == "1.000"
    header_at = [lines[0].index(name) for name in ("all", "one-fact", "broad")]
    value_at = [m.start() for m in re.finditer(r"\S+", lines[1])][1:]  # "questions 5 2 3"
    assert value_at == header_at  # the values stand under their column names


def test_format_summary_table_has_one_column_for_one_family():
    table = format_summary_table(summarize(MIXED_RESULTS[2:], MIXED_QUESTIONS))  # broad questions only
    assert "one-fact" not in table and re.search(r"^point recall +0\.472$", table, re.MULTILINE)


# --- the development set ---------------------------------------------------------------------------


@pytest.mark.skipif(not DEV.exists(), reason=f"{DEV} not found")
def test_dev_answers_occur_in_their_own_evidence():
    for line in DEV.read_text(encoding="utf-8").splitlines():
        q = json.loads(line)
        if q["answers"]:
            evidence = " ".join(e["text"] for e in q["evidence"])
            assert answer_correct(evidence, q["answers"], q["need"]), q["id"]
            assert citation_supports(_span(q["evidence"][0]["doc"], evidence), q["evidence"]), q["id"]
