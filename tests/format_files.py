"""Builders of real PDF, Word and HTML files for the format tests, each made by a real writer:
Chromium prints HTML to PDF, python-docx writes Word files, pypdf encrypts, PIL draws a scanned page.

``build_all(folder)`` writes them all once (a session-scoped fixture calls it) and returns their paths.
"""

from __future__ import annotations

import base64
import io
import subprocess
import zipfile
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")  # Debian's; the CI installs it before the tests

# What the fixtures say, so tests can look for it
PAGE2_SENTENCE = "On the second page the auditors wrote that the harbour lighthouse was painted blue in 1987."
PAGE3_SENTENCE = "The third page closes the report with thanks to the volunteers of the museum."
ACROSS_PAGES = "The inspectors counted the boats that were moored in the northern basin during the storm of March."
RUNNING_HEADER = "Annual Report 2024 — Internal"
HERON = "The grey heron nests in tall trees near the lake and hunts fish in the shallow water."
HTML_SENTENCE = "The museum opens its new wing of maritime instruments to visitors in the spring."

_PAGE = """<div class="page"><div class="hdr">{header} · page {n}</div>{body}<div class="ftr">{n}</div></div>"""
_REPORT_PAGES = [
    """<h1>Chapter 1 Security</h1>
    <p>The first page explains why the committee reviewed the network of the harbour offices. The audit
    found that secu-<br>rity depended on one firewall that nobody had updated for years.</p>
    <p>Paragraph two stays on page one and talks about budgets for the coming year and the staff.</p>""",
    f"""<h2>Results</h2><p>{PAGE2_SENTENCE} The paint had faded by the time of the audit.</p>
    <p>The inspectors counted the boats that were moored in the</p>""",
    f"""<p>northern basin during the storm of March. Nobody was hurt and no boat sank.</p>
    <h1>Chapter 2 Thanks</h1><p>{PAGE3_SENTENCE} Their work kept the archive open all winter.</p>""",
]
_STYLE = """<style>
body { font-family: serif; font-size: 12pt; margin: 0 }
.page { position: relative; height: 9.6in; page-break-after: always }
.hdr { font-size: 9pt } .ftr { position: absolute; bottom: 0; font-size: 9pt }
h1 { font-size: 22pt } h2 { font-size: 16pt } p { width: 15cm }
</style>"""


def chromium_pdf(html: str, out: Path) -> Path:
    """Print ``html`` to the PDF ``out`` with headless Chromium, as a user's browser would."""
    source = out.with_suffix(".src.html")
    source.write_text(html, encoding="utf-8")
    subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         f"--print-to-pdf={out}", source.as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    source.unlink()
    if not out.is_file():
        raise RuntimeError(f"chromium wrote no {out}")
    return out


def report_html() -> str:
    pages = "".join(_PAGE.format(header=RUNNING_HEADER, n=n, body=body) for n, body in enumerate(_REPORT_PAGES, 1))
    return f"<!doctype html><html><head><meta charset='utf-8'><title>Harbour report</title>{_STYLE}</head><body>{pages}</body></html>"


def scanned_html() -> str:
    """A page that is only a picture of text: printed, it is a PDF without a text layer."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (900, 300), "white")
    ImageDraw.Draw(image).text((40, 120), "This page was scanned: it is only a picture of words.", fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    return f"<!doctype html><html><body style='margin:0'><img src='data:image/png;base64,{data}'></body></html>"


def web_page_html() -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Harbour museum news</title>
<style>body {{ color: #222 }}</style><script>var tracker = "SCRIPT-TEXT-MUST-GO";</script></head>
<body><header><a href="/">Home</a> <a href="/about">About us</a> SITE-HEADER-MUST-GO</header>
<nav><ul><li>NAV-LINK-MUST-GO</li><li>Archive</li></ul></nav>
<main><article><header><h1>Museum news</h1></header>
<h2>New wing</h2><p>{HTML_SENTENCE} The instruments come from three old ships.</p>
<h3>Opening hours</h3><p>The wing is open every day except Monday, from ten in the morning until six.</p>
<script>document.write("INLINE-SCRIPT-MUST-GO")</script>
<h2>Library</h2><p>The library lends charts and logbooks to researchers who write ahead of their visit.</p>
</article></main>
<aside>ASIDE-MUST-GO related posts</aside><footer>FOOTER-MUST-GO copyright</footer></body></html>"""


def field_guide_docx(out: Path) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = "Field guide to the lake"
    document.core_properties.author = "Ada Lovelace"
    document.add_heading("Field guide to the lake", 0)
    document.add_heading("Birds", 1)
    document.add_paragraph("Birds live around the lake all year, and some of them only come in the summer months.")
    document.add_heading("Herons", 2)
    document.add_paragraph(HERON)
    document.add_heading("Fish", 1)
    table = document.add_table(rows=2, cols=2)
    for row, cells in zip(table.rows, (("Species", "Season"), ("Pike", "Winter"))):
        for cell, text in zip(row.cells, cells):
            cell.text = text
    document.add_paragraph("Pike are caught in winter through holes cut in the ice by patient fishers.")
    document.sections[0].header.paragraphs[0].text = "WORD-HEADER-MUST-GO"
    document.sections[0].footer.paragraphs[0].text = "WORD-FOOTER-MUST-GO"
    document.save(out)
    return out


def zip_bomb_docx(good: Path, out: Path) -> Path:
    """A real Word file with one extra part that inflates 1000:1 (50 MB of zeros)."""
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            target.writestr(item, source.read(item.filename))
        with target.open("word/media/zeros.bin", "w") as handle:
            chunk = bytes(1 << 20)
            for _ in range(50):
                handle.write(chunk)
    return out


def encrypted_pdf(source: Path, out: Path) -> Path:
    import pypdf

    writer = pypdf.PdfWriter(clone_from=source)
    writer.encrypt(user_password="secret", owner_password="owner")  # RC4: needs no crypto library
    with open(out, "wb") as handle:
        writer.write(handle)
    return out


def build_all(folder: Path) -> dict[str, Path]:
    """Every fixture file, good and bad, written once under ``folder``: name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    files["report.pdf"] = chromium_pdf(report_html(), folder / "report.pdf")
    files["scan.pdf"] = chromium_pdf(scanned_html(), folder / "scan.pdf")
    files["guide.docx"] = field_guide_docx(folder / "guide.docx")
    files["news.html"] = folder / "news.html"
    files["news.html"].write_text(web_page_html(), encoding="utf-8")
    files["encrypted.pdf"] = encrypted_pdf(files["report.pdf"], folder / "encrypted.pdf")
    data = files["report.pdf"].read_bytes()
    files["truncated.pdf"] = folder / "truncated.pdf"
    files["truncated.pdf"].write_bytes(data[: len(data) // 2])
    files["bomb.docx"] = zip_bomb_docx(files["guide.docx"], folder / "bomb.docx")
    files["truncated.docx"] = folder / "truncated.docx"
    files["truncated.docx"].write_bytes(files["guide.docx"].read_bytes()[:3000])
    files["pdf-named.docx"] = folder / "pdf-named.docx"
    files["pdf-named.docx"].write_bytes(data)
    files["html-named.pdf"] = folder / "html-named.pdf"
    files["html-named.pdf"].write_text(web_page_html(), encoding="utf-8")
    files["scripts.html"] = folder / "scripts.html"
    files["scripts.html"].write_text("<html><head><script>var a = 1;</script></head><body><script>go()</script>"
                                     "<style>p { color: red }</style><nav>Home</nav></body></html>")
    return files
