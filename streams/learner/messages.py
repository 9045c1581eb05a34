"""What the learner reads and writes on Kafka: training examples in, dead letters and model-drift
alerts out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from crm_core.errors import EventRejected
from schemas import Alert, AlertType, Severity, TrainingExample

__all__ = ["DeliveryQueue", "drift_alert", "drift_reasons", "parse_example"]

log = logging.getLogger(__name__)
_Output = tuple[str, int | None, bytes | None, bytes]  # topic, partition, key, value

_REASONS = {
    "json_invalid": "not_json",
    "model_type": "not_an_object",
    "model_attributes_type": "not_an_object",
}


def parse_example(value: bytes | None) -> TrainingExample:
    """The training example in a message value; EventRejected (a dead-letter reason) if none.

    >>> parse_example(b"[1]")
    Traceback (most recent call last):
    ...
    crm_core.errors.EventRejected: not_an_object: training example: ...
    """
    if not value or not value.strip():
        raise EventRejected("empty_message", "the training message has no value")
    try:
        return TrainingExample.from_json_bytes(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the message"
        reason = _REASONS.get(first["type"], "schema_violation")
        if first["loc"] == ("schema_version",):
            reason = "unsupported_schema_version"
        raise EventRejected(
            reason, f"training example: {where}: {first['msg']} ({exc.error_count()} errors)"
        ) from None


def drift_reasons(
    current: Mapping[str, Any],
    reference: Mapping[str, Any] | None,
    n_examples: int,
    recent: tuple[float, int] | None = None,
) -> list[str]:
    """Which prequential metrics got worse, in words.

    ``reference`` is the snapshot when the last version was published (None before the first:
    the sliding window is then compared with the cumulative figures); ``recent`` is the mean log
    loss of the examples learned since then, and how many there were.

    >>> drift_reasons({"window_log_loss": 0.58, "window_auc": 0.61, "window_n": 500},
    ...               {"window_log_loss": 0.41, "window_auc": 0.83}, 3000, (1.32, 40))
    ['prequential log loss rose from 0.41 to 1.32 over the 40 examples since the last version', 'prequential AUC fell from 0.83 to 0.61 (last 500 examples)']
    """  # noqa: E501
    reasons = []
    window = current.get("window_n")
    tail = f" (last {window} examples)" if window else ""
    checks = (
        ("log_loss", "prequential log loss", 1),
        ("auc", "prequential AUC", -1),
        ("top_decile_recall", "top-decile recall", -1),
    )
    for name, label, worse in checks:
        now, now_tail = current.get(f"window_{name}"), tail
        if name == "log_loss" and recent is not None and recent[1]:
            now, now_tail = recent[0], f" over the {recent[1]} examples since the last version"
        if reference is not None:
            before, since = reference.get(f"window_{name}"), ""
        else:
            before, since = current.get(name), " (cumulative)"
        if not isinstance(now, int | float) or not isinstance(before, int | float):
            continue
        if (round(now, 2) - round(before, 2)) * worse > 0:  # a change the words can show
            verb = "rose" if worse > 0 else "fell"
            reasons.append(f"{label} {verb} from {before:.2f}{since} to {now:.2f}{now_tail}")
    if not reasons:
        reasons.append(
            f"the drift detector on prequential errors fired after {n_examples} examples"
        )
    return reasons


def drift_alert(
    *,
    snapshot: Mapping[str, Any],
    reference: Mapping[str, Any] | None,
    reference_version: int | None,
    recent: tuple[float, int] | None,
    n_examples: int,
    drifts: int,
    kind: str,
    event_time: datetime,
) -> Alert:
    """A ``model_drift`` alert for the churn model after ``n_examples`` learned examples.

    The idempotency key names the example count, so a learner that resumes from a checkpoint and
    detects the same drift again publishes an alert consumers already deduplicate.
    """
    scores = {k: v for k, v in snapshot.items() if v is None or isinstance(v, int | float | str)}
    return Alert(
        alert_type=AlertType.MODEL_DRIFT,
        severity=Severity.WARNING,
        customer_id=None,
        event_time=event_time,
        idempotency_key=f"model_drift:churn:{n_examples}",
        scores=scores,
        reasons=drift_reasons(snapshot, reference, n_examples, recent),
        details={
            "model": "churn",
            "kind": kind,
            "n_examples": n_examples,
            "drifts": drifts,
            "metrics": dict(snapshot),
            "reference_metrics": None if reference is None else dict(reference),
            "reference_version": reference_version,
            "log_loss_since_reference": None if recent is None else recent[0],
            "examples_since_reference": None if recent is None else recent[1],
        },
    )


class DeliveryQueue:
    """Messages sent but not yet acknowledged; :meth:`delivered` waits for them all (before a
    checkpoint covers their examples), re-sending any that failed, so none is lost."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._pending: list[tuple[asyncio.Future[Any] | None, _Output]] = []

    async def send(
        self, topic: str, partition: int | None, key: bytes | None, value: bytes
    ) -> None:
        """Send one message (``partition`` None: by key); acknowledged in :meth:`delivered`."""
        output = (topic, partition, key, value)
        try:
            future = await self._producer.send(topic, value, key=key, partition=partition)
        except KafkaError as exc:
            log.warning("could not send to %s (%s); will re-send", topic, exc)
            future = None
        self._pending.append((future, output))

    async def delivered(self) -> None:
        """Until every message sent so far is acknowledged (re-sending with backoff)."""
        delay = 0.1
        while self._pending:
            pending, self._pending = self._pending, []
            waiting = [f for f, _ in pending if f is not None]
            results = iter(await asyncio.gather(*waiting, return_exceptions=True))
            failed = [
                out
                for future, out in pending
                if future is None or isinstance(next(results), BaseException)
            ]
            if failed:
                log.warning("%d learner outputs not acknowledged; re-sending", len(failed))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                for out in failed:
                    await self.send(*out)
