"""Benchmark bulk indexing on Ray: embedding Wikipedia paragraphs with ``qa index --ray``'s code
(``embeddings.distributed.build_index_on_ray``, default embedder and index settings), 1 against 2
actors, then query latency and recall@10 against exact search for the index types considered, on the
real vectors of the largest run.

The one decision: every number comes from real embeddings of real paragraphs; nothing is replicated
or extrapolated. The ANN part therefore runs at the size the embedding run reached (``--n``), which
on a 2-core CPU is far below the 200k paragraphs where an approximate index starts to matter; run
``--n 200000`` on a faster embedder or a real cluster for that.

A local Ray probes cloud metadata services and binds the machine's address, so run this inside a
network namespace with only loopback (the script refuses otherwise, unless ``--allow-network``):

    unshare -n sh -c 'ip link set lo up && .venv/bin/python bench/bench_ray.py --n 120 --scale-n 60'
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import machine_info, timed_search, write_result  # noqa: E402

WIKI = ROOT.parent / "shared" / "data" / "enwiki" / "enwiki2015-200k.jsonl.gz"
SHARD_CHARS = 8_000  # ~12 paragraphs a shard: enough shards at small --n for two actors to share


def first_paragraphs(path: Path, n: int, skip: int = 0) -> list[dict]:
    """Paragraphs ``skip`` to ``skip + n`` in file order (whole articles stay together)."""
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            if i >= skip + n:
                break
            if i >= skip:
                rows.append(json.loads(line))
    return rows


def write_paragraphs(paragraphs: list[dict], folder: Path) -> Path:
    """One file per paragraph: its article's title, then the paragraph. Shards are groups of whole
    documents, and the file's first articles are long (Anarchism, Autism...): one file per article
    would give a few shards and nothing for a second actor to do."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in paragraphs:
        (folder / f"{p['id']}.txt").write_text(f"{p['title']}\n\n{p['text']}\n", encoding="utf-8")
    return folder


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class PeakMemory:
    """Peak resident memory of this process and of every descendant (Ray's workers), sampled every 0.5 s."""

    def __init__(self) -> None:
        import psutil

        self.me = psutil.Process()
        self.peaks: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for process in [self.me, *self.me.children(recursive=True)]:
                try:
                    rss = process.memory_info().rss
                    name = " ".join(process.cmdline()[:3])[-80:]
                except Exception:  # noqa: BLE001 - it exited meanwhile
                    continue
                if rss > self.peaks.get(process.pid, ("", 0))[1]:
                    self.peaks[process.pid] = (name, rss)
            self._stop.wait(0.5)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        """Peak MiB of the driver, the busiest embedding actor, and every process summed."""
        actors = [rss for pid, (name, rss) in self.peaks.items() if "ray::" in name or "MapWorker" in name]
        return {"driver_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "actor_max_mib": round(max(actors, default=0) / 2**20),
                "actors_seen": len(actors),
                "all_processes_sum_of_peaks_mib": round(sum(rss for _, rss in self.peaks.values()) / 2**20)}


def run_build(corpus: Path, index_dir: Path, actors: int, n: int) -> tuple[dict, object]:
    from embeddings.distributed import build_index_on_ray

    with PeakMemory() as memory:
        started = time.perf_counter()
        stored, stats = build_index_on_ray(corpus, index_dir, actors=actors, shard_chars=SHARD_CHARS)
        wall = time.perf_counter() - started
    row = {"actors": actors, "paragraphs": n, "passages": len(stored.passages), "vectors": len(stored.vectors),
           "shards": stats.shards, "wall_s": round(wall, 1), "paragraphs_per_s": round(n / wall, 2),
           "vectors_per_s": round(len(stored.vectors) / wall, 1), "index_kind": stored.manifest["index_kind"],
           "index_disk_mib": round(folder_bytes(stored.path) / 2**20, 1), "memory": memory.summary()}
    print(json.dumps(row), flush=True)
    return row, stored


def ann_kinds(dim: int, n: int):
    """(name, factory string, search parameters) of the index types considered, sized for ``n`` vectors."""
    nlist = max(8, int(4 * np.sqrt(n)))
    m = 48 if dim % 48 == 0 else 32  # PQ sub-quantisers: 16 dimensions each for 768
    return [("flat", "Flat", {}),
            ("hnsw32", "HNSW32", {"efSearch": 96}),
            (f"ivf{nlist}-flat", f"IVF{nlist},Flat", {"nprobe": 16}),
            (f"ivf{nlist}-sq8", f"IVF{nlist},SQ8", {"nprobe": 16}),
            (f"ivf{nlist}-pq{m}", f"IVF{nlist},PQ{m}x8", {"nprobe": 16})]


def measure_ann(vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> list[dict]:
    import faiss

    faiss.omp_set_num_threads(1)  # latency of one query on one core, as the app searches
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, k)
    rows = []
    for name, spec, params in ann_kinds(vectors.shape[1], len(vectors)):
        index = faiss.index_factory(vectors.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
        started = time.perf_counter()
        if not index.is_trained:
            index.train(vectors)
        index.add(vectors)
        build_s = time.perf_counter() - started
        for key, value in params.items():
            faiss.ParameterSpace().set_index_parameter(index, key, value)
        latencies, found = timed_search(index, queries, k)
        recall = float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth)]))
        size = len(faiss.serialize_index(index))
        rows.append({"index": name, "factory": spec, "params": params, "vectors": len(vectors),
                     "build_s": round(build_s, 2), "bytes_per_vector": round(size / len(vectors), 1),
                     "size_mib": round(size / 2**20, 2), "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 3),
                     "p95_ms": round(1000 * float(np.percentile(latencies, 95)), 3), f"recall@{k}": round(recall, 4)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def only_loopback() -> bool:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()
    return len(links) == 1 and ": lo:" in links[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="paragraphs in the main run (2 actors)")
    parser.add_argument("--scale-n", type=int, default=None, help="paragraphs of the 1-actor run (default --n)")
    parser.add_argument("--queries", type=int, default=200, help="held-out sentences used as ANN queries")
    parser.add_argument("--allow-network", action="store_true", help="run outside a loopback-only namespace")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "ray.json"))
    args = parser.parse_args()
    if not args.allow_network and not only_loopback():
        sys.exit("run inside `unshare -n sh -c 'ip link set lo up && ...'` (see the docstring), or --allow-network")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    load = os.getloadavg()
    import ray

    from embeddings.encoder import load_encoder
    from embeddings.paragraphs import split_sentences

    started = time.perf_counter()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False, logging_level="warning")
    ray_start_s = time.perf_counter() - started
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        scale_n = args.scale_n or args.n
        paragraphs = first_paragraphs(WIKI, max(args.n, scale_n))
        if scale_n != args.n:
            small = write_paragraphs(paragraphs[:scale_n], Path(tmp) / "corpus-small")
            runs.append(run_build(small, Path(tmp) / "idx-small-2", 2, scale_n)[0])
        corpus = write_paragraphs(paragraphs[: args.n], Path(tmp) / "corpus")
        row, stored = run_build(corpus, Path(tmp) / "idx-2", 2, args.n)
        runs.append(row)
        one = write_paragraphs(paragraphs[:scale_n], Path(tmp) / "corpus-1")
        runs.append(run_build(one, Path(tmp) / "idx-1", 1, scale_n)[0])
        held_out = first_paragraphs(WIKI, args.queries, skip=200_000 - args.queries)  # far from the indexed ones
        sentences = []
        for p in held_out:
            spans = split_sentences(p["text"])
            if spans:
                sentences.append(p["text"][spans[0][0]:spans[0][1]])
        encoder = load_encoder()
        started = time.perf_counter()
        queries = encoder.encode(sentences)  # (n_queries, dim) float32, L2-normalised
        query_encode_s = time.perf_counter() - started
        ann = measure_ann(np.ascontiguousarray(stored.vectors, dtype=np.float32), queries)
    ray.shutdown()
    result = {"machine": machine_info(load), "ray_version": ray.__version__, "ray_start_s": round(ray_start_s, 1),
              "embedder": encoder.name, "runs": runs,
              "ann": {"vectors_from": f"the {args.n}-paragraph run's own unit vectors (real, none replicated)",
                      "queries": f"first sentence of {len(sentences)} held-out paragraphs (the file's last)",
                      "query_encode_s": round(query_encode_s, 1), "rows": ann}}
    print("\n| actors | paragraphs | vectors | shards | wall s | paragraphs/s | driver MiB | actor peak MiB | index MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in runs:
        print(f"| {r['actors']} | {r['paragraphs']} | {r['vectors']} | {r['shards']} | {r['wall_s']} | "
              f"{r['paragraphs_per_s']} | {r['memory']['driver_mib']} | {r['memory']['actor_max_mib']} | {r['index_disk_mib']} |")
    print(f"\nANN at {len(stored.vectors)} real vectors, {len(sentences)} queries, one thread:")
    print("| index | bytes/vector | p50 ms | p95 ms | recall@10 |")
    print("| --- | --- | --- | --- | --- |")
    for r in ann:
        print(f"| {r['index']} | {r['bytes_per_vector']} | {r['p50_ms']} | {r['p95_ms']} | {r['recall@10']} |")
    write_result(args.out, result)


if __name__ == "__main__":
    main()
