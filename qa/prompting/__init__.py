"""Step 6, prompt: the snippets the model reads and the chat messages that carry them."""

from qa.prompting.messages import build_messages, render_user, source_label
from qa.prompting.snippets import Snippet, select_snippets, sentence_scores
from qa.prompting.styles import DEMONSTRATED, STYLES

__all__ = ["DEMONSTRATED", "STYLES", "Snippet", "build_messages", "render_user", "select_snippets", "sentence_scores",
           "source_label"]
