"""qa/conversation.py: which questions are follow-ups, the rewrite request, and which rewrites are kept."""

from __future__ import annotations

import doctest

import pytest

from qa import conversation
from qa.conversation import clean_rewrite, looks_like_follow_up, rewrite_messages
from qa.prompting.messages import build_messages
from qa.types import REFUSAL

HISTORY = [("Which treaty did the U.S. leave in 2019?", "INF Treaty [1].")]


def test_doctests():
    failed, attempted = doctest.testmod(conversation)
    assert attempted and not failed


@pytest.mark.parametrize("question, expected", [
    ("and who accused whom of cheating?", True),
    ("Who signed it?", True),
    ("Who left the INF Treaty?", False),
    ("Who signed that?", True),
    ("why not?", True),
    ("At which event did Macron warn that relying on foreign arms stores up trouble?", False),  # a conjunction
    ("Is there a treaty on intermediate-range missiles?", False),
    ("Why did the 2019 vote give Paris hope?", False),
    ("What role does the mayor play in these two texts?", False),  # the documents, not the conversation
    ("How do both articles describe the pier?", False),
    ("What does this article say about it?", True),
])
def test_follow_ups_are_told_apart(question, expected):
    assert looks_like_follow_up(question, HISTORY) is expected
    assert looks_like_follow_up(question, []) is False


def test_the_rewrite_is_asked_after_the_answer_prompts_fixed_messages():
    prefix = build_messages([], "x")[:-1]
    messages = rewrite_messages("and who accused whom of cheating?", HISTORY, prefix)
    assert messages[:-1] == prefix  # unchanged, so the model's prefix cache serves them
    assert messages[-1]["role"] == "user" and "Assistant: INF Treaty.\n" in messages[-1]["content"]
    assert "[1]" not in messages[-1]["content"]  # a marker in the history is copied into the rewrite
    assert messages[-1]["content"].rstrip().endswith("Rewritten question:")


@pytest.mark.parametrize("reply, kept", [
    ("Who accused whom of cheating over the INF Treaty?", "Who accused whom of cheating over the INF Treaty?"),
    ("Rewritten question: Who accused whom of cheating in 2019?", "Who accused whom of cheating in 2019?"),
    ('"Who accused Moscow of cheating?"\nThe U.S. did.', "Who accused Moscow of cheating?"),  # first line, unquoted
    ("Who left the INF Treaty [1]?", "Who left the INF Treaty?"),  # a copied marker is no part of it
    (REFUSAL, None),  # the answer prompt's refusal sentence, not a question
    ("The U.S. accused Russia of cheating [1].", None),  # an answer, not a question
    ("INF", None),  # too short to be a question
    ("", None),
])
def test_a_rewrite_is_kept_only_when_it_is_a_plausible_question(reply, kept):
    assert clean_rewrite(reply, "and who accused whom of cheating?") == kept
