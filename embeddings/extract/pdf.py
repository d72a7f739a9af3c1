"""Step 1a, PDF: read a PDF's text layer with pdfium, page by page, as paragraphs and headings.

The one decision: every character of the document text is copied from one pdfium character (or is a
space or blank line put between lines and paragraphs), and the run it came from is recorded, so an
offset leads back to its page and its box on the page. Running headers and footers (lines repeated
at the top or bottom of most pages, bare page numbers) are dropped; a word hyphenated across a line
end is joined ("secu-" / "rity" -> "security"); lines in a larger font than the body are headings.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from embeddings.extract.blocks import Block, Extracted, Piece, assemble

MAX_PAGES = 5000  # a longer PDF is refused: a corpus is documents, not archives
MAX_CHARS = 20_000_000  # extracted text above this is refused
HEADING_RATIO = 1.15  # a line whose font is this much larger than the body's is a heading
_TERMINAL = tuple(".!?:;…\"”’)")
_PAGE_NUMBER = re.compile(r"(?i)(?:page\s+)?\d{1,4}(?:\s*(?:/|of)\s*\d{1,4})?|[ivxlc]{1,7}|[-–—]\s*\d{1,4}\s*[-–—]")


@dataclass(frozen=True)
class Line:
    page: int  # 1-based
    origin: int  # pdfium char index of text[0]
    text: str  # one to one with the page's chars from origin; a hyphen marker is "\x02"
    size: float  # font size of most of its characters (a few sampled)
    top: float  # of its first character's loose box, PDF units (y grows upwards)
    bottom: float  # of its last character's


def open_pdf(data: bytes):
    """A ``pypdfium2.PdfDocument`` of ``data``, or ``ValueError`` with a reason a person can act on."""
    try:
        import pypdfium2 as pdfium
    except ImportError:  # pragma: no cover - a declared dependency
        raise ValueError("reading PDFs needs pypdfium2: pip install pypdfium2") from None
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise ValueError("encrypted: password needed") from None
        detail = str(exc).rpartition("PDFium: ")[2].rstrip(").") or str(exc)
        raise ValueError(f"corrupt or truncated PDF ({detail.lower()})") from None
    if len(pdf) > MAX_PAGES:
        pdf.close()
        raise ValueError(f"too many pages ({len(pdf)} > {MAX_PAGES})")
    return pdf


def page_lines(textpage, page: int) -> list[Line]:
    """The lines of one pdfium text page, each as a run of its characters."""
    import pypdfium2.raw as raw

    n = textpage.count_chars()
    chars = []
    for i in range(n):
        code = raw.FPDFText_GetUnicode(textpage, i)
        if raw.FPDFText_IsHyphen(textpage, i):
            chars.append("\x02")
        elif code in (10, 13):
            chars.append("\n")
        elif code < 32 or 0xD800 <= code < 0xE000 or code > 0x10FFFF or code in (0xFFFE, 0xFFFF):
            chars.append(" ")
        else:
            chars.append(chr(code))
    text = "".join(chars)
    lines = []
    for match in re.finditer(r"[^\n]+", text):
        stripped = match.group().strip()
        if not stripped or stripped == "\x02":
            continue
        origin = match.start() + len(match.group()) - len(match.group().lstrip())
        visible = [origin + i for i, ch in enumerate(stripped) if not ch.isspace()]
        top = textpage.get_charbox(origin, loose=True)[3]
        bottom = textpage.get_charbox(visible[-1], loose=True)[1]  # pdfium may join two lines at a hyphen
        samples = visible[:: max(1, len(visible) // 5)]  # a few characters: a word in code font is not the line's size
        size = Counter(round(raw.FPDFText_GetFontSize(textpage, i), 1) for i in samples).most_common(1)[0][0]
        lines.append(Line(page, origin, stripped, size, top, bottom))
    return lines


def running_lines(pages: list[list[Line]]) -> set[tuple[int, int]]:
    """(page, origin) of the lines to drop: page numbers, and short lines met at the same height at
    the top or bottom of most pages (digits ignored, so "Page 3 of 9" repeats)."""
    edges = [lines[:2] + lines[-2:] if len(lines) > 4 else lines for lines in pages]

    def key(line: Line) -> tuple[str, int]:
        return re.sub(r"\d+", "#", " ".join(line.text.lower().split())), round(line.top / 12)

    counts = Counter(k for lines in edges for k in {key(line) for line in lines if len(line.text.split()) <= 20})
    needed = max(2, math.ceil(len(pages) / 2))
    drop = set()
    for lines in edges:
        for line in lines:
            if counts[key(line)] >= needed or _PAGE_NUMBER.fullmatch(line.text.strip()):
                drop.add((line.page, line.origin))
    return drop


def body_size(lines: list[Line]) -> float:
    """The font size most text is set in (characters counted)."""
    sizes = Counter()
    for line in lines:
        sizes[line.size] += len(line.text)
    return sizes.most_common(1)[0][0] if sizes else 0.0


def line_pieces(line: Line, before: str) -> list[Piece]:
    """A line as pieces: split where pdfium marked a hyphen that joins a word ("secu\\x02rity")."""
    pieces, start, text = [], 0, line.text
    for match in re.finditer("\x02", text):
        at = match.start()
        if at + 1 < len(text) and text[at + 1].islower():
            pieces.append(Piece(text[start:at], line.page, line.origin + start, before if not pieces else ""))
            start = at + 1
    rest = text[start:].replace("\x02", "-")
    pieces.append(Piece(rest, line.page, line.origin + start, before if not pieces else ""))
    return [p for p in pieces if p.text]


def extract_pdf(data: bytes) -> Extracted:
    """The text layer of a PDF as paragraphs and headings, with page starts and character runs."""
    pdf = open_pdf(data)
    try:
        pages = []
        total = 0
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            pages.append(page_lines(textpage, index + 1))
            total += sum(len(line.text) for line in pages[-1])
            textpage.close()
            page.close()
            if total > MAX_CHARS:
                raise ValueError(f"too much text (over {MAX_CHARS:,} characters)")
        meta = pdf.get_metadata_dict(skip_empty=True)
        n_pages = len(pdf)
    finally:
        pdf.close()
    if not any(line.text.strip() for lines in pages for line in lines):
        raise ValueError("no text layer (a scan?); OCR is not supported")
    drop = running_lines(pages)
    kept = [[line for line in lines if (line.page, line.origin) not in drop] for lines in pages]
    blocks = layout([line for lines in kept for line in lines])
    title = (meta.get("Title") or "").strip()
    if title.lower().endswith((".html", ".htm", ".docx", ".doc", ".txt")):  # a printer's file name, not a title
        title = ""
    return assemble(blocks, n_pages=n_pages, title=title or None, author=(meta.get("Author") or "").strip() or None)


def layout(lines: list[Line]) -> list[Block]:
    """Lines in reading order -> paragraphs and headings. A paragraph ends at a vertical gap wider
    than ``paragraph_gap``, a line that starts higher (a new column), a change of font size or a heading;
    it goes on across a page break unless the page's last line ended a sentence."""
    body = body_size(lines)
    heading_sizes = sorted({line.size for line in lines if _is_heading(line, body)}, reverse=True)
    break_gap = paragraph_gap(lines)
    blocks: list[Block] = []
    pieces: list[Piece] = []
    heading = 0
    prev: Line | None = None
    for line in lines:
        level = heading_sizes.index(line.size) + 1 if _is_heading(line, body) else 0
        if prev is None or level or heading:
            new_block = True
        elif prev.page == line.page:
            new_block = (_gap(prev, line) > break_gap or line.top > prev.top
                         or abs(line.size - prev.size) > 0.1 * prev.size)
        else:
            new_block = prev.text.endswith(_TERMINAL) and not line.text[:1].islower()
        if new_block and pieces:
            blocks.append(Block(tuple(pieces), heading=heading))
            pieces = []
        heading = level if new_block else heading
        before = " "
        if pieces and _hyphenated(pieces[-1].text, line.text):
            last = pieces[-1]
            pieces[-1] = Piece(last.text[:-1], last.page, last.origin, last.before)
            before = ""
        pieces += line_pieces(line, before)
        prev = line
    if pieces:
        blocks.append(Block(tuple(pieces), heading=heading))
    return blocks


def paragraph_gap(lines: list[Line]) -> float:
    """The gap between two lines (in line heights) above which a new paragraph starts: the usual gap
    between lines of the same size in this document (its median: most lines are inside paragraphs)
    plus 0.4, and at least 0.5. Measured on two Debian manuals, lines of a paragraph sit 0.4-0.7
    apart and paragraphs 1.0 or more."""
    gaps = sorted(_gap(a, b) for a, b in zip(lines, lines[1:]) if a.page == b.page and a.size == b.size and b.top <= a.top)
    return max(0.5, gaps[len(gaps) // 2] + 0.4) if gaps else 0.5


def _gap(upper: Line, lower: Line) -> float:
    return (upper.bottom - lower.top) / max(1.0, lower.top - lower.bottom)


def _hyphenated(end_of_line: str, next_line: str) -> bool:
    """ "secu-" then "rity": a word cut at a line end (a hyphen after a letter, a lower-case next line)."""
    return len(end_of_line) > 1 and end_of_line.endswith("-") and end_of_line[-2].isalpha() and next_line[:1].islower()


def _is_heading(line: Line, body: float) -> bool:
    text = line.text.strip()
    return (body > 0 and line.size >= body * HEADING_RATIO and len(text.split()) <= 20
            and not text.endswith((".", ",", ";")))
