"""Step 1, which reader: pick the reader of a file from its name, after checking its bytes agree.

The one decision: the extension says what the user meant and the first bytes say what the file is;
when they disagree the file is skipped with both named ("a PDF named .docx"), never read by the
wrong reader. Size caps are checked before any parsing.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from embeddings.extract.blocks import Extracted

TEXT_SUFFIXES = (".txt", ".md")  # read as UTF-8 text, untouched
EXTRACTED_SUFFIXES = (".pdf", ".docx", ".html", ".htm")  # read by a format reader
MAX_BINARY_BYTES = 100 * 1024 * 1024  # a larger PDF or Word file is skipped before it is read
MAX_HTML_BYTES = 20 * 1024 * 1024

_KINDS = {".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html"}
_NAMES = {"pdf": "a PDF", "docx": "a Word file", "zip": "a zip archive", "html": "an HTML page",
          "ole": "an old Word/Office file (.doc)", "png": "a PNG image", "jpeg": "a JPEG image",
          "gzip": "a gzip archive", "text": "plain text", "binary": "binary data"}


def sniff(data: bytes) -> str:
    """What the first bytes say a file is: "pdf", "docx", "zip", "html", "text", ... or "binary".

    >>> sniff(b"%PDF-1.7\\n"), sniff(b"  <!DOCTYPE html><p>x"), sniff(b"Plain words.")
    ('pdf', 'html', 'text')
    """
    head = data[:2048]
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "docx" if b"word/" in data[:65536] or b"[Content_Types].xml" in head else "zip"
    for magic, kind in ((b"\xd0\xcf\x11\xe0", "ole"), (b"\x89PNG", "png"), (b"\xff\xd8\xff", "jpeg"), (b"\x1f\x8b", "gzip")):
        if head.startswith(magic):
            return kind
    lowered = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--")) or b"<html" in lowered[:512]:
        return "html"
    if b"\x00" in head:
        return "binary"
    return "text"


def expected_kind(name: str) -> str | None:
    """The reader a file name asks for, or None for plain text / unsupported names."""
    return _KINDS.get(PurePosixPath(name).suffix.lower())


def extract(name: str, data: bytes) -> Extracted:
    """Read a PDF, Word or HTML file's text, or raise ``ValueError`` with the one-line reason."""
    kind = expected_kind(name)
    if kind is None:
        raise ValueError(f"not a PDF, Word or HTML file name: {name}")
    cap = MAX_HTML_BYTES if kind == "html" else MAX_BINARY_BYTES
    if len(data) > cap:
        raise ValueError(f"file too large ({len(data) / 1e6:.1f} MB > {cap / 1e6:.0f} MB)")
    if not data.strip():
        raise ValueError("empty file")
    found = sniff(data)
    if kind == "html":
        if found not in ("html", "text"):
            raise ValueError(f"not an HTML page: the file is {_NAMES[found]}; rename it")
    elif found != kind:
        raise ValueError(f"not {_NAMES[kind]}: the file is {_NAMES[found]}; rename it")
    if kind == "pdf":
        from embeddings.extract.pdf import extract_pdf
        return extract_pdf(data)
    if kind == "docx":
        from embeddings.extract.docx import extract_docx
        return extract_docx(data)
    from embeddings.extract.html import extract_html
    return extract_html(data)
