"""Retrieval quality on a question file: recall@1/3/5 and MRR of the evidence, per configuration.

A question counts as found at rank r when the r-th passage contains one of its evidence fragments
verbatim (after NFKC and whitespace collapsing, FORMAT.md's rule), in the same document.

    .venv/bin/python bench/bench_retrieval.py [--questions FILE ...] [--corpus seeds] [--only CONFIG ...]
    .venv/bin/python bench/bench_retrieval.py --by-shape   # BM25's fusion weight per question shape

By default it reads the shared dev set and bench/questions/heldout.jsonl (questions written for this
bench in the dev set's style, never used to tune anything before they were measured): a
configuration should win on both. Each distinct index is built once and shared by the
configurations that only differ in retrieval settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import write_result  # noqa: E402
from embeddings import IndexSettings, build_index, load_encoder  # noqa: E402
from qa.evaluation.metrics import normalize_evidence  # noqa: E402
from qa.evaluation.summary import mrr, recall_at_k  # noqa: E402
from qa.retrieve import RetrievalSettings, Retriever  # noqa: E402


class UnmatchedScoreNothing(Retriever):
    """The fusion before 067f710: a passage a method found nothing for gets nothing from it."""

    def fuse(self, dense: np.ndarray, bm25: np.ndarray, bm25_weight: float | None = None) -> np.ndarray:
        s = self.settings
        fused = np.zeros(len(dense), dtype=np.float64)
        for scores, weight, found in ((dense, s.dense_weight, np.isfinite(dense)), (bm25, s.bm25_weight, bm25 > 0)):
            ranks = np.empty(len(scores), dtype=np.int64)
            ranks[np.argsort(-np.where(found, scores, -np.inf), kind="stable")] = np.arange(1, len(scores) + 1)
            fused += np.where(found, weight / (s.rrf_k + ranks), 0.0)
        return fused


CONFIGS = {  # name -> (index settings, retrieval settings[, retriever class])
    "hybrid (default)": (IndexSettings(), RetrievalSettings()),
    "hybrid, unmatched passages score 0": (IndexSettings(), RetrievalSettings(), UnmatchedScoreNothing),
    "dense only": (IndexSettings(), RetrievalSettings(bm25_weight=0.0)),
    "bm25 only": (IndexSettings(), RetrievalSettings(dense_weight=0.0)),
    "hybrid, equal weights": (IndexSettings(), RetrievalSettings(bm25_weight=1.0)),
    "hybrid, bm25 weight 0.25": (IndexSettings(), RetrievalSettings(bm25_weight=0.25)),
    "hybrid, no sentence-pair units": (IndexSettings(pair_units=False), RetrievalSettings()),
    "hybrid, passages only (no sentences)": (IndexSettings(sentence_units=False), RetrievalSettings()),
    "hybrid, passages <= 128 tokens": (IndexSettings(max_passage_tokens=128), RetrievalSettings()),
    "hybrid, passages <= 250 tokens": (IndexSettings(max_passage_tokens=250), RetrievalSettings()),
}


def evidence_rank(hits, evidence) -> int | None:
    fragments = [(e["doc"], normalize_evidence(e["text"])) for e in evidence]
    for hit in hits:
        text = normalize_evidence(hit.passage.text)
        if any(doc == hit.doc and fragment in text for doc, fragment in fragments):
            return hit.rank
    return None


BY_SHAPE_FILES = [*(f"../shared/eval/{n}.jsonl" for n in ("dev", "dev_broad")),
                  *(f"bench/questions/{n}.jsonl" for n in ("heldout", "heldout2", "heldout3", "heldout_broad",
                                                           "heldout_broad2", "heldout_broad3"))]
BY_SHAPE_WEIGHTS = (0.5, 0.75, 1.0)


def by_shape(files: list[str], corpus: str, out: str, embedder: str | None) -> int:
    """Evidence MRR and recall@3 per question shape (qa.shapes.classify) and BM25 weight: which
    weight each shape's search should use. Questions from the one-fact sets and the broad sets are
    kept apart (a list asked as a one-fact question is not a broad one)."""
    from qa.shapes import classify

    encoder = load_encoder(embedder)
    groups: dict[str, dict[float, list]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        retriever = Retriever(build_index(corpus, Path(tmp) / "idx", encoder=encoder), encoder)
        for path in files:
            for line in open(ROOT / path, encoding="utf-8"):  # an absolute path stays itself
                q = json.loads(line) if line.strip() else {}
                if not q.get("evidence"):
                    continue
                group = f"{classify(q['question']).name} ({'broad' if 'broad' in Path(path).name else 'one-fact'} sets)"
                for weight in BY_SHAPE_WEIGHTS:
                    hits = retriever.search(q["question"], k=10, bm25_weight=weight)
                    groups.setdefault(group, {}).setdefault(weight, []).append(evidence_rank(hits, q["evidence"]))
    rows = [{"group": group, "n": len(ranks[BY_SHAPE_WEIGHTS[0]]), "bm25_weight": w,
             "mrr": mrr(ranks[w]), "recall@3": recall_at_k(ranks[w], 3)}
            for group, ranks in sorted(groups.items()) for w in BY_SHAPE_WEIGHTS]
    header = " ".join(f"{'MRR@' + str(w):>9} {'R@3':>5}" for w in BY_SHAPE_WEIGHTS)
    print(f"{'shape (question sets)':28} {'n':>3} {header}")
    for group in sorted(groups):
        cells = [r for r in rows if r["group"] == group]
        print(f"{group:28} {cells[0]['n']:3d} " + " ".join(f"{r['mrr']:9.3f} {r['recall@3']:5.2f}" for r in cells))
    write_result(out, {"questions": files, "embedder": encoder.name, "weights": BY_SHAPE_WEIGHTS, "rows": rows})
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", action="append", help="question file(s) with evidence "
                        "(default: ../shared/eval/dev.jsonl and bench/questions/heldout.jsonl)")
    parser.add_argument("--corpus", default=str(ROOT / "seeds"))
    parser.add_argument("--out", default=str(ROOT / "bench/results/retrieval.json"))
    parser.add_argument("--only", action="append", help="run only the configuration(s) with this name")
    parser.add_argument("--embedder", help="sentence-transformers model name or path (default: the packaged one)")
    parser.add_argument("--by-shape", action="store_true", help="evidence MRR per question shape and BM25 weight, "
                        "over every question set (writes bench/results/retrieval_shapes.json unless --out)")
    args = parser.parse_args()
    if args.by_shape:
        out = args.out if args.out != parser.get_default("out") else str(ROOT / "bench/results/retrieval_shapes.json")
        return by_shape(args.questions or BY_SHAPE_FILES, args.corpus, out, args.embedder)
    files = args.questions or [str(ROOT.parent / "shared/eval/dev.jsonl"), str(ROOT / "bench/questions/heldout.jsonl")]
    sets = {}
    for path in files:
        if not Path(path).is_file():
            print(f"question file not found: {path}", file=sys.stderr)
            return 2
        questions = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
        sets[Path(path).name] = [q for q in questions if q.get("evidence")]
    encoder = load_encoder(args.embedder)
    rows, misses, indexes = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (index_settings, retrieval_settings, *kind) in CONFIGS.items():
            if args.only and name not in args.only:
                continue
            if index_settings not in indexes:
                started = time.perf_counter()
                stored = build_index(args.corpus, Path(tmp) / str(len(indexes)), encoder=encoder,
                                     settings=index_settings)
                indexes[index_settings] = (stored, time.perf_counter() - started)
            stored, build_s = indexes[index_settings]
            retriever = (kind[0] if kind else Retriever)(stored, encoder, retrieval_settings)
            longest = max(encoder.count_tokens(p.text) for p in stored.passages)
            for set_name, questions in sets.items():
                ranks, started = [], time.perf_counter()
                for q in questions:
                    ranks.append(evidence_rank(retriever.search(q["question"], k=10), q["evidence"]))
                per_query_ms = 1000 * (time.perf_counter() - started) / len(questions)
                misses[f"{name} | {set_name}"] = [q["id"] for q, r in zip(questions, ranks) if r is None or r > 3]
                rows.append({
                    "config": name, "questions": set_name, "n": len(questions), "passages": len(stored.passages),
                    "vectors": len(stored.index), "max_passage_tokens": longest, "build_s": round(build_s, 1),
                    "recall@1": recall_at_k(ranks, 1), "recall@3": recall_at_k(ranks, 3),
                    "recall@5": recall_at_k(ranks, 5), "mrr": mrr(ranks), "ms_per_query": per_query_ms,
                })
    print(f"embedder {encoder.name}; questions with evidence: "
          + ", ".join(f"{name} ({len(qs)})" for name, qs in sets.items()))
    print(f"{'config':36} {'questions':15} {'vectors':>7} {'longest':>7} {'R@1':>5} {'R@3':>5} {'R@5':>5} "
          f"{'MRR':>5} {'ms/q':>6}")
    for r in rows:
        print(f"{r['config']:36} {r['questions'][:15]:15} {r['vectors']:7d} {r['max_passage_tokens']:7d} "
              f"{r['recall@1']:5.2f} {r['recall@3']:5.2f} {r['recall@5']:5.2f} {r['mrr']:5.2f} "
              f"{r['ms_per_query']:6.1f}")
    for name, ids in misses.items():
        print(f"not in top 3 ({name}): {', '.join(ids) or '-'}")
    write_result(args.out, {"questions": files, "embedder": encoder.name, "rows": rows, "misses@3": misses})
    return 0


if __name__ == "__main__":
    sys.exit(main())
