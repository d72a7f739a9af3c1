"""The ``qa`` command: index, search, ask and eval, thin layers over ``qa.Pipeline``."""

from qa.cli.commands import main

__all__ = ["main"]
