"""The web UI's page: the Gradio blocks and how their events are wired to ``Handlers``.

The one decision: one model serves everyone: answering events share one queue slot
(``concurrency_id="model"``), and the input stays locked while a session's answer is being written.
``create_app`` builds the page without launching it, so tests can drive it.
"""

from __future__ import annotations

import gradio as gr

from embeddings.documents import CORPUS_SUFFIXES
from qa.library import MAX_COLLECTION_FILES, MAX_UPLOAD_BYTES, Library
from qa.ui.handlers import Handlers

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
#sources .where { font-size: 0.85em; font-weight: 600; opacity: 0.8; margin-bottom: 4px; }
#sources .pdf-page img { width: 100%; margin-top: 6px; border: 1px solid var(--border-color-primary); }
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
            gr.Markdown(f"Upload PDF (with a text layer), Word `.docx`, HTML, `.txt` or `.md` files (at most "
                        f"{MAX_UPLOAD_BYTES // 2**20} MB each, "
                        f"{MAX_COLLECTION_FILES} per collection). They go into a separate collection; "
                        f"**{library.main}** is never changed.")
            with gr.Row():
                files = gr.File(file_count="multiple", file_types=list(CORPUS_SUFFIXES), type="filepath",
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

