"""Step 1a, HTML: an HTML page's readable text as paragraphs and headings, boilerplate dropped.

The one decision: only what a reader reads is kept. Scripts, styles, navigation, asides, forms,
footers and page headers outside the article are dropped with everything inside them; block
elements (p, div, li, tr, ...) become paragraphs and h1-h6 headings, whose levels make the
section paths. Parsed with Lexbor (selectolax): fast, and an HTML5 parser, so broken markup reads
as a browser would read it.
"""

from __future__ import annotations

import re

from embeddings.extract.blocks import Block, Extracted, Piece, assemble

DROPPED = frozenset(
    "script style noscript template nav aside footer form button select option svg math canvas iframe "
    "object embed audio video head title meta link input textarea dialog".split()
)
BLOCKS = frozenset(
    "p div section article main li ul ol dl dt dd table thead tbody tfoot tr caption blockquote pre figure "
    "figcaption hr address body html details summary fieldset legend center h1 h2 h3 h4 h5 h6 header".split()
)
HEADINGS = {f"h{n}": n for n in range(1, 7)}
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


def decode_html(data: bytes) -> str:
    """UTF-8 (with or without a BOM), else the charset the page declares, else Windows-1252."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = _CHARSET.search(data[:4096])
    for encoding in ((declared.group(1).decode("ascii"),) if declared else ()) + ("cp1252",):
        try:
            return data.decode(encoding, "replace")
        except LookupError:
            continue
    return data.decode("latin-1")


def _dropped(node) -> bool:
    attrs = node.attributes
    if node.tag in DROPPED or "hidden" in attrs or attrs.get("aria-hidden") == "true":
        return True
    if (attrs.get("role") or "") in ("navigation", "banner", "contentinfo", "complementary", "search"):
        return True
    return False


class _Collector:
    """Text of the current block, as lines (a ``<br>`` starts a line)."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.lines: list[list[str]] = [[]]
        self.heading = 0

    def add(self, text: str) -> None:
        self.lines[-1].append(text)

    def line_break(self) -> None:
        self.lines.append([])

    def flush(self, heading: int = 0) -> None:
        lines = [" ".join("".join(parts).split()) for parts in self.lines]
        lines = [line for line in lines if line]
        if lines:
            pieces = tuple(Piece(line, before="\n") for line in lines)
            self.blocks.append(Block(pieces, heading=self.heading))
        self.lines, self.heading = [[]], heading


def extract_html(data: bytes) -> Extracted:
    """The readable text of an HTML page, with its headings as sections."""
    try:
        from selectolax.lexbor import LexborHTMLParser
    except ImportError:  # pragma: no cover - a declared dependency
        raise ValueError("reading HTML needs selectolax: pip install selectolax") from None
    tree = LexborHTMLParser(decode_html(data))
    title_node = tree.css_first("title")
    title = " ".join(title_node.text().split()) if title_node is not None else None
    out = _Collector()
    root = tree.body or tree.root
    # depth-first with an explicit stack: a hostile page nested 100,000 deep must not hit the recursion limit
    stack: list[tuple[object, bool, bool]] = [(root, False, False)]  # (node, leaving, inside an article)
    while stack:
        node, leaving, in_article = stack.pop()
        tag = node.tag
        if leaving:
            if tag in BLOCKS:
                out.flush()
            continue
        if tag == "-text":
            out.add(node.text_content or "")
            continue
        if tag.startswith("-") or _dropped(node) or (tag == "header" and not in_article):
            continue
        if tag == "br":
            out.line_break()
            continue
        if tag in ("td", "th"):
            out.add(" ")
        if tag in BLOCKS:
            out.flush(HEADINGS.get(tag, 0))
        stack.append((node, True, in_article))
        inside = in_article or tag in ("article", "main")
        stack.extend((child, False, inside) for child in reversed(list(node.iter(include_text=True))))
    out.flush()
    if not out.blocks:
        raise ValueError("no text (only scripts, styles or navigation)")
    return assemble(out.blocks, title=title or None)
