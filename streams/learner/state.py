"""The learner's Redis state: the leader lock, and the fenced checkpoint it resumes from.

Exactly one process learns. It holds a lock (``SET NX PX`` with a random token, renewed by a
compare-and-renew script, released by a compare-and-delete one); the others poll and take over
once it expires. A lock alone cannot stop a leader that stalled past its lease from writing a
stale checkpoint after its successor started, so each leader also takes a *fencing epoch*
(``INCR``) when it wins, and a checkpoint is written only while the epoch is still its own
(one script: check and ``SET``). The epoch and the checkpoint share the hash tag of the model
(``{model:churn}``), so the script runs on Redis Cluster unchanged::

    <prefix>:{lock:learner}            the lock: a leader's token, with a TTL
    <prefix>:{model:churn}:epoch       fencing counter, one increment per leadership
    <prefix>:{model:churn}:checkpoint  header length (4 bytes) + JSON header + learner bytes
"""

from __future__ import annotations

import contextlib
import logging
import struct
import time
import uuid
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from crm_core.errors import ModelError
from streams.state.fenced import fenced_set

__all__ = ["Checkpoint", "CheckpointStore", "LeaderLock", "decode_checkpoint", "encode_checkpoint"]

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_HEADER = struct.Struct(">I")
_FORMAT = 2
_UNCOMPRESSED = 1  # the format before version 2 (still read)


class LeaderLock:
    """A Redis lock with a lease: :meth:`acquire`, then :meth:`renew` well within ``ttl``.

    ``held`` says whether this process may act as the holder: it turns False when a renewal
    finds the lock gone or someone else's, or when Redis failed until the lease ran out.
    """

    def __init__(self, client: aioredis.Redis, key: str, ttl_seconds: float) -> None:
        self.key = key
        self.token = uuid.uuid4().hex
        self.ttl = ttl_seconds
        self.held = False
        self._client = client
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        self._lease_until = 0.0
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    async def acquire(self) -> bool:
        """Take the lock if nobody holds it (Redis errors propagate)."""
        sent = time.monotonic()
        if await self._client.set(self.key, self.token, nx=True, px=self._ttl_ms):
            self.held, self._lease_until = True, sent + self.ttl
        return self.held

    async def renew(self) -> bool:
        """Extend the lease if held; False (and ``held`` False) once the lock is lost."""
        if not self.held:
            return False
        sent = time.monotonic()
        try:
            renewed = await self._renew(keys=[self.key], args=[self.token, self._ttl_ms])
        except (RedisError, OSError) as exc:
            if time.monotonic() > self._lease_until:
                log.warning("lease of %s ran out while Redis failed (%s)", self.key, exc)
                self.held = False
            return self.held
        if renewed:
            self._lease_until = sent + self.ttl
        else:
            log.warning("lock %s lost (expired or taken)", self.key)
            self.held = False
        return self.held

    async def release(self) -> None:
        """Give the lock up if it is still ours (compare-and-delete; errors are ignored: the
        lock then expires)."""
        self.held = False
        with contextlib.suppress(RedisError, OSError):
            await self._release(keys=[self.key], args=[self.token])


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a new leader resumes from: the learner and the next offset of each partition."""

    learner: bytes
    offsets: dict[int, int]
    topic: str
    n_examples: int


def encode_checkpoint(checkpoint: Checkpoint) -> bytes:
    """One blob: header length, JSON header (format, topic, offsets, n), learner bytes
    (format 2: compressed with zlib, level 1, about a third of the pickle's size; most of it
    is the learned examples' idempotency keys; format 1, uncompressed, still reads).

    >>> blob = encode_checkpoint(Checkpoint(b"L", {0: 5, 1: 7}, "crm.training", 12))
    >>> decode_checkpoint(blob) == Checkpoint(b"L", {0: 5, 1: 7}, "crm.training", 12)
    True
    """
    header = orjson.dumps(
        {
            "format": _FORMAT,
            "topic": checkpoint.topic,
            "offsets": {str(p): o for p, o in sorted(checkpoint.offsets.items())},
            "n_examples": checkpoint.n_examples,
        }
    )
    return _HEADER.pack(len(header)) + header + zlib.compress(checkpoint.learner, 1)


def decode_checkpoint(blob: bytes) -> Checkpoint:
    """Read :func:`encode_checkpoint`'s blob; ModelError if it is not one."""
    try:
        (size,) = _HEADER.unpack_from(blob)
        header: dict[str, Any] = orjson.loads(blob[_HEADER.size : _HEADER.size + size])
        if header.get("format") not in (_UNCOMPRESSED, _FORMAT):
            raise ValueError(f"format {header.get('format')!r}")
        offsets = {int(p): int(o) for p, o in header["offsets"].items()}
        learner = blob[_HEADER.size + size :]
        if header["format"] == _FORMAT:
            learner = zlib.decompress(learner)
        return Checkpoint(learner, offsets, str(header["topic"]), int(header["n_examples"]))
    except (
        struct.error,
        orjson.JSONDecodeError,
        ValueError,
        KeyError,
        TypeError,
        zlib.error,
    ) as exc:
        raise ModelError(
            f"the learner checkpoint is unreadable ({exc}); delete the checkpoint key to "
            "relearn from the start of the training topic"
        ) from exc


class CheckpointStore:
    """Reads the checkpoint; writes it only while this process's fencing epoch is current."""

    def __init__(self, client: aioredis.Redis, epoch_key: str, checkpoint_key: str) -> None:
        self.key = checkpoint_key
        self._client = client
        self._epoch_key = epoch_key
        self._set = fenced_set(client)  # KEYS: epoch, checkpoint; ARGV: epoch, blob

    async def new_epoch(self) -> int:
        """Fence off every earlier leader; the epoch to write with."""
        return int(await self._client.incr(self._epoch_key))

    async def load(self) -> Checkpoint | None:
        raw = await self._client.get(self.key)
        if raw is None:
            return None
        return decode_checkpoint(raw if isinstance(raw, bytes) else raw.encode())

    async def save(self, epoch: int, checkpoint: Checkpoint) -> bool:
        """Write it; False (nothing written) when a newer leader took an epoch since."""
        blob = encode_checkpoint(checkpoint)
        return bool(await self._set(keys=[self._epoch_key, self.key], args=[epoch, blob]))
