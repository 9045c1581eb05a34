"""Versioned parameters every worker shares: the model registry in Redis, the population
statistics (RFM quintile boundaries) fitted on stored profiles, and keeping both current.
"""

from streams.models.population import refresh_rfm_boundaries
from streams.models.refresh import ModelFollower
from streams.models.registry import ModelRegistry, ModelVersion, fit_and_publish

__all__ = [
    "ModelFollower",
    "ModelRegistry",
    "ModelVersion",
    "fit_and_publish",
    "refresh_rfm_boundaries",
]
