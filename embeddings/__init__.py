"""Documents -> passages -> vectors -> index. Knows nothing of questions or language models."""

from embeddings.build import build_index
from embeddings.documents import Corpus, Document, DocumentMeta, Skipped, load_corpus
from embeddings.encoder import DEFAULT_EMBEDDER, Encoder, SentenceTransformerEncoder, load_encoder
from embeddings.errors import (
    CorpusError,
    EncoderError,
    IndexCorrupt,
    IndexLocked,
    IndexNotFound,
    IndexOutOfDate,
    QAError,
)
from embeddings.extract import Section, page_at
from embeddings.paragraphs import Passage, normalize, split_passages, split_sentences
from embeddings.pdfpage import render_page
from embeddings.store import IndexSettings, StoredIndex, check_index, corpus_changes, load_index
from embeddings.vectors import VectorIndex, VectorSettings

__all__ = [
    "Corpus", "CorpusError", "DEFAULT_EMBEDDER", "Document", "DocumentMeta", "Encoder", "EncoderError",
    "IndexCorrupt", "IndexLocked", "IndexNotFound", "IndexOutOfDate", "IndexSettings", "Passage", "QAError",
    "SentenceTransformerEncoder", "Skipped", "StoredIndex", "VectorIndex", "VectorSettings", "build_index",
    "check_index", "corpus_changes", "load_corpus", "load_encoder", "load_index", "normalize",
    "split_passages", "split_sentences", "Section", "page_at", "render_page",
]
