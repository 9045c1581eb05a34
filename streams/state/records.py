"""The profile record: each customer's profile, offsets and round state in one compact string.

``{prefix}:{<customer>}:p`` holds a version byte and a MessagePack map of field code -> value:
the profile's integer fields (:data:`scorers.profile.FIELD_CODES`), the applied offset per
input kind (``op``/``os``/``om``), the journal numbers (``ja``/``jw``, see
:mod:`streams.state.recovery`), and as bytes the alert state (``as``), the query API's index
(``ix``) and the recently seen event ids (``ids``, :mod:`scorers.dedup`; 13 bytes an id, in
their own key before the record); an absent field is its default. It used to be a Redis hash
of the same fields as text: once the alert state outgrew 64 bytes Redis kept it as a hash
table, ~1.9 kB a customer, where the record is a few hundred bytes.

One server-side script (``scripts/apply_event.lua``) owns the layout: it applies events, and
reads and writes the record for everyone else, answering as ``HGETALL`` / ``HGET`` / ``HSET``
on the hash did (field codes and values as bytes; ``read`` leaves out ``ids``), so readers stay
as they were. A profile
still stored as a hash (a store written before the record) is read as it is and written back
as a record the first time it changes: an old store keeps working after an upgrade.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from scorers.profile import FIELD_CODES, FIELD_DEFAULTS, FIELD_OPS, FIELD_ORDER, Profile
from streams.state.resp import Command

__all__ = [
    "OWN_FIELDS",
    "SCRIPT",
    "ProfileRecords",
    "get_command",
    "merge_args",
    "pairs",
    "read_command",
    "write_command",
]

#: The apply script, which also reads and writes records (see the module doc).
SCRIPT = (
    resources.files("streams.state")
    .joinpath("scripts", "apply_event.lua")
    .read_text()
    .replace("__FIELDS__", ", ".join(f"'{FIELD_CODES[name]}'" for name in FIELD_ORDER))
    .replace("__DEFAULTS__", ", ".join("false" if d is None else str(d) for d in FIELD_DEFAULTS))
    .replace("__OPS__", ", ".join(f"{FIELD_CODES[n]} = '{FIELD_OPS[n]}'" for n in FIELD_ORDER))
)

Value = bytes | str | int
#: The record's fields besides the profile's (offsets, journal numbers, alert state, API index,
#: seen ids): no profile field may have one of these codes.
OWN_FIELDS = ("op", "os", "om", "ja", "jw", "as", "ix", "ids")
assert not set(OWN_FIELDS) & set(FIELD_CODES.values()), "a profile code clashes with a record field"


def read_command(sha: str, key: str) -> Command:
    """Every field of the record at ``key``, answered as ``HGETALL`` would."""
    return ("EVALSHA", sha, 1, key, "read")


def get_command(sha: str, key: str, field: str) -> Command:
    """One field of the record, answered as ``HGET`` would."""
    return ("EVALSHA", sha, 1, key, "get", field)


def merge_args(other: Profile, seen: bytes = b"") -> list[str | int | bytes]:
    """The script's arguments that merge ``other`` into a record: its fields that are set,
    and ``seen``, the other customer's recently seen event ids (its record's ``ids``)."""
    args: list[str | int | bytes] = ["merge"]
    for name, value in other._asdict().items():
        if value is not None:
            args += [FIELD_CODES[name], value]
    return [*args, "ids", seen] if seen else args


def write_command(
    sha: str, key: str, fields: Mapping[str, Value] | Mapping[bytes, Value]
) -> Command:
    """Set ``fields`` in the record (the others keep their values), as ``HSET`` would."""
    return ("EVALSHA", sha, 1, key, "write", *[x for kv in fields.items() for x in kv])


class ProfileRecords:
    """The records through a redis-py client (the query API, the registry's scan, tools).

    The script is loaded on first use, and again if Redis lost it (a pipeline's queued calls:
    loaded before the first, on every master of a cluster, whose pipelines load no scripts).
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._script = client.register_script(SCRIPT)
        self._loaded = False

    async def _load(self) -> None:
        if not self._loaded:
            await self._client.script_load(SCRIPT)
            self._loaded = True

    async def read(self, key: str | bytes) -> dict[bytes | str, bytes | str]:
        """Every field of the record (empty for an absent customer)."""
        return pairs(await self._script(keys=[key], args=["read"]))

    async def get(self, key: str | bytes, field: str) -> bytes | None:
        """One field of the record, or None."""
        value = await self._script(keys=[key], args=["get", field])
        return None if value is None else bytes(value)

    async def write(self, key: str | bytes, fields: Mapping[str, Value]) -> None:
        """Set ``fields`` in the record."""
        await self._script(keys=[key], args=["write", *[x for kv in fields.items() for x in kv]])

    async def merge(self, key: str | bytes, other: Profile, seen: bytes = b"") -> None:
        """Merge another customer's profile (and its recently seen event ids, ``seen``) into
        the record (:mod:`scorers.merge`), in one atomic script on the record's slot."""
        await self._script(keys=[key], args=merge_args(other, seen))

    async def queue_write(
        self, pipe: Pipeline, key: str | bytes, fields: Mapping[str, Value]
    ) -> None:
        """Queue :meth:`write` in a pipeline."""
        args = ["write", *[x for kv in fields.items() for x in kv]]
        await self._load()
        await self._script(keys=[key], args=args, client=pipe)

    async def queue_read(self, pipe: Pipeline, key: str | bytes) -> None:
        """Queue :meth:`read` in a pipeline; its reply is raw (:func:`pairs` reads it)."""
        await self._load()
        await self._script(keys=[key], args=["read"], client=pipe)

    async def queue_get(self, pipe: Pipeline, key: str | bytes, field: str) -> None:
        """Queue :meth:`get` in a pipeline."""
        await self._load()
        await self._script(keys=[key], args=["get", field], client=pipe)


def pairs(reply: object) -> dict[bytes | str, bytes | str]:
    """A ``read`` reply (field, value, field, value...; numbers come as integers) as a dict of
    bytes, as HGETALL's was."""
    if not isinstance(reply, list):
        return {}
    return {
        bytes(k): b"%d" % v if isinstance(v, int) else bytes(v)
        for k, v in zip(reply[::2], reply[1::2], strict=True)
    }
