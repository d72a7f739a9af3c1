"""Step 7a, words: the content words of a sentence, as the citation check compares them.

The one decision: words are compared stemmed and lower-cased, with numbers kept whole (and small
number words turned into digits), so "treaties" meets "treaty" and "two" meets "2", while a year
or a count must match exactly.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_WORD = re.compile(r"[^\W_]+(?:[.'’][^\W_]+)*")
STOPWORDS = frozenset(
    "a an the and or but if then than that this these those there here of to in on at by for with from as into "
    "about over under after before during between against through is are was were be been being am do does did "
    "has have had having it its it's he she they them their his her him we you your our i me my who whom whose "
    "which what when where why how not no nor so too very can could would should will shall may might must also "
    "just only any all each both either neither more most other such own same some one ones s t said says say "
    "according passage passages document documents text article answer".split()
)



@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def content_words(text: str) -> set[str]:
    """Stemmed, lower-cased content words; numbers kept whole.

    >>> sorted(content_words("The U.S. withdrew from 2 treaties in 2019."))
    ['2', '2019', 'treati', 'us', 'withdrew']
    """
    return {w if any(c.isdigit() for c in w) else _stemmer().stemWord(w) for w in surface_words(text)}


def surface_words(text: str) -> set[str]:
    """The words `content_words` keeps, before stemming.

    >>> sorted(surface_words("Randomized algorithms use random bits."))
    ['algorithms', 'bits', 'random', 'randomized', 'use']
    """
    text = unicodedata.normalize("NFKC", text).replace("’", "'").lower()
    words = [w.strip("'") for w in _WORD.findall(text)]
    words = [w.removesuffix("'s").replace(".", "") for w in words]
    return {_NUMBER_WORDS.get(w, w) for w in words if len(w) > 1 and w not in STOPWORDS or w.isdigit()}


_NUMBER_WORDS = dict(zip(
    "one two three four five six seven eight nine ten eleven twelve dozen fifteen twenty thirty fifty hundred".split(),
    "1 2 3 4 5 6 7 8 9 10 11 12 12 15 20 30 50 100".split(),
))


def numbers_in(words: set[str]) -> set[str]:
    return {w for w in words if any(c.isdigit() for c in w)}


_YEAR = re.compile(r"(?<![\d.,])(1[0-9]{3}|20[0-9]{2})(?![\d.,]\d)")


def years(text: str) -> set[str]:
    """The years a text names (1000-2099).

    >>> sorted(years("At the 2024 forum, 1,500 delegates (up from 2019's 900) met for 2.5 days"))
    ['2019', '2024']
    """
    return set(_YEAR.findall(text))



_CHOICE = re.compile(r"\w\s+or\s+\w", re.I)


def added_words(claim: str, question: str) -> set[str]:
    """What a sentence of the answer adds to the question: its content words the question lacks.

    A claim made only of the question's words can still answer it in two ways, which count: a word
    the question has only in another form ("randomized algorithms" for "algorithms that use random
    bits"), and one side of a choice ("A or B?"). Echoing the question word for word adds nothing.

    >>> added_words("Randomized algorithms", "What are algorithms that use random bits called?")
    {'random'}
    >>> added_words("The envoy", "Who was the envoy?")
    set()
    >>> sorted(added_words("The Ethiopian Empire", "Which is older, the British Empire or the Ethiopian Empire?"))
    ['empir', 'ethiopian']
    """
    new = content_words(claim) - content_words(question)
    if new:
        return new
    if _CHOICE.search(question):
        return content_words(claim)
    return content_words(" ".join(surface_words(claim) - surface_words(question)))


def question_topic(question: str) -> tuple[set[str], set[str], set[str]]:
    """(content words, years, topic words) of a question. The topic is what a cited sentence must
    mention: a year alone does not make it about what was asked ("the 2024 article" names a
    document, whose dateline prints the year; the year rule checks it separately).

    >>> [sorted(x) for x in question_topic("Which treaty did the U.S. leave in 2019?")]
    [['2019', 'leav', 'treati', 'us'], ['2019'], ['leav', 'treati', 'us']]
    """
    asked = content_words(question)
    asked_years = years(question)
    return asked, asked_years, asked - asked_years or asked
