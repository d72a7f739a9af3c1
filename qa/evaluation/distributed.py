"""Evaluate step on a cluster: answer a batch of questions with a pool of Ray actors.

The one decision: each actor builds one ``Pipeline`` (encoder, index, model) once and answers one
question at a time with the same ``Pipeline.answer`` as everywhere else; results come back as they
finish, tagged with the question's position, and the runner (``qa.evaluation.runner.run_eval``) writes them in
input order. With greedy decoding every actor gives the answer the sequential run gives.

    for i, result in answer_on_ray(["Who was Macron's envoy?", ...], Settings(), address=None, actors=2):
        ...  # result: Answer.to_dict(), or a failed question's {"error": ...}

Ray is optional (``pip install 'qa-chatbot[ray]'``) and imported only when used. Each actor needs the
corpus and index at the same path as the driver (shared storage, or built there on first use) and the
model packages installed on its node; ``embeddings.distributed.ray_session`` explains the connection.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from qa.settings import Settings

PipelineFactory = Callable[[], object]  # () -> a Pipeline; must pickle (module-level, or functools.partial)


def make_pipeline(settings: Settings):
    """A ``Pipeline`` for ``settings`` (looked up when called, on the actor)."""
    from qa import pipeline

    return pipeline.Pipeline(settings)


class PipelineActor:
    """Holds one pipeline, loaded once; answers one question per call."""

    def __init__(self, factory: PipelineFactory) -> None:
        self.factory = factory
        self.pipeline = None

    def ready(self) -> bool:
        """Load embedder, index and model (a setup error is raised here, typed, not per question)."""
        if self.pipeline is None:
            self.pipeline = self.factory()
            self.pipeline.warm_up()
        return True

    def answer(self, position: int, question: str) -> tuple[int, dict]:
        from qa.evaluation.runner import answered  # the runner's own error handling

        return position, answered(self.pipeline.answer, question)


def answer_on_ray(questions: Sequence[str], settings: Settings, *, address: str | None = None, actors: int = 2,
                  cpus_per_actor: float = 1, pipeline_factory: PipelineFactory | None = None
                  ) -> Iterator[tuple[int, dict]]:
    """Yield (position, results dict) for each of ``questions`` as an actor finishes it.

    ``address``: a running cluster, or None for a local Ray on 127.0.0.1 (``ray_session``), shut down
    when the iterator ends. A setup error on an actor (``IndexNotFound``, ``ModelNotFound``...) is
    raised as itself.
    """
    import qa
    from embeddings.distributed import ray_session

    if actors < 1:
        raise ValueError(f"actors must be >= 1, got {actors}")
    if not questions:
        return
    factory = pipeline_factory or functools.partial(make_pipeline, settings)
    with ray_session(address, packages=[Path(qa.__file__).parent]) as ray:
        from ray.util import ActorPool

        remote = ray.remote(num_cpus=cpus_per_actor)(PipelineActor)
        pool_size = max(1, min(actors, len(questions)))
        handles = [remote.remote(factory) for _ in range(pool_size)]
        try:
            try:
                ray.get([h.ready.remote() for h in handles])
            except ray.exceptions.RayTaskError as exc:
                raise exc.cause from None
            pool = ActorPool(handles)
            yield from pool.map_unordered(lambda actor, item: actor.answer.remote(*item), list(enumerate(questions)))
        finally:
            for handle in handles:
                ray.kill(handle)
