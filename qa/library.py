"""Collections: the documents one server answers from, the main corpus plus folders of uploads.

The one decision: an upload never touches the main corpus or another collection. Each upload goes
to its own folder under the cache (file names sanitised, sizes and counts capped, each file written
atomically) and gets its own index; every collection's ``Pipeline`` shares the one encoder and, per
model, the one generator, so a new collection costs an index, not another model in memory.

    >>> library = Library(Settings(), encoder=encoder, generator=generator)   # doctest: +SKIP
    >>> library.add_files("my notes", [Path("notes.md")])                     # doctest: +SKIP
    ('my-notes', ['notes.md'], [])
    >>> library.pipeline("my-notes").answer("What did I write about Vimont?")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import threading
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from embeddings.documents import CORPUS_SUFFIXES, Document, read_document_text
from embeddings.encoder import Encoder
from embeddings.packaged import cache_dir
from qa.errors import QAError
from qa.generation.base import Generator
from qa.pipeline import Pipeline
from qa.settings import SEEDS, Settings

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # per file: a long PDF report fits
MAX_COLLECTION_FILES = 50  # files in one upload collection, old and new together
SEED_EXAMPLES = (  # shown for the seed corpus; other collections get questions from their titles
    "Who was Macron's special envoy for the strategic dialogue with Russia?",
    "Which treaty did the U.S. leave in 2019?",
    "What would a Russian victory mean for Europe, according to Macron?",
)


class UploadRejected(QAError, ValueError):
    """Nothing in an upload could be indexed (each file's reason is in the message)."""


# ------------------------------------------------------------------------------------- uploads

_UNSAFE = re.compile(r"[^\w.\- ]+")


def safe_filename(name: str) -> str:
    """The base name of an uploaded file, reduced to letters, digits, ``. - _`` and spaces.

    Path parts (either slash), leading dots and control characters are dropped, so the result
    cannot leave the upload folder or hide itself: ``"../../etc/x.txt" -> "x.txt"``.
    """
    base = unicodedata.normalize("NFKC", str(name)).replace("\\", "/").split("/")[-1]
    base = _UNSAFE.sub("_", base).strip(" ._")
    stem, dot, suffix = base.rpartition(".")
    if not dot or not stem.strip(" ._"):
        raise ValueError(f"not a usable file name: {name!r}")
    return f"{stem[:100].rstrip(' .')}.{suffix.lower()}"


def collection_slug(name: str) -> str:
    """A folder-safe collection name: ``"My notes!" -> "my-notes"``; empty names are refused."""
    slug = re.sub(r"[^a-z0-9]+", "-", unicodedata.normalize("NFKC", name or "").lower()).strip("-")[:40]
    if not slug:
        raise UploadRejected("give the collection a name made of letters or digits")
    return slug


def check_upload(name: str, data: bytes) -> tuple[str, str]:
    """(safe file name, text) of an uploaded file, or ``ValueError`` saying why it cannot be indexed."""
    filename = safe_filename(name)
    if not filename.endswith(CORPUS_SUFFIXES):
        raise ValueError(f"only {', '.join(CORPUS_SUFFIXES)} files can be indexed")
    return filename, read_document_text(data, max_bytes=MAX_UPLOAD_BYTES, name=filename)


# ----------------------------------------------------------------------------------- collections


class Library:
    """The collections one server answers from: the main corpus plus upload folders.

    Every ``Pipeline`` shares the one encoder and, per model name, the one generator; pipelines
    are made lazily and kept. Thread-safe.
    """

    def __init__(self, settings: Settings, *, encoder: Encoder, generator: Generator, uploads_dir: Path | None = None,
                 models: Sequence[str] = (), load_model: Callable[[str], Generator] | None = None) -> None:
        self.settings = settings
        self.encoder = encoder
        self.main = settings.corpus.resolve().name or "corpus"  # the main collection's name
        self.uploads_dir = Path(uploads_dir) if uploads_dir is not None else cache_dir() / "uploads"
        self.models = list(models) or [settings.model]  # offered in the model picker
        self._generators = {settings.model: generator}
        self._load_model = load_model
        self._pipelines: dict[tuple[str, str], Pipeline] = {}
        self._lock = threading.RLock()

    def collections(self) -> list[str]:
        """The main collection, then upload collections that hold files, by name."""
        found = sorted(p.name for p in self.uploads_dir.iterdir() if p.is_dir()) if self.uploads_dir.is_dir() else []
        return [self.main, *(name for name in found if name != self.main and self._files(name))]

    def _files(self, name: str) -> list[Path]:
        folder = self.uploads_dir / name
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(CORPUS_SUFFIXES))

    def generator(self, model: str) -> Generator:
        with self._lock:
            if model not in self._generators:
                if model not in self.models or self._load_model is None:
                    raise QAError(f"model {model!r} is not available here; choose one of {', '.join(self.models)}")
                self._generators[model] = self._load_model(model)
            return self._generators[model]

    def pipeline(self, collection: str | None = None, model: str | None = None) -> Pipeline:
        collection, model = collection or self.main, model or self.settings.model
        with self._lock:
            key = (collection, model)
            if key not in self._pipelines:
                if collection == self.main:
                    settings = self.settings.with_(model=model)
                elif collection in self.collections():
                    settings = self.settings.with_(corpus=self.uploads_dir / collection, index_dir=None, model=model)
                else:
                    raise QAError(f"no collection named {collection!r}; upload files to create it")
                self._pipelines[key] = Pipeline(settings, encoder=self.encoder, generator=self.generator(model))
            return self._pipelines[key]

    def documents(self, collection: str) -> Mapping[str, Document]:
        return self.pipeline(collection).index.documents

    def source_file(self, collection: str, doc: str) -> Path:
        """The original file of an indexed document, inside its collection's folder (read-only use);
        ``QAError`` for a document the collection's index does not hold or a path that leaves it."""
        pipeline = self.pipeline(collection)
        if doc not in pipeline.index.documents:
            raise QAError(f"no document {doc!r} in collection {collection!r}")
        root = pipeline.settings.corpus.resolve()
        path = (root / doc).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise QAError(f"the file of {doc!r} is not in collection {collection!r} any more")
        return path

    def examples(self, collection: str) -> list[str]:
        """A few questions to try: curated for the seed corpus, from document titles otherwise."""
        if collection == self.main and self.settings.corpus.resolve() == SEEDS.resolve():
            return list(SEED_EXAMPLES)
        titles = [doc.meta.title for doc in self.documents(collection).values()][:3]
        return [f"What does “{title}” say?" for title in titles]

    def add_files(self, collection: str, paths: Sequence[Path], progress: Callable[[int, int], None] | None = None,
                  reading: Callable[[int, int, str], None] | None = None) -> tuple[str, list[str], list[str]]:
        """Copy the uploaded files that can be indexed into an upload collection and (re)index it.

        ``reading(i, n, name)`` is called before each file is read and checked (PDF, Word and HTML files
        are extracted then), ``progress(done, total)`` while passages are embedded. Returns (collection
        name, added file names, ``"name: reason"`` for each file left out).
        """
        name = collection_slug(collection)
        if name == self.main:
            raise UploadRejected(f"{name!r} is the main corpus, which uploads never change; choose another name")
        existing = {p.name for p in self._files(name)}
        accepted: dict[str, bytes] = {}
        rejected: list[str] = []
        for i, path in enumerate(map(Path, paths)):
            if reading is not None:
                reading(i, len(paths), path.name)
            try:
                if path.stat().st_size > MAX_UPLOAD_BYTES:
                    raise ValueError(f"larger than {MAX_UPLOAD_BYTES // 2**20} MB")
                data = path.read_bytes()
                filename, _ = check_upload(path.name, data)
            except (OSError, ValueError) as exc:
                rejected.append(f"{path.name}: {exc}")
                continue
            if filename in accepted:
                rejected.append(f"{path.name}: another file in this upload has the same name")
            elif len(existing | set(accepted) | {filename}) > MAX_COLLECTION_FILES:
                rejected.append(f"{path.name}: a collection holds at most {MAX_COLLECTION_FILES} files")
            else:
                accepted[filename] = data
        if not accepted:
            raise UploadRejected("nothing could be indexed: " + ("; ".join(rejected) or "no files were given"))
        folder = self.uploads_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        for filename, data in accepted.items():
            tmp = folder / f".{filename}.tmp"  # dot files are not indexed, even if left by a crash
            tmp.write_bytes(data)
            os.replace(tmp, folder / filename)
        with self._lock:  # pipelines made before see the old index: make them anew
            for key in [key for key in self._pipelines if key[0] == name]:
                del self._pipelines[key]
        self.pipeline(name).build_index(progress=progress)
        return name, sorted(accepted), rejected
