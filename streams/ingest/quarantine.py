"""The last resort for dead letters Kafka refuses: an ERROR log, a metric and a bounded list.

A dead letter fits the broker's default message limit by construction
(:data:`schemas.DEAD_LETTER_MAX_BYTES`), but a dead-letter topic configured with a smaller
``max.message.bytes``, a deleted topic or a missing ACL can still refuse it. The round must not
fail then: its offsets would never be committed and every restart would read the same message
again. So each refused dead letter is logged at ERROR with where its message came from,
counted (``crm_deadletters_quarantined``, the learner's ``crm_training_deadletters_quarantined``)
and pushed onto the Redis list
``{prefix}:{quarantine}``, newest first, trimmed to ``CRM_DEADLETTER_QUARANTINE_MAXLEN``
entries. An entry is JSON: when, why Kafka refused, and the dead letter with at most
:data:`KEPT_VALUE_BYTES` of the original value (its size and SHA-256 stay, and the original
is still on its input topic at the coordinates given), so the list stays small. If Redis
refuses too, the ERROR log is the record; either way the offset moves on.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
from prometheus_client import Counter
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas import DeadLetter
from streams.round.messages import OutputMessage
from streams.state.keys import Layout

__all__ = ["KEPT_VALUE_BYTES", "Quarantine"]

log = logging.getLogger(__name__)

#: The most of an original value a quarantined dead letter keeps.
KEPT_VALUE_BYTES = 4096


class Quarantine:
    """Where dead letters go that the dead-letter topic refused (see the module docstring)."""

    def __init__(
        self, redis: Redis, prefix: str, maxlen: int, counter: Counter | None = None
    ) -> None:
        self.key = Layout(prefix).quarantine()
        self._redis = redis
        self._maxlen = maxlen
        self._counter = counter

    async def put(
        self, topic: str, messages: Sequence[OutputMessage], error: BaseException
    ) -> None:
        """Record dead letters that producing to ``topic`` failed with ``error``."""
        now = datetime.now(UTC).isoformat()
        entries = []
        for message in messages:
            letter = _parsed(message.value)
            log.error(
                "dead letter refused by %s partition %d (%s: %s); quarantined in %s: %s",
                topic,
                message.partition,
                type(error).__name__,
                error,
                self.key,
                _where(letter),
            )
            entries.append(
                orjson.dumps(
                    {
                        "quarantined_at": now,
                        "error": f"{type(error).__name__}: {error}"[:300],
                        "topic": topic,
                        "partition": message.partition,
                        "dead_letter": None if letter is None else _shrunk(letter),
                    }
                )
            )
        if self._counter is not None:
            self._counter.inc(len(entries))
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lpush(self.key, *entries)
                pipe.ltrim(self.key, 0, self._maxlen - 1)
                await pipe.execute()
        except RedisError as exc:
            log.error(
                "quarantine %s unavailable (%s): the log lines above are the record", self.key, exc
            )

    async def entries(self) -> list[dict[str, object]]:
        """The quarantined dead letters, newest first (for operators and tests)."""
        return [orjson.loads(raw) for raw in await self._redis.lrange(self.key, 0, -1)]


def _parsed(value: bytes) -> DeadLetter | None:
    try:
        return DeadLetter.from_json_bytes(value)
    except ValidationError:  # not one of ours: keep nothing but the log line
        return None


def _where(letter: DeadLetter | None) -> str:
    if letter is None:
        return "not a dead letter"
    return (
        f"{letter.reason.value} from {letter.source_topic}[{letter.partition}]@{letter.offset}, "
        f"value {letter.value_size} bytes sha256 {letter.value_sha256}"
    )


def _shrunk(letter: DeadLetter) -> object:
    kept = letter.original_value()[:KEPT_VALUE_BYTES]
    small = letter.model_copy(
        update={
            "value_b64": base64.b64encode(kept).decode("ascii"),
            "value_truncated": letter.value_truncated or len(kept) < letter.value_size,
        }
    )
    return orjson.loads(small.to_json_bytes())
