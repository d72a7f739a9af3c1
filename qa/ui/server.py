"""The web UI's server: launch the page on 127.0.0.1, serve whole documents, load the models once.

    python app.py                       # http://127.0.0.1:7860, seed corpus, default model
    python app.py --corpus ~/notes --model small --port 8000
"""

from __future__ import annotations

import argparse
import html
import logging
import os
import sys

import gradio as gr
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from qa.errors import QAError
from qa.generation.base import Generator
from qa.library import MAX_UPLOAD_BYTES, Library
from qa.settings import Settings
from qa.ui.blocks import CSS, HEAD, THEME, create_app
from qa.ui.render import highlight

log = logging.getLogger("qa.app")


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


def pdf_page(library: Library) -> Route:
    """``GET /page/<collection>/<doc>?page=&start=&end=``: one page of an indexed PDF as PNG, rendered
    from the collection's own file (read-only, path checked), with ``start:end`` of its stored text
    marked. A PDF changed since it was indexed is refused rather than marked in the wrong place."""
    from embeddings.documents import file_sha256
    from embeddings.pdfpage import render_page

    def page(request: Request) -> Response:
        collection, doc = request.path_params["collection"], request.path_params["doc"]
        try:
            document = library.documents(collection).get(doc)
            number = int(request.query_params.get("page", 1))
            start, end = int(request.query_params.get("start", 0)), int(request.query_params.get("end", 0))
            if document is None or not document.pages:
                raise QAError(f"no PDF {doc!r} in collection {collection!r}")
            path = library.source_file(collection, doc)
        except (QAError, ValueError):
            return Response("no such PDF page in this collection", status_code=404, media_type="text/plain")
        span = (max(0, start), min(end, len(document.text))) if start < end else None
        try:
            if file_sha256(path.read_bytes()) != document.sha256:
                raise ValueError("the PDF changed since it was indexed; index it again to see its pages")
            png = render_page(path, number, highlight=span, expected_text=document.text)
        except ValueError as exc:  # a page out of range, or the file changed since it was indexed
            return Response(str(exc), status_code=409, media_type="text/plain")
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})

    return Route("/page/{collection}/{doc:path}", page)


def serve(demo: gr.Blocks, library: Library, *, host: str = "127.0.0.1", port: int = 7860,
          block: bool = True, quiet: bool = False):
    """Launch on ``host:port``: queued, no share link, nothing fetched from outside."""
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo.launch(
        server_name=host, server_port=port, share=False, prevent_thread_lock=not block, quiet=quiet,
        theme=THEME, css=CSS, head=HEAD, ssr_mode=False, show_error=False, footer_links=["api", "settings"],
        max_file_size=MAX_UPLOAD_BYTES, app_kwargs={"routes": [document_page(library), pdf_page(library)]},
    )



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
    from qa.generation.factory import load_generator
    from qa.generation.models import installed_models

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


