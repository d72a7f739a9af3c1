"""The web chat: a Gradio page over ``qa.Pipeline``, and nothing but presentation.

The one decision: the page shows what the pipeline's *final* ``Answer`` says. Tokens stream into
the chat as the model writes them, then the verified text (which may differ: markers corrected,
sentences dropped, a refusal) replaces them, and the sources panel is rendered from its citations:
each ``[n]`` in the chat links to a card holding ``document[passage_start:passage_end]`` with
``document[start:end]`` marked, and to the whole document scrolled to that span.

    python app.py                       # http://127.0.0.1:7860, seed corpus, default model
    python app.py --corpus ~/notes --model small --port 8000

One model serves everyone: answering events share one queue slot (``concurrency_id="model"``), and
each browser tab keeps its own conversation in ``gr.State``. Uploaded files go to their own
collection under the cache folder; every collection shares the one encoder and the one generator.
"""

from __future__ import annotations

import os

# Before gradio is imported: no analytics or version check, no hub calls, loopback never proxied.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
for _var in ("no_proxy", "NO_PROXY"):
    _hosts = [h for h in os.environ.get(_var, "").split(",") if h]
    os.environ[_var] = ",".join(dict.fromkeys([*_hosts, "127.0.0.1", "localhost"]))

import argparse  # noqa: E402
import html  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator, Mapping, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import quote  # noqa: E402

import gradio as gr  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import HTMLResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from embeddings.documents import SUFFIXES, Document  # noqa: E402
from qa.cite import withheld_draft  # noqa: E402
from qa.errors import InvalidArgument, QAError  # noqa: E402
from qa.generate import Generator  # noqa: E402
from qa.library import MAX_COLLECTION_FILES, MAX_UPLOAD_BYTES, Library, UploadRejected  # noqa: E402
from qa.retrieve import Hit, clean_question  # noqa: E402
from qa.settings import Settings  # noqa: E402
from qa.types import Answer, Citation, Retrieved, Token  # noqa: E402

log = logging.getLogger("qa.app")

MAX_HISTORY = 4  # earlier turns sent with a follow-up (as qa.pipeline.Conversation does)


# ----------------------------------------------------------------------------------- rendering

_MARKER = re.compile(r"\[(\d{1,3})\]")
_BLANK_LINES = re.compile(r"\n[^\S\n]*(?:\n[^\S\n]*)+")


def tidy(text: str) -> str:
    """For display only: runs of blank lines shown as one (the passage's offsets are untouched)."""
    return _BLANK_LINES.sub("\n\n", text)


def cite_id(turn: int, n: int) -> str:
    """The HTML id of citation ``[n]`` of the ``turn``-th answer: ``cite_id(2, 1) -> 'cite-2-1'``."""
    return f"cite-{turn}-{n}"


def link_citations(text: str, turn: int, numbers: Sequence[int]) -> str:
    """Chat markdown for an answer: HTML escaped, each known ``[n]`` a link to its source card.

    >>> link_citations("Vimont [1] <b>", 3, [1])
    'Vimont [\\\\[1\\\\]](#cite-3-1) &lt;b&gt;'
    """
    known = set(numbers)

    def link(match: re.Match) -> str:
        n = int(match.group(1))
        return rf"[\[{n}\]](#{cite_id(turn, n)})" if n in known else match.group(0)

    return _MARKER.sub(link, html.escape(text, quote=False))


def highlight(text: str, start: int, end: int, *, lo: int, hi: int, mark_id: str = "") -> str:
    """HTML of ``text[lo:hi]`` (escaped) with ``text[start:end]`` inside ``<mark>``.

    >>> highlight("a <b> c", 2, 5, lo=0, hi=7)
    'a <mark>&lt;b&gt;</mark> c'
    """
    lo, hi = min(lo, start), max(hi, end)
    mark = f'<mark id="{html.escape(mark_id)}">' if mark_id else "<mark>"
    return html.escape(text[lo:start]) + mark + html.escape(text[start:end]) + "</mark>" + html.escape(text[end:hi])


def document_url(collection: str, doc: str, start: int, end: int) -> str:
    """Relative link to the whole-document page, scrolled to the marked span."""
    return f"document/{quote(collection, safe='')}/{quote(doc)}?start={start}&end={end}#cited"


def _byline(document: Document | None, fallback: str) -> str:
    if document is None:
        return f"<b>{html.escape(fallback)}</b>"
    meta = document.meta
    parts = [html.escape(part) for part in (meta.author, meta.date) if part]
    return f"<b>{html.escape(meta.title)}</b>" + (f"<br><small>{' · '.join(parts)}</small>" if parts else "")


def _scores(hit: Hit | None) -> str:
    if hit is None:
        return ""
    return (f'<div class="scores">rank {hit.rank} · fused {hit.score:.4f} · dense {hit.dense_score:.3f}'
            f" · BM25 {hit.bm25_score:.2f}</div>")


def render_citation(c: Citation, *, turn: int, collection: str, documents: Mapping[str, Document],
                    hit: Hit | None = None, show_scores: bool = False) -> str:
    """One source card: the passage with the supporting sentence marked, byline, link to the document."""
    document = documents.get(c.doc)
    if document is not None and document.text[c.start:c.end] == c.text:
        passage = tidy(highlight(document.text, c.start, c.end, lo=c.passage_start, hi=c.passage_end or c.end))
    else:  # no document text to show context from: the cited sentence alone
        passage = f"<mark>{html.escape(c.text)}</mark>"
    return (f'<div class="source" id="{cite_id(turn, c.n)}"><div class="source-head">'
            f'<span class="marker">[{c.n}]</span> {_byline(document, c.doc)}</div>'
            f'<div class="passage">{passage}</div>'
            f'<a class="open-doc" href="{html.escape(document_url(collection, c.doc, c.start, c.end))}" '
            f'target="_blank" rel="noopener">Open the whole document at this sentence ↗</a>'
            f"{_scores(hit) if show_scores else ''}</div>")


def render_hit(hit: Hit, *, collection: str, documents: Mapping[str, Document], show_scores: bool = False) -> str:
    """A retrieved passage that is not cited (the closest passages of a refusal, or the rest)."""
    p = hit.passage
    return (f'<div class="source retrieved"><div class="source-head">{_byline(documents.get(p.doc), p.doc)}</div>'
            f'<div class="passage">{tidy(html.escape(p.text))}</div>'
            f'<a class="open-doc" href="{html.escape(document_url(collection, p.doc, p.start, p.end))}" '
            f'target="_blank" rel="noopener">Open the whole document here ↗</a>'
            f"{_scores(hit) if show_scores else ''}</div>")


def render_answer_sources(answer: Answer, *, turn: int, collection: str, documents: Mapping[str, Document],
                          show_scores: bool = False) -> str:
    """The sources of one answer: cited cards, or for a refusal the closest passages to read."""
    by_id = {hit.passage.id: hit for hit in answer.passages}
    cited = [render_citation(c, turn=turn, collection=collection, documents=documents,
                             hit=by_id.get(c.passage_id), show_scores=show_scores) for c in answer.citations]
    cited_ids = {c.passage_id for c in answer.citations}
    rest = [render_hit(h, collection=collection, documents=documents, show_scores=show_scores)
            for h in answer.passages if h.passage.id not in cited_ids]
    parts = []
    if answer.standalone_question and answer.standalone_question != clean_question(answer.question):
        parts.append(f'<p class="searched">Searched for: <i>{html.escape(answer.standalone_question)}</i></p>')
    if answer.refused or not cited:
        parts.append('<p class="refusal">The documents do not answer this. The closest passages are below; '
                     "read them and judge for yourself.</p>")
        parts.append(render_withheld(answer))
        parts += rest
    else:
        parts += cited
        if rest:
            parts.append(f"<details><summary>Other passages searched ({len(rest)})</summary>{''.join(rest)}</details>")
    t = answer.timings
    if t.total_s:
        first = f", first words after {t.first_token_s:.1f} s" if t.first_token_s is not None else ""
        parts.append(f'<p class="timing">Answered in {t.total_s:.1f} s{first}.</p>')
    return "".join(parts)


def render_withheld(answer: Answer) -> str:
    """For a refusal where the model did draft an answer (which streamed into the chat before the
    check replaced it): the draft and why the citation check withheld it; else nothing."""
    draft = withheld_draft(answer)
    if not draft:
        return ""
    reasons = "".join(f"<li>{html.escape(note)}</li>" for note in answer.notes)
    return (f'<details class="withheld"><summary>Why the model\'s draft was withheld</summary>'
            f"<p>The model wrote <q>{html.escape(draft)}</q>, but the citation check found no sentence of it "
            f"grounded in the passages:</p><ul>{reasons}</ul></details>")


def render_searching(retrieved: Retrieved, *, collection: str, documents: Mapping[str, Document]) -> str:
    """What the sources panel shows while the model reads: the passages it was given."""
    hits = "".join(render_hit(h, collection=collection, documents=documents) for h in retrieved.passages)
    return f'<p class="searched">Reading {len(retrieved.passages)} passages…</p>{hits}'


# -------------------------------------------------------------------------------------- events


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
                raise UploadRejected("choose one or more .txt or .md files first")
            progress(0, desc="Indexing your files")
            collection, added, rejected = self.library.add_files(
                name, [Path(p) for p in paths],
                progress=lambda done, total: progress((done, total), desc="Embedding passages"))
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


# ------------------------------------------------------------------------------------------ page

THEME = gr.themes.Soft(
    font=("system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"),
    font_mono=("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"),
)  # system fonts only: nothing is fetched from a font service

CSS = """
#sources .source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px;
                   margin: 8px 0; }
#sources .source.active { outline: 3px solid var(--color-accent); }
#sources .source-head { margin-bottom: 4px; }
#sources .marker { font-weight: 700; color: var(--color-accent); margin-right: 4px; }
#sources .passage { white-space: pre-wrap; font-size: 0.92em; line-height: 1.45; }
#sources mark { background: #fde68a; color: inherit; padding: 0 1px; }
#sources .open-doc, #sources .scores, #sources .timing, #sources .searched { font-size: 0.82em; opacity: 0.85; }
#sources .refusal { font-weight: 600; }
#sources details.withheld { font-size: 0.88em; opacity: 0.9; margin: 4px 0 10px; }
#sources details.withheld > summary { cursor: pointer; }
#sources details.turn > summary { cursor: pointer; font-weight: 600; margin: 6px 0; }
#chat a[href^="#cite-"] { text-decoration: none; font-weight: 600; }
"""

# Clicking a citation marker in the chat opens and outlines its card in the sources panel.
HEAD = """<script>
document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest('a[href^="#cite-"]');
  if (!link) return;
  event.preventDefault();
  event.stopPropagation();
  const card = document.getElementById(link.getAttribute("href").slice(1));
  if (!card) return;
  for (let d = card.closest("details"); d; d = d.parentElement && d.parentElement.closest("details")) d.open = true;
  document.querySelectorAll("#sources .source.active").forEach((el) => el.classList.remove("active"));
  card.classList.add("active");
  card.scrollIntoView({behavior: "smooth", block: "nearest"});
}, true);
</script>"""

INTRO = """# Ask your documents
Answers come only from the documents of the chosen collection, with numbered citations: click a
**[1]** to see the passage it comes from. When the documents do not say, the assistant says so."""


def create_app(library: Library) -> gr.Blocks:
    """Build the page (without launching it); see ``serve`` for the server."""
    ui = Handlers(library)
    settings = library.settings
    with gr.Blocks(title="Ask your documents") as demo:
        turns = gr.State([])  # this session's list[Turn]
        pending = gr.State("")  # the question being answered
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=3):
                collection = gr.Dropdown(library.collections(), value=library.main, label="Collection to ask",
                                         interactive=True)
                chatbot = gr.Chatbot(elem_id="chat", height=480, label="Conversation", buttons=["copy"],
                                     feedback_options=None, latex_delimiters=[],
                                     placeholder="Ask about the documents in this collection, or try an example.")
                with gr.Row():
                    question = gr.Textbox(placeholder="Ask a question… (follow-ups are understood)",
                                          show_label=False, scale=5, max_lines=4, autofocus=True)
                    ask = gr.Button("Ask", variant="primary", scale=1, min_width=80)
                examples = gr.Dataset(components=[question], samples=[[q] for q in library.examples(library.main)],
                                      label="Try asking", type="values")
                start_over = gr.Button("Start over", variant="secondary", size="sm")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML(ui.sources([], False), elem_id="sources", js_on_load=None, max_height=640)
        with gr.Accordion("Settings", open=False):
            with gr.Row():
                k = gr.Slider(1, 10, value=settings.k, step=1, label="Passages to search")
                model = gr.Dropdown(library.models, value=settings.model, label="Model",
                                    visible=len(library.models) > 1)
                show_scores = gr.Checkbox(False, label="Show retrieval scores")
        with gr.Accordion("Add your own documents", open=False):
            gr.Markdown(f"Upload `.txt` or `.md` files (UTF-8, at most {MAX_UPLOAD_BYTES // 2**20} MB each, "
                        f"{MAX_COLLECTION_FILES} per collection). They go into a separate collection; "
                        f"**{library.main}** is never changed.")
            with gr.Row():
                files = gr.File(file_count="multiple", file_types=list(SUFFIXES), type="filepath",
                                label="Files", scale=3)
                with gr.Column(scale=2):
                    upload_name = gr.Textbox("my-documents", label="Collection name")
                    index_button = gr.Button("Index these files", variant="primary")
            upload_status = gr.Markdown()

        private = {"api_visibility": "private"}  # the one public endpoint is /ask

        def unlocked():
            return gr.update(interactive=True), gr.update(interactive=True)

        # Asking is two steps: show the question (never queued), then answer (one at a time, shared
        # with /ask); the input stays locked in between so a session never runs two answers at once.
        example_chosen = examples.click(lambda sample: sample[0], examples, question, **private)
        answering = []
        for trigger in (question.submit, ask.click, example_chosen.then):
            answering.append(
                trigger(ui.accept, [question, turns], [question, pending, chatbot, ask], concurrency_limit=None,
                        show_progress="hidden", **private)
                .success(ui.respond, [pending, turns, collection, k, model, show_scores], [chatbot, sources, turns],
                         concurrency_limit=1, concurrency_id="model", **private))
            answering[-1].then(unlocked, None, [question, ask], queue=False, show_progress="hidden", **private)
        start_over.click(lambda: ([], [], ui.sources([], False), *unlocked()), None,
                         [turns, chatbot, sources, question, ask], cancels=answering, **private)
        chatbot.clear(lambda: ([], ui.sources([], False), *unlocked()), None, [turns, sources, question, ask],
                      cancels=answering, **private)  # the chat's own bin button
        show_scores.change(ui.sources, [turns, show_scores], sources, **private)
        collection.change(ui.switch, collection, examples, **private)
        index_button.click(ui.upload, [files, upload_name], [collection, upload_status, files],
                           concurrency_limit=1, concurrency_id="index", **private)
        demo.load(ui.load, None, collection, **private)
        gr.api(ui.ask, api_name="ask", concurrency_limit=1, concurrency_id="model")
    return demo


def document_page(library: Library) -> Route:
    """``GET /document/<collection>/<doc>?start=&end=``: the whole indexed document, span marked."""

    def page(request: Request) -> HTMLResponse:
        collection, doc = request.path_params["collection"], request.path_params["doc"]
        try:
            document = library.documents(collection).get(doc)
            start, end = int(request.query_params.get("start", 0)), int(request.query_params.get("end", 0))
        except (QAError, ValueError):
            document = None
        if document is None:
            return HTMLResponse("<p>No such document in this collection.</p>", status_code=404)
        start, end = max(0, min(start, len(document.text))), max(0, min(end, len(document.text)))
        body = (highlight(document.text, start, end, lo=0, hi=len(document.text), mark_id="cited")
                if start < end else html.escape(document.text))
        meta = document.meta
        byline = " · ".join(html.escape(x) for x in (meta.author, meta.date, meta.publisher) if x)
        return HTMLResponse(
            f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(meta.title)}</title><style>'
            "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.55}"
            "pre{white-space:pre-wrap;font-family:inherit}mark{background:#fde68a;scroll-margin-top:40vh}"
            f"</style></head><body><h1>{html.escape(meta.title)}</h1><p>{byline}</p>"
            f"<p><small>{html.escape(collection)} / {html.escape(doc)}</small></p><pre>{body}</pre></body></html>")

    return Route("/document/{collection}/{doc:path}", page)


def serve(demo: gr.Blocks, library: Library, *, host: str = "127.0.0.1", port: int = 7860,
          block: bool = True, quiet: bool = False):
    """Launch on ``host:port``: queued, no share link, nothing fetched from outside."""
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo.launch(
        server_name=host, server_port=port, share=False, prevent_thread_lock=not block, quiet=quiet,
        theme=THEME, css=CSS, head=HEAD, ssr_mode=False, show_error=False, footer_links=["api", "settings"],
        max_file_size=MAX_UPLOAD_BYTES, app_kwargs={"routes": [document_page(library)]},
    )


# ------------------------------------------------------------------------------------------ main


def _port(text: str) -> int:
    """A TCP port number, checked before any model loads: ``"8000" -> 8000``."""
    if not text.strip().isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 1 to 65535, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="The web chat over your documents (offline).")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=7860, help="port (default 7860)")
    parser.add_argument("--corpus", help="folder of .txt/.md documents (env QA_CORPUS; default: seeds/)")
    parser.add_argument("--index-dir", help="where its index lives (env QA_INDEX_DIR)")
    parser.add_argument("--model", help="language model: default, small, a .gguf file... (env QA_MODEL)")
    return parser


def load_library(settings: Settings) -> Library:
    """Load the encoder and the model once, warm them up, and open (or build) the main index."""
    from embeddings.encoder import load_encoder
    from qa.generate import load_generator
    from qa.models import installed_models

    def load_model(name: str) -> Generator:
        return load_generator(name, backend=settings.backend)

    encoder = load_encoder(settings.embedder)
    installed = installed_models()
    models = [settings.model, *(m for m in installed if m != settings.model)]
    library = Library(settings, encoder=encoder, generator=load_model(settings.model), models=models,
                      load_model=load_model)
    library.pipeline().warm_up()
    return library


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(level=logging.INFO, format="app: %(message)s")
    for noisy in ("sentence_transformers", "transformers", "httpx", "huggingface_hub", "bm25s", "faiss.loader"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        settings = Settings.from_env(corpus=args.corpus, index_dir=args.index_dir, model=args.model)
        log.info("loading the models and the index of %s (the first start takes a few minutes)…", settings.corpus)
        library = load_library(settings)
        demo = create_app(library)
        serve(demo, library, host=args.host, port=args.port, block=False, quiet=True)
        log.info("ready: open http://%s:%d in a browser (Ctrl+C stops)", args.host, args.port)
        demo.block_thread()
    except QAError as exc:
        print(f"app: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # port in use, unreadable folder
        print(f"app: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
