"""Step 1a, Word: a ``.docx`` file's body as paragraphs and headings, in document order.

The one decision: the zip is checked before anything is decompressed (number of parts, declared
sizes, compression ratios), so a zip bomb is refused from its directory alone; then python-docx reads
the body: paragraphs styled "Title" or "Heading N" are headings, each table row is a paragraph, and
page headers and footers (separate parts of the file) are never read.
"""

from __future__ import annotations

import io
import re
import zipfile

from embeddings.extract.blocks import Block, Extracted, Piece, assemble

MAX_PARTS = 2000  # files inside the zip
MAX_UNPACKED = 200 * 1024 * 1024  # declared uncompressed bytes, all parts together
MAX_RATIO = 100  # declared uncompressed / compressed size of one part above 1 MB
_HEADING_STYLE = re.compile(r"heading (\d)", re.I)


def check_zip(data: bytes) -> zipfile.ZipFile:
    """The zip, once its directory shows nothing dangerous; ``ValueError`` otherwise."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise ValueError(f"corrupt or truncated Word file ({exc})") from None
    if len(infos) > MAX_PARTS:
        raise ValueError(f"suspicious Word file: {len(infos)} parts (a zip bomb?)")
    total = sum(info.file_size for info in infos)
    if total > MAX_UNPACKED:
        raise ValueError(f"suspicious Word file: unpacks to {total / 1e6:.0f} MB (a zip bomb?)")
    for info in infos:
        if info.file_size > 1 << 20 and info.file_size > MAX_RATIO * max(1, info.compress_size):
            raise ValueError(f"suspicious Word file: {info.filename} is compressed {info.file_size // max(1, info.compress_size)}:1 (a zip bomb?)")
    if "word/document.xml" not in {info.filename for info in infos}:
        raise ValueError("not a Word .docx file (a zip without word/document.xml)")
    return archive


def extract_docx(data: bytes) -> Extracted:
    """The body text of a Word file, headings as sections."""
    check_zip(data)
    try:
        import docx
        from docx.table import Table
        from docx.text.paragraph import Paragraph
    except ImportError:  # pragma: no cover - a declared dependency
        raise ValueError("reading Word files needs python-docx: pip install python-docx") from None
    try:
        document = docx.Document(io.BytesIO(data))
        # style names by id, read once: python-docx's own paragraph.style searches the styles each time
        styles = {style.style_id: style.name or "" for style in document.styles}
        blocks = []
        for item in document.iter_inner_content():
            if isinstance(item, Paragraph):
                blocks += _paragraph(item, styles)
            elif isinstance(item, Table):
                blocks += _table(item)
        props = document.core_properties
        title, author = props.title or None, props.author or None
    except ValueError:
        raise
    except Exception as exc:  # python-docx raises KeyError, lxml errors...: all mean a broken file
        raise ValueError(f"corrupt Word file ({exc.__class__.__name__}: {str(exc)[:80]})") from None
    if not blocks:
        raise ValueError("no text")
    return assemble(blocks, title=title, author=author)


def _paragraph(paragraph, styles: dict[str, str]) -> list[Block]:
    lines = [" ".join(line.split()) for line in paragraph.text.splitlines()]
    pieces = tuple(Piece(line, before="\n") for line in lines if line)
    if not pieces:
        return []
    style = styles.get(paragraph._p.style or "", "")
    heading = _HEADING_STYLE.fullmatch(style.strip())
    level = 1 if style.strip().lower() == "title" else int(heading.group(1)) if heading else 0
    return [Block(pieces, heading=level)]


def _table(table) -> list[Block]:
    blocks = []
    for row in table.rows:
        cells = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if text and (not cells or cells[-1] != text):  # a merged cell repeats in each column it spans
                cells.append(text)
        if cells:
            blocks.append(Block((Piece(" | ".join(cells)),)))
    return blocks
