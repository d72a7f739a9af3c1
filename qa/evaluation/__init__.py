"""Evaluate step: run a question file through the pipeline, score it, summarise it, report it."""

from qa.evaluation.metrics import score_result
from qa.evaluation.questions import read_questions, read_results
from qa.evaluation.report import write_report
from qa.evaluation.runner import run_eval
from qa.evaluation.summary import format_summary_table, summarize

__all__ = ["format_summary_table", "read_questions", "read_results", "run_eval", "score_result", "summarize",
           "write_report"]
