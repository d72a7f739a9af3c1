"""Generate step, choosing the backend: which generator serves a model, imported only when chosen.

The one decision: GGUF models go to a llama.cpp build when one is installed, because it decodes
several times faster than transformers on CPU and keeps the shared system prompt and worked
exchanges in its KV cache across calls: ik_llama.cpp (``qa.generation.ikllama``, the faster one on
this CPU), else llama.cpp through xllamacpp (``qa.generation.llamacpp``); other models go to
transformers (``qa.generation.hftransformers``). One loaded model serves every user: it loads
lazily under a lock and generation calls run one at a time.

    >>> gen = load_generator("small")                                               # doctest: +SKIP
    >>> "".join(gen.generate([{"role": "user", "content": "Capital of France? One word."}]))  # doctest: +SKIP
    'Paris'
"""

from __future__ import annotations

import os

from qa.errors import BackendUnavailable, InvalidArgument
from qa.generation.base import Generator
from qa.generation.models import ModelSpec, resolve_model

BACKENDS = ("ik", "llama", "transformers")
GGUF_BACKENDS = {"ik": ("ik_llama_cpp", "ik-llama-cpp-python"), "llama": ("xllamacpp", "xllamacpp")}  # (module, package)


def load_generator(
    model: str | os.PathLike[str] | ModelSpec | None = None,
    *,
    backend: str | None = None,
    threads: int | None = None,
) -> Generator:
    """A lazily loading generator for `model` (see `resolve_model`); nothing loads here.

    backend None picks, for GGUF models, ik_llama.cpp when ik-llama-cpp-python imports, else
    llama.cpp when xllamacpp does, else transformers (the only choice for other models); "ik",
    "llama" or "transformers" forces one and raises BackendUnavailable when it cannot serve.
    """
    spec = resolve_model(model)
    if backend not in (None, *BACKENDS):
        raise InvalidArgument(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend is None and spec.format == "gguf":
        backend = next((b for b, (module, _) in GGUF_BACKENDS.items() if _importable(module)), None)
    backend = backend or "transformers"
    if backend in GGUF_BACKENDS:
        module, package = GGUF_BACKENDS[backend]
        if spec.format != "gguf":
            raise BackendUnavailable(
                f"the {backend} backend needs a GGUF file; {spec.name!r} is a {spec.source} "
                "transformers model (use backend='transformers')"
            )
        if not _importable(module):
            raise BackendUnavailable(f"the {backend} backend needs {package}: pip install {package}")
        if backend == "ik":
            from qa.generation.ikllama import IkLlamaGenerator

            return IkLlamaGenerator(spec, threads=threads)
        from qa.generation.llamacpp import LlamaCppGenerator

        return LlamaCppGenerator(spec, threads=threads)
    missing = [m for m in ("torch", "transformers") if not _importable(m)]
    if spec.format == "gguf" and not _importable("gguf"):
        missing.append("gguf")
    if missing:
        raise BackendUnavailable(
            f"the transformers backend needs {', '.join(missing)}: "
            "pip install torch transformers accelerate gguf"
        )
    from qa.generation.hftransformers import TransformersGenerator

    return TransformersGenerator(spec, threads=threads)



def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
