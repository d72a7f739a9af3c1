"""Step 4c, build: embed a corpus into a new index version and switch to it atomically.

The one decision: every build writes a complete new version folder (``v-<time>/``) and then swaps a
one-line ``CURRENT`` pointer with ``os.replace``. A crash at any moment leaves the previous version
whole and in use. Re-indexing is incremental: unchanged files keep their vectors.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from embeddings import files
from embeddings.documents import CORPUS_SUFFIXES, Corpus, Document, Reading, load_corpus
from embeddings.encoder import Encoder
from embeddings.errors import CorpusError, IndexCorrupt, IndexNotFound, IndexOutOfDate, QAError
from embeddings.late import TokenEncoder, late_chunk_vectors
from embeddings.paragraphs import Passage, split_passages
from embeddings.store import (
    ARTEFACTS,
    FORMAT_VERSION,
    IndexSettings,
    StoredIndex,
    document_row,
    load_index,
    manifest_checksum,
    recorded_settings,
)
from embeddings.units import embedding_units
from embeddings.vectors import VectorIndex

Progress = Callable[[int, int], None]


def _reusable(index_dir: Path, encoder: Encoder, settings: IndexSettings) -> StoredIndex | None:
    """The previous version, when its embedder and settings allow reusing its vectors."""
    try:
        previous = load_index(index_dir)
    except (IndexNotFound, IndexCorrupt, IndexOutOfDate):
        return None
    same = previous.embedder == encoder.name and recorded_settings(previous.manifest) == asdict(settings)
    return previous if same else None


def embed_documents(
    documents: list[Document], encoder: Encoder, settings: IndexSettings, progress: Progress | None = None
) -> tuple[list[Passage], np.ndarray, np.ndarray]:
    """Split ``documents`` into passages and embed their units: (passages, units, vectors).

    Passages come in document order and units ((passage row, start, end), one per vector) in passage
    order, so the results of consecutive groups of documents, concatenated with the passage rows
    shifted, are the result of all of them: ``embeddings.distributed`` embeds groups on a cluster.
    """
    budget = min(settings.max_passage_tokens, encoder.max_tokens - 2)
    passages: list[Passage] = []
    for document in documents:
        passages += split_passages(document, max_tokens=budget, count_tokens=encoder.count_tokens)
    kinds: list[str] = []
    units, texts = embedding_units(passages, sentences=settings.sentence_units, pairs=settings.pair_units, kinds=kinds)
    if not texts:
        vectors = np.zeros((0, encoder.dim), np.float32)
    elif settings.late_chunking != "off" and isinstance(encoder, TokenEncoder):
        pooled = frozenset({"pair"} if settings.late_chunking == "pairs" else {"sentence", "pair"})
        vectors = late_chunk_vectors(passages, units, texts, encoder, kinds=kinds, pooled=pooled, progress=progress)
    else:
        vectors = encoder.encode(texts, progress=progress)
    return passages, units, vectors


# (fresh documents, settings, progress) -> (passages, units, vectors), as embed_documents returns them
EmbedDocuments = Callable[[list[Document], IndexSettings, "Progress | None"], tuple[list[Passage], np.ndarray, np.ndarray]]


def build_index(
    corpus_dir: str | os.PathLike,
    index_dir: str | os.PathLike,
    *,
    encoder: Encoder,
    settings: IndexSettings = IndexSettings(),
    rebuild: bool = False,
    progress: Progress | None = None,
    lock_timeout: float = 600.0,
    embed: EmbedDocuments | None = None,
    reading: Reading | None = None,
) -> StoredIndex:
    """Build or incrementally update the index of ``corpus_dir`` in ``index_dir``; return it loaded.

    Unchanged files keep their vectors; new and changed files are embedded; deleted files vanish.
    ``embed`` replaces the one step that runs the model (default: ``embed_documents`` with
    ``encoder`` in this process; ``embeddings.distributed`` passes one that runs on a Ray cluster);
    ``encoder`` still names the embedder in the manifest (name, dim, max_tokens). ``reading`` follows
    the files as they are read (``load_corpus``), ``progress`` the texts as they are embedded.
    """
    index_dir = Path(index_dir)
    with files.index_lock(index_dir, timeout=lock_timeout):
        _remove_debris(index_dir)
        corpus = load_corpus(corpus_dir, reading=reading)
        previous = None if rebuild else _reusable(index_dir, encoder, settings)
        if previous is not None and not _corpus_differs(previous, corpus):
            return previous
        kept = _kept_rows(previous, corpus)
        fresh_docs = [d for d in corpus.documents if previous is None or d.path not in kept[0]]
        if embed is None:
            passages, units, vectors = embed_documents(fresh_docs, encoder, settings, progress)
        else:
            passages, units, vectors = embed(fresh_docs, settings, progress)
        if kept[1]:
            offset = len(kept[1])
            units = units.copy()
            units[:, 0] += offset
            passages = kept[1] + passages
            units = np.concatenate([kept[2], units])
            vectors = np.concatenate([kept[3], vectors])
        order = {d.path: i for i, d in enumerate(corpus.documents)}
        passages, units = _sort_by_document(passages, units, order)
        if not passages:
            raise CorpusError(f"nothing to index in {corpus_dir}: {_skipped_summary(corpus)}")
        vectors, units = vectors[units[:, 3]], units[:, :3]  # vectors follow their units' new order
        try:
            version = _write_version(index_dir, corpus, passages, units, vectors, encoder, settings)
            _swap_current(index_dir, version)
        except OSError as exc:  # disk full, read-only folder...: the previous version stays live
            raise QAError(f"cannot write the index in {index_dir} ({exc.strerror or exc}); "
                          "the previous index, if any, is still in use") from None
        return load_index(index_dir)


def _remove_debris(index_dir: Path) -> None:
    """Delete what a killed build left behind: its unfinished ``.tmp-*`` folder and pointer file.

    Runs under the write lock, so no live build owns them.
    """
    for path in index_dir.iterdir():
        if path.is_dir() and path.name.startswith(".tmp-"):
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.name.startswith(".CURRENT.") and path.name.endswith(".tmp"):
            path.unlink(missing_ok=True)


def _corpus_differs(previous: StoredIndex, corpus: Corpus) -> bool:
    recorded = {p: e["sha256"] for p, e in previous.manifest["files"].items()}
    return recorded != {d.path: d.sha256 for d in corpus.documents}


def _kept_rows(previous: StoredIndex | None, corpus: Corpus):
    """Passages, units and vectors of the previous version's unchanged documents."""
    if previous is None:
        return set(), [], None, None
    unchanged = {
        d.path for d in corpus.documents
        if d.path in previous.documents and previous.documents[d.path].sha256 == d.sha256
    }
    rows = [i for i, p in enumerate(previous.passages) if p.doc in unchanged]
    if not rows:
        return unchanged, [], None, None
    remap = np.full(len(previous.passages), -1, dtype=np.int64)
    remap[rows] = np.arange(len(rows))
    keep = np.isin(previous.units[:, 0], rows)
    units = previous.units[keep].copy()
    units[:, 0] = remap[units[:, 0]]
    return unchanged, [previous.passages[i] for i in rows], units, previous.vectors[keep]


def _sort_by_document(passages: list[Passage], units: np.ndarray, order: dict[str, int]):
    """Passages in corpus order; units follow their passage and remember their vector row (col 3)."""
    ranking = sorted(range(len(passages)), key=lambda i: (order[passages[i].doc], passages[i].start))
    new_row = np.empty(len(passages), dtype=np.int64)
    new_row[ranking] = np.arange(len(passages))
    units = np.column_stack([new_row[units[:, 0]], units[:, 1:3], np.arange(len(units))]) if len(units) else np.zeros((0, 4), np.int64)
    units = units[np.lexsort((units[:, 1], units[:, 0]))]
    return [passages[i] for i in ranking], units.astype(np.int64)


def _skipped_summary(corpus: Corpus) -> str:
    if not corpus.skipped:
        return f"no {', '.join(CORPUS_SUFFIXES)} files found"
    return "; ".join(f"{s.path}: {s.reason}" for s in corpus.skipped[:5])


def _write_version(index_dir, corpus, passages, units, vectors, encoder, settings) -> Path:
    version = index_dir / f"v-{time.time_ns()}"
    tmp = index_dir / f".tmp-{version.name}"
    tmp.mkdir(parents=True)
    try:
        _write_artefacts(tmp, corpus, passages, units, vectors, encoder, settings)
        os.replace(tmp, version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-written version behind
        raise
    return version


def _write_artefacts(tmp, corpus, passages, units, vectors, encoder, settings) -> None:
    index = VectorIndex.build(vectors, settings.vectors)
    files.write_jsonl(tmp / "documents.jsonl", (document_row(d) for d in corpus.documents))
    files.write_jsonl(tmp / "passages.jsonl", (asdict(p) for p in passages))
    for name, array in (("units.npy", units), ("vectors.npy", vectors.astype(np.float32))):
        with open(tmp / name, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
    files.write_synced(tmp / "index.faiss", index.to_bytes())
    recorded = {}
    for document in corpus.documents:
        try:
            stat = (Path(corpus.root) / document.path).stat()
            size, mtime_ns = stat.st_size, stat.st_mtime_ns
        except OSError:  # deleted since it was read: the next check re-reads it and sees it gone
            size, mtime_ns = -1, -1
        recorded[document.path] = {"sha256": document.sha256, "size": size, "mtime_ns": mtime_ns}
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "corpus": str(Path(corpus.root).resolve()),
        "embedder": {"name": encoder.name, "dim": int(encoder.dim), "max_tokens": int(encoder.max_tokens)},
        "settings": asdict(settings),
        "index_kind": index.kind,
        "counts": {"documents": len(corpus.documents), "passages": len(passages), "units": len(units)},
        "files": recorded,
        "skipped": {s.path: s.reason for s in corpus.skipped},
        "artefacts": {name: files.sha256_file(tmp / name) for name in ARTEFACTS},
    }
    manifest["checksum"] = manifest_checksum(manifest)
    files.write_synced(tmp / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False).encode())


def _swap_current(index_dir: Path, version: Path) -> None:
    pointer = index_dir / "CURRENT"
    previous = pointer.read_bytes().decode("utf-8", "replace").strip() if pointer.is_file() else None
    files.write_atomic(pointer, (version.name + "\n").encode())
    for old in index_dir.iterdir():  # keep the live and the previous version, drop older ones and debris
        if old.name in (version.name, previous, "CURRENT", ".lock"):
            continue
        if old.is_dir() and (old.name.startswith("v-") or old.name.startswith(".tmp-")):
            shutil.rmtree(old, ignore_errors=True)
