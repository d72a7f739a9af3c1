"""Rendering a PDF page with a cited span marked: a real page, boxes where the span prints."""

from __future__ import annotations

import io

import format_files as fx
import pytest
from PIL import Image

from embeddings.extract.pdf import extract_pdf
from embeddings.pdfpage import highlight_boxes, render_page

SCALE = 2.0


def test_the_highlighted_span_changes_colour_and_nothing_else_does(format_files):
    path = format_files["report.pdf"]
    text = extract_pdf(path.read_bytes()).text
    start = text.index(fx.PAGE2_SENTENCE)
    span = (start, start + len(fx.PAGE2_SENTENCE))
    plain = Image.open(io.BytesIO(render_page(path, 2, scale=SCALE))).convert("RGB")
    marked = Image.open(io.BytesIO(render_page(path, 2, highlight=span, expected_text=text, scale=SCALE))).convert("RGB")
    assert plain.size == marked.size and plain.size[0] > 500
    boxes = highlight_boxes(path.read_bytes(), 2, *span)
    assert boxes
    height = plain.size[1] / SCALE
    changed = 0
    for left, bottom, right, top in boxes:
        x0, y0, x1, y1 = (int(v * SCALE) for v in (left, height - top, right, height - bottom))
        for x in range(x0 + 2, x1 - 2, 7):
            for y in range(y0 + 2, y1 - 2, 3):
                r, g, b = marked.getpixel((x, y))
                changed += plain.getpixel((x, y)) != (r, g, b)
                if plain.getpixel((x, y)) == (255, 255, 255):  # white paper turns yellow
                    assert b < 200 and r > 200 and g > 150, (x, y, (r, g, b))
    assert changed > 50
    far = (plain.size[0] - 5, plain.size[1] - 5)  # a corner no text reaches
    assert plain.getpixel(far) == marked.getpixel(far)


def test_a_span_across_a_page_break_marks_only_its_part_on_each_page(format_files):
    data = format_files["report.pdf"].read_bytes()
    text = extract_pdf(data).text
    start = text.index(fx.ACROSS_PAGES)
    end = start + len(fx.ACROSS_PAGES)
    on_2, on_3 = highlight_boxes(data, 2, start, end), highlight_boxes(data, 3, start, end)
    assert on_2 and on_3
    assert highlight_boxes(data, 1, start, end) == []


def test_a_changed_pdf_and_a_bad_page_are_refused(format_files):
    path = format_files["report.pdf"]
    with pytest.raises(ValueError, match="changed since it was indexed"):
        render_page(path, 1, highlight=(0, 5), expected_text="another text")
    with pytest.raises(ValueError, match="page must be between 1 and 3, got 4"):
        render_page(path, 4)
