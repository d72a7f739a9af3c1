"""Tests for qa/evaluation/squad.py: official SQuAD scoring, the paragraph corpus, sampling, and ``qa eval --squad``
end to end (the real Pipeline with the keyword encoder and a scripted generator)."""

from __future__ import annotations

import doctest
import json
import os
import re
from pathlib import Path

import pytest

from conftest import SHARED, fake_pipelines
from embeddings.documents import load_corpus
from qa.cli import main as cli_main
from qa.errors import QuestionFileError
from qa.evaluation import squad
from qa.evaluation.questions import read_results
from qa.evaluation.squad import (
    SquadQuestion,
    format_squad_table,
    load_squad,
    paragraph_rank,
    question_record,
    sample_questions,
    score_squad,
    squad_exact_match,
    squad_f1,
    squad_home,
    squad_normalize,
    summarize_squad,
    write_corpus,
)
from qa.types import REFUSAL

SQUAD_DIR = SHARED / "data" / "squad"
BOWL = "Super Bowl 50 was an American football game. The Denver Broncos defeated the Carolina Panthers 24–10."
WARSAW = "Warsaw is the capital and largest city of Poland. The city stands on the Vistula River, in east-central Poland."
TINY = {
    "version": "v2.0",
    "data": [
        {"title": "Super_Bowl_50", "paragraphs": [{"context": BOWL, "qas": [
            {"id": "b1", "question": "Which team won Super Bowl 50?", "is_impossible": False, "answers": [
                {"text": "Denver Broncos", "answer_start": 49}, {"text": "Denver Broncos", "answer_start": 49},
                {"text": "The Denver Broncos", "answer_start": 45}]}]}]},
        {"title": "Warsaw/Poland: “city”", "paragraphs": [
            {"context": "Its zoo and its many parks are loved by the residents of the capital.", "qas": []},
            {"context": WARSAW, "qas": [
                {"id": "w1", "question": "On which river does Warsaw stand?", "is_impossible": False,
                 "answers": [{"text": "Vistula River", "answer_start": 67}, {"text": "Vistula", "answer_start": 67}]},
                {"id": "w2", "question": "How many moons does the Vistula River have?", "is_impossible": True, "answers": []},
            ]},
        ]},
    ],
}


@pytest.fixture
def tiny_file(tmp_path) -> Path:
    path = tmp_path / "tiny-v2.0.json"
    path.write_text(json.dumps(TINY, ensure_ascii=False), encoding="utf-8")
    return path


def test_docstring_examples_hold():
    failed, attempted = doctest.testmod(squad)
    assert attempted > 10 and failed == 0


# --- official scoring (moved from test_metrics.py) -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("The  Quick, brown fox!", "quick brown fox"),
        ("an apple a day", "apple day"),
        ("Theatre and the theory", "theatre and theory"),  # whole words only
        ("U.S.", "us"),
        ("“fox”", "“fox”"),  # the official script only strips ASCII punctuation
        ("Élan", "élan"),
    ],
)
def test_squad_normalize(text, expected):
    assert squad_normalize(text) == expected


@pytest.mark.parametrize(
    ("prediction", "golds", "refused", "em", "f1"),
    [
        ("the Eiffel Tower.", ["Eiffel Tower"], False, 1.0, 1.0),
        ("Eiffel Tower in Paris", ["the Eiffel Tower"], False, 0.0, 2 / 3),  # p = 2/4, r = 2/2
        ("Eiffel Tower in Paris", ["Louvre", "Paris"], False, 0.0, 0.4),  # p = 1/4, r = 1/1
        ("Louvre", ["Eiffel Tower"], False, 0.0, 0.0),
        ("", ["Eiffel Tower"], False, 0.0, 0.0),
        ("Eiffel Tower", ["Eiffel Tower"], True, 0.0, 0.0),  # refusing an answerable question
        ("", [], False, 1.0, 1.0),  # SQuAD 2.0 unanswerable, declined
        ("the", [], False, 1.0, 1.0),  # normalises to empty
        ("Paris", [], False, 0.0, 0.0),
        ("I cannot find the answer in the documents.", [], True, 1.0, 1.0),
        ("Paris", ["the", "Paris"], False, 1.0, 1.0),  # a gold that normalises to nothing is dropped
        ("", ["the", "Paris"], False, 0.0, 0.0),
        ("Paris", ["a"], False, 0.0, 0.0),  # ...and only such golds make the question unanswerable
        ("Paris Paris", ["Paris"], False, 0.0, 2 / 3),  # bag of tokens: p = 1/2, r = 1
    ],
)
def test_squad_scores(prediction, golds, refused, em, f1):
    assert squad_exact_match(prediction, golds, refused=refused) == em
    assert squad_f1(prediction, golds, refused=refused) == pytest.approx(f1)


# --- the data set ----------------------------------------------------------------------------------


def test_load_squad_reads_paragraphs_and_questions(tiny_file):
    data = load_squad(tiny_file)
    assert data.version == "v2.0"
    assert [p.doc for p in data.paragraphs] == [
        "00_Super_Bowl_50/0000.txt", "01_Warsaw_Poland_city_/0000.txt", "01_Warsaw_Poland_city_/0001.txt"]
    assert [p.title for p in data.paragraphs] == ["Super Bowl 50", "Warsaw/Poland: “city”", "Warsaw/Poland: “city”"]
    assert [(q.id, q.answers, q.doc) for q in data.questions] == [
        ("b1", ("Denver Broncos", "The Denver Broncos"), "00_Super_Bowl_50/0000.txt"),
        ("w1", ("Vistula River", "Vistula"), "01_Warsaw_Poland_city_/0001.txt"),
        ("w2", (), "01_Warsaw_Poland_city_/0001.txt"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not a SQuAD JSON file"),
        (b"\xff\xfe", "not a SQuAD JSON file"),
        (b'{"data": [{"title": "A"}]}', "missing 'paragraphs'"),
        (b'{"data": [{"title": "A", "paragraphs": []}]}', "no questions"),
        (b'{"data": [{"title": "A", "paragraphs": [{"context": "x", "qas": [{"id": "1", "question": "q", '
         b'"answers": []}, {"id": "1", "question": "r", "answers": []}]}]}]}', "duplicate question id '1'"),
    ],
)
def test_load_squad_rejects_other_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(QuestionFileError, match=message):
        load_squad(path)
    with pytest.raises(QuestionFileError, match="SQuAD file not found"):
        load_squad(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("name", "paragraphs", "questions", "unanswerable"),
    [("dev-v1.1.json", 2067, 10570, 0), ("dev-v2.0.json", 1204, 11873, 5945)],
)
def test_load_the_shared_squad_files(name, paragraphs, questions, unanswerable):
    data = load_squad(SQUAD_DIR / name)
    assert len(data.paragraphs) == paragraphs and len({p.doc for p in data.paragraphs}) == paragraphs
    assert len(data.questions) == questions
    assert sum(not q.answers for q in data.questions) == unanswerable


def test_write_corpus_once_with_exact_texts_and_titles(tiny_file, tmp_path):
    data = load_squad(tiny_file)
    folder = write_corpus(data, tmp_path / "c" / "corpus")
    corpus = load_corpus(folder)
    assert [d.path for d in corpus.documents] == [p.doc for p in data.paragraphs]
    assert [d.text for d in corpus.documents] == [p.context for p in data.paragraphs]
    assert [d.meta.title for d in corpus.documents] == [p.title for p in data.paragraphs]
    assert corpus.skipped == ()
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["corpus"]  # no temporary folder left
    first = folder / data.paragraphs[0].doc
    stamp = first.stat().st_mtime_ns
    first.write_text("edited", encoding="utf-8")
    write_corpus(data, folder)  # an existing corpus is used as it is: never rewritten
    assert first.read_text(encoding="utf-8") == "edited" and first.stat().st_mtime_ns != stamp


def test_squad_home_is_per_file_content(tiny_file, tmp_path, monkeypatch):
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    home = squad_home(load_squad(tiny_file))
    assert home.parent == tmp_path / "cache" / "squad" and home.name.startswith("tiny-v2.0-")
    tiny_file.write_text(json.dumps({**TINY, "version": "other"}), encoding="utf-8")
    assert squad_home(load_squad(tiny_file)) != home


def test_samples_are_seeded_nested_and_in_file_order():
    questions = [SquadQuestion(f"q{i}", "?", ("x",), "d") for i in range(500)]
    twenty = sample_questions(questions, 20, seed=3)
    assert twenty == sample_questions(questions, 20, seed=3)
    assert twenty != sample_questions(questions, 20, seed=4)
    assert set(twenty) <= set(sample_questions(questions, 200, seed=3))
    assert [int(q.id[1:]) for q in twenty] == sorted(int(q.id[1:]) for q in twenty)
    assert sample_questions(questions, None, seed=0) == questions
    assert sample_questions(questions, 9999, seed=0) == questions
    with pytest.raises(ValueError, match="n must be >= 1"):
        sample_questions(questions, 0, seed=0)


# --- scores ----------------------------------------------------------------------------------------

Q_BOWL = question_record(SquadQuestion("b1", "Who won?", ("Denver Broncos",), "00_A/0000.txt"))
Q_NONE = question_record(SquadQuestion("w2", "Moons?", (), "01_B/0001.txt"))


def test_question_record_is_a_format_question():
    assert Q_BOWL == {"id": "b1", "question": "Who won?", "answers": ["Denver Broncos"], "need": 1,
                      "evidence": [{"doc": "00_A/0000.txt", "text": "Denver Broncos"}], "type": "answerable",
                      "squad_doc": "00_A/0000.txt"}
    assert Q_NONE["need"] == 0 and Q_NONE["type"] == "unanswerable" and Q_NONE["evidence"] == []


def test_paragraph_rank():
    passages = [{"doc": "00_A/0001.txt"}, {"doc": "00_A/0000.txt"}, {"doc": "00_A/0000.txt"}]
    assert paragraph_rank(passages, "00_A/0000.txt") == 2
    assert paragraph_rank(passages, "01_B/0000.txt") is None
    assert paragraph_rank([], "00_A/0000.txt") is None


@pytest.mark.parametrize(
    ("question", "answer", "refused", "expected"),
    [
        (Q_BOWL, "Denver Broncos [1].", False, (True, 1.0, 1.0)),
        (Q_BOWL, "The Denver Broncos won the game [1][2].", False, (True, 0.0, 2 / 3)),  # p = 2/4, r = 1
        (Q_BOWL, "Carolina Panthers [1].", False, (False, 0.0, 0.0)),
        (Q_BOWL, REFUSAL, True, (False, 0.0, 0.0)),
        (Q_NONE, REFUSAL, True, (True, 1.0, 1.0)),
        (Q_NONE, "Two moons [1].", False, (False, 0.0, 0.0)),
    ],
)
def test_score_squad(question, answer, refused, expected):
    result = {"answer": answer, "refused": refused, "citations": [], "passages": [{"doc": "00_A/0000.txt"}]}
    scores = score_squad(result, question)
    assert (scores["correct"], scores["exact_match"]) == expected[:2]
    assert scores["f1"] == pytest.approx(expected[2])
    assert "evidence_rank" not in scores
    assert scores["paragraph_rank"] == (1 if question is Q_BOWL else None)


def test_summarize_squad():
    q_river = question_record(SquadQuestion("w1", "River?", ("Vistula",), "01_B/0001.txt"))
    results = [
        {"id": "b1", "answer": "Denver Broncos [1].", "refused": False, "latency_s": 1.0,
         "passages": [{"doc": "00_A/0000.txt"}]},
        {"id": "w1", "answer": "the Vistula river [2].", "refused": False, "latency_s": 2.0,
         "passages": [{"doc": "00_A/0000.txt"}, {"doc": "01_B/0000.txt"}, {"doc": "01_B/0001.txt"}]},
        {"id": "w2", "answer": REFUSAL, "refused": True, "latency_s": 3.0,
         "passages": [{"doc": "02_C/0000.txt"}]},
    ]
    s = summarize_squad(results, [Q_BOWL, q_river, Q_NONE])
    assert (s["n"], s["n_answerable"], s["n_unanswerable"]) == (3, 2, 1)
    assert s["answer_accuracy"] == 1.0 and s["refusal_rate"] == 1.0
    # EM: 1, 0 ("vistula river" != "vistula"), 1 (declined); F1: 1, 2/3 (p = 1/2, r = 1), 1
    assert s["exact_match"] == pytest.approx(2 / 3) and s["f1"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert s["exact_match_has_answer"] == 0.5 and s["f1_has_answer"] == pytest.approx(5 / 6)
    assert s["exact_match_no_answer"] == 1.0
    # own paragraph at ranks 1, 3, missed
    assert (s["recall@1"], s["recall@3"], s["recall@10"]) == (pytest.approx(1 / 3), pytest.approx(2 / 3),
                                                              pytest.approx(2 / 3))
    assert s["mrr"] == pytest.approx((1 + 1 / 3) / 3)
    assert s["latency_p50"] == 2.0
    table = format_squad_table(s)
    assert re.search(r"SQuAD exact match +0.667", table) and re.search(r"\n  EM unanswerable +1.000", table)


# --- qa eval --squad end to end --------------------------------------------------------------------


def squad_reply(messages) -> str:
    prompt = messages[-1]["content"]
    if "Which team won" in prompt:
        return "Denver Broncos [1]."
    if "which river" in prompt:
        return "The Vistula River [1]."
    if "Say OK" in prompt:
        return "OK"
    return REFUSAL


@pytest.fixture
def fake_pipeline(monkeypatch, tmp_path):
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    return fake_pipelines(monkeypatch, squad_reply)


def test_qa_eval_squad_end_to_end(fake_pipeline, tiny_file, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    assert cli_main(["eval", "--squad", str(tiny_file), "--limit", "3", "--out", str(out)]) == 0
    results = read_results(out)
    assert [r["id"] for r in results] == ["b1", "w1", "w2"]
    by_id = {r["id"]: r for r in results}
    assert by_id["b1"]["squad_doc"] == "00_Super_Bowl_50/0000.txt"
    assert by_id["b1"]["gold_answers"] == ["Denver Broncos", "The Denver Broncos"]
    assert by_id["b1"]["scores"]["exact_match"] == 1.0 and by_id["b1"]["scores"]["paragraph_rank"] == 1
    assert by_id["w1"]["scores"]["exact_match"] == 1.0  # "The Vistula River [1]." -> "vistula river"
    assert by_id["w2"]["refused"] and by_id["w2"]["scores"]["exact_match"] == 1.0
    summary = json.loads((tmp_path / "r.summary.json").read_text())
    assert summary["mode"] == "squad" and summary["squad_version"] == "v2.0"
    assert summary["exact_match"] == 1.0 and summary["refusal_rate"] == 1.0 and summary["recall@1"] == 1.0
    assert summary["n_paragraphs"] == 3 and summary["index_reused"] is False and summary["index_build_s"] >= 0
    assert summary["citation_validity"] == 1.0
    assert summary["settings"]["style"] == "short"  # SQuAD scores spans: only the answering words are asked for
    assert re.search(r"SQuAD exact match +1.000", capsys.readouterr().out)
    home = next((tmp_path / "cache" / "squad").iterdir())
    assert [p.name for p in (home / "index").iterdir()] == [summary["settings"]["embedder"]]  # one per embedder

    # a second run reuses the corpus and the index: nothing is embedded again
    assert cli_main(["eval", "--squad", str(tiny_file), "--limit", "3", "--out", str(out), "--resume"]) == 0
    asked = {qa["question"] for a in TINY["data"] for p in a["paragraphs"] for qa in p["qas"]}
    assert set(fake_pipeline[-1].encoder.encoded) - {"warm up"} <= asked  # questions (and the warm-up query) only
    assert json.loads((tmp_path / "r.summary.json").read_text())["index_reused"] is True


def test_qa_eval_squad_rejects_corpus_options(fake_pipeline, tiny_file, tmp_path, capsys):
    assert cli_main(["eval", "--corpus", str(tmp_path), "--squad", str(tiny_file)]) == 2
    assert "--corpus and --index-dir do not apply to --squad" in capsys.readouterr().err


@pytest.mark.model
def test_real_models_on_a_tiny_squad_file(tiny_file, tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    out = tmp_path / "r.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # the real cache: it holds the assembled model weights
    done = subprocess.run([sys.executable, "-m", "qa.cli", "eval", "--squad", str(tiny_file), "--limit", "2",
                           "--seed", "0", "--out", str(out), "--embedder", "all-MiniLM-L6-v2", "--model", "small"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    results = read_results(out)
    assert len(results) == 2 and all("exact_match" in r["scores"] for r in results)
    assert all(r["scores"]["paragraph_rank"] == 1 for r in results)
