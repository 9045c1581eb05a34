"""A write that happens only while a guard key still holds what the writer expects.

Two writers use it: the learner's checkpoint (guarded by the leader's fencing epoch, so a
deposed leader cannot overwrite its successor's checkpoint) and the contact rotation (guarded
by the contact itself: a value changed since it was read is not overwritten).
"""

from __future__ import annotations

from importlib import resources

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

__all__ = ["FENCED_SET", "fenced_set"]

#: KEYS: guard, target. ARGV: the value the guard must hold, the value to write.
FENCED_SET = resources.files("streams.state").joinpath("scripts", "fenced_set.lua").read_text()


def fenced_set(client: aioredis.Redis) -> AsyncScript:
    """The script registered on ``client``: ``await script(keys=[guard, target],
    args=[expected, value])`` is 1 if written, 0 if the guard held something else."""
    return client.register_script(FENCED_SET)
