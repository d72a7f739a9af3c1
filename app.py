"""The web chat over your documents: ``python app.py [--host] [--port] [--corpus] [--index-dir] [--model]``.

A thin entry point: the page is built by ``qa.ui.blocks.create_app`` over a ``qa.Library`` (which
shares one encoder and one model among all collections) and served on 127.0.0.1 by ``qa.ui.server``,
offline (``qa.ui.offline`` is set before gradio loads).
"""

from __future__ import annotations

import sys

from qa.ui.blocks import create_app
from qa.ui.server import main

__all__ = ["create_app", "main"]

if __name__ == "__main__":
    sys.exit(main())
