"""Generate step: the ``Generator`` protocol, the packaged models and the backends that serve them."""

from qa.generation.base import Generator
from qa.generation.factory import BACKENDS, load_generator
from qa.generation.models import PACKAGED, ModelSpec, installed_models, resolve_model

__all__ = ["BACKENDS", "PACKAGED", "Generator", "ModelSpec", "installed_models", "load_generator", "resolve_model"]
