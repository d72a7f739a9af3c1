"""The ``qa`` command: a thin layer of argument parsing and printing over ``qa.Pipeline``.

User mistakes (bad options, bad input, unusable files or folders) print one line (``qa: error: ...``)
and exit 2; an unexpected failure prints one line too and exits 1. Nothing prints a traceback unless
``QA_DEBUG=1`` is set.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch/llama.cpp load libgomp (qa/generate.py)

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import replace

from qa.citation.claims import withheld_draft
from qa.cli.eval import add_eval_command
from qa.cli.options import add_common_options, add_ray_options
from qa.errors import InvalidArgument, QAError
from qa.pipeline import Pipeline
from qa.settings import BACKENDS, Settings
from qa.types import Answer, Token


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one ``qa: error:`` line like every other mistake."""

    def error(self, message: str):
        self.exit(2, f"qa: error: {message} (see `{self.prog} --help`)\n")


def _text(arg: str) -> str:
    """A command-line argument as valid text: bytes that were not UTF-8 become U+FFFD."""
    return arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _progress_bar(desc: str, *, unit: str = "text", least: int = 64) -> Callable[..., None]:
    """A tqdm bar that appears only once there is real work (``least`` items; only on a terminal).
    Called as ``update(done, total)``, or ``update(done, total, pages)`` for files (pages shown beside)."""
    from tqdm import tqdm

    state: dict = {}

    def update(done: int, total: int, pages: int | None = None) -> None:
        if "bar" not in state:
            state["bar"] = tqdm(total=total, desc=desc, unit=unit, disable=total < least or None, file=sys.stderr)
        if pages:
            state["bar"].set_postfix_str(f"{pages} pages", refresh=False)
        state["bar"].update(done - state["bar"].n)
        if done >= total:
            state["bar"].close()

    return update


def _pipeline(args: argparse.Namespace) -> Pipeline:
    settings = Settings.from_env(corpus=args.corpus, index_dir=args.index_dir, embedder=args.embedder,
                                 model=getattr(args, "model", None), backend=getattr(args, "backend", None))
    if getattr(args, "short", False):
        settings = settings.with_(answer=replace(settings.answer, style="short"))
    return Pipeline(settings)


def cmd_index(args: argparse.Namespace) -> int:
    if args.corpus_dir:
        args.corpus = args.corpus_dir
    pipeline = _pipeline(args)
    if args.ray is not None:  # embed on a Ray cluster (embeddings/distributed.py); the same index results
        from embeddings.distributed import build_index_on_ray, ray_address

        s = pipeline.settings
        stored, stats = build_index_on_ray(s.corpus, s.resolved_index_dir, embedder=pipeline.encoder.name,
                                           settings=s.index, rebuild=args.rebuild, address=ray_address(args.ray),
                                           actors=args.ray_actors, progress=_progress_bar("embedding"))
        print(f"ray: {stats.embedded} of {stats.shards} shards embedded, {stats.reused} resumed from a killed run",
              file=sys.stderr)
    else:
        name = pipeline.settings.corpus.resolve().name
        stored = pipeline.build_index(rebuild=args.rebuild, progress=_progress_bar(f"{name}: embedding"),
                                      reading=_progress_bar(f"{name}: reading", unit="file", least=2))
    counts = stored.manifest["counts"]
    pages = sum(len(d.pages) for d in stored.documents.values())
    print(f"indexed {counts['documents']} documents{f' ({pages} PDF pages)' if pages else ''}, "
          f"{counts['passages']} passages "
          f"({stored.manifest['index_kind']} index, embedder {stored.embedder}) in {stored.path.parent}")
    for path, reason in stored.manifest.get("skipped", {}).items():
        print(f"skipped {path}: {reason}", file=sys.stderr)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    hits = _pipeline(args).search(_text(args.question), k=args.k)
    if args.json:
        print(json.dumps([hit.to_dict() for hit in hits], ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print("no passages: the corpus is empty")
    for hit in hits:
        p = hit.passage
        where = " · ".join([f"{p.doc} [{p.start}:{p.end}]", *(x for x in (p.page and f"p. {p.page}", p.section) if x)])
        print(f"{hit.rank}. {where}  score {hit.score:.4f}")
        print("   " + " ".join(p.text.split())[:400] + ("…" if len(p.text) > 400 else ""))
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    pipeline = _pipeline(args)
    live = sys.stdout.isatty() and not args.json
    final: Answer | None = None
    for event in pipeline.stream(_text(args.question), k=args.k):
        if isinstance(event, Token) and live:
            print(event.text, end="", flush=True)
        elif isinstance(event, Answer):
            final = event
    assert final is not None
    if args.json:
        print(json.dumps({"id": None, **final.to_dict(), "scores": {}}, ensure_ascii=False, indent=2))
        return 0
    streamed = final.raw_text.strip()
    if live and streamed:
        print()
        if streamed != final.text:
            print(f"checked against the sources: {final.text}")
    else:
        print(final.text)
    print_sources(final)
    return 0


def print_sources(answer: Answer) -> None:
    if answer.refused:
        draft = withheld_draft(answer)
        if draft:
            print(f"\nthe model's draft {draft!r} was withheld:")
            for note in answer.notes:
                print(f"  - {note}")
        if answer.passages:
            print("\nclosest passages:")
            for hit in answer.passages[:3]:
                print(f"  {hit.doc} [{hit.passage.start}:{hit.passage.end}]  " + " ".join(hit.passage.text.split())[:160] + "…")
        return
    print("\nsources:")
    for c in answer.citations:
        where = f", {c.where}" if c.where else ""
        print(f"  [{c.n}] {c.doc}{where} [{c.start}:{c.end}]  “" + " ".join(c.text.split()) + "”")


def cmd_text(args: argparse.Namespace) -> int:
    """The exact text of an indexed document, as every offset refers to it (a PDF's, Word or HTML
    file's extracted text); with --json, also its pages' start offsets and its headings."""
    document = _pipeline(args).index.documents.get(args.doc)
    if document is None:
        raise InvalidArgument(f"no indexed document {args.doc!r}; `qa search` shows the documents' paths")
    if args.json:
        print(json.dumps({"doc": document.path, "title": document.meta.title, "text": document.text,
                          "pages": list(document.pages),
                          "sections": [{"start": s.start, "end": s.end, "path": s.path} for s in document.sections]},
                         ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(document.text if document.text.endswith("\n") else document.text + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qa", description="Grounded question answering over your documents.")
    add_common_options(parser, default=None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("index", help="build or update the index of a corpus folder")
    add_common_options(p)
    p.add_argument("corpus_dir", nargs="?", help="corpus folder (overrides --corpus)")
    p.add_argument("--rebuild", action="store_true", help="re-embed everything instead of updating")
    add_ray_options(p, "embed the passages on a Ray cluster")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="show the passages that best match a question")
    add_common_options(p)
    p.add_argument("question")
    p.add_argument("-k", type=int, default=5, help="number of passages (default 5)")
    p.add_argument("--json", action="store_true", help="print the ranked passages as JSON")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="answer a question from the documents, with cited sources")
    add_common_options(p)
    p.add_argument("question")
    p.add_argument("-k", type=int, default=None, help="passages retrieved (default 5)")
    p.add_argument("--model", help="'default', 'small', a .gguf file or a transformers model (env QA_MODEL)")
    p.add_argument("--backend", choices=list(BACKENDS), help="generation backend (env QA_BACKEND)")
    p.add_argument("--json", action="store_true", help="print one JSON object (a results line of the eval format)")
    p.add_argument("--short", action="store_true", help="answer with only the words that answer, no sentence")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("text", help="print an indexed document's exact text (what citation offsets refer to)")
    add_common_options(p)
    p.add_argument("doc", help="the document's path inside the corpus folder, as citations name it")
    p.add_argument("--json", action="store_true", help="also its pages' start offsets and its headings")
    p.set_defaults(func=cmd_text)

    add_common_options(add_eval_command(sub))
    return parser


def command_first(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``argv`` with the options typed before the command moved to its end, so that every option works
    on either side (each command accepts the global ones too): ``qa --json search x`` is ``qa search
    x --json``, ``qa --index-dir X index DIR`` is ``qa index DIR --index-dir X``.

    >>> command_first(build_parser(), ["--index-dir", "X", "index", "DIR"])
    ['index', 'DIR', '--index-dir', 'X']
    >>> command_first(build_parser(), ["ask", "--json", "Who?"])
    ['ask', '--json', 'Who?']
    """
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    actions = [action for command in (parser, *commands.values()) for action in command._actions]
    takes_value = {option for action in actions if action.nargs not in (0, "?") for option in action.option_strings}
    may_take = {option for action in actions if action.nargs == "?" for option in action.option_strings}
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            break
        if token in commands:
            return [token, *argv[i + 1:], *argv[:i]]  # last, so "--ray" takes no positional as its value
        if token.startswith("-") and "=" not in token and token in takes_value:
            i += 1  # its value, which may look like a command name ("--corpus index")
        elif token in may_take and i + 1 < len(argv) and argv[i + 1] not in commands and not argv[i + 1].startswith("-"):
            i += 1  # "--ray auto index": the optional value; "--ray index": none
        elif not token.startswith("-"):
            break  # a stray word before any command: argparse says what is wrong
        i += 1
    return argv


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(level=logging.WARNING, format="qa: note: %(message)s")
    for noisy in ("sentence_transformers", "transformers", "httpx", "huggingface_hub", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    parser = build_parser()
    args = parser.parse_args(command_first(parser, sys.argv[1:] if argv is None else list(argv)))
    try:
        return args.func(args)
    except BrokenPipeError:
        return 0
    except (QAError, OSError) as exc:  # OSError: an unreadable file, a full disk, a folder that is a file
        if os.environ.get("QA_DEBUG"):
            raise
        print(f"qa: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qa: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback only on request
        if os.environ.get("QA_DEBUG"):
            raise
        print(f"qa: error: unexpected {type(exc).__name__}: {' '.join(str(exc).split())} "
              "(a bug; QA_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1


