"""Retrieval quality on a question file: recall@1/3/5 and MRR of the evidence, per configuration.

A question counts as found at rank r when the r-th passage contains one of its evidence fragments
verbatim (after NFKC and whitespace collapsing, FORMAT.md's rule), in the same document.

    .venv/bin/python bench/bench_retrieval.py [--questions FILE ...] [--corpus seeds] [--only CONFIG ...]

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

    def fuse(self, dense: np.ndarray, bm25: np.ndarray) -> np.ndarray:
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", action="append", help="question file(s) with evidence "
                        "(default: ../shared/eval/dev.jsonl and bench/questions/heldout.jsonl)")
    parser.add_argument("--corpus", default=str(ROOT / "seeds"))
    parser.add_argument("--out", default=str(ROOT / "bench/results/retrieval.json"))
    parser.add_argument("--only", action="append", help="run only the configuration(s) with this name")
    parser.add_argument("--embedder", help="sentence-transformers model name or path (default: the packaged one)")
    args = parser.parse_args()
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
