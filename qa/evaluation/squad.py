"""Evaluate step, SQuAD open-book mode: every paragraph of a SQuAD file becomes one corpus document.

The one decision: SQuAD is asked open-book, against the whole corpus, not against the question's own
paragraph. Each paragraph is written once (atomically) as its own file,
``<nn>_<article>/<nnnn>.txt``, so "the retrieved passage comes from the question's own paragraph" is
a comparison of file paths, and the index (which may split a long paragraph into several passages)
needs no SQuAD knowledge. Answers are scored with the official SQuAD normalisation (`squad_f1`,
`squad_exact_match`) after citation markers are stripped; on SQuAD 2.0 a refusal is the empty answer
that unanswerable questions expect.

    >>> squad_doc(0, "Super_Bowl_50", 3)
    '00_Super_Bowl_50/0003.txt'
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embeddings.packaged import cache_dir
from qa.citation.claims import strip_citations
from qa.errors import QuestionFileError
from qa.evaluation.metrics import score_result
from qa.evaluation.summary import format_summary_table, mrr, recall_at_k, summarize

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.,()'-]+")


# --- official scoring (v1.1 normalisation, v2.0 handling of unanswerable questions) ----------------


def squad_normalize(s: str) -> str:
    """The official SQuAD v1.1 ``normalize_answer``: lower, drop ASCII punctuation, drop a/an/the,
    collapse whitespace. Curly quotes and accents are left alone, as in the official script.

    >>> squad_normalize("The  Eiffel-Tower, an icon!")
    'eiffeltower icon'
    """
    s = "".join(c for c in s.lower() if c not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def squad_exact_match(prediction: str, ground_truths: Sequence[str], *, refused: bool = False) -> float:
    """1.0 when the normalised prediction equals any normalised ground truth, else 0.0.

    As in the official SQuAD 2.0 script, ground truths that normalise to nothing are dropped, and a
    question left with none is unanswerable: only an empty prediction matches it. ``refused=True``
    scores the prediction as empty (the system declined), whatever its text. Strip citation markers
    from the prediction first (`strip_citations`).

    >>> squad_exact_match("the Eiffel Tower.", ["Eiffel Tower", "Tower"])
    1.0
    >>> squad_exact_match("I cannot find the answer.", [], refused=True)
    1.0
    """
    pred = "" if refused else squad_normalize(prediction)
    return max(float(pred == gold) for gold in _golds(ground_truths))


def squad_f1(prediction: str, ground_truths: Sequence[str], *, refused: bool = False) -> float:
    """Official SQuAD token F1 (bag of normalised tokens), the maximum over ground truths.

    Unanswerable questions and ``refused`` as in `squad_exact_match`: when either side has no tokens
    the score is 1.0 if both are empty, else 0.0.

    >>> round(squad_f1("Eiffel Tower in Paris", ["the Eiffel Tower", "Paris"]), 4)  # p=2/4, r=2/2
    0.6667
    >>> squad_f1("Paris", [])
    0.0
    """
    pred = [] if refused else squad_normalize(prediction).split()
    return max(_token_f1(pred, gold.split()) for gold in _golds(ground_truths))


def _golds(ground_truths: Sequence[str]) -> list[str]:
    return [g for g in map(squad_normalize, ground_truths) if g] or [""]


def _token_f1(pred: list[str], gold: list[str]) -> float:
    if not pred or not gold:
        return float(pred == gold)
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


# --- the data set ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SquadParagraph:
    doc: str  # corpus path of the paragraph's file: "<nn>_<article>/<nnnn>.txt"
    title: str  # article title, spaces for underscores: "Super Bowl 50"
    context: str  # the paragraph, verbatim: the file's exact text


@dataclass(frozen=True)
class SquadQuestion:
    id: str
    question: str
    answers: tuple[str, ...]  # distinct gold strings in file order; empty when unanswerable (2.0)
    doc: str  # the question's own paragraph


@dataclass(frozen=True)
class SquadSet:
    path: Path
    version: str  # "1.1" or "v2.0", as the file says
    sha256: str  # of the file's bytes: names its corpus folder
    paragraphs: tuple[SquadParagraph, ...]
    questions: tuple[SquadQuestion, ...]  # in file order


def squad_doc(article: int, title: str, paragraph: int) -> str:
    """The corpus path of a paragraph: article number and a file-system-safe title, paragraph number."""
    return f"{article:02d}_{_UNSAFE.sub('_', title)[:80]}/{paragraph:04d}.txt"


def load_squad(path: str | os.PathLike) -> SquadSet:
    """Read a SQuAD JSON file (official layout: data -> paragraphs -> qas), v1.1 or v2.0."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise QuestionFileError(f"SQuAD file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise QuestionFileError(f"{path}: not a SQuAD JSON file ({exc})") from None
    paragraphs, questions, seen = [], [], set()
    try:
        for a, article in enumerate(data["data"]):
            title = str(article["title"])
            for p, paragraph in enumerate(article["paragraphs"]):
                doc = squad_doc(a, title, p)
                paragraphs.append(SquadParagraph(doc, title.replace("_", " "), paragraph["context"]))
                for qa in paragraph["qas"]:
                    if qa["id"] in seen:
                        raise QuestionFileError(f"{path}: duplicate question id {qa['id']!r}")
                    seen.add(qa["id"])
                    golds = () if qa.get("is_impossible") else tuple(dict.fromkeys(x["text"] for x in qa["answers"]))
                    questions.append(SquadQuestion(str(qa["id"]), qa["question"], golds, doc))
    except (KeyError, TypeError) as exc:
        raise QuestionFileError(f"{path}: not in the SQuAD layout (data -> paragraphs -> qas): missing {exc}") from None
    if not questions:
        raise QuestionFileError(f"{path}: no questions")
    return SquadSet(path, str(data.get("version", "")), hashlib.sha256(raw).hexdigest(),
                    tuple(paragraphs), tuple(questions))


def squad_home(squad: SquadSet) -> Path:
    """This file's folder in the cache: ``<cache>/squad/<file stem>-<sha256[:8]>/``."""
    return cache_dir() / "squad" / f"{squad.path.stem}-{squad.sha256[:8]}"


def write_corpus(squad: SquadSet, folder: Path) -> Path:
    """Write every paragraph as a UTF-8 file under ``folder`` (plus ``metadata.json`` with the
    article titles), once: the files go to a temporary sibling that is renamed into place, so an
    interrupted write never leaves a partial corpus. An existing ``folder`` is used as it is."""
    folder = Path(folder)
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for paragraph in squad.paragraphs:
        target = tmp / paragraph.doc
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(paragraph.context.encode("utf-8"))
    titles = {p.doc: {"title": p.title} for p in squad.paragraphs}
    (tmp / "metadata.json").write_text(json.dumps(titles, ensure_ascii=False, indent=1), encoding="utf-8")
    try:
        os.rename(tmp, folder)
    except OSError:  # another process finished first: use its corpus
        shutil.rmtree(tmp, ignore_errors=True)
        if not folder.is_dir():
            raise
    return folder


def open_book(squad: SquadSet, settings):
    """``settings`` for asking against this file: its paragraphs as the corpus (written once, see
    `write_corpus`), indexed in their own folder per embedder."""
    home = squad_home(squad)
    return settings.with_(corpus=write_corpus(squad, home / "corpus"),
                          index_dir=home / "index" / re.sub(r"[^A-Za-z0-9_.-]+", "_", settings.embedder))


def sample_questions(questions: Sequence[SquadQuestion], n: int | None, seed: int) -> list[SquadQuestion]:
    """A seeded random sample of ``n`` questions (all when ``n`` is None or too big), in file order.

    Samples of one seed are nested: the first ``n`` of one shuffle, so a run of 200 questions
    contains the 20 of a run of 20 (and ``--resume`` reuses them).

    >>> qs = [SquadQuestion(str(i), "?", ("x",), "d") for i in range(10)]
    >>> small, large = sample_questions(qs, 3, seed=1), sample_questions(qs, 6, seed=1)
    >>> set(q.id for q in small) <= set(q.id for q in large), len(small)
    (True, 3)
    """
    if n is not None and n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if n is None or n >= len(questions):
        return list(questions)
    order = list(range(len(questions)))
    random.Random(seed).shuffle(order)
    return [questions[i] for i in sorted(order[:n])]


def question_record(q: SquadQuestion) -> dict[str, Any]:
    """A question line of FORMAT.md, plus the question's own paragraph (``squad_doc``).

    The gold answers double as evidence in their paragraph, so `qa.evaluation.metrics.score_result`'s
    citation precision means "the citation quotes a gold answer from the question's own paragraph".
    """
    return {
        "id": q.id,
        "question": q.question,
        "answers": list(q.answers),
        "need": 1 if q.answers else 0,
        "evidence": [{"doc": q.doc, "text": a} for a in q.answers],
        "type": "answerable" if q.answers else "unanswerable",
        "squad_doc": q.doc,
    }


# --- scores ----------------------------------------------------------------------------------------


def paragraph_rank(passages: Sequence[Mapping[str, Any]], doc: str) -> int | None:
    """1-based position of the first retrieved passage cut from the paragraph file ``doc``, else None.

    >>> paragraph_rank([{"doc": "00_A/0001.txt"}, {"doc": "00_A/0002.txt"}], "00_A/0002.txt")
    2
    """
    return next((i for i, p in enumerate(passages, start=1) if p.get("doc") == doc), None)


def score_squad(
    result: Mapping[str, Any], question: Mapping[str, Any], documents: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """`qa.evaluation.metrics.score_result`'s scores (``correct``: a gold answer occurs in the answer), with
    ``evidence_rank`` replaced by ``paragraph_rank``, plus the official ``exact_match`` and ``f1`` of
    the answer without citation markers (a refusal counts as the empty answer).

    >>> q = question_record(SquadQuestion("q1", "Who won?", ("Denver Broncos",), "00_A/0000.txt"))
    >>> r = {"answer": "The Denver Broncos [1].", "refused": False,
    ...      "passages": [{"doc": "00_A/0001.txt"}, {"doc": "00_A/0000.txt"}]}
    >>> s = score_squad(r, q)
    >>> s["correct"], s["exact_match"], s["f1"], s["paragraph_rank"]
    (True, 1.0, 1.0, 2)
    """
    scores = score_result(result, question, documents)
    del scores["evidence_rank"]
    answer, refused = strip_citations(result.get("answer") or ""), bool(result.get("refused"))
    scores["exact_match"] = squad_exact_match(answer, question["answers"], refused=refused)
    scores["f1"] = squad_f1(answer, question["answers"], refused=refused)
    scores["paragraph_rank"] = paragraph_rank(result.get("passages") or [], question["squad_doc"])
    return scores


def summarize_squad(
    results: Sequence[Mapping[str, Any]],
    questions: Sequence[Mapping[str, Any]],
    *,
    documents: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`qa.evaluation.summary.summarize` (``answer_accuracy``: a gold answer occurs in the answer), with
    retrieval measured against each question's own paragraph (``recall@k``, ``mrr``, over every
    question: an unanswerable 2.0 question has its paragraph too), plus the official SQuAD
    ``exact_match`` and ``f1`` over all questions and over answerable (``_has_answer``) and
    unanswerable (``_no_answer``) ones, as the official 2.0 script reports them.

    >>> q = question_record(SquadQuestion("q1", "Who won?", ("Denver Broncos",), "00_A/0000.txt"))
    >>> r = {"id": "q1", "answer": "Denver Broncos [1].", "refused": False, "latency_s": 1.0,
    ...      "passages": [{"doc": "00_A/0000.txt"}]}
    >>> s = summarize_squad([r], [q])
    >>> s["exact_match"], s["f1"], s["recall@1"], s["answer_accuracy"]
    (1.0, 1.0, 1.0, 1.0)
    """
    summary = summarize(results, questions, documents=documents)
    by_id = {q["id"]: q for q in questions}
    rows = [(r, by_id[r["id"]]) for r in results if r.get("id") in by_id]
    scored = [(score_squad(r, q, documents), q) for r, q in rows]
    ranks = [s["paragraph_rank"] for s, _ in scored]
    for k in (1, 3, 5, 10):
        summary[f"recall@{k}"] = recall_at_k(ranks, k)
    summary["mrr"] = mrr(ranks)
    for suffix, keep in (("", lambda q: True), ("_has_answer", lambda q: bool(q["answers"])),
                         ("_no_answer", lambda q: not q["answers"])):
        chosen = [s for s, q in scored if keep(q)]
        summary[f"exact_match{suffix}"] = _mean([s["exact_match"] for s in chosen])
        summary[f"f1{suffix}"] = _mean([s["f1"] for s in chosen])
    return summary


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def format_squad_table(summary: Mapping[str, Any]) -> str:
    """`qa.evaluation.summary.format_summary_table` with the SQuAD rows (EM, F1, recall@10) added, one alignment.

    >>> print(format_squad_table({"n": 4, "exact_match": 0.25, "f1": 0.5, "recall@10": None}))
    questions           4
    SQuAD exact match   0.250
    SQuAD F1            0.500
    recall@10           n/a
    """
    rows = [re.match(r"(.*?) {3,}(\S.*)$", line).groups() for line in format_summary_table(summary).splitlines()]
    for label, key in (("SQuAD exact match", "exact_match"), ("SQuAD F1", "f1"),
                       ("  EM answerable", "exact_match_has_answer"), ("  F1 answerable", "f1_has_answer"),
                       ("  EM unanswerable", "exact_match_no_answer"), ("recall@10", "recall@10")):
        if key in summary:
            rows.append((label, "n/a" if summary[key] is None else f"{summary[key]:.3f}"))
    width = max((len(label) for label, _ in rows), default=0)
    return "\n".join(f"{label:<{width}}   {value}" for label, value in rows)
