"""Which documents a question names: "the first article", "Momtaz's piece", "the 2024 article", a
file name, a quoted title or section, "the two articles", or words of a title.

The one decision: references are resolved from the index's own metadata (path order, title,
author, date, section headings) by word rules, never by the model; a quoted title that matches no
document or section, or a name no document mentions, is reported as missing, so a summary of an
article the corpus lacks is refused instead of being written from the nearest one.

    >>> from types import SimpleNamespace as NS
    >>> docs = {"a.txt": NS(path="a.txt", text="", meta=NS(title="Harbour Days", author="Ann Lee", date="2021")),
    ...         "b.txt": NS(path="b.txt", text="", meta=NS(title="Town Notes", author="Tom Berg", date=None))}
    >>> resolve("Summarize the second article.", docs).docs, resolve("What does Lee's piece say?", docs).docs
    (('b.txt',), ('a.txt',))
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import islice

from qa.citation.words import content_words, years

_NOUN = r"(?:article|piece|document|doc|text|analysis|paper|report|essay|file|story|post|op-ed|commentary|source)s?"
_ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3,
             "fifth": 4, "5th": 4, "last": -1, "final": -1, "latest": -1}
# "the first article", not "the last piece of the puzzle" or "the first article of the treaty"
_ORDINAL = re.compile(rf"\b({'|'.join(_ORDINALS)})\s+(?:[\w'’-]+\s+)?{_NOUN}\b(?!\s+of\b)", re.I)
_ALL = re.compile(rf"\b(?:(?:the|these|those)\s+(?:two|three|four|five)\s+{_NOUN}|both\s+(?:the\s+)?{_NOUN}"
                  rf"|both\s+authors|all\s+(?:the\s+)?{_NOUN}|each\s+{_NOUN}"
                  r"|the\s+(?:articles|pieces|documents|texts|analyses|papers|reports|essays|files|sources)\b)", re.I)
_QUOTED = re.compile(r"[\"“”«»]([^\"“”«»]{3,120})[\"“”«»]|(?<!\w)['‘]([^'‘’]{3,120})['’](?!\w)")
_MONTHS = "january february march april may june july august september october november december".split()
# the topic ends at the question mark: what follows is another sentence ("...about NATO? Quick overview please.")
# "the part of the article that explains why...": the part is what it explains.
_EXPLAINS = (r"\b(?:part|parts|section|passage|passages|paragraphs?|bit|portion)\b[^?]{0,80}?\b(?:that|which|where)\s+"
             r"(?:it\s+|she\s+|he\s+|they\s+|the author\s+)?(?:explains?|discuss(?:es)?|covers?|deals? with|describes?"
             r"|looks? at|addresses|talks? about|goes into|examines?|analy[sz]es)")
_TOPIC = re.compile(rf"(?:\b(?:about|regarding|concerning|on the (?:topic|subject|question) of)|{_EXPLAINS})"
                    r"\s+([^?]{3,}?)[\s.!]*(?:\?.*)?$", re.I | re.S)


# A part of a document: what comes before or after a section named ("the opening part, before the section
# on Russia's Place"), or its opening or its ending ("Summarize the conclusion of the first article").
_SIDES = {"before": "before", "preceding": "before", "ahead of": "before", "up to": "before",
          "after": "after", "following": "after"}
_SIDE = re.compile(rf"\b({'|'.join(_SIDES)})\s+(?:the\s+)?(?:section|part|chapter|heading)\b")
_OPENING = re.compile(r"\b(?:opening|beginning|start|introduction|intro|lede|first (?:part|paragraphs?|section|half))\b")
_ENDING = re.compile(rf"\b(?:conclusion|concluding|closing|ending|last (?:part|paragraphs?|section|half)"
                     rf"|final (?:part|paragraphs?|section)|second half|the end of (?:the |this |that |its |her |his )?"
                     rf"(?:[\w'’]+ )?{_NOUN})\b")


# the documents that may hold a name (qa.broad.holding: those with a passage holding its rarest word); reading
# every document's text instead took 1.7-1.9 s a name on the 200,000 Wikipedia paragraphs (6,166 documents, 104 M
# characters), narrowed 0.002-0.32 s
Holding = Callable[[str], Iterable[str]]
# a question's naming names (`naming_names`), given by the caller so that it can look them up once per question
Naming = Callable[[str], Mapping[str, str]]


@dataclass(frozen=True)
class Scope:
    docs: tuple[str, ...] = ()  # the documents named, in corpus (path) order; () when none is
    section: str | None = None  # a section heading named, when one is
    missing: str = ""  # a quoted title, section or name that no document holds
    topic: str = ""  # the one topic of the document(s) the question asks about ("...says about X": "X")
    part: str = ""  # "opening" or "ending" of the documents, or what comes "before" or "after" ``section``


def _plain(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).replace("’", "'")
    return " ".join("".join(c for c in text if not unicodedata.combining(c)).lower().split())


def _title_words(title: str) -> set[str]:
    return content_words(title) - {"s"}


def _author_named(author: str | None, question: str) -> bool:
    """True when the question names the author by surname or full name (word-bounded)."""
    if not author:
        return False
    surname = _plain(author).split()[-1]
    return bool(re.search(rf"\b{re.escape(surname)}\b", _plain(question)))


# "the 2024 article", "the February 2024 piece": a document named by its date (month, year)
_DATED = re.compile(rf"\b(?:({'|'.join(_MONTHS)})\s+)?((?:19|20)\d\d)\s+{_NOUN}\b", re.I)


def asked_years(question: str) -> set[str]:
    """The years a question asks about, not those that name a document ("the 2024 article").

    >>> sorted(asked_years("Why, according to the 2024 article, did the talks of 2019 fail?"))
    ['2019']
    """
    return years(_DATED.sub(" ", question))


def _date_named(date: str | None, question: str) -> bool:
    """True when the question says "the 2024 article" or "the February 2024 piece" of this date."""
    if not date:
        return False
    for m in _DATED.finditer(_plain(question)):
        month, year = m.groups()
        if year in years(date) and (not month or month in _plain(date) or f"-{_MONTHS.index(month) + 1:02d}-" in date):
            return True
    return False


def _file_named(path: str, plain: str) -> bool:
    """True when the question names the file: its path, name, or a stem of 3+ characters, whole."""
    name = path.rsplit("/", 1)[-1]
    forms = {_plain(path), _plain(name), _plain(name.rsplit(".", 1)[0])}
    return any(len(f) >= 3 and re.search(rf"(?<![\w.]){re.escape(f)}(?![\w])", plain) for f in forms)


# "the Russia Matters analysis", "the IISS piece": a name (capitalised words) right before a document noun
_NAMED_NOUN = re.compile(rf"((?:[A-Z][\w'’.&-]*\s+){{1,4}}){_NOUN}\b")
_NOT_NAMES = {"the", "a", "an", "this", "that", "which", "what", "compare", "comparing", "summarize", "summarise",
              *_ORDINALS, *_MONTHS}


def naming_names(question: str, documents: Mapping[str, object], holding: Holding | None = None) -> dict[str, str]:
    """{name: the one document whose text holds it} for each name said right before a document noun
    ("the Russia Matters analysis": the outlet its byline names) that exactly one document holds.
    ``holding(name)``, when given, narrows the documents read to those that may hold the name."""
    found = {}
    for m in _NAMED_NOUN.finditer(question):
        words = m.group(1).split()
        while words and re.sub(r"['’]s?$", "", words[0].lower()) in _NOT_NAMES:
            words = words[1:]
        name = " ".join(words)
        if len(name) < 3 or years(name):
            continue
        pattern = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)", re.I)
        paths = sorted(documents) if holding is None else sorted(p for p in holding(name) if p in documents)
        holders = list(islice((p for p in paths if pattern.search(getattr(documents[p], "text", "") or "")),
                              2))  # a second one is enough to know it names none
        if len(holders) == 1:
            found[name] = holders[0]
    return found


def _ordinal_named(question: str, paths: list[str]) -> list[str]:
    """The documents ``question`` names by their place in ``paths`` ("the first article", "the last piece")."""
    return [paths[_ORDINALS[m.group(1).lower()]] for m in _ORDINAL.finditer(question)
            if -len(paths) <= _ORDINALS[m.group(1).lower()] < len(paths)]


def _naming(question: str, documents: Mapping[str, object], naming: Naming | None) -> Mapping[str, str]:
    return naming(question) if naming is not None else naming_names(question, documents)


def resolve(question: str, documents: Mapping[str, object], sections: Iterable[tuple[str, str]] = (),
            naming: Naming | None = None) -> Scope:
    """The documents (and section) ``question`` names; see the module docstring.

    ``documents`` maps a path to a value with ``.meta.title/.author/.date``; ``sections`` lists
    (path, heading) pairs; ``naming`` gives a question's naming names (default: ``naming_names``).
    An empty ``Scope`` means no document is named.
    """
    paths = sorted(documents)
    plain = _plain(question)
    found = _TOPIC.search(question)
    topic = found.group(1) if found else ""
    sections = list(sections)
    for m in _QUOTED.finditer(question):
        quoted = _plain(m.group(1) or m.group(2))
        for path, heading in sections:
            if _plain(heading).strip(" .:") == quoted.strip(" .:"):
                return Scope((path,), heading, topic=topic)
        for path in paths:
            title = _plain(documents[path].meta.title)
            if quoted in title or title in quoted:
                return Scope((path,), topic=topic)
        return Scope(missing=m.group(1) or m.group(2))
    if re.search(r"\b(?:section|part|chapter|heading)\b", plain):
        for path, heading in sections:
            if len(_plain(heading)) > 3 and _plain(heading).strip(" .:") in plain:
                side = _SIDE.search(plain)
                return Scope((path,), heading, topic=topic, part=_SIDES[side.group(1)] if side else "")
    named = [p for p in paths if _file_named(p, plain)]
    if not named and _ALL.search(question) and len(paths) > 1:
        named = paths
    if not named:
        named = _ordinal_named(question, paths)
    if not named:
        named = [p for p in paths if _author_named(documents[p].meta.author, question)]
    if not named:
        named = [p for p in paths if _date_named(documents[p].meta.date, question)]
    named += _naming(question, documents, naming).values()  # "Compare the Russia Matters analysis with Momtaz's piece"
    if not named:
        asked = content_words(question)
        shared = {p: len(asked & _title_words(documents[p].meta.title)) for p in paths}
        best = sorted(shared.values(), reverse=True) + [0, 0]
        if best[0] >= 3 and best[0] > best[1]:
            named = [p for p in paths if shared[p] == best[0]]
    part = "" if topic else "opening" if _OPENING.search(plain) else "ending" if _ENDING.search(plain) else ""
    return Scope(tuple(dict.fromkeys(p for p in paths if p in named)), topic=topic, part=part if named else "")


def documents_named(question: str, documents: Mapping[str, object], naming: Naming | None = None) -> tuple[str, ...]:
    """The documents ``question`` names by file name, ordinal, author, date or outlet ("In Faure's piece,
    why...", "the 2024 article", "the Russia Matters analysis"), in corpus order; () when it names none,
    or every one. Unlike ``resolve``, a question's words shared with a title name nothing, nor does a
    quotation: an explanation may quote the passage it asks about ("what does she mean by 'a broad
    framework'?") or repeat a title's words ("Why did Macron's dialogue with Russia fail?"). ``naming`` as
    for ``resolve``.

    >>> from types import SimpleNamespace as NS
    >>> docs = {"a.txt": NS(path="a.txt", text="", meta=NS(title="Harbour Days", author="Ann Lee", date="2021")),
    ...         "b.txt": NS(path="b.txt", text="", meta=NS(title="Town Notes", author="Tom Berg", date=None))}
    >>> documents_named("In Berg's piece, why did the town grow?", docs), documents_named("Why did Harbour Days end?", docs)
    (('b.txt',), ())
    """
    paths = sorted(documents)
    plain = _plain(question)
    named = {p for p in paths if _file_named(p, plain)}
    named |= set(_ordinal_named(question, paths))
    named |= {p for p in paths if _author_named(documents[p].meta.author, question)
              or _date_named(documents[p].meta.date, question)}
    named |= set(_naming(question, documents, naming).values())
    return () if len(named) == len(paths) else tuple(p for p in paths if p in named)


_CAPITALISED = re.compile(r"(?<![\w'’])([A-Z][\w'’.-]*[\w])")


# months and days, written out or cut short ("the Feb 2024 article"): dates, not names a document must hold
_CALENDAR = re.compile(r"^(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?"
                       r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|mon(?:day)?|tues?(?:day)?|wed(?:nesday)?"
                       r"|thu(?:rs?)?(?:day)?|fri(?:day)?|sat(?:urday)?|sun(?:day)?)$", re.I)


def unknown_names(question: str, vocabulary: set[str]) -> list[str]:
    """Capitalised words of the question (not its first word) that no document holds, in any form:
    a question about "Olaf Scholz" cannot be answered from documents that never name him.

    ``vocabulary`` is the corpus's content words (``content_words`` of every text, title, author).

    >>> unknown_names("How does Macron compare with Olaf Scholz?", {"macron", "compar"})
    ['Olaf', 'Scholz']
    >>> unknown_names("What did the Feb 2024 article say on Tuesday?", {"article"})
    []
    >>> unknown_names("Which speeches does Olaf quote? List them.", {"speech", "quot"})
    ['Olaf']

    So are the years it asks about that no document holds ("France's 2024-2030 programming law").

    >>> unknown_names("Summarize France's 2024-2030 programming law.", {"2024", "franc", "law"})
    ['2030']
    """
    words = [m.group(1) for m in _CAPITALISED.finditer(question)  # not a sentence's first word
             if not re.search(r"(?:^|[.?!:]\s+)\W*$", question[: m.start()]) and not _CALENDAR.match(m.group(1).rstrip("."))]
    found = []
    for word in words:
        forms = content_words(word) | content_words(word.replace("’", "'").split("'")[0])
        if forms and not forms & vocabulary:
            found.append(word)
    return found + sorted(asked_years(question) - vocabulary)
