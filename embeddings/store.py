"""Step 4b, storage: load and verify an index directory, and tell when it is out of date.

The one decision: a version is only ever read after its manifest's checksums verify; a truncated or
edited file is reported with the command that rebuilds it, never searched silently. Building and
the atomic switch to a new version live in ``embeddings.build``.

Layout of an index directory::

    CURRENT              name of the live version folder
    .lock                held by the one process writing
    v-<ns>/manifest.json format, embedder, settings, corpus file checksums, artefact checksums
    v-<ns>/documents.jsonl   every document's path, checksum, metadata and exact text (extracted
                         text for PDF/Word/HTML), page starts and headings ([start, end, path])
    v-<ns>/passages.jsonl    one passage a line, with offsets, metadata, section and page
    v-<ns>/units.npy     (n_units, 3) int64: passage row, start, end of each embedded unit
    v-<ns>/vectors.npy   (n_units, dim) float32, L2-normalised
    v-<ns>/index.faiss   the searchable index over vectors.npy
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from embeddings.documents import Document, DocumentMeta, list_corpus_files
from embeddings.encoder import Encoder
from embeddings.errors import IndexCorrupt, IndexNotFound, IndexOutOfDate
from embeddings.extract.blocks import Section
from embeddings.files import read_jsonl, sha256_file
from embeddings.paragraphs import Passage
from embeddings.vectors import VectorIndex, VectorSettings

# 2: sentences no longer end inside "then-U.S."; 3: a date from metadata.json is kept as the text
# prints it; 4: PDF, Word and HTML files: documents carry page starts and headings, passages a page.
# Older indexes are rebuilt on first use.
FORMAT_VERSION = 4
ARTEFACTS = ("documents.jsonl", "passages.jsonl", "units.npy", "vectors.npy", "index.faiss")
INDEX_KINDS = ("flat", "hnsw")
LATE_CHUNKING = ("off", "pairs", "all")  # which units IndexSettings.late_chunking pools: none, pairs, sentences and pairs
_VERSION_NAME = re.compile(r"v-\d+")  # what CURRENT may hold: a version folder's name, nothing else


@dataclass(frozen=True)
class IndexSettings:
    max_passage_tokens: int = 200  # passage size cap, in embedder tokens (window is 256)
    sentence_units: bool = True  # also embed each sentence of a multi-sentence passage
    pair_units: bool = True  # also each two neighbouring sentences (3+ sentence passages): bench_retrieval
    late_chunking: str = "off"  # units pooled from their passage's tokens (embeddings.late): off, pairs, all
    vectors: VectorSettings = field(default_factory=VectorSettings)

    def __post_init__(self) -> None:
        if self.max_passage_tokens < 16:
            raise ValueError(f"max_passage_tokens must be >= 16, got {self.max_passage_tokens}")
        if self.late_chunking not in LATE_CHUNKING:
            raise ValueError(f"late_chunking must be one of {LATE_CHUNKING}, got {self.late_chunking!r}")


@dataclass
class StoredIndex:
    """A loaded, verified index version: everything retrieval needs, in memory."""

    path: Path  # the version folder
    manifest: dict
    documents: dict[str, Document]
    passages: list[Passage]
    units: np.ndarray  # (n_units, 3) int64: passage row, start, end
    vectors: np.ndarray  # (n_units, dim) float32, L2-normalised
    index: VectorIndex

    @property
    def embedder(self) -> str:
        return self.manifest["embedder"]["name"]



def document_row(document: Document) -> dict:
    """One line of documents.jsonl; ``document_from_row`` reads it back."""
    row = {"path": document.path, "sha256": document.sha256, "meta": asdict(document.meta), "text": document.text}
    if document.pages:
        row["pages"] = list(document.pages)
    if document.sections:
        row["sections"] = [[s.start, s.end, s.path] for s in document.sections]
    return row


def document_from_row(row: dict) -> Document:
    return Document(
        row["path"], row["text"], row["sha256"], DocumentMeta(**row["meta"]),
        pages=tuple(int(p) for p in row.get("pages", ())),
        sections=tuple(Section(int(s), int(e), str(path)) for s, e, path in row.get("sections", ())),
    )


def recorded_settings(manifest: dict) -> dict:
    """The index settings a manifest records; a field added since it was written reads as its default,
    so an index built before ``late_chunking`` existed (same vectors as "off") is not rebuilt."""
    settings = dict(manifest.get("settings") or {})
    settings.setdefault("late_chunking", "off")
    return settings


def rebuild_hint(index_dir: str | os.PathLike, corpus: str | None = None) -> str:
    """The command that rebuilds an index from scratch (the corpus folder when the manifest names it)."""
    folder = shlex.quote(str(corpus)) if corpus else "CORPUS_FOLDER"
    return f"rebuild it with `qa --index-dir {shlex.quote(str(index_dir))} index --rebuild {folder}`"


def current_version(index_dir: Path) -> Path:
    pointer = Path(index_dir) / "CURRENT"
    if not pointer.is_file():
        raise IndexNotFound(f"no index in {index_dir}: run `qa index` to build one")
    try:
        name = pointer.read_bytes().decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"{pointer} cannot be read ({exc}); {rebuild_hint(index_dir)}") from None
    if not _VERSION_NAME.fullmatch(name):
        raise IndexCorrupt(f"{pointer} does not name an index version ({name[:40]!r}); {rebuild_hint(index_dir)}")
    version = Path(index_dir) / name
    if not version.is_dir():
        raise IndexCorrupt(f"{pointer} points at a missing version {name}; {rebuild_hint(index_dir)}")
    return version


def manifest_checksum(manifest: dict) -> str:
    """sha256 of the manifest without its own ``checksum`` field (keys sorted), so edits are detected."""
    body = {key: value for key, value in manifest.items() if key != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def load_index(index_dir: str | os.PathLike) -> StoredIndex:
    """Load the live version and verify every artefact against the manifest's checksums.

    A version removed by a concurrent build while it is being read is not corruption: when CURRENT
    has moved on meanwhile, the new live version is read instead.
    """
    for attempt in range(3):
        version = current_version(Path(index_dir))
        try:
            return _load_version(Path(index_dir), version)
        except IndexCorrupt:
            if attempt == 2 or current_version(Path(index_dir)) == version:
                raise
    raise AssertionError("unreachable")


def _load_version(index_dir: Path, version: Path) -> StoredIndex:
    rebuild = rebuild_hint(index_dir)
    try:
        manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise IndexCorrupt(f"index file {version / 'manifest.json'} is not a manifest; {rebuild}")
        rebuild = rebuild_hint(index_dir, manifest.get("corpus") if isinstance(manifest.get("corpus"), str) else None)
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexOutOfDate(
                f"index format {manifest.get('format_version')} is not {FORMAT_VERSION}; {rebuild}"
            )
        if "checksum" in manifest and manifest["checksum"] != manifest_checksum(manifest):
            raise IndexCorrupt(f"index file {version / 'manifest.json'} was edited; {rebuild}")
        if manifest["index_kind"] not in INDEX_KINDS or not isinstance(manifest["embedder"]["name"], str):
            raise IndexCorrupt(f"index file {version / 'manifest.json'} holds invalid settings; {rebuild}")
        for name in ARTEFACTS:
            if sha256_file(version / name) != manifest["artefacts"][name]:
                raise IndexCorrupt(f"index file {version / name} was modified or truncated; {rebuild}")
        documents = {}
        for row in read_jsonl(version / "documents.jsonl"):
            documents[row["path"]] = document_from_row(row)
        passages = [Passage(**row) for row in read_jsonl(version / "passages.jsonl")]
        units = np.load(version / "units.npy", allow_pickle=False)
        vectors = np.load(version / "vectors.npy", allow_pickle=False)
        kind = manifest["index_kind"]
        ef = manifest["settings"]["vectors"]["hnsw_ef_search"]
        index = VectorIndex.from_bytes((version / "index.faiss").read_bytes(), kind, ef)
    except IndexOutOfDate:
        raise
    except IndexCorrupt as exc:
        raise IndexCorrupt(str(exc) if "rebuild" in str(exc) else f"{exc}; {rebuild}") from None
    except (OSError, KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
        raise IndexCorrupt(f"index in {version} cannot be read ({exc.__class__.__name__}: {exc}); {rebuild}") from None
    consistent = (
        vectors.ndim == 2 and units.ndim == 2 and units.shape[1] == 3
        and len(index) == len(vectors) == len(units)
        and vectors.shape[1] == manifest["embedder"].get("dim", vectors.shape[1])
        and (not len(units) or 0 <= int(units[:, 0].min()) and int(units[:, 0].max()) < len(passages))
        and all(p.doc in documents for p in passages)
    )
    if not consistent:
        raise IndexCorrupt(f"index in {version} is inconsistent (vectors, units and passages differ); {rebuild}")
    return StoredIndex(version, manifest, documents, passages, units, vectors, index)


def corpus_changes(stored: StoredIndex, corpus_dir: str | os.PathLike) -> list[str]:
    """What changed in the corpus since the index was built: ["changed: a.txt", "new: b.md", ...].

    Files whose size and modification time match the manifest are not re-read.
    """
    recorded = stored.manifest["files"]
    files, _ = list_corpus_files(Path(corpus_dir))
    changes = []
    for rel, real in files:
        entry = recorded.get(rel)
        if entry is None:
            if rel not in stored.manifest.get("skipped", {}):
                changes.append(f"new: {rel}")
            continue
        stat = real.stat()
        if stat.st_size == entry["size"] and stat.st_mtime_ns == entry["mtime_ns"]:
            continue
        if hashlib.sha256(real.read_bytes()).hexdigest() != entry["sha256"]:
            changes.append(f"changed: {rel}")
    present = {rel for rel, _ in files}
    changes += [f"deleted: {rel}" for rel in recorded if rel not in present]
    return changes


def check_index(stored: StoredIndex, corpus_dir: str | os.PathLike | None, encoder: Encoder | None,
                settings: IndexSettings | None = None) -> None:
    """Raise ``IndexOutOfDate`` saying what differs when the index does not match corpus, embedder
    or (when given) the index settings it should have been built with."""
    if encoder is not None and stored.embedder != encoder.name:
        raise IndexOutOfDate(
            f"the index was built with embedder {stored.embedder!r}, not {encoder.name!r}; "
            "run `qa index --rebuild` to re-embed"
        )
    if settings is not None and recorded_settings(stored.manifest) != asdict(settings):
        built = recorded_settings(stored.manifest)
        wanted = asdict(settings)
        differ = sorted(k for k in set(built) | set(wanted) if built.get(k) != wanted.get(k))
        raise IndexOutOfDate(f"the index was built with other settings ({', '.join(differ)}); "
                             "run `qa index --rebuild` to re-embed")
    if corpus_dir is not None:
        changes = corpus_changes(stored, corpus_dir)
        if changes:
            shown = ", ".join(changes[:5]) + (f" and {len(changes) - 5} more" if len(changes) > 5 else "")
            raise IndexOutOfDate(f"the corpus changed since the index was built ({shown}); run `qa index` to update")

