"""Tests for bench/bench_shapes.py: results files read back, scored again and tabled per shape."""

from __future__ import annotations

import importlib.util
import json

from test_metrics import MIXED_QUESTIONS, MIXED_RESULTS

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("bench_shapes", ROOT / "bench" / "bench_shapes.py")
bench_shapes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_shapes)


def write_lines(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_shapes_from_two_runs(tmp_path, capsys):
    # two runs: the one-fact questions in one, the broad ones in the other, with a summary beside the first
    one = write_lines(tmp_path / "one.results.jsonl", [{**r, "scores": {}} for r in MIXED_RESULTS[:2]])
    (tmp_path / "one.summary.json").write_text(json.dumps({"settings": {"model": "small"}, "n": 2}))
    broad = write_lines(tmp_path / "broad.results.jsonl", MIXED_RESULTS[2:])
    qs = write_lines(tmp_path / "q.jsonl", MIXED_QUESTIONS)
    out = tmp_path / "shapes.json"
    assert bench_shapes.main([str(one), str(qs), str(broad), str(qs), "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    rows = {s["shape"]: s for s in saved["shapes"]}
    assert [s["shape"] for s in saved["shapes"]] == ["factoid", "unanswerable", "broad list", "explain", "summary",
                                                     "all one_fact", "all broad", "all questions"]
    assert rows["broad list"]["point_recall"] == 2 / 3 and rows["broad list"]["answer_words_median"] == 5
    assert rows["explain"]["accuracy"] == 0.0 and rows["explain"]["answer_words_median"] is None  # refused
    assert rows["all broad"]["n"] == 3 and abs(rows["all broad"]["point_recall"] - 17 / 36) < 1e-12
    assert rows["all broad"]["latency_p95"] == 19.0 and rows["all broad"]["ttft_p50"] == 3.0
    assert rows["all questions"]["accuracy"] == 0.8  # judged: f1, f2, b1, b3 right; b2 wrong
    assert saved["runs"][0]["settings"] == {"model": "small"} and "settings" not in saved["runs"][1]
    printed = capsys.readouterr().out
    assert "| all broad | broad | 3 | 0.667 | 0.472 | 9 | 3.00 / 3.90 | 10.00 / 19.00 |" in printed
