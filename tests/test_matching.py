"""Tests for qa/evaluation/matching.py and the key points of broad questions: coverage, ``need``, and
``points`` winning over ``answers``; hand-made cases with hand-computed expected values."""

from __future__ import annotations

import doctest

import pytest

from qa.evaluation import matching, questions
from qa.evaluation.matching import answer_words, points_covered
from qa.evaluation.metrics import score_result
from qa.evaluation.questions import question_family, question_points, question_shape

REFUSAL = "I cannot find the answer in the documents."


def test_docstring_examples_hold():
    failed, attempted = map(sum, zip(doctest.testmod(matching), doctest.testmod(questions)))
    assert attempted >= 7 and failed == 0


# --- point coverage --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "points", "expected"),
    [
        ("", [["Vimont"]], [False]),
        ("   ", [["Vimont"]], [False]),
        ("Anything.", [], []),
        ("The ÉLYSÉE and Zürich [1].", [["elysee"], ["Zurich"], ["Moscow"]], [True, True, False]),
        ("“Brain   death”, he said.", [["brain death"]], [True]),
        ("depending less on the U.S. [2]", [["less on the U.S", "rely less"]], [True]),  # "U.S." == "U.S"
        ("Cyber-security and arms-control [1].", [["cybersecurity", "cyber"], ["arms control"]], [True, True]),
        ("an architecture of trust & security", [["architecture of trust and security"]], [False]),  # & is no "and"
        ("A million 155-mm shells.", [["155mm"]], [True]),
        ("He humiliated no one.", [["humiliat"]], [True]),  # a stem matches inside a word
        ("See [2].", [["2"]], [False]),  # a citation marker is not a point
        ("Anything", [["", "..."]], [False]),  # strings that normalise to nothing never match
        ("Trust, then TRUMP.", [["trust"], ["Trump", "transatlantic partnership"], ["dialogue"]],
         [True, True, False]),
    ],
)
def test_points_covered(answer, points, expected):
    assert points_covered(answer, points) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("", 0),
        ("   ", 0),
        ("[1]", 0),
        (REFUSAL, 8),
        ("Pierre Vimont [1][2].", 2),
        ("Vimont — the envoy [1, 2] — left.", 4),  # dashes are not words
        ("arms-control, 155 mm\nshells", 4),  # a hyphenated word is one word
        ("Élysée’s envoy", 2),
    ],
)
def test_answer_words(answer, expected):
    assert answer_words(answer) == expected


# --- families --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "family", "shape"),
    [
        ({"type": "factoid", "answers": ["a"]}, "one_fact", "factoid"),
        ({"type": "list", "answers": ["a", "b"]}, "one_fact", "list"),
        ({"type": "list", "answers": ["a", "b"], "points": [["a"], ["b"]]}, "broad", "broad list"),
        ({"type": "explain", "answers": ["a"]}, "broad", "explain"),  # a broad-only type, even without points
        ({"type": "who", "points": [["a"]]}, "broad", "who"),
        ({"type": "unanswerable", "answers": [], "points": []}, "one_fact", "unanswerable"),  # empty = no points
        ({"answers": ["a"], "points": [["a"]]}, "broad", "broad untyped"),
        ({}, "one_fact", "untyped"),
    ],
)
def test_question_family_and_shape(question, family, shape):
    assert question_family(question) == family
    assert question_shape(question) == shape


def test_question_points_is_none_without_points():
    assert question_points({"points": []}) is None and question_points({}) is None
    assert question_points({"points": [["a", "b"], ["c"]]}) == [["a", "b"], ["c"]]


# --- per question scores ---------------------------------------------------------------------------

TALKS = {"id": "b1", "question": "Which subjects?", "type": "list", "need": 2,
         "answers": ["frozen conflicts", "arms control", "space"],
         "points": [["frozen conflicts"], ["arms control", "nuclear arms"], ["space"]]}


def _point_scores(result: dict, question: dict) -> tuple:
    s = score_result(result, question)
    return s["correct"], s["points_covered"], s["points_total"], s["point_recall"], s["answer_words"]


@pytest.mark.parametrize(
    ("answer", "refused", "expected"),
    [
        ("Frozen conflicts and NUCLEAR-ARMS talks [1].", False, (True, 2, 3, 2 / 3, 5)),
        ("Frozen conflicts, arms control and space [1][2].", False, (True, 3, 3, 1.0, 6)),
        ("Arms control [1].", False, (False, 1, 3, 1 / 3, 2)),
        ("", False, (False, 0, 3, 0.0, 0)),
        (f"Frozen conflicts? {REFUSAL}", True, (False, 0, 3, 0.0, 10)),  # a refusal covers no point
    ],
)
def test_score_result_with_points(answer, refused, expected):
    assert _point_scores({"answer": answer, "refused": refused}, TALKS) == pytest.approx(expected)


@pytest.mark.parametrize(("need", "correct"), [(1, True), (2, True), (3, False)])
def test_need_counts_points(need, correct):
    result = {"answer": "Space and frozen conflicts [1].", "refused": False}  # 2 of 3 points
    assert score_result(result, {**TALKS, "need": need})["correct"] is correct


def test_points_replace_answers_for_matching():
    question = {"id": "b2", "question": "Why?", "type": "explain", "need": 1, "answers": ["Macron", "Putin"],
                "points": [["dialogue"], ["trust"]]}
    named = score_result({"answer": "Macron met Putin.", "refused": False}, question)
    assert named["correct"] is False and named["points_covered"] == 0  # both `answers` there, no point
    explained = score_result({"answer": "A dialogue built on trust.", "refused": False}, question)
    assert explained["correct"] is True and explained["point_recall"] == 1.0  # no `answers` there


def test_points_without_answers_are_still_judged():
    question = {"id": "b3", "question": "Who?", "type": "who", "need": 1, "points": [["envoy"], ["diplomat"]]}
    scores = score_result({"answer": "A diplomat [1].", "refused": False}, question)
    assert scores["correct"] is True and scores["false_refusal"] is False and scores["point_recall"] == 0.5


def test_one_fact_questions_have_no_point_scores():
    scores = score_result({"answer": "Vimont", "refused": False}, {"id": "d", "answers": ["Vimont"], "need": 1})
    assert scores["points_covered"] is None and scores["points_total"] is None and scores["point_recall"] is None
