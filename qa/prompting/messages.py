"""Step 6c, messages: the chat turns sent to the model: fixed prefix, numbered snippets, question.

The one decision: everything before the question's own turn never changes, so llama.cpp serves it
from its prefix cache; passage text is fenced (one line, brackets turned into parentheses) and
declared to be data, and only a document's first snippet carries its label.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from embeddings.paragraphs import Passage
from qa.prompting.snippets import Snippet
from qa.prompting.styles import DEMONSTRATED, STYLES


def _as_data(text: str) -> str:
    """One line, with brackets that could pass for citation markers turned into parentheses."""
    return " ".join(text.split()).replace("[", "(").replace("]", ")")


def _label(passage: Passage) -> str:
    return source_label(passage.title, passage.author, passage.date)


def source_label(title: str, author: str | None, date: str | None) -> str:
    """«Title» (by Author, date): the title without a subtitle after a colon, cut to six words.

    >>> source_label("Town History", None, "1901")
    '«Town History» (1901)'
    >>> source_label("Macron's Dialogue With Russia: A French Attempt to Fix Europe", "J. Faure", None)
    "«Macron's Dialogue With Russia» (by J. Faure)"
    """
    head, colon, _ = title.partition(": ")
    if colon and len(head.split()) >= 2:  # a subtitle after the colon costs tokens and names nothing new
        title = head
    title = " ".join(title.split()[:6]) + ("…" if len(title.split()) > 6 else "")
    details = ", ".join(x for x in (author and f"by {author}", date) if x)
    return _as_data(f"«{title}»" + (f" ({details})" if details else ""))


def build_messages(snippets: Sequence[Snippet], question: str, *, style: str = "sentence") -> list[dict]:
    """The chat messages: the fixed system prompt and worked exchanges of ``style``, then the numbered
    snippets and the question as the last user turn.

    Only a document's first snippet carries its label (title, author, date); later ones point back
    to it, because labels were a quarter of the prompt and every prompt token delays the answer.

    ``style`` "sentence" answers in a few words copied from a passage, cited; "short" answers with
    only the words that answer (SQuAD-style spans), still cited.

    >>> build_messages([], "Who?")[-1]["content"].endswith("Question: Who?")
    True
    """
    messages = [{"role": "system", "content": STYLES[style]}]
    for demo in DEMONSTRATED[style]:
        numbered = [(source, source_label(*source), text) for source, text in demo.passages]
        messages += [{"role": "user", "content": render_user(numbered, demo.question)},
                     {"role": "assistant", "content": demo.reply}]
    numbered = [(s.passage.doc, _label(s.passage), s.text) for s in snippets]
    return messages + [{"role": "user", "content": render_user(numbered, question)}]


def render_user(numbered: Sequence[tuple[Hashable, str, str]], question: str) -> str:
    """The user turn: (source, label, text) passages numbered from [1], then the question.

    A source's first passage carries its label; its later ones say "(same source as [n])".

    >>> print(render_user([("log", "«Log»", "It froze."), ("log", "«Log»", "It thawed.")], "When?"))
    Passages:
    [1] «Log»: It froze.
    [2] (same source as [1]): It thawed.
    <BLANKLINE>
    Question: When?
    """
    lines = ["Passages:"]
    first: dict[Hashable, int] = {}  # source -> number of its first passage, which carries the full label
    for n, (source, label, text) in enumerate(numbered, start=1):
        shown = label if source not in first else f"(same source as [{first[source]}])"
        first.setdefault(source, n)
        lines.append(f"[{n}] {shown}: {_as_data(text)}")
    lines += ["", f"Question: {question}"]
    return "\n".join(lines)
