"""The web UI's events: what asking, uploading and switching collections do, per browser session.

The one decision: all per-user data arrives and leaves as arguments (``gr.State`` holds each tab's
``Turn`` list), so one ``Handlers`` serves every session; tokens stream into the chat as the model
writes them, then the verified answer replaces them.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from qa.errors import InvalidArgument, QAError
from qa.library import Library, UploadRejected
from qa.retrieve import clean_question
from qa.types import Answer, Retrieved, Token
from qa.ui.render import link_citations, render_answer_sources, render_searching

log = logging.getLogger("qa.app")

MAX_HISTORY = 4  # earlier turns sent with a follow-up (as qa.pipeline.Conversation does)


@dataclass(frozen=True)
class Turn:
    """One question and its final answer, kept in the session's ``gr.State``."""

    question: str
    answer: Answer
    collection: str


def whole_number(value: object) -> int:
    """``k`` as /ask receives it: an int, or a float or string holding one (``"3" -> 3``); else refused.
    Nothing (None or "") is 0, the default."""
    if value is None or value == "":
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,9}\s*", value):
        return int(value)
    raise InvalidArgument(f"k must be a whole number of passages, got {value!r}")


def user_error(exc: Exception) -> gr.Error:
    """What the user sees for a failure: the message of our own errors, never a traceback."""
    if isinstance(exc, QAError):
        return gr.Error(str(exc))
    log.exception("unexpected error")
    return gr.Error(f"Something went wrong ({type(exc).__name__}: {exc}). The server log has the details.")


def chat_messages(turns: Sequence[Turn], pending: str | None = None, partial: str | None = None) -> list[dict]:
    messages = []
    for i, turn in enumerate(turns, start=1):
        a = turn.answer
        text = link_citations(a.text, i, [c.n for c in a.citations])
        if a.refused:
            text = f"**{text}**\n\n*The closest passages are listed under Sources.*"
        messages += [{"role": "user", "content": html.escape(turn.question, quote=False)},
                     {"role": "assistant", "content": text}]
    if pending is not None:
        messages.append({"role": "user", "content": html.escape(pending, quote=False)})
        if partial is not None:
            messages.append({"role": "assistant", "content": partial})
    return messages


class Handlers:
    """The functions the page's events call; all per-user data arrives and leaves as arguments."""

    def __init__(self, library: Library) -> None:
        self.library = library

    def sources(self, turns: Sequence[Turn], show_scores: bool) -> str:
        """The sources panel: the latest answer open, earlier ones folded."""
        if not turns:
            return '<p class="empty">Sources appear here: click a marker like [1] in an answer to see its passage.</p>'
        sections = []
        for i, turn in reversed(list(enumerate(turns, start=1))):
            try:
                documents = self.library.documents(turn.collection)
            except QAError:
                documents = {}
            body = render_answer_sources(turn.answer, turn=i, collection=turn.collection, documents=documents,
                                         show_scores=show_scores)
            opened = " open" if i == len(turns) else ""
            sections.append(f'<details class="turn"{opened}><summary>{html.escape(turn.question)}</summary>'
                            f"{body}</details>")
        return "".join(sections)

    def accept(self, question: str, turns: list[Turn]):
        """First step of asking: show the question at once (the answer may wait in the queue)."""
        try:
            question = clean_question(question)
        except QAError as exc:
            raise user_error(exc) from None
        locked = gr.update(value="", interactive=False)  # until the answer is complete
        return locked, question, chat_messages(turns, question, "*Waiting for the model…*"), locked

    def respond(self, question: str, turns: list[Turn], collection: str, k: int, model: str,
                show_scores: bool) -> Iterator[tuple]:
        """Stream the answer into the chat, then replace it with the verified one and its sources."""
        history = [(t.answer.standalone_question or t.question, t.answer.text)
                   for t in turns if t.collection == collection][-MAX_HISTORY:]
        try:
            pipeline = self.library.pipeline(collection, model)
            yield chat_messages(turns, question, "*Searching the documents…*"), gr.skip(), gr.skip()
            text = ""
            for event in pipeline.stream(question, history=history, k=int(k)):
                if isinstance(event, Retrieved):
                    panel = render_searching(event, collection=collection, documents=pipeline.index.documents)
                    yield chat_messages(turns, question, "*Reading the passages…*"), panel, gr.skip()
                elif isinstance(event, Token):
                    text += event.text
                    yield chat_messages(turns, question, html.escape(text, quote=False) + " ▌"), gr.skip(), gr.skip()
                elif isinstance(event, Answer):
                    turns = [*turns, Turn(question, event, collection)]
            yield chat_messages(turns), self.sources(turns, show_scores), turns
        except Exception as exc:  # noqa: BLE001 - shown to the user, logged when unexpected
            error = user_error(exc)
            shown = f"⚠️ {html.escape(error.message, quote=False)}"
            yield chat_messages(turns, question, shown), gr.skip(), gr.skip()
            raise error from None

    def ask(self, question: str, collection: str = "", k: int = 0) -> dict:
        """Answer one question, without a conversation: ``Answer.to_dict()`` (answer, refused, citations...).

        ``collection`` "" is the main corpus; ``k`` 0 the default number of passages.
        """
        try:
            return self.library.pipeline(collection or None).answer(question, k=whole_number(k) or None).to_dict()
        except Exception as exc:  # noqa: BLE001
            raise user_error(exc) from None

    def upload(self, paths: list[str] | None, name: str, progress=gr.Progress()):
        """Index uploaded files into a collection and select it; say plainly what was left out."""
        try:
            if not paths:
                raise UploadRejected("choose one or more documents first (PDF, Word, HTML, text or Markdown)")
            progress(0, desc="Indexing your files")
            collection, added, rejected = self.library.add_files(
                name, [Path(p) for p in paths],
                progress=lambda done, total: progress((done, total), desc="Embedding passages"),
                reading=lambda i, n, file: progress((i, n), desc=f"Reading {file} ({i + 1} of {n})"))
        except QAError as exc:  # a rejected upload is a message, not a broken page
            gr.Warning(str(exc))
            return gr.skip(), f"**Nothing was indexed:** {html.escape(str(exc), quote=False)}", gr.skip()
        except Exception as exc:  # noqa: BLE001
            raise user_error(exc) from None
        report = f"Indexed {len(added)} file(s) into **{collection}**: {', '.join(added)}."
        if rejected:
            report += "\n\nNot indexed:\n" + "\n".join(f"- {html.escape(r, quote=False)}" for r in rejected)
        return gr.update(choices=self.library.collections(), value=collection), report, None

    def switch(self, collection: str):
        """A collection was chosen: offer its example questions."""
        try:
            samples = [[q] for q in self.library.examples(collection)]
        except Exception as exc:  # noqa: BLE001
            raise user_error(exc) from None
        return gr.Dataset(samples=samples)

    def load(self):
        """A new page load: the collections that exist now."""
        return gr.update(choices=self.library.collections())

