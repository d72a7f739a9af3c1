"""The web chat: rendering (``render``), events (``handlers``), page (``blocks``), server (``server``).

Importing any of them first runs this package, which keeps the UI offline (``offline``) before
gradio is imported.
"""

from qa.ui.offline import OFFLINE_VARIABLES

__all__ = ["OFFLINE_VARIABLES"]
