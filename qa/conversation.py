"""Follow-ups: rewrite "and who was his envoy?" into a standalone question before retrieval.

The one decision: only a question that looks like a follow-up (a pronoun or a leading "and",
"what about", ... with earlier turns to refer to) costs a model call; the model is asked for the
rewritten question only, and if its reply is not a usable question the follow-up is joined to the
previous question instead, which retrieval handles well enough.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_FOLLOW_UP = re.compile(
    r"^(?:and|but|also|so|then|what about|how about|why|what else)\b"
    r"|\b(?:he|him|his|she|her|hers|it|its|they|them|their|theirs|this|that|these|those|there|the same)\b",
    re.I,
)
REWRITE_PROMPT = (
    "Rewrite the user's last question so that it can be understood without the conversation: "
    "replace pronouns with the names they refer to. Reply with the rewritten question only."
)


def looks_like_follow_up(question: str, history: Sequence[tuple[str, str]]) -> bool:
    """
    >>> looks_like_follow_up("and who was his envoy?", [("Who is Macron?", "The president.")])
    True
    >>> looks_like_follow_up("Who was Macron's envoy?", [("Who is Macron?", "The president.")])
    False
    """
    return bool(history) and bool(_FOLLOW_UP.search(question))


def rewrite_messages(question: str, history: Sequence[tuple[str, str]]) -> list[dict]:
    turns = "\n".join(f"User: {q}\nAssistant: {a}" for q, a in history[-2:])
    return [
        {"role": "system", "content": REWRITE_PROMPT},
        {"role": "user", "content": f"Conversation:\n{turns}\n\nLast question: {question}\n\nRewritten question:"},
    ]


def clean_rewrite(reply: str, question: str, history: Sequence[tuple[str, str]]) -> str:
    """The model's rewrite if it is a plausible question, else the previous question joined with this one."""
    reply = reply.strip().splitlines()[0].strip().strip('"“”') if reply.strip() else ""
    reply = re.sub(r"^(?:rewritten question|question)\s*:\s*", "", reply, flags=re.I)
    if 3 <= len(reply.split()) <= 60 and len(reply) <= 4 * len(question) + 200:
        return reply
    return f"{history[-1][0]} {question}"
