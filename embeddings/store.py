"""Step 4b, storage: build, update and load an index directory, atomically and under a lock.

The one decision: every build writes a complete new version folder (``v-<time>/``) and then swaps a
one-line ``CURRENT`` pointer with ``os.replace``. A crash at any moment leaves the previous version
whole and in use; a version is only ever read after its manifest's checksums verify.

Layout of an index directory::

    CURRENT              name of the live version folder
    .lock                held by the one process writing
    v-<ns>/manifest.json format, embedder, settings, corpus file checksums, artefact checksums
    v-<ns>/documents.jsonl   every document's path, checksum, metadata and exact text
    v-<ns>/passages.jsonl    one passage a line, with offsets and metadata
    v-<ns>/units.npy     (n_units, 3) int64: passage row, start, end of each embedded unit
    v-<ns>/vectors.npy   (n_units, dim) float32, L2-normalised
    v-<ns>/index.faiss   the searchable index over vectors.npy
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from embeddings.documents import Corpus, Document, DocumentMeta, list_corpus_files, load_corpus
from embeddings.encoder import Encoder
from embeddings.errors import CorpusError, IndexCorrupt, IndexLocked, IndexNotFound, IndexOutOfDate, QAError
from embeddings.paragraphs import Passage, split_passages
from embeddings.units import embedding_units
from embeddings.vectors import VectorIndex, VectorSettings

# 2: sentences no longer end inside "then-U.S."; 3: a date from metadata.json is kept as the text
# prints it. Older indexes are rebuilt on first use.
FORMAT_VERSION = 3
ARTEFACTS = ("documents.jsonl", "passages.jsonl", "units.npy", "vectors.npy", "index.faiss")
INDEX_KINDS = ("flat", "hnsw")
_VERSION_NAME = re.compile(r"v-\d+")  # what CURRENT may hold: a version folder's name, nothing else
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class IndexSettings:
    max_passage_tokens: int = 200  # passage size cap, in embedder tokens (window is 256)
    sentence_units: bool = True  # also embed each sentence of a multi-sentence passage
    pair_units: bool = True  # also each two neighbouring sentences (3+ sentence passages): bench_retrieval
    vectors: VectorSettings = field(default_factory=VectorSettings)

    def __post_init__(self) -> None:
        if self.max_passage_tokens < 16:
            raise ValueError(f"max_passage_tokens must be >= 16, got {self.max_passage_tokens}")


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


# ---------------------------------------------------------------------------------------------- I/O


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _write_jsonl(path: Path, rows: Iterator[dict]) -> None:
    _write_bytes(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode())


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old or the new content, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _write_bytes(tmp, data)
    os.replace(tmp, path)


@contextmanager
def index_lock(index_dir: Path, *, timeout: float = 600.0) -> Iterator[None]:
    """Hold the index directory's write lock; wait up to ``timeout`` seconds for another writer."""
    if index_dir.exists() and not index_dir.is_dir():
        raise QAError(f"the index folder {index_dir} is a file, not a folder; choose another --index-dir")
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        handle = open(index_dir / ".lock", "a+")
    except OSError as exc:
        raise QAError(f"cannot write the index in {index_dir} ({exc.strerror}); "
                      "choose a writable --index-dir") from None
    with handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexLocked(f"{index_dir} is being written by another process; try again later") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------------ loading


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
            if _sha256_file(version / name) != manifest["artefacts"][name]:
                raise IndexCorrupt(f"index file {version / name} was modified or truncated; {rebuild}")
        documents = {}
        for row in _read_jsonl(version / "documents.jsonl"):
            documents[row["path"]] = Document(row["path"], row["text"], row["sha256"], DocumentMeta(**row["meta"]))
        passages = [Passage(**row) for row in _read_jsonl(version / "passages.jsonl")]
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
    if settings is not None and stored.manifest.get("settings") != asdict(settings):
        built = stored.manifest.get("settings") or {}
        wanted = asdict(settings)
        differ = sorted(k for k in set(built) | set(wanted) if built.get(k) != wanted.get(k))
        raise IndexOutOfDate(f"the index was built with other settings ({', '.join(differ)}); "
                             "run `qa index --rebuild` to re-embed")
    if corpus_dir is not None:
        changes = corpus_changes(stored, corpus_dir)
        if changes:
            shown = ", ".join(changes[:5]) + (f" and {len(changes) - 5} more" if len(changes) > 5 else "")
            raise IndexOutOfDate(f"the corpus changed since the index was built ({shown}); run `qa index` to update")


# ----------------------------------------------------------------------------------------- building


def _reusable(index_dir: Path, encoder: Encoder, settings: IndexSettings) -> StoredIndex | None:
    """The previous version, when its embedder and settings allow reusing its vectors."""
    try:
        previous = load_index(index_dir)
    except (IndexNotFound, IndexCorrupt, IndexOutOfDate):
        return None
    same = previous.embedder == encoder.name and previous.manifest["settings"] == asdict(settings)
    return previous if same else None


def _embed_documents(
    documents: list[Document], encoder: Encoder, settings: IndexSettings, progress: Progress | None
) -> tuple[list[Passage], np.ndarray, np.ndarray]:
    budget = min(settings.max_passage_tokens, encoder.max_tokens - 2)
    passages: list[Passage] = []
    for document in documents:
        passages += split_passages(document, max_tokens=budget, count_tokens=encoder.count_tokens)
    units, texts = embedding_units(passages, sentences=settings.sentence_units, pairs=settings.pair_units)
    vectors = encoder.encode(texts, progress=progress) if texts else np.zeros((0, encoder.dim), np.float32)
    return passages, units, vectors


def build_index(
    corpus_dir: str | os.PathLike,
    index_dir: str | os.PathLike,
    *,
    encoder: Encoder,
    settings: IndexSettings = IndexSettings(),
    rebuild: bool = False,
    progress: Progress | None = None,
    lock_timeout: float = 600.0,
) -> StoredIndex:
    """Build or incrementally update the index of ``corpus_dir`` in ``index_dir``; return it loaded.

    Unchanged files keep their vectors; new and changed files are embedded; deleted files vanish.
    """
    index_dir = Path(index_dir)
    with index_lock(index_dir, timeout=lock_timeout):
        _remove_debris(index_dir)
        corpus = load_corpus(corpus_dir)
        previous = None if rebuild else _reusable(index_dir, encoder, settings)
        if previous is not None and not _corpus_differs(previous, corpus):
            return previous
        kept = _kept_rows(previous, corpus)
        fresh_docs = [d for d in corpus.documents if previous is None or d.path not in kept[0]]
        passages, units, vectors = _embed_documents(fresh_docs, encoder, settings, progress)
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
        return "no .txt or .md files found"
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
    _write_jsonl(tmp / "documents.jsonl", (
        {"path": d.path, "sha256": d.sha256, "meta": asdict(d.meta), "text": d.text} for d in corpus.documents
    ))
    _write_jsonl(tmp / "passages.jsonl", (asdict(p) for p in passages))
    for name, array in (("units.npy", units), ("vectors.npy", vectors.astype(np.float32))):
        with open(tmp / name, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
    _write_bytes(tmp / "index.faiss", index.to_bytes())
    files = {}
    for document in corpus.documents:
        try:
            stat = (Path(corpus.root) / document.path).stat()
            size, mtime_ns = stat.st_size, stat.st_mtime_ns
        except OSError:  # deleted since it was read: the next check re-reads it and sees it gone
            size, mtime_ns = -1, -1
        files[document.path] = {"sha256": document.sha256, "size": size, "mtime_ns": mtime_ns}
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "corpus": str(Path(corpus.root).resolve()),
        "embedder": {"name": encoder.name, "dim": int(encoder.dim), "max_tokens": int(encoder.max_tokens)},
        "settings": asdict(settings),
        "index_kind": index.kind,
        "counts": {"documents": len(corpus.documents), "passages": len(passages), "units": len(units)},
        "files": files,
        "skipped": {s.path: s.reason for s in corpus.skipped},
        "artefacts": {name: _sha256_file(tmp / name) for name in ARTEFACTS},
    }
    manifest["checksum"] = manifest_checksum(manifest)
    _write_bytes(tmp / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False).encode())


def _swap_current(index_dir: Path, version: Path) -> None:
    pointer = index_dir / "CURRENT"
    previous = pointer.read_bytes().decode("utf-8", "replace").strip() if pointer.is_file() else None
    write_atomic(pointer, (version.name + "\n").encode())
    for old in index_dir.iterdir():  # keep the live and the previous version, drop older ones and debris
        if old.name in (version.name, previous, "CURRENT", ".lock"):
            continue
        if old.is_dir() and (old.name.startswith("v-") or old.name.startswith(".tmp-")):
            shutil.rmtree(old, ignore_errors=True)
