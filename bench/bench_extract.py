"""PDF, Word and HTML readers compared on generated files: speed and text fidelity.

    .venv/bin/python bench/bench_extract.py [--pages 40] [--repeat 3] [--out bench/results/extract.json]

The files are written by real writers (Chromium prints the PDF, python-docx writes the Word file; see
tests/format_files.py) from known sentences, so fidelity is counted, not judged: ``sentences`` is the
share of known sentences found verbatim (whitespace collapsed), ``in_order`` whether they come in
reading order, ``hyphens`` the share of words cut at a line end ("mainte-" / "nance") found whole,
``boilerplate`` the share of running headers, page numbers, navigation, scripts and Word page headers
that are gone. Times are the median of ``--repeat`` runs per file, in ms per page (PDF) or per file.
The chosen HTML reader walks the tree in Python; the lxml and "parse + C text" rows do not, so the
two "no rules" rows compare the parsers alone.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
import os  # noqa: E402

import format_files as fx  # noqa: E402

from bench.common import machine_info, write_result  # noqa: E402

HEADER = "Bench Report — Confidential"
CREWS = ("The night", "A tired", "The harbour", "One small", "The new", "An old", "The winter")  # body lines differ


def sentence(page: int, k: int) -> str:
    return f"Inspector {page} wrote note {k} about the harbour of town {page * 7 + k} in plain words."


def pdf_html(pages: int) -> str:
    body = []
    for n in range(1, pages + 1):
        paragraphs = "".join(f"<p>{sentence(n, k)} {sentence(n, k + 10)} {sentence(n, k + 20)}</p>" for k in range(3))
        body.append(f"""<div class="page"><div class="hdr">{HEADER} · page {n}</div><h2>Section {n}</h2>{paragraphs}
        <p>{CREWS[n % len(CREWS)]} crew finished the yearly mainte-<br>nance of the lighthouse on page {n}.</p><div class="ftr">{n}</div></div>""")
    return f"<!doctype html><html><head><meta charset='utf-8'>{fx._STYLE}</head><body>{''.join(body)}</body></html>"


def known(pages: int) -> list[str]:
    out = []
    for n in range(1, pages + 1):
        out += [sentence(n, k + j) for k in range(3) for j in (0, 10, 20)]
    return out


def html_page(sections: int) -> str:
    body = "".join(f"<h2>Part {n}</h2><p>{sentence(n, 0)} {sentence(n, 1)}</p><ul><li>{sentence(n, 2)}</li></ul>"
                   for n in range(1, sections + 1))
    return (f"<!doctype html><html><head><title>t</title><style>p{{}}</style><script>var x = 'SCRIPT-BOILER';</script>"
            f"</head><body><nav>NAV-BOILER</nav><header>HEADER-BOILER</header><main><article>{body}</article></main>"
            f"<aside>ASIDE-BOILER</aside><footer>FOOTER-BOILER</footer></body></html>")


# Broken markup, as pages in the wild have it: (page, its sentences in the order a browser shows them,
# text that must not show). A browser's HTML5 parser closes </nav> and moves a <p> out of a <table>.
BROKEN = [
    (b'<p>Alpha one.<script>var s = "</p><p>SCRIPT-BOILER";</script><p>Beta two.', ["Alpha one.", "Beta two."], ["SCRIPT-BOILER"]),
    (b"<html><body><nav><p>NAV-BOILER<div>more</nav><p>Gamma three.</p>", ["Gamma three."], ["NAV-BOILER"]),
    (b"<table><tr><td>Cell four.</td></tr><p>Delta five.</p></table>", ["Delta five.", "Cell four."], []),
    (b"<p>Eps <b>six <p>Zeta seven.</b> tail</p>", ["Zeta seven."], []),
    (b"<main><article><p>Eta eight.</article><footer>FOOTER-BOILER</footer>", ["Eta eight."], ["FOOTER-BOILER"]),
    (b"<p>Theta<!-- COMMENT-BOILER --> nine.</p><template><p>TEMPLATE-BOILER</p></template>", ["Theta nine."],
     ["COMMENT-BOILER", "TEMPLATE-BOILER"]),
    (b"<svg><text>SVG-BOILER</text></svg><p>Kappa eleven &amp; more&nbsp;words.</p>", ["Kappa eleven & more words."],
     ["SVG-BOILER"]),
]


def broken_fidelity(fn) -> tuple[dict, float]:
    """Fidelity summed over the ``BROKEN`` pages, and the total time."""
    found = total = gone = boilers = 0
    in_order, seconds = True, 0.0
    for page, sentences, boiler in BROKEN:
        start = time.perf_counter()
        text = fn(page)
        seconds += time.perf_counter() - start
        row = fidelity(text, sentences, boiler or ["\x00"], None, 0)
        found += round(row["sentences"] * len(sentences))
        total += len(sentences)
        gone += round(row["boilerplate"] * len(boiler))
        boilers += len(boiler)
        in_order &= row["in_order"]
    return {"sentences": round(found / total, 3), "in_order": in_order, "boilerplate": round(gone / boilers, 3)}, seconds


def flat(text: str) -> str:
    return " ".join(text.split())


def fidelity(text: str, sentences: list[str], boiler: list[str], hyphen_word: str | None, expected_hyphens: int) -> dict:
    t = flat(text)
    found = [t.find(s) for s in sentences]
    hits = [f for f in found if f >= 0]
    row = {"sentences": round(len(hits) / len(sentences), 3), "in_order": hits == sorted(hits),
           "boilerplate": round(sum(b not in text for b in boiler) / len(boiler), 3)}
    if hyphen_word:
        row["hyphens"] = round(min(1.0, t.count(hyphen_word) / expected_hyphens), 3)
    return row


def timed(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


# ------------------------------------------------------------------------------------- candidates


def pdf_ours(data: bytes) -> str:
    from embeddings.extract.pdf import extract_pdf
    return extract_pdf(data).text


def pdf_pdfium_raw(data: bytes) -> str:
    import pypdfium2 as pdfium
    pdf = pdfium.PdfDocument(data)
    return "\n".join(page.get_textpage().get_text_range() for page in pdf)


def pdf_pypdf(data: bytes) -> str:
    import pypdf
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def html_ours(data: bytes) -> str:
    from embeddings.extract.html import extract_html
    return extract_html(data).text


def html_lxml(data: bytes) -> str:
    """The same rules (drop the same tags, a block per block element) on lxml's libxml2 parser."""
    import lxml.html

    from embeddings.extract.html import BLOCKS, DROPPED
    tree = lxml.html.document_fromstring(data)
    dropped = [node for node in tree.iter() if isinstance(node.tag, str) and (node.tag in DROPPED or (
        node.tag == "header" and not any(a.tag in ("article", "main") for a in node.iterancestors())))]
    for node in dropped:
        node.drop_tree()
    for node in tree.iter():
        if isinstance(node.tag, str) and node.tag in BLOCKS:
            node.tail = "\n\n" + (node.tail or "")
    return tree.body.text_content()


def html_stdlib(data: bytes) -> str:
    from html.parser import HTMLParser

    from embeddings.extract.html import BLOCKS, DROPPED

    class Text(HTMLParser):
        def __init__(self):
            super().__init__()
            self.parts, self.skip = [], 0

        def handle_starttag(self, tag, attrs):
            self.skip += tag in DROPPED or (tag == "header" and not self.parts)
            if tag in BLOCKS:
                self.parts.append("\n\n")

        def handle_endtag(self, tag):
            self.skip -= self.skip > 0 and (tag in DROPPED or tag == "header")

        def handle_data(self, data):
            if not self.skip:
                self.parts.append(data)

    parser = Text()
    parser.feed(data.decode("utf-8"))
    return "".join(parser.parts)


def html_parse_lexbor(data: bytes) -> str:
    """The parser alone (no walk over the tree): to tell parsing time from this project's Python walk."""
    from selectolax.lexbor import LexborHTMLParser
    return LexborHTMLParser(data.decode("utf-8")).body.text(separator="\n")


def html_parse_lxml(data: bytes) -> str:
    import lxml.html
    return lxml.html.document_fromstring(data).body.text_content()


def docx_ours(data: bytes) -> str:
    from embeddings.extract.docx import extract_docx
    return extract_docx(data).text


def docx_zip_lxml(data: bytes) -> str:
    """Straight from word/document.xml: the w:t runs of each w:p."""
    from lxml import etree
    ns = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
    root = etree.fromstring(zipfile.ZipFile(io.BytesIO(data)).read("word/document.xml"))
    return "\n\n".join("".join(t.text or "" for t in p.iter(f"{ns}t")) for p in root.iter(f"{ns}p"))


def write_docx(path: Path, sections: int) -> None:
    import docx
    document = docx.Document()
    document.sections[0].header.paragraphs[0].text = "WORD-HEADER-BOILER"
    document.sections[0].footer.paragraphs[0].text = "WORD-FOOTER-BOILER"
    for n in range(1, sections + 1):
        document.add_heading(f"Part {n}", 1)
        document.add_paragraph(f"{sentence(n, 0)} {sentence(n, 1)}")
        document.add_paragraph(sentence(n, 2))
    document.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=40, help="pages of the generated PDF")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench/results/extract.json"))
    args = parser.parse_args()
    load = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pdf_path = fx.chromium_pdf(pdf_html(args.pages), Path(tmp) / "bench.pdf")
        docx_path = Path(tmp) / "bench.docx"
        write_docx(docx_path, args.pages)
        pdf_data, docx_data = pdf_path.read_bytes(), docx_path.read_bytes()
        html_data = html_page(args.pages * 5).encode()
        pdf_boiler = [HEADER] + [f"\n{n}\n" for n in range(1, args.pages + 1)]
        html_sent = [sentence(n, k) for n in range(1, args.pages * 5 + 1) for k in range(3)]
        docx_sent = [sentence(n, k) for n in range(1, args.pages + 1) for k in range(3)]
        cases = [
            ("pdf", "pypdfium2 + this project's layout (chosen)", pdf_ours, pdf_data, known(args.pages), pdf_boiler, "maintenance", args.pages, args.pages),
            ("pdf", "pypdfium2 raw text", pdf_pdfium_raw, pdf_data, known(args.pages), pdf_boiler, "maintenance", args.pages, args.pages),
            ("pdf", "pypdf extract_text", pdf_pypdf, pdf_data, known(args.pages), pdf_boiler, "maintenance", args.pages, args.pages),
            ("html", "selectolax (Lexbor) (chosen)", html_ours, html_data, html_sent, ["SCRIPT-BOILER", "NAV-BOILER", "HEADER-BOILER", "ASIDE-BOILER", "FOOTER-BOILER"], None, 0, 1),
            ("html", "lxml.html, same rules", html_lxml, html_data, html_sent, ["SCRIPT-BOILER", "NAV-BOILER", "HEADER-BOILER", "ASIDE-BOILER", "FOOTER-BOILER"], None, 0, 1),
            ("html", "stdlib html.parser, same rules", html_stdlib, html_data, html_sent, ["SCRIPT-BOILER", "NAV-BOILER", "HEADER-BOILER", "ASIDE-BOILER", "FOOTER-BOILER"], None, 0, 1),
            ("html", "selectolax parse + C text(), no rules", html_parse_lexbor, html_data, html_sent, ["SCRIPT-BOILER", "NAV-BOILER", "HEADER-BOILER", "ASIDE-BOILER", "FOOTER-BOILER"], None, 0, 1),
            ("html", "lxml parse + C text_content(), no rules", html_parse_lxml, html_data, html_sent, ["SCRIPT-BOILER", "NAV-BOILER", "HEADER-BOILER", "ASIDE-BOILER", "FOOTER-BOILER"], None, 0, 1),
            ("docx", "python-docx (chosen)", docx_ours, docx_data, docx_sent, ["WORD-HEADER-BOILER", "WORD-FOOTER-BOILER"], None, 0, 1),
            ("docx", "zip + lxml, w:t runs", docx_zip_lxml, docx_data, docx_sent, ["WORD-HEADER-BOILER", "WORD-FOOTER-BOILER"], None, 0, 1),
        ]
        for fmt, name, fn, data, sentences, boiler, hyphen, expected, units in cases:
            text, seconds = timed(lambda: fn(data), args.repeat)
            text = "\n" + text.replace("\r\n", "\n") + "\n"
            row = {"format": fmt, "reader": name, "bytes": len(data), "ms_per_unit": round(seconds * 1000 / units, 2),
                   "unit": "page" if fmt == "pdf" else "file", **fidelity(text, sentences, boiler, hyphen, expected)}
            rows.append(row)
        for name, fn in (("selectolax (Lexbor) (chosen)", html_ours), ("lxml.html, same rules", html_lxml),
                         ("stdlib html.parser, same rules", html_stdlib)):
            row, seconds = broken_fidelity(fn)
            rows.append({"format": "html, broken markup", "reader": name, "bytes": sum(len(b[0]) for b in BROKEN),
                         "ms_per_unit": round(seconds * 1000 / len(BROKEN), 2), "unit": "file", **row})
    print("| format | reader | time | sentences | in order | hyphens joined | boilerplate dropped |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['format']} | {r['reader']} | {r['ms_per_unit']} ms/{r['unit']} | {r['sentences']:.0%} | "
              f"{'yes' if r['in_order'] else 'no'} | {r.get('hyphens', '-') if 'hyphens' not in r else format(r['hyphens'], '.0%')} | {r['boilerplate']:.0%} |")
    write_result(args.out, {"pages": args.pages, "repeat": args.repeat, "rows": rows,
                            "machine": machine_info(load)})


if __name__ == "__main__":
    main()
