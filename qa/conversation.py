"""Follow-ups: rewrite "and who was his envoy?" into a standalone question before retrieval.

The one decision: only a question that looks like a follow-up (a pronoun or a leading "and",
"what about", ... with earlier turns to refer to) costs a model call, and that call is sent after the
answer prompt's fixed messages (system prompt and worked exchanges), so the model's prefix cache
serves them both for the rewrite and for the answer that follows. If its reply is not a usable
question (the model answering instead of rewriting), retrieval searches for the previous question
joined with the follow-up, while the model is asked the follow-up as written (docs/DESIGN.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from qa.citation.claims import is_refusal, strip_citations

# "that" and "there" count only as the last word ("who signed that?"), and "why" only alone, so
# "warn that relying..." or "is there..." costs no rewrite call.
_FOLLOW_UP = re.compile(
    r"^(?:and|but|also|so|then|what about|how about|what else)\b|^why(?: not)?\W*$"
    r"|\b(?:he|him|his|she|her|hers|it|its|they|them|their|theirs|this|these|those|the same)\b"
    r"|\b(?:that|there)\W*$",
    re.I,
)
_FIRST_QUESTION = re.compile(r"^([^?]+\?)\s+\S")  # a first sentence that asks, with more after it
# "...in these two texts", "both articles": the documents, not something said earlier in the conversation
_DOCUMENTS = re.compile(r"\b(?:these|those|both|all)\s+(?:(?:the\s+)?(?:two|three|four|five|\d+)\s+)?"
                        r"(?:articles|texts|documents|pieces|papers|reports|sources|files)\b", re.I)
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

    A pronoun after a first sentence that is a whole question of its own points back into the
    question, not at the conversation ("Which speeches does Momtaz quote? List them.").

    >>> looks_like_follow_up("Which speeches does Momtaz quote? List them.", [("Who is Macron?", "The president.")])
    False
    >>> looks_like_follow_up("Tell me more. Who was he?", [("Who is Macron?", "The president.")])
    True

    "These two texts" names the documents, not something said before.

    >>> looks_like_follow_up("What role does Trump play in these two texts?", [("Who is Macron?", "The president.")])
    False
    """
    first = _FIRST_QUESTION.match(question.strip())
    asked = _DOCUMENTS.sub(" ", first.group(1) if first and len(first.group(1).split()) >= 4 else question)
    return bool(history) and bool(_FOLLOW_UP.search(asked))


def rewrite_messages(question: str, history: Sequence[tuple[str, str]], prefix: Sequence[dict]) -> list[dict]:
    """``prefix`` (the answer prompt's fixed messages, unchanged) and one user turn asking for the rewrite.

    >>> rewrite_messages("and his role?", [("Who was the envoy?", "Vimont [1].")], [])[-1]["content"].splitlines()[-3:]
    ['Last question: and his role?', '', 'Rewritten question:']
    """
    # without its citation markers, which the model would copy into the rewrite ("Rym Momtaz [1] ...")
    turns = "\n".join(f"User: {q}\nAssistant: {strip_citations(a)}" for q, a in history[-2:])
    ask = f"{REWRITE_PROMPT}\n\nConversation:\n{turns}\n\nLast question: {question}\n\nRewritten question:"
    return [*prefix, {"role": "user", "content": ask}]


def clean_rewrite(reply: str, question: str) -> str | None:
    """The model's rewrite if it is a plausible question, else None.

    Asked after the answer prompt, the model may reply with its refusal sentence or answer the
    question instead of rewriting it: neither is a question.

    >>> clean_rewrite("Rewritten question: Who left the INF Treaty [1]?", "and who left it?")
    'Who left the INF Treaty?'
    >>> clean_rewrite("I cannot find the answer in the documents.", "and who left it?") is None
    True
    >>> clean_rewrite("The U.S. left it [1].", "and who left it?") is None
    True
    """
    reply = reply.strip().splitlines()[0].strip().strip('"“”') if reply.strip() else ""
    reply = strip_citations(re.sub(r"^(?:rewritten question|question)\s*:\s*", "", reply, flags=re.I))
    if (3 <= len(reply.split()) <= 60 and len(reply) <= 4 * len(question) + 200 and reply.endswith("?")
            and not is_refusal(reply)):
        return reply
    return None


def joined(question: str, history: Sequence[tuple[str, str]]) -> str:
    """What retrieval searches for a follow-up the model could not rewrite.

    >>> joined("and who left it?", [("Which treaty did the U.S. leave in 2019?", "INF Treaty [1].")])
    'Which treaty did the U.S. leave in 2019? and who left it?'
    """
    return f"{history[-1][0]} {question}"
