"""Publishing what the churn learner learned: the compiled churn model, and the customer
segmentation once it is ready, each as a new version in the model registry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from scorers.learner import OnlineLearner
from streams.models.registry import CHURN_MODEL, CLUSTERS_MODEL, ModelRegistry

__all__ = ["publish_learned"]

#: Runs a registry step (retrying it while Redis fails, in the learner service).
Step = Callable[[Callable[[], Awaitable[int]]], Awaitable[int]]


async def publish_learned(
    registry: ModelRegistry,
    learner: OnlineLearner,
    snapshot: Mapping[str, Any],
    offsets: Mapping[int, int],
    run: Step,
) -> int:
    """Publish ``learner``'s churn model (with its prequential ``snapshot`` and the training
    ``offsets`` it covers as metadata) and, once ready, its segmentation; the churn version."""
    scorer = learner.model.compile()
    metadata = {
        "n_examples": learner.n_examples,
        "kind": scorer.kind,
        "drifts": learner.drifts,
        "metrics": snapshot,
        "published_at_offsets": {str(p): o for p, o in sorted(offsets.items())},
    }
    version = await run(partial(registry.publish, CHURN_MODEL, scorer.to_bytes(), metadata))
    if learner.clusters.ready:
        assigner = learner.clusters.compile()
        about = {"n_examples": assigner.n_examples, "centres": assigner.centres_in_units()}
        await run(partial(registry.publish, CLUSTERS_MODEL, assigner.to_bytes(), about))
    return version
