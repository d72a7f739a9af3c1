"""See the source: render one page of a PDF as PNG, with a cited span of its extracted text marked.

The one decision: the map from document-text offsets back to pdfium characters is not stored; it is
rebuilt by running the same deterministic extraction on the file again (about a millisecond a page),
and checked against the text the index stored when that is given, so a PDF replaced since it was
indexed is refused instead of being marked in the wrong place.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from embeddings.extract.blocks import Extracted
from embeddings.extract.pdf import extract_pdf, open_pdf

Box = tuple[float, float, float, float]  # left, bottom, right, top in PDF units (y grows upwards)
HIGHLIGHT = (255, 214, 0, 110)  # RGBA fill of a marked box
OUTLINE = (230, 120, 0, 255)


def span_chars(extracted: Extracted, page: int, start: int, end: int) -> list[tuple[int, int]]:
    """(pdfium char index, count) runs of page ``page`` printing ``extracted.text[start:end]``.

    Spaces and blank lines put between lines, and hyphens dropped at a line end, print nothing and
    are not in any run.
    """
    runs = []
    for offset, on_page, origin, length in extracted.spans:
        lo, hi = max(start, offset), min(end, offset + length)
        if on_page == page and lo < hi:
            runs.append((origin + lo - offset, hi - lo))
    return runs


def highlight_boxes(data: bytes, page: int, start: int, end: int, *, expected_text: str | None = None) -> list[Box]:
    """The boxes on page ``page`` (1-based) of the PDF ``data`` covering ``text[start:end]``, where
    text is the document text the index stores for this PDF."""
    if not 0 <= start <= end:
        raise ValueError(f"highlight must satisfy 0 <= start <= end, got {start}, {end}")
    extracted = extract_pdf(data)
    if expected_text is not None and extracted.text != expected_text:
        raise ValueError("the PDF changed since it was indexed; index it again to see its pages")
    runs = span_chars(extracted, page, start, end)
    pdf = open_pdf(data)
    try:
        _check_page(pdf, page)
        textpage = pdf[page - 1].get_textpage()
        boxes = []
        for index, count in runs:
            for i in range(textpage.count_rects(index, count)):
                boxes.append(tuple(textpage.get_rect(i)))
        return boxes
    finally:
        pdf.close()


def render_page(pdf_path: str | os.PathLike, page: int, *, highlight: tuple[int, int] | None = None,
                expected_text: str | None = None, scale: float = 2.0) -> bytes:
    """PNG bytes of page ``page`` (1-based) of ``pdf_path``; ``highlight=(start, end)``, offsets into
    the document text the index stores for this PDF (a citation's ``start``/``end``), is drawn as
    marked boxes over the characters that print it.

    >>> png = render_page("report.pdf", 2, highlight=(219, 321))  # doctest: +SKIP
    """
    if scale <= 0 or scale > 8:
        raise ValueError(f"scale must be in (0, 8], got {scale}")
    from PIL import Image, ImageDraw

    data = Path(pdf_path).read_bytes()
    boxes = highlight_boxes(data, page, *highlight, expected_text=expected_text) if highlight else []
    pdf = open_pdf(data)
    try:
        _check_page(pdf, page)
        pdf_page = pdf[page - 1]
        height = pdf_page.get_height()
        image = pdf_page.render(scale=scale).to_pil().convert("RGBA")
    finally:
        pdf.close()
    if boxes:
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        for left, bottom, right, top in boxes:  # PDF units, origin bottom-left -> pixels, origin top-left
            draw.rectangle([left * scale - 1, (height - top) * scale - 1, right * scale + 1, (height - bottom) * scale + 1],
                           fill=HIGHLIGHT, outline=OUTLINE)
        image = Image.alpha_composite(image, overlay)
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG")
    return out.getvalue()


def _check_page(pdf, page: int) -> None:
    if not 1 <= page <= len(pdf):
        raise ValueError(f"page must be between 1 and {len(pdf)}, got {page}")
