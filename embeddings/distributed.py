"""Step 4c on a cluster: embed a corpus with Ray Data and write the same index as ``build_index``.

The one decision: only the model runs on the cluster. The documents to embed are cut into shards of
about ``shard_chars`` characters; an actor that loaded the encoder once splits and embeds each shard
with the local path's own ``embed_documents``; the driver writes every finished shard atomically to
``<index dir>/.ray-shards/<key>/shard-00012.npz`` and then joins them, and ``build_index`` writes
and switches the version exactly as a local build does. A killed job resumes: shards already on disk
are read back, not embedded again (``key`` hashes the documents, embedder, settings and shard size).

Ray is optional (``pip install 'qa-chatbot[ray]'``) and imported only inside these functions; the
local path never imports this module.

    stored, stats = build_index_on_ray("corpus/", "index/", embedder="all-MiniLM-L6-v2", actors=2)
    stats.embedded, stats.reused  # shards embedded by this run, shards read back from a killed one
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from embeddings import files
from embeddings.build import Progress, build_index, embed_documents
from embeddings.documents import Document, DocumentMeta
from embeddings.encoder import DEFAULT_EMBEDDER, Encoder, resolve_backend
from embeddings.errors import QAError
from embeddings.paragraphs import Passage
from embeddings.store import IndexSettings, StoredIndex

RAY_HINT = "Ray is not installed: pip install 'qa-chatbot[ray]' (or pip install 'ray[data]')"
SHARD_CHARS = 200_000  # characters of documents per shard: ~1 minute of all-mpnet-base-v2 on 2 cores
SHARDS_DIR = ".ray-shards"
_SHARD_NAME = re.compile(r"shard-(\d{5})\.npz")
_ERROR_LINE = re.compile(r"^(?:\w+\.)*(\w*Error: .*)$", re.MULTILINE)  # "embeddings.errors.EncoderError: ..."
EncoderFactory = Callable[[], Encoder]


def import_ray():
    """The ``ray`` module, or a ``QAError`` with the install hint."""
    try:
        import ray
        import ray.data  # noqa: F401 - the [data] extra
    except ImportError as exc:
        raise QAError(f"{RAY_HINT} ({exc})") from None
    return ray


def ray_address(address: str | None) -> str | None:
    """The cluster to use: ``address``, else ``$QA_RAY_ADDRESS``; None or "" starts a local one."""
    address = address if address else os.environ.get("QA_RAY_ADDRESS", "")
    return address.strip() or None


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None, ship_code: bool | None = None,
                packages: Sequence[Path] = ()) -> Iterator[object]:
    """Connect to ``address`` (``auto``, ``host:port``, ``ray://host:10001``) or, when it is None, start a
    private local Ray bound to 127.0.0.1: no dashboard, no usage statistics. Shuts down what it started.

    ``ship_code`` (default: when connecting to a cluster) uploads the ``embeddings`` package, and the
    other ``packages`` folders a caller names (``qa`` for batch evaluation), to the workers with
    ``runtime_env={"py_modules": ...}``; their dependencies (torch, sentence-transformers, faiss, the
    model packages) must be installed on the cluster's image.
    """
    ray = import_ray()
    if ray.is_initialized():  # the caller manages the session (tests, notebooks)
        yield ray
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options: dict = {"include_dashboard": False, "log_to_driver": False, "logging_level": "warning"}
    if ship_code if ship_code is not None else address is not None:
        import embeddings

        options["runtime_env"] = {"py_modules": [Path(embeddings.__file__).parent, *map(Path, packages)],
                                  "env_vars": {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}}
    if address is None:
        ray.init(address="local", num_cpus=num_cpus, _node_ip_address="127.0.0.1", **options)
    else:
        options.pop("include_dashboard")  # a setting of the cluster, not of a client
        ray.init(address=address, **options)
    try:
        yield ray
    finally:
        ray.shutdown()


# --- shards ----------------------------------------------------------------------------------------


def plan_shards(documents: Sequence[Document], shard_chars: int = SHARD_CHARS) -> list[list[int]]:
    """Consecutive groups of document positions of about ``shard_chars`` characters each.

    >>> [len(g) for g in plan_shards([Document(str(i), "x" * 60, "", DocumentMeta("t")) for i in range(5)], 100)]
    [2, 2, 1]
    """
    if shard_chars < 1:
        raise ValueError(f"shard_chars must be >= 1, got {shard_chars}")
    groups: list[list[int]] = []
    size = shard_chars
    for i, document in enumerate(documents):
        if size + len(document.text) > shard_chars and (not groups or groups[-1]):
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += len(document.text)
    return groups


def shard_key(documents: Sequence[Document], embedder: str, settings: IndexSettings, shard_chars: int) -> str:
    """What the shards of one job depend on; another corpus state or setting gets other shards."""
    body = json.dumps([embedder, asdict(settings), shard_chars, [(d.path, d.sha256) for d in documents]])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


def _documents_payload(documents: Sequence[Document]) -> str:
    return json.dumps([{"path": d.path, "text": d.text, "sha256": d.sha256, "meta": asdict(d.meta)} for d in documents],
                      ensure_ascii=False)


def _documents_from(payload: str) -> list[Document]:
    return [Document(d["path"], d["text"], d["sha256"], DocumentMeta(**d["meta"])) for d in json.loads(payload)]


def pack_shard(passages: list[Passage], units: np.ndarray, vectors: np.ndarray, encoder: Encoder) -> bytes:
    """One embedded shard as the bytes of an ``.npz`` file (no pickles)."""
    meta = {"passages": [asdict(p) for p in passages], "dim": int(encoder.dim), "max_tokens": int(encoder.max_tokens)}
    buffer = io.BytesIO()
    np.savez(buffer, units=units.astype(np.int64), vectors=vectors.astype(np.float32),
             meta=np.frombuffer(json.dumps(meta, ensure_ascii=False).encode("utf-8"), dtype=np.uint8))
    return buffer.getvalue()


def unpack_shard(data: bytes | Path) -> tuple[list[Passage], np.ndarray, np.ndarray, dict]:
    """(passages, units (n, 3) int64, vectors (n, dim) float32, {"dim", "max_tokens"}) of a shard."""
    with np.load(io.BytesIO(data) if isinstance(data, bytes) else data, allow_pickle=False) as npz:
        meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
        return [Passage(**p) for p in meta.pop("passages")], npz["units"], npz["vectors"], meta


class ShardEmbedder:
    """A Ray Data actor: loads the encoder once, then splits and embeds one shard per batch."""

    def __init__(self, encoder_factory: EncoderFactory, settings: IndexSettings) -> None:
        self.encoder = encoder_factory()
        if hasattr(self.encoder, "warm_up"):
            self.encoder.warm_up()
        self.settings = settings

    def __call__(self, batch: dict) -> dict:
        payloads = []
        for documents in batch["documents"]:
            passages, units, vectors = embed_documents(_documents_from(str(documents)), self.encoder, self.settings)
            payloads.append(pack_shard(passages, units, vectors, self.encoder))
        return {"shard": np.asarray(batch["shard"]), "payload": np.array(payloads, dtype=object)}


def load_named_encoder(name: str, backend: str | None = None) -> Encoder:
    """``embeddings.encoder.load_encoder(name, backend=backend)``, looked up when called (on the worker)."""
    from embeddings import encoder

    return encoder.load_encoder(name, backend=backend)


def describe_encoder(encoder_factory: EncoderFactory) -> dict:
    encoder = encoder_factory()
    return {"dim": int(encoder.dim), "max_tokens": int(encoder.max_tokens)}


@dataclass
class RayStats:
    """What one ``build_index_on_ray`` call did."""

    shards: int = 0  # shards of the documents that needed embedding
    embedded: int = 0  # embedded by this call on the cluster
    reused: int = 0  # read back from the checkpoint of an earlier, killed call
    key: str = ""  # the checkpoint folder's name under .ray-shards/
    embedded_ids: list[int] = field(default_factory=list)


@dataclass
class ClusterEncoder:
    """The driver's view of an encoder that runs on the cluster: its name, and the dimension and window
    the shards report (asked from a worker only when no shard was embedded)."""

    name: str
    factory: EncoderFactory
    _described: dict | None = None

    def describe(self) -> dict:
        if self._described is None:
            ray = import_ray()
            self._described = ray.get(ray.remote(describe_encoder).remote(self.factory))
        return self._described

    @property
    def dim(self) -> int:
        return self.describe()["dim"]

    @property
    def max_tokens(self) -> int:
        return self.describe()["max_tokens"]

    def count_tokens(self, text: str) -> int:  # pragma: no cover - the driver never splits
        raise NotImplementedError("the cluster splits the passages")

    def encode(self, texts):  # pragma: no cover - the driver never embeds
        raise NotImplementedError("the cluster embeds")


def _rows(dataset) -> Iterator[dict]:
    """The dataset's rows; a failure on the cluster (an encoder that cannot load...) becomes a ``QAError``
    naming its cause instead of Ray's traceback."""
    try:
        yield from dataset.iter_rows()
    except Exception as exc:  # noqa: BLE001 - Ray wraps the worker's error in its own types
        cause, seen = exc, set()
        while id(cause) not in seen and not isinstance(cause, QAError):
            seen.add(id(cause))
            cause = getattr(cause, "cause", None) or cause.__cause__ or cause
        if isinstance(cause, QAError):
            raise type(cause)(str(cause)) from None
        errors = _ERROR_LINE.findall(str(exc))  # an actor that died in its constructor links no cause
        reason = errors[-1] if errors else f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[-1]}"
        raise QAError(f"embedding on Ray failed ({reason}); the shards finished so far are kept: run the "
                      "command again to resume") from None


def embed_on_ray(documents: list[Document], settings: IndexSettings, *, encoder: ClusterEncoder, shards_root: Path,
                 actors: int, cpus_per_actor: float, shard_chars: int, stats: RayStats,
                 progress: Progress | None = None) -> tuple[list[Passage], np.ndarray, np.ndarray]:
    """``embed_documents`` on the cluster, shard by shard, with the finished shards kept on disk."""
    ray = import_ray()
    groups = plan_shards(documents, shard_chars)
    stats.key = shard_key(documents, encoder.name, settings, shard_chars)
    folder = shards_root / stats.key
    folder.mkdir(parents=True, exist_ok=True)
    done = {int(m.group(1)) for p in folder.iterdir() if (m := _SHARD_NAME.fullmatch(p.name))}
    todo = [i for i in range(len(groups)) if i not in done]
    stats.shards, stats.reused = len(groups), len(groups) - len(todo)
    total = sum(len(documents[j].text) for g in groups for j in g) or 1
    finished = sum(len(documents[j].text) for i in done for j in groups[i])
    if todo:
        rows = [{"shard": i, "documents": _documents_payload([documents[j] for j in groups[i]])} for i in todo]
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
        embedded = dataset.map_batches(
            ShardEmbedder, fn_constructor_args=(encoder.factory, settings), batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(actors, len(todo))), num_cpus=cpus_per_actor,
        )
        for row in _rows(embedded):  # as shards finish, in any order
            i, payload = int(row["shard"]), bytes(row["payload"])
            files.write_atomic(folder / f"shard-{i:05d}.npz", payload)
            stats.embedded += 1
            stats.embedded_ids.append(i)
            if encoder._described is None:
                encoder._described = unpack_shard(payload)[3]
            finished += sum(len(documents[j].text) for j in groups[i])
            if progress is not None:
                progress(finished, total)
    passages: list[Passage] = []
    units, vectors = [], []
    for i in range(len(groups)):
        shard_passages, shard_units, shard_vectors, described = unpack_shard(folder / f"shard-{i:05d}.npz")
        encoder._described = encoder._described or described
        shard_units = shard_units.copy()
        shard_units[:, 0] += len(passages)  # passage rows continue from the previous shards'
        passages += shard_passages
        units.append(shard_units)
        vectors.append(shard_vectors)
    if not groups:
        return [], np.zeros((0, 3), np.int64), np.zeros((0, encoder.dim), np.float32)
    return passages, np.concatenate(units), np.concatenate(vectors)


def build_index_on_ray(
    corpus_dir: str | os.PathLike,
    index_dir: str | os.PathLike,
    *,
    embedder: str = DEFAULT_EMBEDDER,
    settings: IndexSettings = IndexSettings(),
    rebuild: bool = False,
    progress: Progress | None = None,
    address: str | None = None,
    actors: int = 2,
    cpus_per_actor: float = 1,
    shard_chars: int = SHARD_CHARS,
    encoder_factory: EncoderFactory | None = None,
) -> tuple[StoredIndex, RayStats]:
    """``build_index`` with the embedding on Ray; returns the loaded index and what the cluster did.

    ``address``: see ``ray_session`` (None: a local Ray on 127.0.0.1). ``encoder_factory`` makes the
    encoder on each actor (default: ``load_encoder(embedder)``; it must pickle, e.g. a module-level
    class or a ``functools.partial``). The checkpoint of finished shards is deleted once the new
    version is live.
    """
    if actors < 1:
        raise ValueError(f"actors must be >= 1, got {actors}")
    index_dir = Path(index_dir)
    if encoder_factory is None:  # the driver decides the backend, so every worker runs the same one
        backend = resolve_backend()
        encoder_factory = functools.partial(load_named_encoder, embedder, backend)
        embedder = load_named_encoder(embedder, backend).name  # e.g. all-mpnet-base-v2+bf16; nothing loads
    encoder = ClusterEncoder(embedder, encoder_factory)
    stats = RayStats()
    shards_root = index_dir / SHARDS_DIR
    embed = functools.partial(embed_on_ray, encoder=encoder, shards_root=shards_root, actors=actors,
                              cpus_per_actor=cpus_per_actor, shard_chars=shard_chars, stats=stats)
    with ray_session(address):
        stored = build_index(corpus_dir, index_dir, encoder=encoder, settings=settings, rebuild=rebuild,
                             progress=progress, embed=lambda documents, s, p: embed(documents, s, progress=p))
    shutil.rmtree(shards_root, ignore_errors=True)
    return stored, stats
