"""Indexing speed against retrieval quality, per embedding configuration, in one run.

Each configuration (embedder, precision, index settings) builds real indexes with
``embeddings.build.build_index``, timed end to end (splitting, embedding, writing), on the seed
corpus and on samples of Wikipedia paragraphs; the same configuration's recall@1/3/5 is measured on
the seed question sets (through ``qa.retrieve.Retriever``, evidence as in bench_retrieval.py) and on
SQuAD 1.1 questions (passage recall of the question's own paragraph, as ``qa eval --squad`` scores
it). Configurations run one after the other on each corpus, so their ratios share the same moment of
a shared machine. ``max |d| bs1/bs32`` is the largest difference in any vector component between
building the seed vectors in batches of 1 and of 32.

    .venv/bin/python bench/bench_embed.py [--sizes seeds,1000,10000] [--squad-articles 5] [--only CONFIG ...]

The first configuration is the baseline every "x before" ratio divides by.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bench_index import WIKI, read_sample, write_articles  # noqa: E402
from bench.bench_retrieval import evidence_rank  # noqa: E402
from bench.common import machine_info, write_result  # noqa: E402

from embeddings import IndexSettings, build_index, load_corpus  # noqa: E402
from embeddings.encoder import SentenceTransformerEncoder, load_encoder  # noqa: E402
from embeddings.late import TokenEncoder, late_chunk_vectors  # noqa: E402
from embeddings.paragraphs import split_passages  # noqa: E402
from embeddings.units import embedding_units  # noqa: E402
from qa.evaluation.summary import recall_at_k  # noqa: E402
from qa.retrieve import Retriever  # noqa: E402
from qa.evaluation.squad import load_squad, paragraph_rank, sample_questions, write_corpus  # noqa: E402

SQUAD = ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json"
QUESTION_SETS = (ROOT.parent / "shared" / "eval" / "dev.jsonl", ROOT / "bench" / "questions" / "heldout.jsonl",
                 ROOT / "bench" / "questions" / "heldout2.jsonl", ROOT / "bench" / "questions" / "heldout3.jsonl")
CONFIGS = {  # name -> (embedder, backend of embeddings.encoder.load_encoder, index settings)
    "mpnet fp32, batches sorted by characters (before)": ("all-mpnet-base-v2", "fp32-sorted", IndexSettings()),
    "mpnet fp32, equal-length batches (default)": ("all-mpnet-base-v2", "fp32", IndexSettings()),
    "mpnet bf16, equal-length batches": ("all-mpnet-base-v2", "bf16", IndexSettings()),
    "mpnet int8": ("all-mpnet-base-v2", "onnx-int8", IndexSettings()),
    "mpnet bf16, sentences+pairs pooled (late)": ("all-mpnet-base-v2", "bf16", IndexSettings(late_chunking="all")),
    "MiniLM bf16, equal-length batches": ("all-MiniLM-L6-v2", "bf16", IndexSettings()),
}


class SortedBatchEncoder(SentenceTransformerEncoder):
    """The encoder as it was before equal-length batches: texts sorted by characters, longest first,
    in batches of 32 padded to their longest text (the baseline of this bench)."""

    def encode(self, texts, *, progress=None):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self.model.encode([texts[i] for i in rows], batch_size=self.batch_size,
                                          normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return out


def make_encoder(embedder: str, backend: str):
    return SortedBatchEncoder(embedder) if backend == "fp32-sorted" else load_encoder(embedder, backend=backend)


def corpus_words(corpus_dir: Path) -> int:
    return sum(len(d.text.split()) for d in load_corpus(corpus_dir).documents)


def timed_build(corpus_dir: Path, index_dir: Path, encoder, settings: IndexSettings):
    started = time.perf_counter()
    stored = build_index(corpus_dir, index_dir, encoder=encoder, settings=settings, rebuild=True)
    return stored, time.perf_counter() - started


def seed_recall(stored, encoder) -> dict[str, dict]:
    retriever = Retriever(stored, encoder)
    out = {}
    for path in QUESTION_SETS:
        questions = [q for q in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if q.get("evidence")]
        ranks = [evidence_rank(retriever.search(q["question"], k=10), q["evidence"]) for q in questions]
        out[path.stem] = {"n": len(ranks), **{f"recall@{k}": recall_at_k(ranks, k) for k in (1, 3, 5)}}
    return out


def squad_recall(stored, encoder, questions) -> dict:
    retriever = Retriever(stored, encoder)
    ranks = [paragraph_rank([{"doc": h.doc} for h in retriever.search(q.question, k=10)], q.doc) for q in questions]
    return {"n": len(ranks), **{f"recall@{k}": recall_at_k(ranks, k) for k in (1, 3, 5)}}


def batch_difference(corpus_dir: Path, encoder, settings: IndexSettings) -> float:
    """Largest |component| difference between the seed vectors built in batches of 32 and of 1."""
    budget = min(settings.max_passage_tokens, encoder.max_tokens - 2)
    passages = [p for d in load_corpus(corpus_dir).documents
                for p in split_passages(d, max_tokens=budget, count_tokens=encoder.count_tokens)]
    kinds: list[str] = []
    units, texts = embedding_units(passages, sentences=settings.sentence_units, pairs=settings.pair_units, kinds=kinds)
    runs, batch_size = [], encoder.batch_size
    for size in (32, 1):
        encoder.batch_size = size
        if settings.late_chunking != "off" and isinstance(encoder, TokenEncoder):
            pooled = frozenset({"pair"} if settings.late_chunking == "pairs" else {"sentence", "pair"})
            runs.append(late_chunk_vectors(passages, units, texts, encoder, kinds=kinds, pooled=pooled))
        else:
            runs.append(encoder.encode(texts))
    encoder.batch_size = batch_size
    return float(np.abs(runs[0] - runs[1]).max())


def squad_subset(articles: int, n_questions: int, seed: int, folder: Path):
    """The paragraphs of the first ``articles`` SQuAD 1.1 articles as a corpus, and ``n_questions``
    of their questions (seeded sample)."""
    squad = load_squad(SQUAD)
    prefixes = {p.doc.split("/")[0] for p in squad.paragraphs}
    keep = set(sorted(prefixes)[:articles])
    subset = squad.__class__(squad.path, squad.version, f"{squad.sha256}-{articles}",
                             tuple(p for p in squad.paragraphs if p.doc.split("/")[0] in keep),
                             tuple(q for q in squad.questions if q.doc.split("/")[0] in keep))
    return write_corpus(subset, folder), sample_questions(subset.questions, n_questions, seed), len(subset.paragraphs)


def table(rows: list[dict], recall: dict) -> str:
    lines = ["| configuration | corpus | paragraphs | words | build s | words/s | paragraphs/s | x before |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    base = {r["corpus"]: r["words_per_s"] for r in rows if r["config"] == next(iter(CONFIGS))}
    for r in rows:
        ratio = f"{r['words_per_s'] / base[r['corpus']]:.1f}" if r["corpus"] in base else "-"
        lines.append(f"| {r['config']} | {r['corpus']} | {r['paragraphs']} | {r['words']} | {r['build_s']} "
                     f"| {r['words_per_s']} | {r['paragraphs_per_s']} | {ratio} |")
    sets = sorted({s for per in recall.values() for s in per if s != "max_abs_diff_bs1_bs32"})
    lines += ["", "| configuration | " + " | ".join(f"{s} R@1/3/5" for s in sets) + " | max abs d bs1/bs32 |",
              "| --- |" + " --- |" * (len(sets) + 1)]
    for name, per in recall.items():
        cells = [("/".join(f"{per[s][f'recall@{k}']:.3f}" for k in (1, 3, 5)) + f" (n={per[s]['n']})")
                 if s in per else "-" for s in sets]
        diff = per.get("max_abs_diff_bs1_bs32")
        lines.append(f"| {name} | " + " | ".join(cells) + (f" | {diff:.2e} |" if diff is not None else " | - |"))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="seeds,1000", help="corpora timed: seeds and/or Wikipedia paragraph counts")
    parser.add_argument("--squad-articles", type=int, default=5, help="SQuAD 1.1 articles in the corpus (all: 48)")
    parser.add_argument("--squad-questions", type=int, default=500)
    parser.add_argument("--only", action="append", help="run only the configuration(s) with this name")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "embed.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    configs = {k: v for k, v in CONFIGS.items() if not args.only or k in args.only}
    load_before = os.getloadavg()
    encoders = {}
    for name, (embedder, precision, _) in configs.items():
        encoders[name] = make_encoder(embedder, precision)
        encoders[name].encode(["warm up"])  # model load is not throughput
    rows, recall = [], {name: {} for name in configs}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sizes = args.sizes.split(",") if args.sizes else []
        wiki = read_sample(WIKI, max(int(s) for s in sizes if s != "seeds"), args.seed) if any(
            s != "seeds" for s in sizes) else []
        corpora = {}
        for size in sizes:
            if size == "seeds":
                corpora["seeds"] = (ROOT / "seeds", None)
            else:
                sample = wiki[: int(size)]
                corpora[f"wiki {size}"] = (write_articles(sample, tmp / f"wiki{size}"), len(sample))
        if args.squad_articles:
            folder, questions, n_paragraphs = squad_subset(args.squad_articles, args.squad_questions, args.seed,
                                                           tmp / "squad")
            corpora[f"squad {args.squad_articles} articles"] = (folder, n_paragraphs)
        for corpus, (folder, paragraphs) in corpora.items():
            words = corpus_words(folder)
            for name, (_, _, settings) in configs.items():
                stored, seconds = timed_build(folder, tmp / "index" / f"{len(rows)}", encoders[name], settings)
                count = paragraphs or len(stored.passages)
                rows.append({"config": name, "corpus": corpus, "paragraphs": count, "words": words,
                             "passages": len(stored.passages), "vectors": len(stored.vectors),
                             "build_s": round(seconds, 2), "words_per_s": round(words / seconds, 1),
                             "paragraphs_per_s": round(count / seconds, 2)})
                if corpus == "seeds":
                    recall[name].update(seed_recall(stored, encoders[name]))
                elif corpus.startswith("squad"):
                    recall[name]["squad"] = squad_recall(stored, encoders[name], questions)
                print(json.dumps(rows[-1]), json.dumps(recall[name]), flush=True)
        if "seeds" in corpora:
            for name, (_, _, settings) in configs.items():
                recall[name]["max_abs_diff_bs1_bs32"] = batch_difference(ROOT / "seeds", encoders[name], settings)
    report = table(rows, recall)
    print(report)
    write_result(args.out, {
        "machine": machine_info(load_before),
        "command": " ".join(sys.argv),
        "configs": {name: {"embedder": e, "backend": p, "settings": asdict(s)} for name, (e, p, s) in configs.items()},
        "notes": {"paragraphs": "seeds: passages; wiki: sampled paragraphs (one file per article); squad: paragraphs",
                  "squad": f"{args.squad_questions} questions sampled (seed {args.seed}) from the first "
                           f"{args.squad_articles} articles, whose paragraphs are the whole corpus"},
        "builds": rows, "recall": recall, "table": report,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
