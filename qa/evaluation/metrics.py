"""Evaluate step, scoring: pure functions that turn results and gold questions into metrics.

The one decision: every metric is a plain function of the plain values found in the question and
results JSON Lines files (see ``shared/eval/FORMAT.md``); nothing here reads files or runs a model.
Text is compared after normalisation, never raw, except citation validity, which is exact by
definition (``document[start:end] == text``). A metric that has nothing to measure is ``None``,
never 0.

Text overlap between a citation or passage and an evidence fragment uses one rule throughout
(`_covers`): both are compared as token sequences (`normalize_text` tokens), and they overlap the way
two spans of the same document would (one inside the other, or the end of one is the start of the
other); the shared run must hold at least half of the fragment's tokens.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from qa.citation.claims import strip_citations

_DIGIT_LETTER = re.compile(r"(?<=\d)(?=[^\W\d_])|(?<=[^\W\d_])(?=\d)")  # "155mm" -> "155 mm"
# "[1]", "[1, 2]", "[1-3]", "[ 2 ]"; runs such as "[1][2]" are removed one marker at a time


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


# --- citations -------------------------------------------------------------------------------------


def citation_valid(citation: Mapping[str, Any], documents: Mapping[str, str]) -> bool:
    """True when the citation's offsets reproduce its text exactly: ``documents[doc][start:end] == text``.

    No normalisation. Invalid as well: an unknown doc, offsets that are not ints, out of range, or an
    empty span (start >= end).

    >>> docs = {"a.txt": "Ambassador Pierre Vimont was sent."}
    >>> citation_valid({"doc": "a.txt", "start": 11, "end": 24, "text": "Pierre Vimont"}, docs)
    True
    >>> citation_valid({"doc": "a.txt", "start": 10, "end": 24, "text": "Pierre Vimont"}, docs)
    False
    """
    document = documents.get(citation.get("doc"))
    start, end = citation.get("start"), citation.get("end")
    if document is None or type(start) is not int or type(end) is not int:
        return False
    return 0 <= start < end <= len(document) and document[start:end] == citation.get("text")


def citation_supports(citation: Mapping[str, Any], evidence: Sequence[Mapping[str, str]]) -> bool | None:
    """Whether the citation points at the question's evidence; None when there is no evidence to check.

    A citation supports the evidence when, for at least one evidence item, (1) its doc is the item's
    doc (equal paths, or one is a bare file name equal to the other's last component), and (2) its
    text covers the item's fragment: comparing `normalize_text` token sequences, the citation contains
    the whole fragment, or it lies inside the fragment, or the end of one is the start of the other,
    and the shared run holds at least half of the fragment's tokens (rounded up). Sharing scattered
    words does not count.

    >>> ev = [{"doc": "a.txt", "text": "Ambassador Pierre Vimont"}]
    >>> citation_supports({"doc": "a.txt", "text": "Macron sent Ambassador Pierre Vimont."}, ev)
    True
    >>> citation_supports({"doc": "a.txt", "text": "Pierre Vimont"}, ev)  # 2 of 3 tokens
    True
    >>> citation_supports({"doc": "a.txt", "text": "Vimont"}, ev)  # 1 of 3 tokens
    False
    >>> citation_supports({"doc": "a.txt", "text": "anything"}, []) is None
    True
    """
    if not evidence:
        return None
    return any(
        _same_doc(citation.get("doc", ""), item["doc"]) and _covers(citation.get("text", ""), item["text"])
        for item in evidence
    )


# --- retrieval -------------------------------------------------------------------------------------


def evidence_rank(passages: Sequence[Mapping[str, Any]], evidence: Sequence[Mapping[str, str]]) -> int | None:
    """1-based position of the first passage that holds an evidence fragment of its own doc, else None.

    `passages` are in rank order (their position, not their ``rank`` field, is the rank). A passage
    holds a fragment under the same rule as `citation_supports`: it contains the whole fragment, or,
    for a fragment cut by a passage boundary, it starts or ends with a run of at least half of the
    fragment's tokens (so of two passages sharing a fragment, the one with the larger part counts,
    and both count at an exact half).

    >>> ev = [{"doc": "a.txt", "text": "a dozen working groups"}]
    >>> ps = [{"doc": "a.txt", "text": "Talks began."},
    ...       {"doc": "a.txt", "text": "A dozen working groups met."}]
    >>> evidence_rank(ps, ev)
    2
    >>> evidence_rank(ps[:1], ev) is None
    True
    """
    for position, passage in enumerate(passages, start=1):
        if citation_supports(passage, evidence):
            return position
    return None






# --- per question and summary ----------------------------------------------------------------------




def score_result(
    result: Mapping[str, Any], question: Mapping[str, Any], documents: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """This question's ``scores`` object (FORMAT.md's results file).

    - ``correct``: answerable: not refused and `answer_correct` (``need`` defaults to 1); unanswerable
      (``answers`` empty): refused; no ``answers`` field: None.
    - ``refused``: the result's flag.  ``false_refusal``: refused, for answerable questions only.
    - ``citation_validity``: share of citations passing `citation_valid`; None without documents or
      citations.
    - ``citation_precision``: share of citations passing `citation_supports`, for answered (not
      refused) answerable questions with evidence and at least one citation; else None.
    - ``evidence_rank``: `evidence_rank` of the passages, for answerable questions with evidence.

    >>> q = {"id": "d1", "answers": ["Vimont"], "need": 1,
    ...      "evidence": [{"doc": "a.txt", "text": "Pierre Vimont"}]}
    >>> r = {"answer": "Pierre Vimont [1].", "refused": False,
    ...      "citations": [{"n": 1, "doc": "a.txt", "start": 11, "end": 24, "text": "Pierre Vimont"}],
    ...      "passages": [{"rank": 1, "doc": "a.txt", "text": "Ambassador Pierre Vimont was sent."}]}
    >>> for key, value in score_result(r, q, {"a.txt": "Ambassador Pierre Vimont was sent."}).items():
    ...     print(key, value)
    correct True
    refused False
    false_refusal False
    citation_validity 1.0
    citation_precision 1.0
    evidence_rank 1
    """
    return question_scores(result, question, documents)[0]


def question_scores(
    result: Mapping[str, Any], question: Mapping[str, Any], documents: Mapping[str, str] | None
) -> tuple[dict[str, Any], tuple[int, int | None, int, int]]:
    """`score_result`'s scores, with the citation counts behind them (see `citation_counts`)."""
    answerable = is_answerable(question)
    refused = bool(result.get("refused"))
    evidence = question.get("evidence") or []
    passages = result.get("passages") or []
    counts = n, valid, scored, supporting = citation_counts(result, question, documents)
    if answerable is None:
        correct = None
    elif answerable:
        need = max(1, question.get("need") or 1)
        correct = not refused and answer_correct(result.get("answer") or "", question["answers"], need)
    else:
        correct = refused
    scores = {
        "correct": correct,
        "refused": refused,
        "false_refusal": refused if answerable else None,
        "citation_validity": None if valid is None else ratio(valid, n),
        "citation_precision": ratio(supporting, scored),
        "evidence_rank": evidence_rank(passages, evidence) if answerable and evidence else None,
    }
    return scores, counts








# --- helpers ---------------------------------------------------------------------------------------




def is_answerable(question: Mapping[str, Any]) -> bool | None:
    """True/False from the gold ``answers``; None for a question without gold fields."""
    return None if "answers" not in question else bool(question["answers"])




def _same_doc(a: str, b: str) -> bool:
    """Equal paths, or one is a bare file name equal to the other's last component."""
    pa, pb = PurePosixPath(a.replace("\\", "/")), PurePosixPath(b.replace("\\", "/"))
    return pa == pb or ((len(pa.parts) == 1 or len(pb.parts) == 1) and pa.name == pb.name)


def _covers(text: str, fragment: str) -> bool:
    """Whether `text` and `fragment` overlap like two spans of one document, sharing a contiguous run
    of at least half of the fragment's tokens (see `citation_supports`)."""
    t, f = normalize_text(text).split(), normalize_text(fragment).split()
    if not t or not f:
        return False
    need = (len(f) + 1) // 2
    if _contains(t, f) or (len(t) >= need and _contains(f, t)):
        return True
    return any(t[-n:] == f[:n] or t[:n] == f[-n:] for n in range(need, min(len(t), len(f)) + 1))


def _contains(haystack: list[str], needle: list[str]) -> bool:
    """Whether `needle` occurs as a contiguous run of whole tokens in `haystack`."""
    return f" {' '.join(needle)} " in f" {' '.join(haystack)} "


def citation_counts(
    result: Mapping[str, Any], question: Mapping[str, Any], documents: Mapping[str, str] | None
) -> tuple[int, int | None, int, int]:
    """(citations, valid ones or None without documents, ones scored for support, supporting ones)."""
    citations = result.get("citations") or []
    valid = None if documents is None else sum(citation_valid(c, documents) for c in citations)
    evidence = question.get("evidence") or []
    if not (is_answerable(question) and evidence) or result.get("refused"):
        return len(citations), valid, 0, 0
    return len(citations), valid, len(citations), sum(bool(citation_supports(c, evidence)) for c in citations)


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None
