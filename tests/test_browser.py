"""The real app in a real browser: ``python app.py`` with the packaged models, driven by Debian's Chromium.

Slow (the first start builds the index and loads the model). Chromium is never downloaded: CI installs
``/usr/bin/chromium`` (``make browser``), and these tests fail, not skip, without it. Set
``QA_SAVE_SCREENSHOT=1`` to also copy the answered page to ``docs/screenshot.png``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT, running_app

pytestmark = [pytest.mark.browser, pytest.mark.model]

START_TIMEOUT_S = 900  # first start: assemble the model, build the index, load and warm up
ANSWER_TIMEOUT_MS = 240_000  # one answer on a busy 2-core machine


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    with running_app(tmp_path_factory.mktemp("app") / "app.log", start_timeout_s=START_TIMEOUT_S) as (url, _):
        yield url


@pytest.fixture
def page(browser, server: str):
    """A fresh session on the app, recording every request the page makes."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.requests = []
    page.on("request", lambda request: page.requests.append(request.url))
    page.goto(server)
    page.wait_for_selector("#chat", timeout=60_000)
    yield page
    outside = [u for u in page.requests if not u.startswith((server.rstrip("/"), "data:", "blob:"))]
    context.close()
    assert outside == [], f"the page made requests off the machine: {outside}"


# Records each text the newest chat message shows, to see the answer arrive piece by piece.
WATCH_CHAT = """() => {
  window.seen = [];
  new MutationObserver(() => {
    const bots = document.querySelectorAll('#chat [data-testid="bot"]');
    if (bots.length) window.seen.push(bots[bots.length - 1].innerText);
  }).observe(document.querySelector('#chat'), {subtree: true, childList: true, characterData: true});
}"""


def ask(page, question: str, turn: int) -> str:
    """Type a question, press Enter, wait for the final answer; the answer's text."""
    page.evaluate(WATCH_CHAT)
    box = page.get_by_placeholder("Ask a question")
    box.fill(question)
    box.press("Enter")
    page.wait_for_function(f"document.querySelectorAll('#sources details.turn').length >= {turn}",
                           timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_function("!document.querySelector('textarea[placeholder^=\"Ask a question\"]').disabled",
                           timeout=30_000)
    return page.locator('#chat [data-testid="bot"]').last.inner_text()


def test_a_cited_answer_streams_and_its_citation_opens_the_marked_passage(page, tmp_path: Path):
    answer = ask(page, "Who was Macron's special envoy for the strategic dialogue with Russia?", 1)
    assert "Vimont" in answer
    seen = page.evaluate("window.seen")
    pieces = {text for text in seen if text.endswith("▌")}
    assert len(pieces) >= 2, f"the answer did not stream: {seen[-5:]}"

    citation = page.locator('#chat a[href^="#cite-1-"]').first
    citation.click()
    active = page.locator("#sources .source.active")
    active.wait_for(timeout=10_000)
    assert active.get_attribute("id") == citation.get_attribute("href")[1:]
    assert "Pierre Vimont" in active.locator("mark").inner_text()
    assert active.locator(".source-head").inner_text().strip()  # the document's title

    shot = tmp_path / "answer.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("QA_SAVE_SCREENSHOT"):
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(shot, ROOT / "docs" / "screenshot.png")

    with page.context.expect_page() as opened:
        active.locator("a.open-doc").click()
    document = opened.value
    document.wait_for_load_state()
    assert "Pierre Vimont" in document.locator("mark#cited").inner_text()


def test_a_question_the_documents_cannot_answer_is_refused_with_the_closest_passages(page):
    answer = ask(page, "Who is the current Secretary General of NATO?", 1)
    assert "cannot find the answer" in answer.lower()
    assert page.locator("#sources .refusal").is_visible()
    assert page.locator("#sources .source.retrieved").count() >= 1
    assert page.locator('#chat a[href^="#cite-"]').count() == 0


# Counts the marked (yellow) pixels of the PDF page the active source card shows, drawn into a canvas.
MARKED_PIXELS = """async (img) => {
  if (!img.complete) await new Promise((done) => { img.onload = done; img.onerror = done; });
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let marked = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] > 200 && data[i + 1] > 150 && data[i + 2] < 150) marked++;
  return {width: img.naturalWidth, marked};
}"""


@pytest.fixture(scope="module")
def pdf_server(tmp_path_factory, format_files) -> Iterator[str]:
    corpus = tmp_path_factory.mktemp("reports")
    shutil.copy(format_files["report.pdf"], corpus / "report.pdf")
    env = {**os.environ, "QA_INDEX_DIR": str(tmp_path_factory.mktemp("pdf-index"))}
    with running_app(tmp_path_factory.mktemp("pdf-app") / "app.log", env=env, start_timeout_s=START_TIMEOUT_S,
                     args=("--corpus", str(corpus))) as (url, _):
        yield url


def test_a_pdf_citation_shows_the_real_page_with_the_sentence_marked(browser, pdf_server: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(pdf_server)
    page.wait_for_selector("#chat", timeout=60_000)
    answer = ask(page, "What colour was the harbour lighthouse painted in 1987?", 1)
    assert "blue" in answer.lower()
    page.locator('#chat a[href^="#cite-1-"]').first.click()
    card = page.locator("#sources .source.active")
    card.wait_for(timeout=10_000)
    assert "p. 2" in card.locator(".where").inner_text()
    image = card.locator("a.pdf-page img")
    assert "page=2" in image.get_attribute("src") and "start=" in image.get_attribute("src")
    image.scroll_into_view_if_needed()
    shown = image.evaluate(MARKED_PIXELS)
    context.close()
    assert shown["width"] > 500 and shown["marked"] > 500, shown


def test_a_who_is_question_gets_a_cited_description(page):
    answer = ask(page, "Who is Rym Momtaz?", 1)
    assert "cannot find the answer" not in answer.lower()
    assert any(fact in answer for fact in ("Research Fellow", "IISS", "International Institute", "Politico"))
    assert page.locator('#chat a[href^="#cite-1-"]').count() >= 1
    page.locator('#chat a[href^="#cite-1-"]').first.click()
    assert "Momtaz" in page.locator("#sources .source.active").inner_text()


def test_a_summary_of_the_first_article_cites_it_sentence_by_sentence(page):
    answer = ask(page, "Summarize the first article in three sentences.", 1)
    assert "cannot find the answer" not in answer.lower()
    assert len(answer.split()) >= 20
    cards = page.locator('#sources details.turn[open] .source[id^="cite-1-"]')
    assert cards.count() >= 2  # several sentences, each with its citation
    assert all("Macron’s Dialogue With Russia" in cards.nth(i).locator(".source-head").inner_text()
               for i in range(cards.count()))  # all from the first article (Faure's)
