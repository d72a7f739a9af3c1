"""The public API: one ``Pipeline`` per corpus that indexes, searches and answers.

The one decision: everything heavy (embedder, index, language model) loads lazily, once, behind a
lock, so the web app, the CLI and the evaluator share one object and one code path. A missing index
is built and a stale one updated on first use (``Settings.auto_update``), saying so through
``logging``; a corrupt one is never answered from.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence

from embeddings.build import build_index
from embeddings.documents import Reading
from embeddings.encoder import Encoder, load_encoder
from embeddings.store import StoredIndex, check_index, corpus_changes, load_index
from qa.answer import stream_answer
from qa.errors import CorpusError, IndexNotFound, IndexOutOfDate
from qa.generation.base import Generator
from qa.generation.factory import load_generator
from qa.prompting.messages import build_messages
from qa.retrieve import Hit, Retriever, check_k, clean_question
from qa.settings import Settings
from qa.types import Answer, StreamEvent

log = logging.getLogger("qa")
Progress = Callable[[int, int], None]


class Pipeline:
    """Index, search and answer over one corpus.

    >>> p = Pipeline(Settings(corpus="seeds"))          # doctest: +SKIP
    >>> p.search("Who was Macron's special envoy?")[0].passage.text[:40]  # doctest: +SKIP
    """

    def __init__(self, settings: Settings | None = None, *, encoder: Encoder | None = None, generator=None):
        self.settings = settings or Settings.from_env()
        self._encoder = encoder
        self._generator = generator
        self._retriever: Retriever | None = None
        self._lock = threading.RLock()

    # -------------------------------------------------------------------------------- components

    @property
    def encoder(self) -> Encoder:
        with self._lock:
            if self._encoder is None:
                self._encoder = load_encoder(self.settings.embedder)
            return self._encoder

    @property
    def retriever(self) -> Retriever:
        with self._lock:
            if self._retriever is None:
                self._retriever = Retriever(self._open_index(), self.encoder, self.settings.retrieval)
            return self._retriever

    @property
    def index(self) -> StoredIndex:
        return self.retriever.stored

    def _open_index(self) -> StoredIndex:
        s = self.settings
        if not s.corpus.is_dir():
            raise CorpusError(f"corpus folder not found: {s.corpus}")
        try:
            stored = load_index(s.resolved_index_dir)
            check_index(stored, s.corpus, self.encoder, s.index)
            return stored
        except IndexNotFound:
            if not s.auto_update:
                raise
            log.warning("no index yet for %s: building it in %s", s.corpus, s.resolved_index_dir)
        except IndexOutOfDate as exc:
            if not s.auto_update:
                raise
            log.warning("%s; updating it now", str(exc).split("; run")[0])
        return self.build_index()

    def build_index(self, *, rebuild: bool = False, progress: Progress | None = None,
                    reading: Reading | None = None) -> StoredIndex:
        """Build or incrementally update this corpus's index, and use it from now on; ``reading(files
        done, files, pages)`` follows the files as they are read, ``progress(done, total)`` the texts
        as they are embedded."""
        s = self.settings
        stored = build_index(s.corpus, s.resolved_index_dir, encoder=self.encoder, settings=s.index,
                             rebuild=rebuild, progress=progress, reading=reading)
        with self._lock:
            self._retriever = Retriever(stored, self.encoder, s.retrieval)
        return stored

    def changes(self) -> list[str]:
        """What changed in the corpus since the index was built (empty when up to date)."""
        return corpus_changes(load_index(self.settings.resolved_index_dir), self.settings.corpus)

    @property
    def generator(self) -> Generator:
        with self._lock:
            if self._generator is None:
                self._generator = load_generator(self.settings.model, backend=self.settings.backend)
            return self._generator

    def warm_up(self) -> None:
        """Load embedder, index and model now; one search and one real prompt warm them and put the
        fixed system prompt in llama.cpp's prefix cache, so the first user waits no longer than the next."""
        self.retriever.search("warm up", k=1)
        self.generator.warm_up()
        for _ in self.generator.generate(build_messages([], "Say OK.", style=self.settings.answer.style), max_tokens=1):
            pass

    def document_text(self, doc: str) -> str:
        """The exact text of an indexed document (what every offset refers to)."""
        return self.retriever.document_text(doc)

    # ------------------------------------------------------------------------------------ search

    def search(self, question: str, *, k: int | None = None) -> list[Hit]:
        """Ranked passages for ``question`` (hybrid dense + BM25)."""
        k = self.settings.k if k is None else k
        check_k(k)
        return self.retriever.search(clean_question(question), k=k)

    # ---------------------------------------------------------------------------------- answers

    def stream(self, question: str, *, history: Sequence[tuple[str, str]] = (), k: int | None = None
               ) -> Iterator[StreamEvent]:
        """``Retrieved``, then the model's ``Token`` pieces, then the verified ``Answer``."""
        k = self.settings.k if k is None else k
        check_k(k)
        clean_question(question)
        return stream_answer(question, retriever=self.retriever, generator=self.generator, k=k,
                             history=history, settings=self.settings.answer)

    def answer(self, question: str, *, history: Sequence[tuple[str, str]] = (), k: int | None = None) -> Answer:
        """A verified, cited answer (or an honest refusal) to ``question``."""
        final = None
        for event in self.stream(question, history=history, k=k):
            final = event
        assert isinstance(final, Answer)
        return final


class Conversation:
    """A chat: each question is asked with the earlier turns, so follow-ups work.

    >>> chat = Conversation(Pipeline())                          # doctest: +SKIP
    >>> chat.ask("Who was Macron's envoy?").text                # doctest: +SKIP
    >>> chat.ask("and when was he appointed?").standalone_question  # doctest: +SKIP
    """

    def __init__(self, pipeline: Pipeline, *, max_turns: int = 4) -> None:
        self.pipeline = pipeline
        self.max_turns = max_turns
        self.turns: list[tuple[str, str]] = []

    def ask(self, question: str, *, k: int | None = None) -> Answer:
        result = self.pipeline.answer(question, history=self.turns[-self.max_turns :], k=k)
        self.turns.append((result.standalone_question or question, result.text))
        return result

    def reset(self) -> None:
        self.turns.clear()
