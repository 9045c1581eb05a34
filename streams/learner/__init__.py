"""The churn learner: one leader learns from ``crm.training`` and publishes model versions.

:mod:`~streams.learner.service` is the service, :mod:`~streams.learner.messages` what it reads
and writes on Kafka, :mod:`~streams.learner.state` its leader lock and checkpoint in Redis.
"""

from streams.learner.service import LearnerService

__all__ = ["LearnerService"]
