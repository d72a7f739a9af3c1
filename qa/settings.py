"""Configuration: one frozen ``Settings``, read from ``QA_*`` environment variables by ``from_env``."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from embeddings.encoder import DEFAULT_EMBEDDER
from embeddings.packaged import cache_dir
from embeddings.store import IndexSettings
from qa.answer import AnswerSettings
from qa.errors import InvalidArgument
from qa.generation.factory import BACKENDS
from qa.retrieve import RetrievalSettings, check_k

SEEDS = Path(__file__).resolve().parents[1] / "seeds"  # the default corpus


def default_index_dir(corpus: Path) -> Path:
    """Each corpus folder gets its own index under the cache: ``indexes/<name>-<hash of its path>``."""
    resolved = Path(corpus).expanduser().resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    return cache_dir() / "indexes" / f"{resolved.name or 'corpus'}-{digest}"


@dataclass(frozen=True)
class Settings:
    corpus: Path = SEEDS  # folder of .txt / .md documents
    index_dir: Path | None = None  # None: default_index_dir(corpus)
    embedder: str = DEFAULT_EMBEDDER  # packaged name, local path or hub id of a sentence-transformers model
    model: str = "default"  # "default", "small", a .gguf file, a transformers folder or a hub id
    backend: str | None = None  # "ik", "llama" or "transformers"; None: see qa.generation.factory.load_generator
    k: int = 5  # passages retrieved and shown
    auto_update: bool = True  # build a missing index / update a stale one instead of raising
    index: IndexSettings = field(default_factory=IndexSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)

    def __post_init__(self) -> None:
        for name in ("corpus", "index_dir"):  # Path("") is ".": an empty option would mean the current folder
            value = getattr(self, name)
            if isinstance(value, str) and not value.strip():
                raise InvalidArgument(f"{name.replace('_', ' ')} must be a folder, got an empty path")
        object.__setattr__(self, "corpus", Path(self.corpus).expanduser())
        if self.index_dir is not None:
            object.__setattr__(self, "index_dir", Path(self.index_dir).expanduser())
        check_k(self.k)
        if self.backend is not None and self.backend not in BACKENDS:
            raise InvalidArgument(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")

    @property
    def resolved_index_dir(self) -> Path:
        return self.index_dir if self.index_dir is not None else default_index_dir(self.corpus)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> Settings:
        """Settings from ``QA_CORPUS``, ``QA_INDEX_DIR``, ``QA_EMBEDDER``, ``QA_MODEL``, ``QA_BACKEND``, ``QA_K``,
        ``QA_CONTEXT_TOKENS``, ``QA_EXTRACTIVE`` (shapes answered with the passages' own sentences, comma
        separated; "none" for none); keyword overrides that are not None win."""
        env = os.environ if environ is None else environ
        values: dict = {}
        for name, var in (("corpus", "QA_CORPUS"), ("index_dir", "QA_INDEX_DIR"), ("embedder", "QA_EMBEDDER"),
                          ("model", "QA_MODEL"), ("backend", "QA_BACKEND")):
            if env.get(var):
                values[name] = env[var]
        if env.get("QA_K"):
            values["k"] = _whole(env, "QA_K")
        answer = {}
        if env.get("QA_CONTEXT_TOKENS"):
            answer["context_tokens"] = _whole(env, "QA_CONTEXT_TOKENS")
        if env.get("QA_EXTRACTIVE"):
            shapes = (s.strip() for s in env["QA_EXTRACTIVE"].split(","))
            answer["extractive"] = tuple(s for s in shapes if s not in ("", "none"))
        if answer:
            values["answer"] = AnswerSettings(**answer)
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)


def _whole(env, var: str) -> int:
    try:
        return int(env[var])
    except ValueError:
        raise InvalidArgument(f"{var} must be a whole number, got {env[var]!r}") from None
