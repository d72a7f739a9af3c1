"""Evaluate step, matching: does an answer hold the gold strings (``answers``) or key points (``points``)?

The one decision: the answer and every gold string are compared after one normalisation
(`normalize_text`: case, accents, quotes, punctuation and whitespace ignored), as plain substrings,
after the answer's citation markers are stripped; a refusal is judged by the caller, not here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from qa.citation.claims import strip_citations

_DIGIT_LETTER = re.compile(r"(?<=\d)(?=[^\W\d_])|(?<=[^\W\d_])(?=\d)")  # "155mm" -> "155 mm"


# --- text normalisation ----------------------------------------------------------------------------


def normalize_evidence(s: str) -> str:
    """FORMAT.md's evidence comparison: Unicode NFKC, then runs of whitespace collapsed to one space.

    >>> normalize_evidence("a CC\\u00a0BY 4.0\\n  license ")
    'a CC BY 4.0 license'
    """
    return " ".join(unicodedata.normalize("NFKC", s).split())


def normalize_text(s: str) -> str:
    """FORMAT.md's answer matching: case-, accent-, quote-, punctuation- and whitespace-insensitive.

    Steps: NFKC (non-breaking spaces become spaces, ligatures letters); accents dropped (NFKD,
    combining marks removed); casefold; invisible format characters (soft hyphen, zero-width space)
    deleted; every other character that is not a letter or digit, curly or straight quotes included,
    becomes a space; a digit next to a letter is split from it ("155mm" -> "155 mm", so "155-mm" and
    "155 mm" match too); spaces collapsed. Punctuation inside a token therefore splits it: "U.S." and
    "U.S" both become "u s", "Russia’s" and "Russia's" both "russia s".

    >>> normalize_text("Depending less on the U.S.\\u00a0and “Élysée’s” 155mm!")
    'depending less on the u s and elysee s 155 mm'
    """
    s = normalize_evidence(s)
    s = "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))
    s = unicodedata.normalize("NFC", s.casefold())
    s = "".join("" if unicodedata.category(c) == "Cf" else c if c.isalnum() else " " for c in s)
    return " ".join(_DIGIT_LETTER.sub(" ", s).split())


# --- answers ---------------------------------------------------------------------------------------


def answer_correct(answer: str, answers: Sequence[str], need: int) -> bool:
    """True when at least `need` distinct accepted strings occur in the answer.

    Citation markers are stripped from the answer first (so a bare "[2]" never matches a gold "2").
    Both sides go through `normalize_text`; an accepted string occurs when it is a plain substring of
    the normalised answer, with no token boundary required, so the gold stem "humiliat" matches
    "humiliating". Accepted strings that normalise to the same text ("U.S." and "U.S") or to nothing
    count once, or not at all.

    >>> answer_correct("Macron sent Pierre Vimont [1].", ["Pierre Vimont", "Vimont"], 1)
    True
    >>> answer_correct("A deficit of credibility [2].", ["credibility", "means"], 2)
    False
    """
    if need < 1:
        raise ValueError(f"need must be >= 1, got {need}")
    text = normalize_text(strip_citations(answer))
    accepted = {normalize_text(a) for a in answers} - {""}
    return sum(a in text for a in accepted) >= need


# --- key points (broad questions) -----------------------------------------------------------------


def points_covered(answer: str, points: Sequence[Sequence[str]]) -> list[bool]:
    """For each key point, whether any of its accepted strings occurs in the answer (`answer_correct`'s
    matching rule: markers stripped, `normalize_text` on both sides, plain substrings).

    >>> points_covered("Trust and SECURITY, and Trump [2].", [["trust and security"], ["dialogue"], ["Trump"]])
    [True, False, True]
    """
    text = normalize_text(strip_citations(answer))
    return [any(a in text for a in {normalize_text(s) for s in point} - {""}) for point in points]


def answer_words(answer: str) -> int:
    """Words in the answer as shown, without citation markers; a token with no letter or digit (a
    dash) is not a word.

    >>> answer_words("Pierre Vimont [1] — the envoy [2, 3].")
    4
    """
    return sum(1 for token in strip_citations(answer).split() if any(c.isalnum() for c in token))
