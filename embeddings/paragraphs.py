"""Step 2, passages: cut a document into passages on paragraph boundaries, with exact offsets.

The one decision: offsets always index the original decoded text, so ``doc.text[p.start:p.end] ==
p.text`` for every passage. Normalisation (NFKC, curly quotes, non-breaking spaces) happens only on
copies used for matching. Short lines (titles, captions, datelines, bylines, headings) are kept: they
are glued to the following paragraph (or the previous one at the end of a document) and recorded as
metadata, so they can be found without becoming useless passages of their own. A paragraph that does
not fit the embedder's window is split at sentence boundaries into balanced windows. A PDF, Word or
HTML document arrives as blank-line separated paragraphs and headings already: its passages take
their section from the file's own headings and, for a PDF, the page they start on.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from embeddings.documents import Document

TokenCounter = Callable[[str], int]

_BLANK_LINE = re.compile(r"\n[^\S\n]*\n\s*")
_SENTENCE_END = re.compile(r"[.!?…]+[\"”’)\]]*(?=\s)|\n+")
_TERMINAL = re.compile(r"[.!?…][\"”’)\]]*$")
_MD_HEADING = re.compile(r"#{1,6}\s+\S")
_ABBREVIATIONS = frozenset(
    "u.s u.k u.n e.u mr mrs ms dr st jan feb mar apr jun jul aug sep sept oct nov dec e.g i.e vs no "
    "gen col lt sen rep gov inc ltd co corp jr sr prof fig approx est dept univ ave p pp vol ed".split()
)
_QUOTES = str.maketrans({"‘": "'", "’": "'", "‚": "'", "“": '"', "”": '"', "„": '"', "′": "'"})


@dataclass(frozen=True)
class Passage:
    id: str  # stable across re-indexing: "<doc>#<hash of text>"
    doc: str  # document path relative to the corpus folder
    start: int  # character offsets into the document's decoded text
    end: int
    text: str  # == document.text[start:end]
    title: str = ""
    author: str | None = None
    date: str | None = None
    section: str | None = None  # the heading this passage sits under, if any ("Chapter 2 › Results" from a file's own headings)
    page: int | None = None  # PDF: the 1-based page where the passage starts; None for unpaged documents

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"passage offsets must satisfy 0 <= start < end, got {self.start}, {self.end}")
        if len(self.text) != self.end - self.start:
            raise ValueError(f"passage text length {len(self.text)} != end - start {self.end - self.start}")
        if self.page is not None and self.page < 1:
            raise ValueError(f"page must be >= 1, got {self.page}")


def normalize(text: str) -> str:
    """A copy for matching and search only: NFKC, straight quotes, single spaces.

    >>> normalize("Macron\\u2019s\\u00a0 \\u201cvision\\u201d")
    'Macron\\'s "vision"'
    """
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    return " ".join(text.split())


def word_count(text: str) -> int:
    """The fallback token counter: whitespace-separated words."""
    return len(text.split())


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    segment = text[start:end]
    return start + len(segment) - len(segment.lstrip()), end - len(segment) + len(segment.rstrip())


def split_blocks(text: str) -> list[tuple[int, int]]:
    """Blank-line separated blocks as (start, end), surrounding whitespace excluded.

    >>> split_blocks("One.\\n\\n Two.\\n")
    [(0, 4), (7, 11)]
    """
    blocks, start = [], 0
    for match in _BLANK_LINE.finditer(text):
        blocks.append((start, match.start()))
        start = match.end()
    blocks.append((start, len(text)))
    spans = [_strip_span(text, s, e) for s, e in blocks]
    return [(s, e) for s, e in spans if s < e]


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentences (and separate lines) of ``text[start:end]`` as absolute (start, end) spans.

    Abbreviations ("U.S.", "then-U.S.", "Jan.") and initials do not end a sentence, nor does a full
    stop followed by a lower-case word.

    >>> t = "The U.S. left in 2019. Paris stayed."
    >>> [t[s:e] for s, e in split_sentences(t)]
    ['The U.S. left in 2019.', 'Paris stayed.']
    >>> t = "He met then-U.S. President Trump. Paris stayed."
    >>> [t[s:e] for s, e in split_sentences(t)]
    ['He met then-U.S. President Trump.', 'Paris stayed.']
    """
    end = len(text) if end is None else end
    spans, begin = [], start
    for match in _SENTENCE_END.finditer(text, start, end):
        cut = match.end()
        if match.group().startswith("\n"):
            cut = match.start()
        elif not _is_sentence_end(text, match.start(), match.end(), end):
            continue
        s, e = _strip_span(text, begin, cut)
        if s < e:
            spans.append((s, e))
        begin = match.end()
    s, e = _strip_span(text, begin, end)
    if s < e:
        spans.append((s, e))
    return spans


def _is_sentence_end(text: str, dot: int, after: int, limit: int) -> bool:
    following = text[after:limit].lstrip()
    if following and following[0].islower():
        return False
    if text[dot] == "." and not text[dot:after].startswith(".."):
        word = re.search(r"(\S+)$", text[:dot])
        token = word.group(1).lstrip("(\"“‘'[").lower() if word else ""
        token = re.split(r"[-–—]", token)[-1]  # "then-U.S." ends like "U.S."
        if token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()):
            return False
    return True


def is_fragment(text: str) -> bool:
    """True for a short line that is not a paragraph: a title, caption, dateline, byline or heading."""
    words = len(text.split())
    return words < 15 or not _TERMINAL.search(text.rstrip()) or _MD_HEADING.match(text) is not None


def _heading_text(text: str) -> str | None:
    first_line = text.strip().splitlines()[0]
    if _MD_HEADING.match(first_line):
        return first_line.lstrip("#").strip()
    if len(first_line.split()) <= 12 and not _TERMINAL.search(first_line.rstrip()) and "\n" not in text.strip():
        return first_line.strip()
    return None


def group_blocks(text: str) -> list[tuple[int, int, str | None]]:
    """Blocks with fragments glued to their paragraph: (start, end, section heading)."""
    groups: list[tuple[int, int, str | None]] = []
    pending: int | None = None  # start of fragments waiting for their paragraph
    section: str | None = None
    for start, end in split_blocks(text):
        block = text[start:end]
        if is_fragment(block):
            heading = _heading_text(block)
            if heading and (groups or _MD_HEADING.match(block)):
                section = heading
            pending = start if pending is None else pending
            continue
        groups.append((start if pending is None else pending, end, section))
        pending = None
    if pending is not None:
        if groups:
            start, _, sec = groups[-1]
            groups[-1] = (start, len(text.rstrip()), sec)
        else:
            start, end = _strip_span(text, pending, len(text))
            groups.append((start, end, section))
    return groups


def window_sentences(
    sentences: list[tuple[int, int]], text: str, budget: int, count_tokens: TokenCounter
) -> Iterator[tuple[int, int]]:
    """Pack consecutive sentences into balanced windows of at most ``budget`` tokens each."""
    sizes = [count_tokens(text[s:e]) for s, e in sentences]
    target = sum(sizes) / max(1, math.ceil(sum(sizes) / budget))
    begin, used = None, 0
    for (s, e), size in zip(sentences, sizes):
        if size > budget:  # one enormous "sentence": cut it at word boundaries
            if begin is not None:
                yield begin, prev_end
                begin, used = None, 0
            yield from _split_words(text, s, e, budget, count_tokens)
            continue
        if begin is not None and (used + size > budget or used >= target):
            yield begin, prev_end
            begin, used = None, 0
        begin = s if begin is None else begin
        used += size
        prev_end = e
    if begin is not None:
        yield begin, prev_end


def _split_words(text: str, start: int, end: int, budget: int, count_tokens: TokenCounter) -> Iterator[tuple[int, int]]:
    words = [m.span() for m in re.finditer(r"\S+", text[start:end])]
    chunk_start = 0
    while chunk_start < len(words):
        # a word is at least one token, so a window never holds more than `budget` words: bounding the
        # search keeps a huge single-line document linear instead of re-counting it all per window
        lo, hi = chunk_start + 1, min(len(words), chunk_start + max(1, budget))
        while lo < hi:  # the longest run of words that fits the budget
            mid = (lo + hi + 1) // 2
            piece = text[start + words[chunk_start][0] : start + words[mid - 1][1]]
            lo, hi = (mid, hi) if count_tokens(piece) <= budget else (lo, mid - 1)
        yield start + words[chunk_start][0], start + words[lo - 1][1]
        chunk_start = lo


def passage_id(doc: str, text: str, seen: set[str]) -> str:
    base = f"{doc}#{hashlib.sha1(normalize(text).encode()).hexdigest()[:10]}"
    pid, n = base, 1
    while pid in seen:
        n += 1
        pid = f"{base}-{n}"
    seen.add(pid)
    return pid


def split_passages(
    document: Document, *, max_tokens: int = 200, count_tokens: TokenCounter = word_count
) -> list[Passage]:
    """Cut a document into passages of at most ``max_tokens`` tokens, each with exact offsets.

    >>> from embeddings.documents import Document, DocumentMeta
    >>> doc = Document("a.txt", "Title\\n\\nA first paragraph that is long enough to count as one.", "", DocumentMeta("Title"))
    >>> [(p.start, p.end) for p in split_passages(doc)]
    [(0, 61)]
    """
    if max_tokens < 8:
        raise ValueError(f"max_tokens must be >= 8, got {max_tokens}")
    text, meta, seen = document.text, document.meta, set()
    passages = []
    for start, end, section in group_blocks(text):
        if count_tokens(text[start:end]) <= max_tokens:
            spans: list[tuple[int, int]] | Iterator[tuple[int, int]] = [(start, end)]
        else:
            spans = window_sentences(split_sentences(text, start, end), text, max_tokens, count_tokens)
        for s, e in spans:
            passages.append(
                Passage(
                    id=passage_id(document.path, text[s:e], seen),
                    doc=document.path,
                    start=s,
                    end=e,
                    text=text[s:e],
                    title=meta.title,
                    author=meta.author,
                    date=meta.date,
                    section=document.section_at(s, e) if document.sections else section,
                    page=document.page_at(s),
                )
            )
    return passages
