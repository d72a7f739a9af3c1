"""Step 1, documents: read a corpus folder of ``.txt`` / ``.md`` / ``.pdf`` / ``.docx`` / ``.html``
files into ``Document`` values.

The one decision: a text file is decoded once, as strict UTF-8, and that exact text is what every
offset refers to; for a PDF, Word or HTML file the text its reader extracts (``embeddings.extract``)
is the document text, stored with the index, and offsets refer to it. Files that cannot be indexed
(binary, not UTF-8, empty, too big, encrypted, corrupt, named as another format, links leading
outside the folder, other extensions) are skipped with a reason, never half-read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from embeddings.errors import CorpusError
from embeddings.extract.blocks import Section, page_at, section_at
from embeddings.extract.bounded import BoundedReader, extract_bounded
from embeddings.extract.formats import (
    EXTRACTED_SUFFIXES,
    MAX_BINARY_BYTES,
    MAX_HTML_BYTES,
    TEXT_SUFFIXES,
    expected_kind,
    sniff,
)

CORPUS_SUFFIXES = TEXT_SUFFIXES + EXTRACTED_SUFFIXES  # what a corpus folder may hold
SUFFIXES = TEXT_SUFFIXES  # what uploads accept while they call read_document_text without name=
METADATA_FILE = "metadata.json"  # optional: {"file.txt": {"title": ..., "author": ..., ...}}
MAX_FILE_BYTES = 20 * 1024 * 1024  # larger files are skipped: a corpus is prose, not dumps


@dataclass(frozen=True)
class DocumentMeta:
    title: str  # from the metadata file, a markdown heading, the first short line, or the file name
    author: str | None = None
    date: str | None = None  # as the text prints it ("February 02, 2024"), else as metadata.json gives it
    publisher: str | None = None


@dataclass(frozen=True)
class Document:
    path: str  # POSIX path relative to the corpus folder: the document's identity
    text: str  # the file decoded as UTF-8, untouched (or a PDF/Word/HTML file's extracted text): offsets index into this
    sha256: str  # of the raw bytes
    meta: DocumentMeta
    pages: tuple[int, ...] = ()  # PDF: offset in text where each page begins (page_at bisects it); else ()
    sections: tuple[Section, ...] = ()  # PDF/Word/HTML: the headings and their paths, in text order

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding ``offset`` (a citation's page is that of its start); None if not paged."""
        return page_at(self.pages, offset)

    def section_at(self, start: int, end: int) -> str | None:
        """The heading path of ``text[start:end]`` from the file's own headings; None if it has none."""
        return section_at(self.sections, start, end)


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass(frozen=True)
class Corpus:
    root: Path
    documents: tuple[Document, ...]
    skipped: tuple[Skipped, ...] = field(default=())


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def list_corpus_files(root: Path) -> tuple[list[tuple[str, Path]], list[Skipped]]:
    """Every candidate file under ``root`` as (relative posix path, real path), sorted, plus skips.

    Symbolic links are followed only while they stay inside ``root``.
    """
    root = Path(root)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "not found"
        raise CorpusError(f"corpus folder {what}: {root}")
    real_root = root.resolve()
    found: list[tuple[str, Path]] = []
    skipped: list[Skipped] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if name.startswith(".") or name == METADATA_FILE:
                continue
            if not _utf8(rel):  # the path is the document's identity, stored as UTF-8 JSON
                shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                skipped.append(Skipped(shown, "file name is not valid UTF-8; rename it"))
                continue
            if not name.lower().endswith(CORPUS_SUFFIXES):
                skipped.append(Skipped(rel, f"unsupported file type (only {', '.join(CORPUS_SUFFIXES)})"))
                continue
            try:
                real = path.resolve(strict=True)
            except (OSError, RuntimeError):  # a dangling link, or a link loop (RuntimeError before 3.13)
                skipped.append(Skipped(rel, "broken symbolic link (missing target or a loop)"))
                continue
            if not real.is_relative_to(real_root):
                skipped.append(Skipped(rel, "symbolic link pointing outside the corpus folder"))
                continue
            if not real.is_file():
                skipped.append(Skipped(rel, "not a regular file"))
                continue
            found.append((rel, real))
    return found, skipped


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_document_text(data: bytes, *, max_bytes: int = MAX_FILE_BYTES, name: str | None = None) -> str:
    """A file's text (decoded, or extracted when ``name`` is a PDF, Word or HTML file name), or raise
    ``ValueError`` saying why it cannot be indexed."""
    if name is not None and expected_kind(name) is not None:
        if len(data) > max_bytes:
            raise ValueError(f"file too large ({len(data) / 1e6:.1f} MB > {max_bytes / 1e6:.0f} MB)")
        return extract_bounded(name, data).text
    if len(data) > max_bytes:
        raise ValueError(f"file too large ({len(data) / 1e6:.1f} MB > {max_bytes / 1e6:.0f} MB)")
    if b"\x00" in data:
        found = sniff(data)
        if found in ("pdf", "docx"):
            raise ValueError(f"binary file (a {found.upper()}: give it a .{found} name)")
        raise ValueError("binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise ValueError("empty file")
    return text


def load_metadata(root: Path) -> dict[str, dict]:
    path = Path(root) / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorpusError(f"{path}: not valid JSON metadata ({exc})") from None
    if not isinstance(data, dict):
        raise CorpusError(f"{path}: expected an object mapping file names to metadata")
    return {k: v for k, v in data.items() if isinstance(v, dict)}


_MONTHS = ("January February March April May June July August September October November December").split()
_DATE = re.compile(rf"\b(?:{'|'.join(_MONTHS)}) \d{{1,2}},? \d{{4}}\b|\b\d{{4}}-\d{{2}}-\d{{2}}\b")


def guess_meta(path: str, text: str) -> DocumentMeta:
    """Metadata from the text itself: a markdown ``# heading`` or a short first line as the title.

    >>> guess_meta("a/notes.md", "# Field notes\\n\\nBody.").title
    'Field notes'
    """
    lines = [line.strip() for line in text.splitlines()[:12] if line.strip()]
    title = None
    for line in lines[:6]:
        heading = re.match(r"#{1,6}\s+(.+)", line)
        if heading:
            title = heading.group(1).strip()
            break
        if len(line) <= 150 and not line.endswith((".", ":", ";", ",")):
            title = line
            break
    if title is None:
        title = Path(path).stem.replace("_", " ").replace("-", " ")
    date = _DATE.search(text[:1000])
    author = None
    for before, line in zip(lines, lines[1:]):  # a byline: "By Jane Doe", or a name under the date
        byline = re.fullmatch(r"(?:By|by)\s+([A-Z][\w.'’-]+(?:\s+[A-Z][\w.'’-]+){1,3})", line)
        name = re.fullmatch(r"[A-Z][\w'’-]+(?:\s+[A-Z][\w.'’-]+){1,3}", line)
        if byline or (name and _DATE.fullmatch(before)):
            author = (byline or name).group(1 if byline else 0)
            break
    return DocumentMeta(title=title, author=author, date=date.group(0) if date else None)


def make_meta(path: str, text: str, given: dict | None) -> DocumentMeta:
    """metadata.json's fields where given, else what the text shows (``guess_meta``)."""
    guessed = guess_meta(path, text)
    if not given:
        return guessed

    def as_text(key: str) -> str | None:  # metadata is user-written JSON: a number or a list becomes text
        value = given.get(key)
        return None if value is None or value == "" else value if isinstance(value, str) else json.dumps(value)

    given_date = as_text("date")
    return DocumentMeta(
        title=as_text("title") or guessed.title,
        author=as_text("author") or guessed.author,
        date=guessed.date if same_day(given_date, guessed.date) else given_date or guessed.date,
        publisher=as_text("publisher"),
    )


def same_day(iso: str | None, printed: str | None) -> bool:
    """True when ``printed`` (as the text states it) is the day of the ISO date ``iso``. The text's
    own form is then kept: a model that answers with the date shown to it quotes the document.

    >>> same_day("2024-02-02", "February 02, 2024"), same_day("2024-02-02", "February 3, 2024")
    (True, False)
    """
    if not iso or not printed:
        return False
    iso_date = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", iso)
    written = re.fullmatch(r"(\w+) (\d{1,2}),? (\d{4})", printed)
    if not iso_date or not written or written.group(1) not in _MONTHS:
        return printed == iso
    year, month, day = map(int, iso_date.groups())
    return (int(written.group(3)), _MONTHS.index(written.group(1)) + 1, int(written.group(2))) == (year, month, day)


def load_document(root: Path, rel: str, real: Path, metadata: dict[str, dict], *,
                  reader: BoundedReader | None = None) -> Document:
    kind = expected_kind(rel)
    cap = MAX_FILE_BYTES if kind is None else MAX_HTML_BYTES if kind == "html" else MAX_BINARY_BYTES
    size = real.stat().st_size
    if size > cap:  # never read a huge file only to refuse it
        raise ValueError(f"file too large ({size / 1e6:.1f} MB > {cap / 1e6:.0f} MB)")
    data = real.read_bytes()
    if kind is None:
        text = read_document_text(data)
        return Document(rel, text, file_sha256(data), make_meta(rel, text, metadata.get(rel)))
    extracted = extract_bounded(rel, data, reader=reader)
    given = {"title": extracted.title, "author": extracted.author} | (metadata.get(rel) or {})
    meta = make_meta(rel, extracted.text, {k: v for k, v in given.items() if v})
    return Document(rel, extracted.text, file_sha256(data), meta, extracted.pages, extracted.sections)


Reading = Callable[[int, int, int], None]  # (files read, files in all, pages read so far)


def load_corpus(root: str | os.PathLike, *, reading: Reading | None = None) -> Corpus:
    """Read every indexable file under ``root``; files that cannot be read are listed in ``skipped``.
    ``reading(done, total, pages)`` is called after each file (for a progress bar)."""
    root = Path(root)
    files, skipped = list_corpus_files(root)
    metadata = load_metadata(root)
    documents = []
    pages = 0
    with BoundedReader() as reader:  # one reading process for the PDF, Word and HTML files, if any
        for done, (rel, real) in enumerate(files, start=1):
            try:
                documents.append(load_document(root, rel, real, metadata, reader=reader))
                pages += len(documents[-1].pages)
            except ValueError as exc:
                skipped.append(Skipped(rel, str(exc)))
            except OSError as exc:
                skipped.append(Skipped(rel, f"cannot read ({exc.strerror})"))
            if reading is not None:
                reading(done, len(files), pages)
    return Corpus(root, tuple(documents), tuple(skipped))
