"""Step 7d, broad answers: verify explanations, descriptions, lists, summaries and comparisons.

The one decision: every sentence (or list item) must still be supported by the snippets it cites
(most of its new content words and every number in them), but only the answer as a whole must be
about what was asked: at least one kept sentence's cited text mentions the question's topic, or is
close to it in meaning. An explanation's second sentence ("Russia paid lip service to the
process") need not repeat the question's words; an answer none of whose sentences is on topic (the
model answering from a passage about something else) is still refused. A sentence may cite several
snippets, which together must support it. A sentence of the model's saying what the documents do
not say is kept, uncited, after the supported ones (the refusal sentence itself is not).

    "- frozen conflicts [1]\\n- terrorism [2]" -> bullet lines, each with its verified citation
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from qa.citation.claims import Claim, is_refusal, split_claims, strip_citations
from qa.citation.labels import ASKS_FOR_TITLES, a_source_title, names_a_source, source_label, unlabelled
from qa.citation.spans import citation_span, names_the_author, names_the_date, topic_start
from qa.citation.verification import CLOSE_IN_MEANING, SUPPORT, Verified, informative_words, numbered_citations, support
from qa.citation.words import added_words, content_words, question_topic, years
from qa.prompting.snippets import Snippet
from qa.types import REFUSAL, Citation

_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")
_FINISHED = r"[.!?…\"”’)\]]"  # how a finished sentence or list item ends
_DOCUMENTS = re.compile(r"\b(?:documents?|passages?|articles?|texts?|sources?)\b", re.I)
PROSE_NEW = 2  # a sentence of an explanation, summary or comparison adds at least this many content words
REPEATS = 0.8  # share of a sentence's words already said by one kept sentence that makes it a repeat


def _cited(new: set[str], markers: Sequence[int], words: dict[int, set[str]]) -> list[int]:
    """The snippets to cite for a claim's new words: its own valid markers when together they
    support it, else the best snippet alone, else the best two together; [] when none do."""
    def enough(ns: Sequence[int]) -> bool:
        held = set().union(*(words[n] for n in ns)) if ns else set()
        return bool(ns) and support(new, held) >= SUPPORT

    def useful(ns: Sequence[int]) -> list[int]:
        """Those of ``ns`` that add words of the claim the ones before them lack (a photo caption
        repeating a name the cited sentence already holds is not cited)."""
        kept, covered = [], set()
        for n in dict.fromkeys(ns):
            if (new & words[n]) - covered:
                kept.append(n)
                covered |= new & words[n]
        return kept

    own = useful([n for n in markers if n in words])
    if enough(own):
        return own
    ranked = sorted(words, key=lambda n: (-support(new, words[n]), n))
    if ranked and enough(ranked[:1]):
        return ranked[:1]
    for second in ranked[1:]:
        pair = useful([ranked[0], second])
        if len(pair) == 2 and enough(pair):
            return pair
    return []


_CAUSE = r"(?:because|as a result of|due to)"  # how a sentence gives a cause
_BECAUSE = re.compile(rf"^(.+?)\s+{_CAUSE}\s+(.+)$", re.I | re.S)


def misattributed(text: str, cited: Sequence[Snippet], snippets: Sequence[Snippet]) -> str:
    """The author a sentence names who wrote none of the texts it cites ("Momtaz writes that..." citing
    Faure's article: a comparison's model mixes up its sources), or "" when there is none. An author
    the cited text itself names (a byline, a quotation) is not a misattribution.

    >>> from types import SimpleNamespace as NS
    >>> faure = NS(passage=NS(author="Juliette Faure"), text="Macron took stock of Trump.")
    >>> momtaz = NS(passage=NS(author="Rym Momtaz"), text="Macron set goals.")
    >>> misattributed("Rym Momtaz writes that Macron took stock of Trump.", [faure], [faure, momtaz])
    'Momtaz'
    >>> misattributed("Faure writes that Macron took stock of Trump.", [faure], [faure, momtaz])
    ''
    """
    writers = {s.passage.author.split()[-1] for s in cited if s.passage.author}
    for author in dict.fromkeys(s.passage.author.split()[-1] for s in snippets if s.passage.author):
        if (author not in writers and re.search(rf"(?<!\w){re.escape(author)}(?!\w)", text)
                and not any(author in s.text for s in cited)):
            return author
    return ""


def _unlinked(claim: Claim, question: str, by_n: dict[int, Snippet], notes: list[str]) -> Claim:
    """The claim without the question it restates before "because" when no passage it cites makes
    that link: "The dialogue failed because it was meant to..." asserts a cause the passage never
    gives; what follows "because" is the passage's own sentence, kept as it stands."""
    linked = _BECAUSE.match(claim.text)
    if not linked or not content_words(linked.group(1)) <= content_words(question):
        return claim
    cited = " ".join(by_n[n].text for n in claim.markers if n in by_n).lower()
    if re.search(rf"\b(?:{_CAUSE}|since)\b", cited):
        return claim
    rest = linked.group(2)
    notes.append(f"dropped the question restated as a cause no passage gives: {linked.group(1)[:60]}")
    return Claim(rest[:1].upper() + rest[1:], claim.markers)


def verify_broad(raw: str, snippets: Sequence[Snippet], question: str, documents: dict[str, str],
                 closeness: Callable[[Snippet, int, int], float] | None = None, *, scoped: bool = False,
                 prose: bool = False, truncated: bool = False, each_on_topic: bool = False) -> Verified:
    """Check every sentence of a broad answer; see the module docstring. ``scoped``: the snippets
    were chosen from the documents the question names (a summary), so they are its topic.
    ``prose``: the answer's lines are sentences of one paragraph, not list items. ``truncated``: the
    model was stopped at its token cap, so an unfinished last sentence is dropped. ``each_on_topic``:
    every sentence's cited text (or the sentence before it) must name a content word of the question,
    as for a description of a person ("Who is Juliette Faure?" is not answered with another
    author's biography that sits in the same prompt)."""
    text = raw.strip()
    if not text or is_refusal(_BULLET.sub("", text)) or not snippets:
        return Verified(REFUSAL, (), True, ("the model declined",) if text else ("empty answer",))
    asked, asked_years, topic = question_topic(question)
    by_n = {s.n: s for s in snippets}
    words = {s.n: informative_words(s.text) for s in snippets}
    notes: list[str] = []
    kept: list[tuple[bool, Claim, list[tuple[int, int, int]]]] = []  # bullet?, claim, [(n, start, end)]
    on_topic = scoped
    says_no_more = ""  # the model's own sentence saying what the documents do not say
    said_before: list[set[str]] = []  # the new words of each kept sentence
    labels = set().union(*(content_words(f"{s.passage.title} {s.passage.author or ''}") for s in snippets))
    asks_for_titles = bool(ASKS_FOR_TITLES.search(question))
    lines = text.splitlines()
    if truncated and lines and not re.search(_FINISHED + r"\s*$", lines[-1]):
        notes.append(f"dropped an unfinished sentence at the token cap: {lines[-1][-60:]}")
        ends = [m.end() for m in re.finditer(_FINISHED + r"(?=\s)", lines[-1])]
        lines[-1:] = [lines[-1][: ends[-1]]] if ends else []
    for line in lines:
        bullet = bool(_BULLET.match(line)) and not prose
        for claim in split_claims(_BULLET.sub("", line)):
            if is_refusal(claim.text) and _DOCUMENTS.search(claim.text):
                if claim.text.strip() != REFUSAL:  # a habit after an answer, not a statement of what is missing
                    says_no_more = claim.text.strip()
                continue
            if prose:
                claim = unlabelled(_unlinked(claim, question, by_n, notes), labels, notes)
            new = added_words(claim.text, question)
            if not new:
                notes.append(f"dropped a sentence that only repeats the question: {claim.text[:60]}")
                continue
            if prose and new <= labels:  # "Macron's Dialogue With Russia [1]": a source's title, not a sentence
                notes.append(f"dropped a title: {claim.text[:60]}")
                continue
            if not prose and not asks_for_titles and a_source_title(claim.text, snippets):
                notes.append(f"dropped a source's title, the label the prompt gave it: {claim.text[:60]}")
                continue
            if prose and len(new) < PROSE_NEW:  # "France's bilateral security guarantees to Ukraine [1]."
                notes.append(f"dropped a sentence that adds one word to the question: {claim.text[:60]}")
                continue
            if any(len(new & said) >= REPEATS * len(new) for said in said_before):
                notes.append(f"dropped a sentence that repeats an earlier one: {claim.text[:60]}")
                continue
            cited = _cited(new, claim.markers, words)
            if not cited:
                notes.append(f"dropped unsupported sentence: {claim.text[:80]}")
                continue
            wrong = misattributed(claim.text, [by_n[n] for n in cited], snippets)
            if wrong:
                notes.append(f"dropped a sentence that gives {wrong} a text {wrong} did not write: {claim.text[:60]}")
                continue
            if sorted(cited) != sorted(set(claim.markers)):
                notes.append(f"cited {cited} instead of {list(claim.markers) or 'nothing'} for: {claim.text[:60]}")
            spans, names = [], set()  # names: the question's words that the cited texts mention
            for n in cited:
                snippet = by_n[n]
                document = documents[snippet.passage.doc]
                start, end = citation_span(new & words[n], snippet, document, asked)
                spans.append((n, start, end))
                label = f"{snippet.passage.title} {snippet.passage.date or ''}"
                if asked_years and asked_years - years(document) - years(label):
                    notes.append(f"dropped a sentence whose document never names a year the question names: "
                                 f"{claim.text[:60]}")
                    break
                opening = topic_start(snippet, start)
                names |= topic & content_words(document[opening:end])
                if (not on_topic and (topic & content_words(document[opening:end])
                                      or names_the_author(new, snippet, question)
                                      or names_the_date(new, snippet, question)
                                      or (closeness is not None and closeness(snippet, opening, end) >= CLOSE_IN_MEANING))):
                    on_topic = True
            else:
                if each_on_topic and not names:
                    notes.append(f"dropped a sentence whose sources do not name what was asked: {claim.text[:60]}")
                    continue
                kept.append((bullet, claim, spans))
                said_before.append(new)
    if not kept or not on_topic:
        reason = "no sentence of the answer is supported" if not kept else "no cited text is about what was asked"
        return Verified(REFUSAL, (), True, tuple(notes + [reason]))
    return _render(kept, by_n, documents, notes, says_no_more)


def _render(kept, by_n: dict[int, Snippet], documents: dict[str, str], notes: list[str], says_no_more: str) -> Verified:
    """The answer text with markers renumbered by first use, list items as "- item [n]" lines, and one
    citation per snippet cited, its span covering every sentence cited in it."""
    numbering: dict[int, int] = {}
    spans: dict[int, tuple[int, int]] = {}
    lines: list[str] = []
    for bullet, claim, cited in kept:
        marks = ""
        for n, start, end in cited:
            numbering.setdefault(n, len(numbering) + 1)
            spans[n] = (min(start, spans[n][0]), max(end, spans[n][1])) if n in spans else (start, end)
            marks += f"[{numbering[n]}]"
        body = claim.text.rstrip()
        tail = body[-1] if body and body[-1] in ".!?" else ""
        sentence = f"{body[:len(body) - len(tail)].rstrip()} {marks}{'' if bullet else tail or '.'}"
        if bullet:
            lines.append(f"- {sentence}")
        elif lines and not lines[-1].startswith("- ") and not names_a_source(claim.text, by_n):
            lines[-1] += f" {sentence}"
        else:
            lines.append(sentence)
    if says_no_more and lines[-1].startswith("- "):
        lines.append(says_no_more)
    elif says_no_more:
        lines[-1] += f" {says_no_more}"
    return Verified("\n".join(lines), numbered_citations(numbering, spans, by_n, documents), False, tuple(notes))



def thin(verified: Verified, *, sentences: int = 2, words: int = 6) -> bool:
    """True when a summary kept fewer than ``sentences`` sentences of ``words``+ words (the model
    wrote headlines such as "U.S. Withdrawal from INF Treaty [2]", or nothing was supported)."""
    if verified.refused:
        return True
    return sum(len(c.text.split()) >= words for c in split_claims(verified.text)) < sentences


def list_items(verified: Verified) -> int:
    """How many items a verified list answer gives: its lines, or the parts of a one-line list
    ("cod, herring and sprats [1]." is three).

    >>> list_items(Verified("- cod [1]\\n- herring [2]", (), False, ()))
    2
    >>> list_items(Verified("cod and herring [1].", (), False, ()))
    2
    """
    if verified.refused:
        return 0
    lines = [line for line in verified.text.splitlines() if line.strip()]
    if len(lines) != 1:
        return len(lines)
    return len([part for part in re.split(r",|;|\band\b", strip_citations(lines[0])) if part.strip(" .-")])


_QUOTED_END = re.compile(r"[.!?…][\"”’)]+$")  # 'In Chief."': the sentence ended inside its closing quote


def extract(snippets: Sequence[Snippet], documents: dict[str, str], notes: Sequence[str] = (), *,
            k: int = 3, words: int | None = None, sources: bool = False, fallback: bool = False,
            best_first: bool = False, bullets: bool = False) -> Verified:
    """The snippets themselves as the answer, in their order, each cited at its exact span: the first
    ``k``, or as many as fit in ``words`` words (at least one). With ``sources``, each run of snippets
    from one document opens with who wrote it ("Faure (2020):"), as a comparison reads. What a summary
    falls back to when the model's own is too thin to stand (``fallback``), and what an extractive
    shape answers. With ``best_first``, the snippets are taken by their score (best first, skipping
    one that does not fit the words left) and shown in their given order: a summary of what a
    document says about a topic keeps its closest sentences, not its first ones.

    >>> extract([], {}).refused
    True
    """
    chosen: list[Snippet] = []
    groups = list(dict.fromkeys(s.passage.doc for s in snippets)) if sources else [None]
    for group in groups:  # with sources, each document gets its share of the words
        share = None if words is None else max(1, words // len(groups))
        used = 0
        candidates = [s for s in snippets if group is None or s.passage.doc == group]
        for snippet in sorted(candidates, key=lambda s: -s.score) if best_first else candidates:
            size = len(snippet.text.split())
            if share is None and len(chosen) >= k:
                break
            if share is not None and used and used + size > share:
                if best_first:
                    continue  # a shorter one further down may still fit
                break
            chosen.append(snippet)
            used += size
    if best_first:
        position = {id(s): i for i, s in enumerate(snippets)}
        chosen.sort(key=lambda s: position[id(s)])
    if not chosen:
        return Verified(REFUSAL, (), True, tuple(notes))
    parts, citations = [], []
    for n, snippet in enumerate(chosen, start=1):
        body = " ".join(snippet.text.split())
        start, end, hit = snippet.start, snippet.end, snippet.hit
        if bullets:  # a list's items: "- New START Treaty [2]", each citing the sentence that names it
            parts.append(f"{chr(10) if parts else ''}- {body.rstrip('.')} [{n}]")
            if hit.best_start <= start and end <= hit.best_end:
                start, end = hit.best_start, hit.best_end
        else:
            opening = ""
            if sources and (n == 1 or chosen[n - 2].passage.doc != snippet.passage.doc):
                opening = f"{'' if n == 1 else chr(10)}{source_label(snippet)}: "
            if body[-1] in ".!?":  # "... the dialogue [1]."
                parts.append(f"{opening}{body[:-1]} [{n}]{body[-1]}")
            else:  # 'In Chief." [1]' after a closing quote; a line with no full stop gets one
                parts.append(f"{opening}{body} [{n}]{'' if _QUOTED_END.search(body) else '.'}")
        citations.append(Citation(n, snippet.passage.doc, snippet.passage.id, start, end,
                                  documents[snippet.passage.doc][start:end], snippet.passage.start, snippet.passage.end))
    note = "the model's summary was too thin: its most central sentences are shown instead" if fallback else \
        "the things of the kind asked for, as the passages name them" if bullets else \
        "the passages' own sentences are the answer"
    return Verified(" ".join(parts).replace(" \n", "\n"), tuple(citations), False, (*notes, note))
