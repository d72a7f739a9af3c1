"""What every benchmark script shares: the machine it ran on, and writing its JSON result atomically."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def machine_info(load_before: tuple[float, float, float], **extra) -> dict:
    """Cores, platform and load averages before and after the run (this machine is shared)."""
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(), **extra}


def write_result(out: str | os.PathLike, result: dict) -> None:
    """Write ``result`` as JSON to ``out`` (via a temporary file, so a reader never sees half of it)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")


def error_row(row: dict, width: int) -> str | None:
    """The markdown table row of a configuration that failed (its last ``width`` characters), else None."""
    return f"| {row['backend']} | {row['model']} | error: {row['error'][-width:]!r} |" if "error" in row else None


def decode_bound(row: dict, bandwidth_gb_s: float) -> tuple[float, str]:
    """(bound tok/s, decode/bound) of a result row: each token reads every weight byte once, so decode
    cannot beat bandwidth / ``weights_bytes``."""
    bound = bandwidth_gb_s * 1e9 / row["weights_bytes"]
    return bound, f"{row['decode_tok_s'] / bound:.2f}" if row["decode_tok_s"] else "-"


def timed_search(index, queries, k: int) -> tuple[list[float], list]:
    """Search one query at a time (as a user's question arrives): (latencies in s, ids found per query).
    ``index`` is anything with FAISS's ``search(queries, k)``."""
    import time

    latencies, found = [], []
    for query in queries:
        started = time.perf_counter()
        _, ids = index.search(query[None, :], k)
        latencies.append(time.perf_counter() - started)
        found.append(ids[0])
    return latencies, found
