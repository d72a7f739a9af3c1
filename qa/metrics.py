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

import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

_DIGIT_LETTER = re.compile(r"(?<=\d)(?=[^\W\d_])|(?<=[^\W\d_])(?=\d)")  # "155mm" -> "155 mm"
# "[1]", "[1, 2]", "[1-3]", "[ 2 ]"; runs such as "[1][2]" are removed one marker at a time
_CITATION_MARKER = re.compile(r"[^\S\n]*\[\s*\d+(?:\s*[,;–-]\s*\d+)*\s*\]")
_SPACE_BEFORE_PUNCT = re.compile(r"[^\S\n]+(?=[.,;:!?)])")


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


def strip_citations(text: str) -> str:
    """Remove numeric citation markers and tidy the spaces they leave before punctuation.

    Only bracketed numbers are markers (``[2]``, ``[1, 2]``, ``[1-3]``, ``[1][2]``); ``[note]`` stays.

    >>> strip_citations("Pierre Vimont [1][2], the envoy [3, 4].")
    'Pierre Vimont, the envoy.'
    """
    text = _CITATION_MARKER.sub("", text)
    text = _SPACE_BEFORE_PUNCT.sub("", text)
    return re.sub(r"[^\S\n]{2,}", " ", text).strip()


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


def recall_at_k(ranks: Sequence[int | None], k: int) -> float | None:
    """Share of questions whose first evidence passage is ranked within the top `k` (None = missed).

    >>> recall_at_k([1, 3, None, 2], 3)
    0.75
    >>> recall_at_k([], 3) is None
    True
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return _mean([r is not None and r <= k for r in ranks])


def mrr(ranks: Sequence[int | None]) -> float | None:
    """Mean reciprocal rank: the mean of 1/rank, a miss (None) counting 0.

    >>> mrr([1, 2, None, 4])
    0.4375
    """
    return _mean([0.0 if r is None else 1.0 / r for r in ranks])


# --- per question and summary ----------------------------------------------------------------------


def percentile(values: Iterable[float | None], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks, as numpy's
    default; None values are ignored; None when nothing is left.

    >>> percentile([4.0, 1.0, None, 3.0, 2.0], 50)
    2.5
    >>> percentile([1, 2, 3, 4], 95)  # position 0.95 * 3 = 2.85 -> 3 + 0.85 * (4 - 3)
    3.85
    """
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    xs = sorted(float(v) for v in values if v is not None)
    if not xs:
        return None
    position = (len(xs) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(xs) - 1)
    return xs[low] + (xs[high] - xs[low]) * (position - low)


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
    return _score(result, question, documents)[0]


def _score(
    result: Mapping[str, Any], question: Mapping[str, Any], documents: Mapping[str, str] | None
) -> tuple[dict[str, Any], tuple[int, int | None, int, int]]:
    """`score_result`'s scores, with the citation counts behind them (see `_citation_counts`)."""
    answerable = _answerable(question)
    refused = bool(result.get("refused"))
    evidence = question.get("evidence") or []
    passages = result.get("passages") or []
    counts = n, valid, scored, supporting = _citation_counts(result, question, documents)
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
        "citation_validity": None if valid is None else _ratio(valid, n),
        "citation_precision": _ratio(supporting, scored),
        "evidence_rank": evidence_rank(passages, evidence) if answerable and evidence else None,
    }
    return scores, counts


def summarize(
    results: Sequence[Mapping[str, Any]],
    questions: Sequence[Mapping[str, Any]],
    *,
    documents: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The run's summary; results are matched to questions by ``id`` (an unknown id has no gold).

    Rates are over the questions they concern: ``answer_accuracy`` and ``false_refusal_rate`` over
    answerable questions (a refusal counts as wrong), ``refusal_rate`` over unanswerable ones,
    ``recall@k`` and ``mrr`` over answerable questions with evidence (a missed evidence counts as
    rank infinity). Citation rates pool the citations of all questions concerned (micro average):
    ``citation_precision`` those of answered answerable questions with evidence,
    ``citation_validity`` all citations (None without `documents`). Latency percentiles ignore
    missing values; ``n_errors`` counts results with a non-empty ``error``; ``accuracy_by_type`` is
    the mean ``correct`` per question ``type`` (for "unanswerable" that is the refusal rate).
    Any rate with nothing to measure is None.

    >>> qs = [{"id": "a", "answers": ["2017"], "need": 1, "evidence": [], "type": "factoid"},
    ...       {"id": "b", "answers": [], "need": 0, "evidence": [], "type": "unanswerable"}]
    >>> rs = [{"id": "a", "answer": "In 2017.", "refused": False, "latency_s": 2.0},
    ...       {"id": "b", "answer": "Not in the documents.", "refused": True, "latency_s": 4.0}]
    >>> s = summarize(rs, qs)
    >>> s["answer_accuracy"], s["refusal_rate"], s["latency_p50"], s["accuracy_by_type"]
    (1.0, 1.0, 3.0, {'factoid': 1.0, 'unanswerable': 1.0})
    """
    by_id = {q.get("id"): q for q in questions}
    rows = [(r, by_id.get(r.get("id"), {})) for r in results]
    scored = [_score(r, q, documents) for r, q in rows]
    scores, counts = [s for s, _ in scored], [c for _, c in scored]
    answerable = [s for s, (_, q) in zip(scores, rows) if _answerable(q)]
    unanswerable = [s for s, (_, q) in zip(scores, rows) if _answerable(q) is False]
    ranks = [s["evidence_rank"] for s, (_, q) in zip(scores, rows) if _answerable(q) and q.get("evidence")]
    by_type: dict[str, list[bool]] = defaultdict(list)
    for s, (_, q) in zip(scores, rows):
        if s["correct"] is not None:
            by_type[q.get("type") or "untyped"].append(s["correct"])
    n_citations = sum(c[0] for c in counts)
    return {
        "n": len(results),
        "n_answerable": len(answerable),
        "n_unanswerable": len(unanswerable),
        "answer_accuracy": _mean([s["correct"] for s in answerable]),
        "refusal_rate": _mean([s["refused"] for s in unanswerable]),
        "false_refusal_rate": _mean([s["refused"] for s in answerable]),
        "n_citations": n_citations,
        "citation_precision": _ratio(sum(c[3] for c in counts), sum(c[2] for c in counts)),
        "citation_validity": None if documents is None else _ratio(sum(c[1] for c in counts), n_citations),
        "recall@1": recall_at_k(ranks, 1),
        "recall@3": recall_at_k(ranks, 3),
        "recall@5": recall_at_k(ranks, 5),
        "mrr": mrr(ranks),
        "latency_p50": percentile((r.get("latency_s") for r in results), 50),
        "latency_p95": percentile((r.get("latency_s") for r in results), 95),
        "ttft_p50": percentile((r.get("ttft_s") for r in results), 50),
        "ttft_p95": percentile((r.get("ttft_s") for r in results), 95),
        "n_errors": sum(1 for r in results if r.get("error")),
        "accuracy_by_type": {t: _mean(v) for t, v in sorted(by_type.items())},
    }


def format_summary_table(summary: Mapping[str, Any]) -> str:
    """A two-column text table of `summarize`'s output for the terminal; None shows as "n/a".

    >>> print(format_summary_table({"n": 2, "answer_accuracy": 0.5, "latency_p50": 1.25, "mrr": None}))
    questions         2
    answer accuracy   0.500
    MRR               n/a
    latency p50       1.25 s
    """
    rows: list[tuple[str, str]] = []
    for key, label, unit in _TABLE_ROWS:
        if key in summary:
            rows.append((label, _format_value(summary[key], unit)))
    for kind, accuracy in (summary.get("accuracy_by_type") or {}).items():
        rows.append((f"  accuracy: {kind}", _format_value(accuracy, "rate")))
    width = max((len(label) for label, _ in rows), default=0)
    return "\n".join(f"{label:<{width}}   {value}" for label, value in rows)


_TABLE_ROWS = (  # (summary key, label, unit)
    ("n", "questions", "count"),
    ("n_answerable", "answerable", "count"),
    ("n_unanswerable", "unanswerable", "count"),
    ("n_errors", "errors", "count"),
    ("answer_accuracy", "answer accuracy", "rate"),
    ("refusal_rate", "refusal rate", "rate"),
    ("false_refusal_rate", "false-refusal rate", "rate"),
    ("n_citations", "citations", "count"),
    ("citation_precision", "citation precision", "rate"),
    ("citation_validity", "citation validity", "rate"),
    ("recall@1", "recall@1", "rate"),
    ("recall@3", "recall@3", "rate"),
    ("recall@5", "recall@5", "rate"),
    ("mrr", "MRR", "rate"),
    ("latency_p50", "latency p50", "seconds"),
    ("latency_p95", "latency p95", "seconds"),
    ("ttft_p50", "first token p50", "seconds"),
    ("ttft_p95", "first token p95", "seconds"),
)


# --- helpers ---------------------------------------------------------------------------------------


def _format_value(value: Any, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "rate":
        return f"{value:.3f}"
    if unit == "seconds":
        return f"{value:.2f} s"
    return str(value)


def _answerable(question: Mapping[str, Any]) -> bool | None:
    """True/False from the gold ``answers``; None for a question without gold fields."""
    return None if "answers" not in question else bool(question["answers"])


def _citation_counts(
    result: Mapping[str, Any], question: Mapping[str, Any], documents: Mapping[str, str] | None
) -> tuple[int, int | None, int, int]:
    """(citations, valid ones or None without documents, ones scored for support, supporting ones)."""
    citations = result.get("citations") or []
    valid = None if documents is None else sum(citation_valid(c, documents) for c in citations)
    evidence = question.get("evidence") or []
    if not (_answerable(question) and evidence) or result.get("refused"):
        return len(citations), valid, 0, 0
    return len(citations), valid, len(citations), sum(bool(citation_supports(c, evidence)) for c in citations)


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


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _mean(values: Sequence[bool | float]) -> float | None:
    return sum(values) / len(values) if values else None
