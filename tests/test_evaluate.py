"""Tests for qa/evaluation/runner.py and qa/cli/eval.py: question files, the resumable results file, and ``qa eval`` end to end
(the real Pipeline over the seed corpus, with the keyword encoder and a scripted generator)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SEEDS, SHARED, fake_pipelines
from qa.cli import eval as cli_eval
from qa.cli import main as cli_main
from qa.cli.eval import add_eval_command
from qa.errors import GenerationError, ModelNotFound, QuestionFileError
from qa.evaluation.metrics import score_result
from qa.evaluation.questions import read_questions, read_results
from qa.evaluation.runner import run_eval
from qa.types import REFUSAL

DEV = SHARED / "eval" / "dev.jsonl"
BROAD = SHARED / "eval" / "dev_broad.jsonl"
RESULT_FIELDS = {"id", "question", "answer", "refused", "citations", "passages", "latency_s", "ttft_s", "scores"}


def write_lines(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


class FakeAnswer:
    def __init__(self, question: str, text: str, refused: bool = False) -> None:
        self.question, self.text, self.refused = question, text, refused

    def to_dict(self) -> dict:
        return {"question": self.question, "answer": self.text, "refused": self.refused, "citations": [],
                "passages": [], "latency_s": 0.5, "ttft_s": 0.1}


class Answerer:
    """``Pipeline.answer`` stand-in: replies from a dict, raising the exceptions it is given."""

    def __init__(self, replies: dict[str, object]) -> None:
        self.replies = replies
        self.asked: list[str] = []

    def __call__(self, question: str) -> FakeAnswer:
        self.asked.append(question)
        reply = self.replies.get(question, REFUSAL)
        if isinstance(reply, BaseException):
            raise reply
        return FakeAnswer(question, reply, refused=reply == REFUSAL)


QUESTIONS = [
    {"id": "q1", "question": "Who?", "answers": ["Vimont"], "need": 1, "type": "factoid"},
    {"id": "q2", "question": "When?", "answers": ["2019"], "need": 1, "type": "factoid"},
    {"id": "q3", "question": "Why?", "answers": [], "need": 0, "type": "unanswerable"},
    {"id": "q4", "question": "Where?", "answers": ["Paris"], "need": 1, "type": "factoid"},
]
REPLIES = {"Who?": "Pierre Vimont [1].", "When?": "In 2018 [1].", "Why?": REFUSAL, "Where?": "Paris [2]."}


def score(result, question):
    return score_result(result, question)


# --- question files --------------------------------------------------------------------------------


def test_reads_the_dev_set_in_order():
    questions = read_questions(DEV)
    assert len(questions) == 24
    assert questions[0]["id"] == "d01" and [q["id"] for q in questions[-5:]] == ["d20", "n01", "n02", "n03", "n04"]


def test_only_id_and_question_are_required(tmp_path):
    path = write_lines(tmp_path / "q.jsonl", [{"id": "a", "question": "Who?"}, "", {"id": "b", "question": "What?"}])
    assert [q["id"] for q in read_questions(path)] == ["a", "b"]


def test_byte_order_mark_and_crlf_are_accepted(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a", "question": "Who?"}\r\n{"id": "b", "question": "What?"}\r\n')
    assert [q["question"] for q in read_questions(path)] == ["Who?", "What?"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no questions (the file is empty)"),
        (b"\n  \n\t\n", "no questions (the file is empty)"),
        (b'{"id": "a", "question": "Who?"}\n{"id": "b", "question": }\n', "line 2: not valid JSON"),
        (b'{"id": "a", "question": "Who?"}\n{"id": "b"}\n', "line 2: missing `question`"),
        (b'{"question": "Who?"}\n', "line 1: missing `id`"),
        (b'{"id": 7, "question": "Who?"}\n', "line 1: `id` must be a string, got 7"),
        (b'{"id": "a", "question": "   "}\n', "line 1: `question` is empty"),
        (b'{"id": "a", "question": ["Who?"]}\n', "`question` must be a string"),
        (b'{"id": "a", "question": "Who?"}\n\n{"id": "a", "question": "Again?"}\n',
         "line 3: duplicate id 'a' (first on line 1)"),
        (b'["a", "Who?"]\n', "line 1: expected a JSON object, got list"),
        (b'{"id": "a", "question": "Caf\xe9?"}\n', "line 1: not UTF-8 text (byte 28)"),
        (b'{"id": "a", "question": "Who?"}\n{"id": "b", "question": "\xff"}\n', "line 2: not UTF-8"),
        (b'{"id": "a", "question": "Who?", "answers": "Vimont"}\n', "`answers` must be a list of strings"),
        (b'{"id": "a", "question": "Who?", "answers": ["A"], "need": 2}\n', "`need` is 2 but there are only 1"),
        (b'{"id": "a", "question": "Who?", "answers": ["A"], "need": -1}\n', "`need` must be a whole number"),
        (b'{"id": "a", "question": "Who?", "evidence": [{"doc": "x.txt"}]}\n', "`evidence` must be a list"),
        (b'{"id": "a", "question": "Why?", "points": ["A", "B"]}\n', "`points` must be a list of non-empty lists"),
        (b'{"id": "a", "question": "Why?", "points": [["A"], []]}\n', "`points` must be a list of non-empty lists"),
        (b'{"id": "a", "question": "Why?", "points": [["A"], [2]]}\n', "`points` must be a list of non-empty lists"),
        (b'{"id": "a", "question": "Why?", "answers": ["A", "B", "C"], "points": [["A"], ["B"]], "need": 3}\n',
         "`need` is 3 but there are only 2 points"),
    ],
)
def test_malformed_question_files_raise_one_clear_line(tmp_path, content, message):
    path = tmp_path / "q.jsonl"
    path.write_bytes(content)
    with pytest.raises(QuestionFileError) as caught:
        read_questions(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_points_set_the_limit_of_need(tmp_path):
    line = {"id": "a", "question": "Why?", "answers": ["A"], "points": [["A"], ["B", "b2"]], "need": 2}
    assert read_questions(write_lines(tmp_path / "q.jsonl", [line]))[0]["points"] == [["A"], ["B", "b2"]]


@pytest.mark.skipif(not BROAD.exists(), reason=f"{BROAD} not found")
def test_reads_the_broad_dev_set():
    questions = read_questions(BROAD)
    assert len(questions) == 18 and sum(1 for q in questions if q.get("points")) == 15


def test_missing_question_file(tmp_path):
    with pytest.raises(QuestionFileError, match="question file not found"):
        read_questions(tmp_path / "nope.jsonl")


# --- running and resuming --------------------------------------------------------------------------


def test_results_are_written_in_input_order_with_scores(tmp_path):
    out = tmp_path / "out" / "r.jsonl"
    results = run_eval(Answerer(REPLIES), QUESTIONS, out, score=score, progress=False)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines == results
    assert [r["id"] for r in lines] == ["q1", "q2", "q3", "q4"]
    assert all(set(r) == RESULT_FIELDS for r in lines)
    assert [r["scores"]["correct"] for r in lines] == [True, False, True, True]


def test_each_result_is_on_disk_before_the_next_question_is_asked(tmp_path):
    out = tmp_path / "r.jsonl"
    seen_on_disk = []

    def answer(question):
        seen_on_disk.append(len(read_results(out)))
        return FakeAnswer(question, "x")

    run_eval(answer, QUESTIONS, out, score=score, progress=False)
    assert seen_on_disk == [0, 1, 2, 3]


def test_a_failing_question_is_recorded_and_the_run_goes_on(tmp_path):
    out = tmp_path / "r.jsonl"
    answerer = Answerer({**REPLIES, "When?": GenerationError("the model crashed"), "Why?": ValueError("odd")})
    results = run_eval(answerer, QUESTIONS, out, score=score, progress=False)
    assert answerer.asked == ["Who?", "When?", "Why?", "Where?"]
    assert results[1]["error"] == "GenerationError: the model crashed"
    assert results[2]["error"] == "ValueError: odd"
    assert results[1]["answer"] == "" and results[1]["scores"]["correct"] is False
    assert "error" not in results[0] and "error" not in results[3]
    assert results[3]["scores"]["correct"] is True


def test_a_setup_error_stops_the_run_and_keeps_what_was_done(tmp_path):
    out = tmp_path / "r.jsonl"
    with pytest.raises(ModelNotFound):
        run_eval(Answerer({**REPLIES, "Why?": ModelNotFound("no model")}), QUESTIONS, out, score=score,
                 progress=False)
    assert [r["id"] for r in read_results(out)] == ["q1", "q2"]


def test_resume_after_an_interruption_asks_only_the_rest(tmp_path):
    out = tmp_path / "r.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_eval(Answerer({**REPLIES, "Why?": KeyboardInterrupt()}), QUESTIONS, out, score=score, progress=False)
    assert [r["id"] for r in read_results(out)] == ["q1", "q2"]
    with open(out, "a", encoding="utf-8") as handle:  # a line cut off by the kill
        handle.write('{"id": "q3", "question": "Why?", "answ')
    answerer = Answerer(REPLIES)
    results = run_eval(answerer, QUESTIONS, out, score=score, resume=True, progress=False)
    assert answerer.asked == ["Why?", "Where?"]
    assert [r["id"] for r in results] == ["q1", "q2", "q3", "q4"]
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["q1", "q2", "q3", "q4"]


def test_resume_asks_failed_questions_again_and_keeps_input_order(tmp_path):
    out = tmp_path / "r.jsonl"
    run_eval(Answerer({**REPLIES, "Who?": GenerationError("boom")}), QUESTIONS, out, score=score, progress=False)
    answerer = Answerer(REPLIES)
    results = run_eval(answerer, QUESTIONS, out, score=score, resume=True, progress=False)
    assert answerer.asked == ["Who?"]
    assert [r["id"] for r in results] == ["q1", "q2", "q3", "q4"]
    assert "error" not in results[0] and results[0]["scores"]["correct"] is True


def test_resume_with_a_complete_file_asks_nothing(tmp_path):
    out = tmp_path / "r.jsonl"
    first = run_eval(Answerer(REPLIES), QUESTIONS, out, score=score, progress=False)
    answerer = Answerer(REPLIES)
    assert run_eval(answerer, QUESTIONS, out, score=score, resume=True, progress=False) == first
    assert answerer.asked == []


def test_without_resume_an_old_results_file_is_replaced(tmp_path):
    out = write_lines(tmp_path / "r.jsonl", [{"id": "q1", "answer": "old"}, {"id": "zz", "answer": "other run"}])
    results = run_eval(Answerer(REPLIES), QUESTIONS[:2], out, score=score, progress=False)
    assert [r["id"] for r in read_results(out)] == ["q1", "q2"]
    assert results[0]["answer"] == "Pierre Vimont [1]."


def test_resume_refuses_the_results_of_another_question_file(tmp_path):
    out = write_lines(tmp_path / "r.jsonl", [{"id": "zz", "answer": "x"}])
    with pytest.raises(QuestionFileError, match="not in the question file"):
        run_eval(Answerer(REPLIES), QUESTIONS, out, score=score, resume=True, progress=False)


def test_resume_refuses_a_damaged_line_that_is_not_the_last(tmp_path):
    out = write_lines(tmp_path / "r.jsonl", ['{"id": "q1", "ans', {"id": "q2"}])
    with pytest.raises(QuestionFileError, match="line 1: not a results line"):
        run_eval(Answerer(REPLIES), QUESTIONS, out, score=score, resume=True, progress=False)


def test_limit_asks_the_first_questions_and_resume_extends_it(tmp_path):
    out = tmp_path / "r.jsonl"
    assert [r["id"] for r in run_eval(Answerer(REPLIES), QUESTIONS, out, score=score, limit=2, progress=False)] == [
        "q1", "q2"]
    answerer = Answerer(REPLIES)
    results = run_eval(answerer, QUESTIONS, out, score=score, limit=3, resume=True, progress=False)
    assert answerer.asked == ["Why?"]
    assert [r["id"] for r in results] == ["q1", "q2", "q3"]


def test_questions_without_gold_are_answered_but_not_judged(tmp_path):
    questions = [{"id": "a", "question": "Who?"}]
    (row,) = run_eval(Answerer(REPLIES), questions, tmp_path / "r.jsonl", score=score, progress=False)
    assert row["answer"] == "Pierre Vimont [1]."
    assert row["scores"]["correct"] is None and row["scores"]["false_refusal"] is None


# --- qa eval end to end, with the real pipeline and fakes ------------------------------------------


def dev_reply(messages) -> str:
    """Answer dev questions from the prompt: a right answer for d01, refusals for the rest."""
    prompt = messages[-1]["content"]
    if "Macron's envoy" in prompt:
        return "Pierre Vimont was the envoy [1]."
    if "Say OK" in prompt:
        return "OK"
    return REFUSAL


@pytest.fixture
def fake_pipeline(monkeypatch, tmp_path):
    """``qa eval`` builds its Pipeline with the keyword encoder and a scripted generator."""
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    return fake_pipelines(monkeypatch, dev_reply)


def test_qa_eval_on_the_dev_set(fake_pipeline, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QA_EXTRACTIVE", "summary")  # d03, a "why", is asked of the scripted model too
    out, summary_path = tmp_path / "r.jsonl", tmp_path / "s.json"
    code = cli_main(["eval", str(DEV), "--out", str(out), "--summary", str(summary_path), "--limit", "5",
                          "--corpus", str(SEEDS), "--index-dir", str(tmp_path / "idx")])
    assert code == 0
    results = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in results] == ["d01", "d02", "d03", "d04", "d05"]
    assert all(set(r) == RESULT_FIELDS for r in results)
    first = results[0]
    assert first["scores"]["correct"] is True and first["refused"] is False
    assert first["citations"] and first["scores"]["citation_validity"] == 1.0
    text = (SEEDS / first["citations"][0]["doc"]).read_text(encoding="utf-8")
    assert all(text[c["start"]:c["end"]] == c["text"] for c in first["citations"])
    assert all(r["refused"] and r["scores"]["false_refusal"] for r in results[1:])
    summary = json.loads(summary_path.read_text())
    assert summary["n"] == 5 and summary["answer_accuracy"] == pytest.approx(0.2)
    assert summary["false_refusal_rate"] == pytest.approx(0.8)
    assert summary["citation_validity"] == 1.0
    assert summary["settings"]["corpus"] == str(SEEDS) and summary["mode"] == "questions"
    assert summary["settings"]["style"] == "sentence"
    printed = capsys.readouterr().out
    assert re.search(r"answer accuracy +0.200", printed) and re.search(r"citation validity +1.000", printed)


def test_qa_eval_default_paths_and_report(fake_pipeline, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    questions = write_lines(tmp_path / "mine.jsonl", [{"id": "x1", "question": "Who was Macron's envoy?"}])
    code = cli_main(["eval", str(questions), "--report", "rep", "--corpus", str(SEEDS),
                          "--index-dir", str(tmp_path / "idx")])
    assert code == 0
    assert len(read_results(tmp_path / "mine.results.jsonl")) == 1
    assert json.loads((tmp_path / "mine.summary.json").read_text())["n"] == 1
    assert (tmp_path / "rep" / "index.html").is_file()


def test_qa_eval_reports_one_fact_and_broad_questions_apart(fake_pipeline, tmp_path, capsys):
    dev = read_questions(DEV)[:2]  # d01 is answered by the fake, d02 refused
    broad = {"id": "w1", "type": "who", "need": 2,
             "question": f"{dev[0]['question'][:-1]}, and as what?",  # the fake answers it like d01
             "answers": ["Vimont", "envoy", "ambassador"], "points": [["Vimont"], ["envoy"], ["ambassador"]],
             "evidence": [{"doc": "000_6d54785b39143e23.txt", "text": "Ambassador Pierre Vimont"}]}
    questions = write_lines(tmp_path / "mixed.jsonl", [*dev, broad])
    code = cli_main(["eval", str(questions), "--out", str(tmp_path / "r.jsonl"), "--report", str(tmp_path / "rep"),
                     "--corpus", str(SEEDS), "--index-dir", str(tmp_path / "idx")])
    assert code == 0
    w1 = read_results(tmp_path / "r.jsonl")[2]["scores"]  # "Pierre Vimont was the envoy [1]."
    assert (w1["points_covered"], w1["points_total"], w1["correct"], w1["answer_words"]) == (2, 3, True, 5)
    summary = json.loads((tmp_path / "r.summary.json").read_text())
    assert summary["by_family"]["broad"]["n"] == 1 and summary["by_family"]["one_fact"]["n"] == 2
    assert summary["by_family"]["broad"]["point_recall"] == pytest.approx(2 / 3)
    assert summary["by_family"]["one_fact"]["answer_accuracy"] == 0.5
    assert summary["answer_accuracy"] == pytest.approx(2 / 3)
    printed = capsys.readouterr().out
    assert re.search(r"^ +all +one-fact +broad$", printed, re.MULTILINE)
    assert re.search(r"^answer accuracy +0\.667 +0\.500 +1\.000$", printed, re.MULTILINE)
    assert re.search(r"^point recall +0\.667 +n/a +0\.667$", printed, re.MULTILINE)
    assert 'id="summary-table"' in (tmp_path / "rep" / "index.html").read_text(encoding="utf-8")


def test_qa_eval_style_short_changes_the_system_prompt(fake_pipeline, tmp_path):
    from qa.prompting.styles import STYLES

    out = tmp_path / "r.jsonl"
    assert cli_main(["eval", str(DEV), "--out", str(out), "--limit", "1", "--style", "short", "--corpus", str(SEEDS),
                          "--index-dir", str(tmp_path / "idx")]) == 0
    assert {prompt[0]["content"] for prompt in fake_pipeline[0].generator.prompts} == {STYLES["short"]}
    assert json.loads(out.with_name("r.summary.json").read_text())["settings"]["style"] == "short"


def test_qa_eval_context_tokens_bounds_the_passage_text_in_the_prompt(fake_pipeline, tmp_path):
    def passage_words(limit):
        out = tmp_path / f"r{limit}.jsonl"
        assert cli_main(["eval", str(DEV), "--out", str(out), "--limit", "1", "--context-tokens", str(limit),
                              "--corpus", str(SEEDS), "--index-dir", str(tmp_path / "idx")]) == 0
        assert json.loads(out.with_name(f"r{limit}.summary.json").read_text())["settings"]["context_tokens"] == limit
        question = fake_pipeline[-1].generator.prompts[-1][-1]["content"]
        return len(question.split())

    assert passage_words(20) < passage_words(400)


def test_qa_eval_never_overwrites_the_question_file(tmp_path, capsys):
    questions = write_lines(tmp_path / "q.jsonl", [{"id": "a", "question": "Who?"}])
    assert cli_main(["eval", str(questions), "--out", str(questions)]) == 2
    assert "is the question file itself" in capsys.readouterr().err
    assert read_questions(questions) == [{"id": "a", "question": "Who?"}]


def test_options_given_before_eval_are_not_reset(monkeypatch):
    import argparse

    seen = {}
    monkeypatch.setattr(cli_eval, "cmd_eval", lambda args: seen.update(vars(args)) or 0)
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    add_eval_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["--model", "small", "eval", "q.jsonl"])
    assert args.model == "small" and args.func(args) == 0 and seen["questions"] == Path("q.jsonl")


def test_qa_eval_needs_exactly_one_source(capsys):
    assert cli_main(["eval"]) == 2
    assert "either a question file or --squad" in capsys.readouterr().err


def test_a_bad_question_file_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_bytes(b'{"id": "a", "question": "Who?"}\nnot json\n')
    done = subprocess.run([sys.executable, "-m", "qa.cli", "eval", str(path), "--out", str(tmp_path / "r.jsonl")],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"qa: error: {path} line 2: not valid JSON (Expecting value, column 1)"
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.model
def test_real_models_answer_two_dev_questions(tmp_path):
    out = tmp_path / "r.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "qa.cli", "eval", str(DEV), "--out", str(out), "--limit", "2", "--index-dir",
         str(tmp_path / "idx"), "--embedder", "all-MiniLM-L6-v2", "--model", "small", "--report", str(tmp_path / "rep")],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=900)
    assert done.returncode == 0, done.stderr
    results = read_results(out)
    assert [r["id"] for r in results] == ["d01", "d02"]
    assert all(set(r) == RESULT_FIELDS for r in results)
    assert all(r["latency_s"] > 0 and r["passages"] for r in results)
    assert all(r["scores"]["citation_validity"] in (None, 1.0) for r in results)
    assert (tmp_path / "rep" / "index.html").is_file()


def test_run_eval_writes_results_that_come_back_in_any_order_in_question_order(tmp_path: Path):
    """``answer_all`` (qa.evaluation.distributed on Ray) yields answers as they finish; the file keeps input order,
    and a result waits only for the earlier questions still out."""
    questions = [{"id": f"q{i}", "question": f"Question {i}?"} for i in range(5)]
    out = tmp_path / "r.jsonl"
    seen_lines = []

    def answer_all(texts):
        assert texts == [q["question"] for q in questions]
        for i in (2, 0, 1, 4, 3):
            seen_lines.append(len(out.read_text().splitlines()))
            yield i, {"question": texts[i], "answer": f"A{i}", "refused": False, "citations": [], "passages": [],
                      "latency_s": 0.1, "ttft_s": None}

    def unused(question):
        raise AssertionError("answer_all replaces answer")

    rows = run_eval(unused, questions, out, score=lambda r, q: {}, answer_all=answer_all, progress=False)
    assert [r["id"] for r in rows] == [q["id"] for q in questions]
    assert [json.loads(line)["answer"] for line in out.read_text().splitlines()] == [f"A{i}" for i in range(5)]
    assert seen_lines == [0, 0, 1, 3, 3]  # lines in the file before each result: q2 waited for q0, q1; q4 for q3
