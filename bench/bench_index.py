"""Benchmark indexing and vector search as the corpus grows: real encoder throughput on a sample of
Wikipedia paragraphs, then FAISS build / size / memory / query latency / HNSW recall at 10k, 50k and
200k paragraphs.

The one decision: embedding 200k paragraphs on a 2-core CPU takes hours, so the two halves are
measured separately and labelled. (1) *Real*: both packaged embedders encode a sample of real
paragraphs (paragraphs/s), and ``embeddings.store.build_index`` indexes a smaller real sample end to
end with the app's default settings (passages plus sentence units). (2) *Synthetic vectors*: for the
scale runs, vectors are drawn from a Gaussian fitted to the real default-embedder vectors of (1)
(same mean and covariance, then L2-normalised), one per paragraph unless ``--vectors-per-paragraph``
says otherwise, and queries are real encoded sentences of held-out paragraphs. Each size and index
kind (flat ``IndexFlatIP`` / HNSW via ``embeddings.vectors.VectorIndex``) runs in its own subprocess,
so its peak RSS is its own. Nothing is extrapolated.

    .venv/bin/python bench/bench_index.py [--sizes 10000,50000,200000] [--sample 128] [--out ...]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import machine_info, timed_search, write_result  # noqa: E402

WIKI = ROOT.parent / "shared" / "data" / "enwiki" / "enwiki2015-200k.jsonl.gz"
EMBEDDERS = ("all-MiniLM-L6-v2", "all-mpnet-base-v2")


def read_sample(path: Path, n: int, seed: int) -> list[dict]:
    """``n`` paragraphs drawn at random (seeded) from the whole file."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return random.Random(seed).sample(rows, n)


def write_articles(paragraphs: list[dict], folder: Path) -> Path:
    """The sample as a corpus folder: one file per article, its title then its paragraphs."""
    folder.mkdir(parents=True, exist_ok=True)
    articles: dict[str, list[dict]] = {}
    for p in paragraphs:
        articles.setdefault(p["doc_id"], []).append(p)
    for doc_id, rows in articles.items():
        text = rows[0]["title"] + "\n\n" + "\n\n".join(r["text"] for r in rows) + "\n"
        (folder / f"{doc_id}.txt").write_text(text, encoding="utf-8")
    return folder


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def measure_encoder(name: str, texts: list[str], store_texts: list[dict]) -> tuple[dict, np.ndarray]:
    """Encode ``texts`` one vector each, then index ``store_texts`` with the real store; returns the
    row and every real vector made (paragraphs and stored units)."""
    from embeddings import build_index, load_encoder

    encoder = load_encoder(name)
    encoder.encode(["warm up"])  # model load is not throughput
    started = time.perf_counter()
    vectors = encoder.encode(texts)  # (n, dim) float32, L2-normalised
    encode_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_articles(store_texts, Path(tmp) / "corpus")
        started = time.perf_counter()
        stored = build_index(corpus, Path(tmp) / "index", encoder=encoder)
        store_s = time.perf_counter() - started
        disk = folder_bytes(stored.path)
        units = stored.vectors.copy()
    row = {
        "embedder": name, "dim": int(encoder.dim),
        "encode_paragraphs": len(texts), "encode_s": round(encode_s, 2),
        "encode_paragraphs_per_s": round(len(texts) / encode_s, 2),
        "store_paragraphs": len(store_texts), "store_passages": len(stored.passages), "store_units": len(units),
        "units_per_paragraph": round(len(units) / len(store_texts), 2), "store_build_s": round(store_s, 2),
        "store_paragraphs_per_s": round(len(store_texts) / store_s, 2),
        "store_bytes_per_paragraph": round(disk / len(store_texts)),
    }
    return row, np.concatenate([vectors, units])


def memory_mib() -> dict[str, int]:
    """This process's current and peak resident memory, from /proc (``ru_maxrss`` would include the
    parent's memory at fork time, which survives ``exec``)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) // 1024 for key in ("VmRSS", "VmHWM")}


def synthetic_vectors(real: np.ndarray, n: int, seed: int) -> np.ndarray:
    """(n, dim) float32, L2-normalised, drawn from a Gaussian with the mean and covariance of ``real``."""
    rng = np.random.default_rng(seed)
    mean = real.mean(axis=0)
    centred = (real - mean) / np.sqrt(max(len(real) - 1, 1))  # x = mean + z @ centred has real's covariance
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for start in range(0, n, 20_000):
        z = rng.standard_normal((min(20_000, n - start), len(real)), dtype=np.float32)
        block = mean + z @ centred
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def run_scale(n: int, kind: str, real_path: Path, queries_path: Path, k: int, ef_searches: list[int],
              seed: int) -> list[dict]:
    """One size and index kind, in this process (so its memory is this configuration's); one row per
    HNSW ``efSearch`` (the graph is built once)."""
    import faiss  # noqa: F401  (imported before the baseline RSS is read)

    from embeddings.vectors import VectorIndex, VectorSettings

    before = memory_mib()["VmRSS"]
    queries = np.load(queries_path)  # (n_queries, dim) float32, real encoded sentences
    vectors = synthetic_vectors(np.load(real_path), n, seed)
    settings = VectorSettings(approx_threshold=0 if kind == "hnsw" else n)
    started = time.perf_counter()
    index = VectorIndex.build(vectors, settings)
    build_s = time.perf_counter() - started
    searches = [_search(index, queries, k, ef) for ef in (ef_searches if kind == "hnsw" else [None])]
    resident = memory_mib()["VmRSS"]  # vectors + index, as a loaded StoredIndex holds them
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "vectors.npy", vectors)
        (Path(tmp) / "index.faiss").write_bytes(index.to_bytes())
        index_bytes = (Path(tmp) / "index.faiss").stat().st_size
        vector_bytes = (Path(tmp) / "vectors.npy").stat().st_size
    peak = memory_mib()["VmHWM"]
    base = {
        "paragraphs": n, "vectors": n, "kind": kind, "dim": int(vectors.shape[1]),
        "build_s": round(build_s, 2), "vectors_per_s": round(n / build_s) if build_s else None,
        "index_faiss_mib": round(index_bytes / 2**20, 1), "vectors_npy_mib": round(vector_bytes / 2**20, 1),
        "rss_before_mib": before, "rss_built_mib": resident, "peak_rss_mib": peak, "query_k": k,
    }
    rows = []
    if kind == "hnsw":
        exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]  # exact top 10 (numpy, after the memory)
    for ef, latencies, found in searches:
        row = {**base, "query_p50_ms": round(1000 * float(np.percentile(latencies, 50)), 3),
               "query_p95_ms": round(1000 * float(np.percentile(latencies, 95)), 3)}
        if kind == "hnsw":
            overlap = [len(set(e) & set(f[:10])) / 10 for e, f in zip(exact, found)]
            row.update(ef_search=ef, **{"recall@10_vs_exact": round(float(np.mean(overlap)), 4)})
        rows.append(row)
    return rows


def _search(index, queries: np.ndarray, k: int, ef: int | None) -> tuple[int | None, list[float], list]:
    """Time one query at a time; returns (efSearch, latencies in s, ids found)."""
    if ef is not None:
        index.index.hnsw.efSearch = ef
    return ef, *timed_search(index, queries, k)


def spawn_scale(n: int, kind: str, real: Path, queries: Path, args) -> list[dict]:
    command = [sys.executable, __file__, "--one-scale", str(n), kind, str(real), str(queries), "--k", str(args.k),
               "--ef-search", args.ef_search, "--seed", str(args.seed)]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}  # as the qa command sets it: spinning threads lose on a busy CPU
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, env=env)
    if done.returncode != 0:
        return [{"paragraphs": n, "kind": kind, "error": done.stderr[-600:]}]
    return json.loads(done.stdout.strip().splitlines()[-1])


def tables(encoders: list[dict], scale: list[dict], per_paragraph: float) -> str:
    lines = ["Real paragraphs (measured with the real embedders)",
             "| embedder | dim | encode paragraphs/s (1 vector each) | store.build_index paragraphs/s "
             "(passages + sentence units) | units / paragraph | store bytes / paragraph |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in encoders:
        lines.append(f"| {r['embedder']} | {r['dim']} | {r['encode_paragraphs_per_s']} ({r['encode_paragraphs']} in "
                     f"{r['encode_s']} s) | {r['store_paragraphs_per_s']} ({r['store_paragraphs']} in "
                     f"{r['store_build_s']} s) | {r['units_per_paragraph']} | {r['store_bytes_per_paragraph']} |")
    lines += ["", f"Synthetic vectors ({per_paragraph:g} per paragraph, Gaussian fitted to real vectors; real "
              "encoded queries)",
              "| paragraphs | vectors | kind | build s | vectors/s | index.faiss MiB | vectors.npy MiB "
              "| RSS built / peak with save MiB | query p50 / p95 ms | recall@10 vs exact |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in scale:
        if "error" in r:
            lines.append(f"| {r['paragraphs']} | | {r['kind']} | error: {r['error'][-160:]!r} |")
            continue
        kind = f"hnsw ef={r['ef_search']}" if r["kind"] == "hnsw" else "flat"
        lines.append(f"| {r['paragraphs']} | {r['vectors']} | {kind} | {r['build_s']} | {r['vectors_per_s']} "
                     f"| {r['index_faiss_mib']} | {r['vectors_npy_mib']} | {r['rss_built_mib']} / {r['peak_rss_mib']} "
                     f"| {r['query_p50_ms']} / {r['query_p95_ms']} | {r.get('recall@10_vs_exact', 'exact')} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=WIKI)
    parser.add_argument("--sizes", default="10000,50000,200000", help="paragraph counts of the scale runs")
    parser.add_argument("--sample", type=int, default=96, help="real paragraphs encoded per embedder")
    parser.add_argument("--store-sample", type=int, default=32, help="real paragraphs indexed by store.build_index")
    parser.add_argument("--queries", type=int, default=64, help="held-out real sentences used as queries")
    parser.add_argument("--embedders", default=",".join(EMBEDDERS))
    parser.add_argument("--vectors-per-paragraph", type=float, default=1.0,
                        help="scale runs index paragraphs x this many vectors (the app's sentence units: ~5)")
    parser.add_argument("--k", type=int, default=100, help="vectors fetched per query (the retriever's candidates)")
    parser.add_argument("--ef-search", default="96,256", help="HNSW search breadths to measure (the app's: 96)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per scale subprocess")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "index.json")
    parser.add_argument("--one-scale", nargs=4, metavar=("N", "KIND", "REAL", "QUERIES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_scale:
        n, kind, real, queries = args.one_scale
        ef_searches = [int(x) for x in args.ef_search.split(",")]
        print(json.dumps(run_scale(int(n), kind, Path(real), Path(queries), args.k, ef_searches, args.seed)))
        return 0
    if not args.data.is_file():
        print(f"Wikipedia paragraphs not found: {args.data} (see ../shared/data/README.md)", file=sys.stderr)
        return 2

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch / faiss load OpenMP, as in the qa command
    load_before = os.getloadavg()
    started = time.perf_counter()
    sample = read_sample(args.data, args.sample + args.queries, args.seed)
    texts, held_out = [p["text"] for p in sample[: args.sample]], sample[args.sample :]
    encoders, real = [], None
    embedders = args.embedders.split(",")
    for name in embedders:
        row, vectors = measure_encoder(name, texts, sample[: args.store_sample])
        encoders.append(row)
        print(json.dumps(row), flush=True)
        if name == embedders[-1]:  # the last embedder's vectors seed the synthetic ones (default: mpnet)
            from embeddings import load_encoder
            from embeddings.paragraphs import split_sentences

            real = vectors
            first_sentences = []
            for p in held_out:
                s, e = split_sentences(p["text"])[0]
                first_sentences.append(p["text"][s:e])
            queries = load_encoder(name).encode(first_sentences)
    with tempfile.TemporaryDirectory() as tmp:
        real_path, queries_path = Path(tmp) / "real.npy", Path(tmp) / "queries.npy"
        np.save(real_path, real)
        np.save(queries_path, queries)
        scale = []
        for size in (int(s) for s in args.sizes.split(",")):
            n = round(size * args.vectors_per_paragraph)
            for kind in ("flat", "hnsw"):
                for row in spawn_scale(n, kind, real_path, queries_path, args):
                    row["paragraphs"], row["vectors"] = size, n
                    scale.append(row)
                    print(json.dumps(row), flush=True)
    report = tables(encoders, scale, args.vectors_per_paragraph)
    print(report)
    result = {
        "machine": machine_info(load_before),
        "wall_s": round(time.perf_counter() - started, 1),
        "method": {
            "real": f"{args.sample} random paragraphs of {args.data.name} encoded one vector each; "
                    f"{args.store_sample} of them indexed by embeddings.store.build_index with default settings",
            "synthetic": f"vectors drawn from a Gaussian with the mean and covariance of the {len(real)} real "
                         f"{embedders[-1]} vectors (so they span at most {len(real) - 1} dimensions), "
                         f"L2-normalised; {args.vectors_per_paragraph:g} per paragraph",
            "queries": f"{len(queries)} first sentences of held-out real paragraphs, encoded with {embedders[-1]}",
            "latency": f"one query at a time, k={args.k}; HNSW M=32, efConstruction=80, efSearch in "
                       f"{args.ef_search}; OMP_WAIT_POLICY=PASSIVE",
            "memory": "RSS of a subprocess: rss_before_mib with nothing loaded, rss_built_mib holding the vectors and "
                      "the index (as a loaded StoredIndex holds vectors.npy beside the FAISS index), peak_rss_mib "
                      "(VmHWM) including the copies made to save them",
        },
        "encoders": encoders,
        "scale": scale,
        "table": report,
    }
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
