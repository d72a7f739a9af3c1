"""Step 1b, extracted text: lay out the blocks a format reader found as one text with exact offsets.

The one decision: a reader (PDF, Word, HTML) hands over blocks of pieces, and this module alone
writes the document text: blocks are separated by a blank line (so paragraph splitting sees them),
pieces inside a block by what the reader chose (a space between two lines, nothing where a word
hyphenated across a line end was joined). Every piece's place is recorded, so a page, a heading
path or a PDF character index is found for any offset by bisection.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

SECTION_SEPARATOR = " › "  # between the headings of a section path: "Chapter 2 › Results"


@dataclass(frozen=True)
class Piece:
    text: str  # copied into the document text verbatim
    page: int | None = None  # 1-based page the text is printed on (PDF only)
    origin: int | None = None  # pdfium character index of text[0] on that page; text[i] is origin + i
    before: str = " "  # joins it to the previous piece of the same block ("" joins a hyphenated word)


@dataclass(frozen=True)
class Block:
    pieces: tuple[Piece, ...]
    heading: int = 0  # 0 for body text, else the heading level (1 is the top level)

    def __post_init__(self) -> None:
        if self.heading < 0:
            raise ValueError(f"heading level must be >= 0, got {self.heading}")


@dataclass(frozen=True)
class Section:
    start: int  # offsets of the heading itself in the document text
    end: int
    path: str  # the heading with the headings above it: "Chapter 2 › Results"


@dataclass(frozen=True)
class Extracted:
    text: str  # the document text: every offset of the index refers to it
    pages: tuple[int, ...] = ()  # offset where each page's text begins (PDF), else empty
    sections: tuple[Section, ...] = ()  # the headings, in text order
    spans: tuple[tuple[int, int, int, int], ...] = field(default=(), repr=False)
    # (text offset, page, pdfium char index, length): runs copied one to one from a PDF page
    title: str | None = None  # from the file's own metadata, when it has one
    author: str | None = None


def assemble(blocks: Iterable[Block], *, n_pages: int = 0, title: str | None = None,
             author: str | None = None) -> Extracted:
    """The document text of ``blocks``, with page starts, heading paths and PDF runs.

    >>> e = assemble([Block((Piece("Intro"),), heading=1), Block((Piece("One line"), Piece("and two.")))])
    >>> e.text, e.sections[0].path
    ('Intro\\n\\nOne line and two.', 'Intro')
    """
    parts: list[str] = []
    offset = 0
    page_start: dict[int, int] = {}
    sections: list[Section] = []
    spans: list[tuple[int, int, int, int]] = []
    stack: list[tuple[int, str]] = []  # (level, heading) of the open headings
    for block in blocks:
        pieces = [p for p in block.pieces if p.text]
        if not pieces:
            continue
        block_start = None
        for i, piece in enumerate(pieces):
            joiner = ("\n\n" if parts else "") if i == 0 else piece.before
            parts.append(joiner)
            offset += len(joiner)
            block_start = offset if block_start is None else block_start
            if piece.page is not None:
                page_start.setdefault(piece.page, offset)
            if piece.origin is not None:
                spans.append((offset, piece.page or 0, piece.origin, len(piece.text)))
            parts.append(piece.text)
            offset += len(piece.text)
        if block.heading:
            name = " ".join("".join(parts[-2 * len(pieces) + 1:]).split())
            stack = [(level, h) for level, h in stack if level < block.heading] + [(block.heading, name)]
            sections.append(Section(block_start, offset, SECTION_SEPARATOR.join(h for _, h in stack)))
    pages: list[int] = []
    for page in range(n_pages, 0, -1):  # an empty page starts where the next page with text starts
        pages.append(page_start.get(page, pages[-1] if pages else offset))
    return Extracted("".join(parts), tuple(reversed(pages)), tuple(sections), tuple(spans), title, author)


def page_at(pages: tuple[int, ...], offset: int) -> int | None:
    """The 1-based page holding ``offset``, given each page's start offset; None when not paged.

    >>> page_at((0, 120, 300), 0), page_at((0, 120, 300), 120), page_at((0, 120, 300), 299)
    (1, 2, 2)
    """
    if not pages:
        return None
    return max(1, bisect_right(pages, offset))


def section_at(sections: tuple[Section, ...], start: int, end: int) -> str | None:
    """The heading path of the text ``[start, end)``: headings it opens with count as its own.

    >>> s = (Section(0, 5, "Intro"), Section(7, 14, "Intro › Results"))
    >>> section_at(s, 0, 40), section_at(s, 20, 40)
    ('Intro › Results', 'Intro › Results')
    """
    if not sections:
        return None
    starts = [s.start for s in sections]
    at = bisect_right(starts, start) - 1
    while at + 1 < len(sections) and sections[at + 1].start < end and _only_headings_between(sections, at, start):
        at += 1
    return sections[at].path if at >= 0 else None


def _only_headings_between(sections: tuple[Section, ...], at: int, start: int) -> bool:
    """True when the text from ``start`` to the next heading holds nothing but headings (the next
    heading's start is the end of heading ``at`` plus a separator, or ``start`` itself)."""
    following = sections[at + 1].start
    reached = max(start, sections[at].end) if at >= 0 and sections[at].end > start else start
    return following - reached <= 2
