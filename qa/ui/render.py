"""The web UI's HTML: pure functions from answers, citations and passages to markup (no gradio).

The one decision: the page shows what the pipeline's *final* ``Answer`` says: each ``[n]`` in the
chat links to a card holding ``document[passage_start:passage_end]`` with ``document[start:end]``
marked, and to the whole document scrolled to that span. All text is escaped here.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from urllib.parse import quote

from embeddings.documents import Document
from qa.citation.claims import withheld_draft
from qa.retrieve import Hit, clean_question
from qa.types import Answer, Citation, Retrieved

_MARKER = re.compile(r"\[(\d{1,3})\]")
_BLANK_LINES = re.compile(r"\n[^\S\n]*(?:\n[^\S\n]*)+")


def tidy(text: str) -> str:
    """For display only: runs of blank lines shown as one (the passage's offsets are untouched)."""
    return _BLANK_LINES.sub("\n\n", text)


def cite_id(turn: int, n: int) -> str:
    """The HTML id of citation ``[n]`` of the ``turn``-th answer: ``cite_id(2, 1) -> 'cite-2-1'``."""
    return f"cite-{turn}-{n}"


def link_citations(text: str, turn: int, numbers: Sequence[int]) -> str:
    """Chat markdown for an answer: HTML escaped, each known ``[n]`` a link to its source card.

    >>> link_citations("Vimont [1] <b>", 3, [1])
    'Vimont [\\\\[1\\\\]](#cite-3-1) &lt;b&gt;'
    """
    known = set(numbers)

    def link(match: re.Match) -> str:
        n = int(match.group(1))
        return rf"[\[{n}\]](#{cite_id(turn, n)})" if n in known else match.group(0)

    return _MARKER.sub(link, html.escape(text, quote=False))


def highlight(text: str, start: int, end: int, *, lo: int, hi: int, mark_id: str = "") -> str:
    """HTML of ``text[lo:hi]`` (escaped) with ``text[start:end]`` inside ``<mark>``.

    >>> highlight("a <b> c", 2, 5, lo=0, hi=7)
    'a <mark>&lt;b&gt;</mark> c'
    """
    lo, hi = min(lo, start), max(hi, end)
    mark = f'<mark id="{html.escape(mark_id)}">' if mark_id else "<mark>"
    return html.escape(text[lo:start]) + mark + html.escape(text[start:end]) + "</mark>" + html.escape(text[end:hi])


def document_url(collection: str, doc: str, start: int, end: int) -> str:
    """Relative link to the whole-document page, scrolled to the marked span."""
    return f"document/{quote(collection, safe='')}/{quote(doc)}?start={start}&end={end}#cited"


def page_url(collection: str, doc: str, page: int, start: int, end: int) -> str:
    """Relative link to a PDF page rendered by the app, with the span ``start:end`` of the document's
    stored text marked on it."""
    return f"page/{quote(collection, safe='')}/{quote(doc)}?page={page}&start={start}&end={end}"


def render_page_view(c: Citation, *, collection: str, document: Document | None) -> str:
    """For a PDF citation: the real page, rendered by the app, with the cited sentence's boxes marked."""
    if document is None or not document.pages or not c.page:
        return ""
    url = html.escape(page_url(collection, c.doc, c.page, c.start, c.end))
    return (f'<a class="pdf-page" href="{url}" target="_blank" rel="noopener">'
            f'<img loading="lazy" src="{url}" alt="page {c.page} of {html.escape(c.doc)}, the cited sentence marked">'
            "</a>")


def _byline(document: Document | None, fallback: str) -> str:
    if document is None:
        return f"<b>{html.escape(fallback)}</b>"
    meta = document.meta
    parts = [html.escape(part) for part in (meta.author, meta.date) if part]
    return f"<b>{html.escape(meta.title)}</b>" + (f"<br><small>{' · '.join(parts)}</small>" if parts else "")


def _scores(hit: Hit | None) -> str:
    if hit is None:
        return ""
    return (f'<div class="scores">rank {hit.rank} · fused {hit.score:.4f} · dense {hit.dense_score:.3f}'
            f" · BM25 {hit.bm25_score:.2f}</div>")


def render_citation(c: Citation, *, turn: int, collection: str, documents: Mapping[str, Document],
                    hit: Hit | None = None, show_scores: bool = False) -> str:
    """One source card: the passage with the supporting sentence marked, byline, link to the document."""
    document = documents.get(c.doc)
    if document is not None and document.text[c.start:c.end] == c.text:
        passage = tidy(highlight(document.text, c.start, c.end, lo=c.passage_start, hi=c.passage_end or c.end))
    else:  # no document text to show context from: the cited sentence alone
        passage = f"<mark>{html.escape(c.text)}</mark>"
    where = f'<div class="where">{html.escape(c.where)}</div>' if c.where else ""
    return (f'<div class="source" id="{cite_id(turn, c.n)}"><div class="source-head">'
            f'<span class="marker">[{c.n}]</span> {_byline(document, c.doc)}</div>{where}'
            f'<div class="passage">{passage}</div>{render_page_view(c, collection=collection, document=document)}'
            f'<a class="open-doc" href="{html.escape(document_url(collection, c.doc, c.start, c.end))}" '
            f'target="_blank" rel="noopener">Open the whole document at this sentence ↗</a>'
            f"{_scores(hit) if show_scores else ''}</div>")


def render_hit(hit: Hit, *, collection: str, documents: Mapping[str, Document], show_scores: bool = False) -> str:
    """A retrieved passage that is not cited (the closest passages of a refusal, or the rest)."""
    p = hit.passage
    return (f'<div class="source retrieved"><div class="source-head">{_byline(documents.get(p.doc), p.doc)}</div>'
            f'<div class="passage">{tidy(html.escape(p.text))}</div>'
            f'<a class="open-doc" href="{html.escape(document_url(collection, p.doc, p.start, p.end))}" '
            f'target="_blank" rel="noopener">Open the whole document here ↗</a>'
            f"{_scores(hit) if show_scores else ''}</div>")


def render_answer_sources(answer: Answer, *, turn: int, collection: str, documents: Mapping[str, Document],
                          show_scores: bool = False) -> str:
    """The sources of one answer: cited cards, or for a refusal the closest passages to read."""
    by_id = {hit.passage.id: hit for hit in answer.passages}
    cited = [render_citation(c, turn=turn, collection=collection, documents=documents,
                             hit=by_id.get(c.passage_id), show_scores=show_scores) for c in answer.citations]
    cited_ids = {c.passage_id for c in answer.citations}
    rest = [render_hit(h, collection=collection, documents=documents, show_scores=show_scores)
            for h in answer.passages if h.passage.id not in cited_ids]
    parts = []
    if answer.standalone_question and answer.standalone_question != clean_question(answer.question):
        parts.append(f'<p class="searched">Searched for: <i>{html.escape(answer.standalone_question)}</i></p>')
    if answer.refused or not cited:
        parts.append('<p class="refusal">The documents do not answer this. The closest passages are below; '
                     "read them and judge for yourself.</p>")
        parts.append(render_withheld(answer))
        parts += rest
    else:
        if not answer.raw_text:  # the answer is the cited sentences themselves (qa.answer.EXTRACTIVE)
            parts.append('<p class="searched">Quoted from the documents: the highlighted sentences below are '
                         "the answer, word for word.</p>")
        parts += cited
        if rest:
            parts.append(f"<details><summary>Other passages searched ({len(rest)})</summary>{''.join(rest)}</details>")
    t = answer.timings
    if t.total_s:
        first = f", first words after {t.first_token_s:.1f} s" if t.first_token_s is not None else ""
        parts.append(f'<p class="timing">Answered in {t.total_s:.1f} s{first}.</p>')
    return "".join(parts)


def render_withheld(answer: Answer) -> str:
    """For a refusal where the model did draft an answer (which streamed into the chat before the
    check replaced it): the draft and why the citation check withheld it; else nothing."""
    draft = withheld_draft(answer)
    if not draft:
        return ""
    reasons = "".join(f"<li>{html.escape(note)}</li>" for note in answer.notes)
    return (f'<details class="withheld"><summary>Why the model\'s draft was withheld</summary>'
            f"<p>The model wrote <q>{html.escape(draft)}</q>, but the citation check found no sentence of it "
            f"grounded in the passages:</p><ul>{reasons}</ul></details>")


def render_searching(retrieved: Retrieved, *, collection: str, documents: Mapping[str, Document]) -> str:
    """What the sources panel shows while the model reads: the passages it was given."""
    hits = "".join(render_hit(h, collection=collection, documents=documents) for h in retrieved.passages)
    return f'<p class="searched">Reading {len(retrieved.passages)} passages…</p>{hits}'

