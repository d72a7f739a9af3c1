"""Step 5, retrieve: rank passages for a question by fusing dense (FAISS) and BM25 rankings.

The one decision: reciprocal rank fusion of two complementary rankings. Dense search scores a
passage by its best embedded unit (the whole passage or one of its sentences), which finds
paraphrases; BM25 over stemmed words (with each passage's title and section) finds rare names and
numbers. Scores are never compared across methods, only ranks, so neither needs calibrating.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from embeddings.encoder import Encoder
from embeddings.paragraphs import Passage, normalize
from embeddings.store import StoredIndex
from qa.errors import InvalidQuestion, check_positive_whole

# Words that shape a question instead of naming what it asks about. bm25s's English stop-words keep
# them, and in a small corpus a word as rare in prose as "did" or "whom" weighs like a name.
QUESTION_WORDS = frozenset("""what which who whom whose when where why how do does did has have had were been
being he she him her his hers its we our you your""".split())
MAX_QUESTION_CHARS = 2_000  # longer questions are cut here before search (the embedder sees 256 tokens)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class RetrievalSettings:
    rrf_k: int = 60  # reciprocal-rank-fusion damping: 1 / (rrf_k + rank)
    dense_weight: float = 1.0  # weight of the dense ranking in the fusion
    bm25_weight: float = 0.5  # weight of the BM25 ranking: dense is the stronger signal (bench_retrieval)
    candidates: int = 100  # units fetched from FAISS before grouping them by passage

    def __post_init__(self) -> None:
        if self.rrf_k < 1:
            raise ValueError(f"rrf_k must be >= 1, got {self.rrf_k}")
        if self.candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {self.candidates}")


@dataclass(frozen=True)
class Hit:
    rank: int  # 1-based
    score: float  # fused score (higher is better); only comparable within one result list
    passage: Passage
    dense_score: float  # cosine similarity of the passage's best unit to the question, in [-1, 1]
    bm25_score: float
    best_start: int  # offsets (into the document) of the passage's best-matching unit
    best_end: int

    @property
    def doc(self) -> str:
        return self.passage.doc

    def to_dict(self) -> dict:
        """The JSON shape of FORMAT.md: ``{rank, doc, passage_id, start, end, score, text}``."""
        p = self.passage
        shown = {"rank": self.rank, "doc": p.doc, "passage_id": p.id, "start": p.start, "end": p.end,
                 "score": round(self.score, 6), "text": p.text}
        return shown | ({"page": p.page} if p.page else {})


def clean_question(question: str) -> str:
    """Strip control characters and surrounding space; refuse a question with nothing left.

    >>> clean_question("  Who?\\x00 ")
    'Who?'
    """
    if not isinstance(question, str):
        raise InvalidQuestion(f"the question must be text, got {type(question).__name__}")
    question = question.encode("utf-8", "replace").decode("utf-8")  # lone surrogates become "?"
    question = "".join(c for c in question if unicodedata.category(c) != "Cf")  # zero-width, bidi marks
    question = _CONTROL.sub(" ", unicodedata.normalize("NFC", question)).strip()
    if not any(unicodedata.category(c)[0] in "LNS" for c in question):
        raise InvalidQuestion("the question is empty: type a question about the documents")
    return " ".join(question.split())[:MAX_QUESTION_CHARS]


def check_k(k: object) -> None:
    check_positive_whole("k", k)


def bm25_text(passage: Passage, *, title: bool = True) -> str:
    return normalize(" ".join(part for part in (passage.title if title else "", passage.section or "", passage.text)
                              if part))


def _idf(n_passages: int, n_holding: int) -> float:
    """BM25's (Lucene's) inverse document frequency: rare words weigh most, none weighs below 0."""
    return float(np.log(1 + (n_passages - n_holding + 0.5) / (n_holding + 0.5)))


class Retriever:
    """Hybrid search over one loaded index. Thread-safe for concurrent ``search`` calls."""

    def __init__(self, stored: StoredIndex, encoder: Encoder, settings: RetrievalSettings = RetrievalSettings()):
        import bm25s
        import Stemmer

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG on import
        self.stored = stored
        self.encoder = encoder
        self.settings = settings
        self._rows = {p.id: row for row, p in enumerate(stored.passages)}
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()  # recent query vectors
        self._lock = threading.Lock()
        self._stemmer = Stemmer.Stemmer("english")
        self._question_words = set(self._stemmer.stemWords(sorted(QUESTION_WORDS)))
        self._bm25 = None
        self._untitled = None  # BM25 without the titles (bm25_scores), built in the background
        self._untitled_lock = threading.Lock()
        self._idf: dict[str, float] = {}
        if stored.passages:
            corpus = self._tokenize(title=True)
            self._bm25 = bm25s.BM25()
            self._bm25.index(corpus, show_progress=False)
            df = np.bincount([i for ids in corpus.ids for i in set(ids)], minlength=len(corpus.vocab))
            self._idf = {term: _idf(len(stored.passages), int(df[i])) for term, i in corpus.vocab.items()}
            # as long again as the titled one (17 s for 200,000 paragraphs), so not on the first broad question's time
            threading.Thread(target=self._untitled_bm25, name="bm25-untitled", daemon=True).start()

    def _tokenize(self, *, title: bool):
        import bm25s

        return bm25s.tokenize([bm25_text(p, title=title) for p in self.stored.passages], stopwords="en",
                              stemmer=self._stemmer, show_progress=False)

    @property
    def passages(self) -> list[Passage]:
        return self.stored.passages

    def document_text(self, doc: str) -> str:
        return self.stored.documents[doc].text

    def query_vector(self, question: str) -> np.ndarray:
        """(dim,) float32 embedding of a question; the last 128 are remembered."""
        with self._lock:
            if question in self._queries:
                self._queries.move_to_end(question)
                return self._queries[question]
        vector = self.encoder.encode([question])[0]
        with self._lock:
            self._queries[question] = vector
            while len(self._queries) > 128:
                self._queries.popitem(last=False)
        return vector

    def next_passage(self, passage: Passage) -> Passage | None:
        """The passage that follows ``passage`` in its document, if any."""
        row = self._rows[passage.id] + 1
        if row < len(self.passages) and self.passages[row].doc == passage.doc:
            return self.passages[row]
        return None

    def sentence_vectors(self, passage: Passage) -> dict[tuple[int, int], np.ndarray]:
        """The stored vectors of a passage's units, keyed by their (start, end) document offsets."""
        row = self._rows[passage.id]
        units = self.stored.units
        lo, hi = np.searchsorted(units[:, 0], [row, row + 1])
        return {(int(units[i, 1]), int(units[i, 2])): self.stored.vectors[i] for i in range(lo, hi)}

    def terms(self, text: str) -> list[str]:
        """The words of ``text`` as BM25 sees them: lower-case, stemmed, without stop-words."""
        import bm25s

        return bm25s.tokenize([normalize(text)], stopwords="en", stemmer=self._stemmer,
                              return_ids=False, show_progress=False)[0]

    def term_weight(self, term: str) -> float:
        """BM25's inverse document frequency of a term over the passages; a term no passage holds
        weighs as much as the rarest."""
        return self._idf.get(term, _idf(len(self.passages), 0))

    def question_terms(self, question: str) -> list[str]:
        """The terms of a question without the words that only shape it (``QUESTION_WORDS``).

        Sentence selection matches these (qa.prompting.snippets); passage search keeps every term,
        which finds more of the evidence (docs/DESIGN.md, step 5).
        """
        return [t for t in self.terms(question) if t not in self._question_words]

    def bm25_scores(self, question: str, *, titles: bool = True) -> np.ndarray:
        """(n_passages,) BM25 scores; all zero for a question of stop-words only.

        With ``titles=False`` a passage is matched on its section and text alone, so that a question
        repeating a document's title does not rank every passage of that document above the one
        that answers it (qa.shapes, ``Shape.bm25_titles``).
        """
        scores = np.zeros(len(self.passages), dtype=np.float32)
        if self._bm25 is None:
            return scores
        tokens = self.terms(question)
        if tokens:
            scores[:] = (self._bm25 if titles else self._untitled_bm25()).get_scores(tokens)
        return scores

    def _untitled_bm25(self):
        import bm25s

        with self._untitled_lock:  # a search that needs it waits here while the background build runs
            if self._untitled is None:
                model = bm25s.BM25()
                model.index(self._tokenize(title=False), show_progress=False)
                self._untitled = model
            return self._untitled

    def dense_scores(self, question: str) -> tuple[np.ndarray, np.ndarray]:
        """(n_passages,) best unit cosine per passage (-inf where no unit was fetched) and that unit's row."""
        best = np.full(len(self.passages), -np.inf, dtype=np.float32)
        best_unit = np.full(len(self.passages), -1, dtype=np.int64)
        if not len(self.stored.index):
            return best, best_unit
        query = self.query_vector(question)[None, :]  # (1, dim) float32, L2-normalised
        scores, rows = self.stored.index.search(query, self.settings.candidates)
        for score, row in zip(scores[0], rows[0]):
            if row < 0:
                continue
            passage_row = self.stored.units[row, 0]
            if score > best[passage_row]:
                best[passage_row], best_unit[passage_row] = score, row
        return best, best_unit

    def search(self, question: str, *, k: int = 5, bm25_weight: float | None = None,
               titles: bool = True, within: Collection[str] | None = None) -> list[Hit]:
        """The ``k`` best passages for ``question``, best first (fewer when the corpus is smaller).

        ``bm25_weight`` replaces the settings' weight of the BM25 ranking for this search: broad
        questions name more of their evidence's own words (qa.shapes, ``Shape.bm25_weight``).
        ``titles`` is whether BM25 matches the documents' titles (``bm25_scores``). With ``within``,
        only passages of those documents are returned, ranked as in the whole corpus's fusion.
        """
        check_k(k)
        question = clean_question(question)
        if not self.passages:
            return []
        dense, best_unit = self.dense_scores(question)
        bm25 = self.bm25_scores(question, titles=titles)
        fused = self.fuse(dense, bm25, bm25_weight)
        if within is not None:
            fused[[p.doc not in within for p in self.passages]] = -np.inf
        order = np.argsort(-fused, kind="stable")[:k]
        order = order[np.isfinite(fused[order])]
        hits = []
        for rank, row in enumerate(order, start=1):
            passage = self.passages[row]
            unit = best_unit[row]
            start, end = (self.stored.units[unit, 1:3] if unit >= 0 else (passage.start, passage.end))
            dense_score = float(dense[row]) if np.isfinite(dense[row]) else -1.0
            hits.append(Hit(rank, float(fused[row]), passage, dense_score, float(bm25[row]), int(start), int(end)))
        return hits

    def fuse(self, dense: np.ndarray, bm25: np.ndarray, bm25_weight: float | None = None) -> np.ndarray:
        """Reciprocal rank fusion; the passages a method found nothing for share its last rank.

        Scoring them nothing instead lets any BM25 match outweigh the best dense rank in a small
        corpus, where 1 / (rrf_k + rank) barely changes from rank 1 to rank 34 (docs/DESIGN.md).
        """
        s = self.settings
        lexical = s.bm25_weight if bm25_weight is None else bm25_weight
        fused = np.zeros(len(dense), dtype=np.float64)
        for scores, weight, found in ((dense, s.dense_weight, np.isfinite(dense)), (bm25, lexical, bm25 > 0)):
            ranks = np.empty(len(scores), dtype=np.int64)
            ranks[np.argsort(-np.where(found, scores, -np.inf), kind="stable")] = np.arange(1, len(scores) + 1)
            fused += weight / (s.rrf_k + np.where(found, ranks, found.sum() + 1))
        return fused
