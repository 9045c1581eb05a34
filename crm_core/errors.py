"""The one exception root of crm-scoring.

Every error the project raises on purpose derives from :class:`CrmScoringError`, so callers can
catch "anything crm-scoring said no to" in one place. Subpackages refine it::

    CrmScoringError
    ├── ConfigError            settings or environment are wrong (fix the config and restart)
    ├── ServiceError           a local Kafka/Redis service could not be set up or started
    ├── EventRejected          one input message is invalid (it goes to the dead-letter topic)
    ├── StateStoreError        Redis refused or lost an update (the batch is retried, not committed)
    ├── DecryptionError        stored encrypted data does not decrypt (altered, or another key)
    └── ModelError             a scorer cannot score with the parameters it has
        └── FitRejected        a model fit is degenerate; the last good version stays

Messages say what went wrong and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CrmScoringError",
    "DecryptionError",
    "EventRejected",
    "FitRejected",
    "ModelError",
    "ServiceError",
    "StateStoreError",
]


class CrmScoringError(Exception):
    """Root of every error crm-scoring raises on purpose."""


class ConfigError(CrmScoringError):
    """Settings or the environment are wrong; fix them and start again."""


class ServiceError(CrmScoringError):
    """A local service (Kafka, Redis) could not be installed, started or reached."""


class EventRejected(CrmScoringError):
    """One input message is invalid; it is dead-lettered with ``reason``, never retried.

    ``reason`` is a :class:`schemas.DeadLetterReason` value.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class StateStoreError(CrmScoringError):
    """The state store could not apply a batch; it is retried and its offsets are not committed."""


class DecryptionError(CrmScoringError):
    """Stored encrypted data (a customer's contact details) does not decrypt: it was altered or
    copied from another customer, or the key under its id is not the one it was sealed with."""


class ModelError(CrmScoringError):
    """A scorer cannot produce a score with what it was given (e.g. unfitted parameters)."""


class FitRejected(ModelError):
    """A fit came out degenerate (log-likelihood not finite or positive, a parameter at its
    bound); it is not published and the last good version stays in use."""
