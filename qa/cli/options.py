"""Options that several ``qa`` commands share: the corpus and index ones, and the Ray ones."""

from __future__ import annotations

import argparse
import os


def add_common_options(parser: argparse.ArgumentParser, *, default=argparse.SUPPRESS) -> None:
    """--corpus, --index-dir and --embedder, accepted before the command and after it: each
    subcommand repeats them with ``SUPPRESS``, so an option given there overrides one given before."""
    parser.add_argument("--corpus", default=default,
                        help="folder of documents (env QA_CORPUS; default: seeds/)")
    parser.add_argument("--index-dir", default=default,
                        help="where the index lives (env QA_INDEX_DIR; default: under ~/.cache/qa-chatbot)")
    parser.add_argument("--embedder", default=default,
                        help="sentence-transformers model: packaged name or path (env QA_EMBEDDER)")


def add_ray_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--ray [ADDRESS]`` and ``--ray-actors N``, the options of ``qa index`` and ``qa eval``."""
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help=f"{what}: ADDRESS of a running cluster (`auto`, host:port, ray://host:10001; env "
                             "QA_RAY_ADDRESS), or none to start a local one on 127.0.0.1; write --ray=ADDRESS "
                             "before a positional argument (needs pip install 'qa-chatbot[ray]')")
    parser.add_argument("--ray-actors", type=int, default=int(os.environ.get("QA_RAY_ACTORS") or 2), metavar="N",
                        help="actors in the Ray pool, each loading the models once (env QA_RAY_ACTORS; default 2)")
