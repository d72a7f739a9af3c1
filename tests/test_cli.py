"""The CLI as a user runs it: a real subprocess, real output, real exit codes (fake-free, small corpus);
the printing of a withheld draft is checked directly on a hand-made answer."""

import json
import os
import subprocess
import sys

import pytest

from conftest import PARA, ROOT, write_corpus


def run_qa(*args, env_extra=None, timeout=300):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    corpus = write_corpus(root / "corpus", {
        "a.txt": "Pierre Vimont was the special envoy for the strategic dialogue with Russia, it says here.",
        "b.md": "# Other\n\n" + PARA.format("Something else entirely"),
    })
    return corpus, root / "index"


@pytest.mark.model
def test_index_then_search_json(small_corpus):
    corpus, index_dir = small_corpus
    env = {"QA_EMBEDDER": "all-MiniLM-L6-v2"}
    done = run_qa("--index-dir", str(index_dir), "index", str(corpus), env_extra=env)
    assert done.returncode == 0, done.stderr
    assert "indexed 2 documents" in done.stdout
    out = run_qa("--corpus", str(corpus), "--index-dir", str(index_dir), "search", "Who was the envoy?",
                 "-k", "5", "--json", env_extra=env)
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)
    assert len(hits) == 2
    assert [set(h) for h in hits] == [{"rank", "doc", "passage_id", "start", "end", "score", "text"}] * 2
    assert hits[0]["doc"] == "a.txt" and "Vimont" in hits[0]["text"]
    text = (corpus / hits[0]["doc"]).read_text(encoding="utf-8")
    assert text[hits[0]["start"] : hits[0]["end"]] == hits[0]["text"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["search", "   "], "question is empty"),
        (["search", "x", "-k", "0"], "k must be a positive"),
        (["--corpus", "/definitely/not/here", "search", "hello"], "corpus folder not found"),
    ],
)
def test_user_mistakes_print_one_line_and_exit_2(args, message, tmp_path):
    out = run_qa("--index-dir", str(tmp_path / "idx"), *args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("qa: error:")


def test_a_refusal_prints_why_the_models_draft_was_withheld(capsys):
    from qa.cli.commands import print_sources
    from qa.types import REFUSAL, Answer

    withheld = Answer("What was announced at the 2024 forum?", REFUSAL, (), (), True, raw_text="Roadmap [1].",
                      notes=("dropped a sentence whose document never mentions 2024: Roadmap.",))
    print_sources(withheld)
    out = capsys.readouterr().out
    assert "the model's draft 'Roadmap [1].' was withheld:" in out and "  - dropped a sentence" in out
    print_sources(Answer("Who?", REFUSAL, (), (), True, raw_text=REFUSAL, notes=("the model declined",)))
    assert "withheld" not in capsys.readouterr().out


@pytest.mark.parametrize(("before", "after"), [
    (["--index-dir", "X", "index", "DIR"], ["index", "DIR", "--index-dir", "X"]),
    (["--corpus", "c", "--embedder", "e", "search", "Who?"], ["search", "Who?", "--embedder", "e", "--corpus", "c"]),
    (["--json", "-k", "3", "search", "Who?"], ["search", "Who?", "--json", "-k", "3"]),
    (["--model", "small", "--short", "ask", "Who?"], ["ask", "Who?", "--short", "--model", "small"]),
    (["--limit", "2", "eval", "q.jsonl", "--corpus", "c"], ["eval", "q.jsonl", "--corpus", "c", "--limit", "2"]),
    (["--index-dir", "X", "text", "a.pdf"], ["text", "a.pdf", "--index-dir", "X"]),
])
def test_options_work_before_and_after_the_command(before, after):
    from qa.cli.commands import build_parser, command_first

    parser = build_parser()
    parsed = [vars(parser.parse_args(command_first(parser, argv))) for argv in (before, after)]
    assert parsed[0] == parsed[1]
    assert parsed[0]["command"] == after[0]


def test_an_option_value_that_names_a_command_is_not_taken_for_the_command():
    from qa.cli.commands import build_parser, command_first

    parser = build_parser()
    args = parser.parse_args(command_first(parser, ["--corpus", "index", "search", "Who?"]))
    assert args.command == "search" and args.corpus == "index" and args.question == "Who?"


def test_index_takes_its_folder_and_the_index_folder_in_either_order(tmp_path):
    corpus = write_corpus(tmp_path / "c", {"a.txt": PARA.format("Alpha")})
    done = run_qa("index", str(corpus), "--index-dir", str(tmp_path / "idx"), "--embedder", "all-MiniLM-L6-v2")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "idx" / "CURRENT").is_file() and "indexed 1 documents" in done.stdout


@pytest.mark.parametrize("argv", [["--ray", "index", "DIR"], ["index", "DIR", "--ray"], ["index", "--ray=", "DIR"]])
def test_ray_without_an_address_takes_no_folder_for_one(argv):
    from qa.cli.commands import build_parser, command_first

    parser = build_parser()
    args = parser.parse_args(command_first(parser, argv))
    assert args.corpus_dir == "DIR" and args.ray == ""


def test_index_reports_files_and_pages_as_it_reads(tmp_path, format_files):
    import shutil

    from conftest import KeywordEncoder

    from embeddings.build import build_index

    corpus = tmp_path / "c"
    corpus.mkdir()
    shutil.copy(format_files["report.pdf"], corpus / "report.pdf")
    (corpus / "notes.txt").write_text(PARA.format("Notes"))
    seen = []
    build_index(corpus, tmp_path / "idx", encoder=KeywordEncoder(), reading=lambda *a: seen.append(a))
    assert seen == [(1, 2, 0), (2, 2, 3)]  # files in name order: notes.txt, then the 3-page report.pdf
    done = run_qa("index", str(corpus), "--index-dir", str(tmp_path / "idx"), "--embedder", "all-MiniLM-L6-v2")
    assert done.returncode == 0, done.stderr
    assert "indexed 2 documents (3 PDF pages)" in done.stdout
