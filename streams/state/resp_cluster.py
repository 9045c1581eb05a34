"""The hot path's connection on a Redis Cluster: :class:`RespConnection`'s interface, per node.

A send is split by hash slot: each command goes, in send order, to the master that holds the
slot of its key (``CLUSTER SLOTS``), as one packed write per node; the replies are merged back
into send order. Every script call must name keys of one slot (they are hash-tagged, see
:mod:`streams.state.keys`): a call that does not is refused before anything is sent.

During a resharding a node answers ``ASK`` for a key already moved out of a migrating slot,
and ``MOVED`` once the slot has its new owner: those commands are run again on the node named,
in send order (behind ``ASKING`` for an ``ASK``), and after a ``MOVED`` the slot map is read
again and what was sent behind (by the old map) is dropped, to be sent again (see
:attr:`RespConnection.generation`). ``TRYAGAIN`` (a script's keys split by the move) and
``CLUSTERDOWN`` raise ConnectionError: the round is then sent again whole, as after any lost
connection (applying it twice is safe: offsets are checked).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

import hiredis
from redis.crc import key_slot

from crm_core.errors import StateStoreError
from streams.state.resp import Command, RespConnection, Sent, pack_command

__all__ = [
    "ClusterRespConnection",
    "CrossSlotError",
    "HotConnection",
    "cluster_seeds",
    "command_slot",
    "hot_connection",
    "is_cluster_url",
]

_SCHEMES = ("redis+cluster://", "rediss+cluster://")
_SCRIPTS = (b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO", b"FCALL", b"FCALL_RO")
#: Replies after which the whole call is sent again (a slot's keys are split by a move).
_RETRY_WHOLE = ("TRYAGAIN", "CLUSTERDOWN")
Address = tuple[str, int]


class CrossSlotError(StateStoreError):
    """A command names keys of more than one hash slot; a Redis Cluster refuses it."""


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://h:p,h:p,...``)."""
    return url.startswith(_SCHEMES)


@dataclass(frozen=True, slots=True)
class ClusterSeeds:
    """A cluster URL taken apart: the nodes to ask for the slot map, and the credentials."""

    nodes: tuple[Address, ...]
    username: str | None
    password: str | None
    tls: bool


def cluster_seeds(url: str) -> ClusterSeeds:
    """The seed nodes and credentials of a ``redis[s]+cluster://[user:pass@]h:p,h:p`` URL.

    >>> cluster_seeds("redis+cluster://127.0.0.1:7000,127.0.0.1:7001").nodes
    (('127.0.0.1', 7000), ('127.0.0.1', 7001))
    """
    if not is_cluster_url(url):
        raise StateStoreError(f"not a cluster URL: use redis+cluster://host:port,... ({url!r})")
    rest = url.split("://", 1)[1].split("/", 1)[0]  # a cluster has database 0 only
    credentials, _, hosts = rest.rpartition("@")
    user, _, password = credentials.partition(":") if credentials else ("", "", "")
    nodes = []
    for part in filter(None, hosts.split(",")):
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise StateStoreError(f"a cluster node must be host:port, not {part!r} in {url!r}")
        nodes.append((host, int(port)))
    if not nodes:
        raise StateStoreError(f"name at least one node in the cluster URL {url!r}")
    return ClusterSeeds(
        tuple(nodes),
        unquote(user) or None,
        unquote(password) or None,
        url.startswith("rediss"),
    )


def command_slot(command: Sequence[bytes]) -> int | None:
    """The hash slot of a command's keys (None for a command without keys); CrossSlotError
    when a script's keys span more than one slot.

    >>> command_slot([b"EVALSHA", b"f00", b"2", b"crm:{c-1}:p", b"crm:{c-1}:j", b"x"])
    5363
    """
    name = command[0].upper()
    if name in _SCRIPTS:
        keys = command[3 : 3 + int(command[2])]
        slots = {key_slot(key) for key in keys}
        if len(slots) > 1:
            raise CrossSlotError(
                f"a script names keys of {len(slots)} hash slots ({[bytes(k) for k in keys]!r});"
                " give every key of one call the same hash tag (streams/state/keys.py)"
            )
        return slots.pop() if slots else None
    return key_slot(command[1]) if len(command) > 1 else None


@dataclass(frozen=True, slots=True)
class _Part:
    """The commands of one send that went to one node: where their replies go."""

    node: Address
    sent: Sent
    indices: list[int]
    commands: list[bytes]  # packed, for a redirect


class ClusterRespConnection:
    """:class:`RespConnection`'s interface over one connection per master of a cluster."""

    def __init__(self, url: str, password: str | None = None, timeout: float = 10.0) -> None:
        self._seeds = cluster_seeds(url)
        self._password = password or self._seeds.password
        self._timeout = timeout
        self._slots: list[Address] | None = None
        self._nodes: dict[Address, RespConnection] = {}
        self._redirects: dict[Address, RespConnection] = {}  # nothing is sent behind on them
        self._generation = 0
        self._sent = 0
        self._read = 0
        self._parts: dict[int, list[_Part]] = {}

    def _node_url(self, address: Address) -> str:
        scheme = "rediss" if self._seeds.tls else "redis"
        user = f"{self._seeds.username}@" if self._seeds.username else ""
        return f"{scheme}://{user}{address[0]}:{address[1]}/0"

    def _connection(self, address: Address, pool: dict[Address, RespConnection]) -> RespConnection:
        if address not in pool:
            pool[address] = RespConnection(self._node_url(address), self._password, self._timeout)
        return pool[address]

    async def _load_slots(self) -> list[Address]:
        """The owner of every slot, from the first node that answers ``CLUSTER SLOTS``."""
        failures = []
        for address in (*self._nodes, *self._seeds.nodes):
            probe = RespConnection(self._node_url(address), self._password, self._timeout)
            try:
                (reply,) = await probe.execute(pack_command(("CLUSTER", "SLOTS")), 1)
            except (OSError, TimeoutError) as exc:
                failures.append(f"{address[0]}:{address[1]}: {exc!r}")
                continue
            finally:
                await probe.close()
            if not isinstance(reply, list) or not reply:
                failures.append(f"{address[0]}:{address[1]}: {reply!r}")
                continue
            slots: list[Address | None] = [None] * 16384
            for start, end, master, *_ in reply:
                owner = (master[0].decode(), int(master[1]))
                slots[int(start) : int(end) + 1] = [owner] * (int(end) - int(start) + 1)
            if None not in slots:
                return [s for s in slots if s is not None]
            failures.append(f"{address[0]}:{address[1]}: not every slot is assigned")
        raise ConnectionError(f"no Redis Cluster node gave a full slot map: {failures}")

    @property
    def generation(self) -> int:
        """Incremented whenever the connections are closed; replies of older sends are lost."""
        return self._generation

    async def connect(self) -> None:
        """Read the slot map (if not known) and connect to every master."""
        if self._slots is None:
            self._slots = await self._load_slots()
        for address in dict.fromkeys(self._slots):
            await self._connection(address, self._nodes).connect()

    def send(self, packed: bytes, count: int) -> Sent | None:
        """Write ``count`` packed commands now, each to its slot's master; None (nothing sent)
        when not connected. CrossSlotError for a script whose keys span slots."""
        if self._slots is None:
            return None
        reader = hiredis.Reader()
        reader.feed(packed)
        by_node: dict[Address, tuple[list[int], list[bytes]]] = {}
        for index in range(count):
            command: list[bytes] = reader.gets()
            slot = command_slot(command)
            address = self._slots[slot if slot is not None else 0]
            indices, commands = by_node.setdefault(address, ([], []))
            indices.append(index)
            commands.append(pack_command(tuple(command)))
        nodes = [self._nodes.get(address) for address in by_node]
        if not all(node is not None and node.connected for node in nodes):
            return None  # nothing sent: a node that is not connected would split the send
        parts = []
        for node, (address, (indices, commands)) in zip(nodes, by_node.items(), strict=True):
            assert node is not None
            sent = node.send(b"".join(commands), len(commands))
            assert sent is not None  # connected, checked above
            parts.append(_Part(address, sent, indices, commands))
        self._parts[self._sent] = parts
        self._sent += 1
        return Sent(self._generation, count, self._sent - 1)

    async def receive(self, sent: Sent) -> list[object]:
        """The replies of ``sent`` in send order (errors as values), after following ``ASK``
        and ``MOVED`` redirects; ConnectionError when they were lost or a slot was in the
        middle of a move (``TRYAGAIN``: send the whole call again)."""
        if sent.generation != self._generation or sent.seq not in self._parts:
            raise ConnectionError("the connection these commands were sent on was lost")
        if sent.seq != self._read:
            await self.close()
            raise ConnectionError("replies read out of send order; the connections were dropped")
        replies: list[object] = [None] * sent.count
        redirects: dict[Address, list[tuple[int, bytes, bool]]] = {}
        moved = False
        try:
            for part in self._parts.pop(sent.seq):
                node_replies = await self._nodes[part.node].receive(part.sent)
                for index, command, reply in zip(
                    part.indices, part.commands, node_replies, strict=True
                ):
                    target = _redirect(reply)
                    if target is None:
                        replies[index] = reply
                        continue
                    ask, _, address = target
                    moved = moved or not ask
                    redirects.setdefault(address, []).append((index, command, ask))
            for address, commands in redirects.items():
                for index, reply in await self._redirected(address, commands):
                    replies[index] = reply
        except BaseException:
            await self.close()
            raise
        self._read += 1
        if moved:  # read the map again; what was sent behind went by the old one: sent again
            self._slots = None
            await self.close()
        return replies

    async def _redirected(
        self, address: Address, commands: list[tuple[int, bytes, bool]]
    ) -> list[tuple[int, object]]:
        """Redirected ``(index, command, ask)`` run again on ``address`` in send order (each
        ``ask`` behind ``ASKING``), on a connection nothing else is sent behind."""
        asking = pack_command(("ASKING",))
        packed = b"".join(asking + command if ask else command for _, command, ask in commands)
        count = sum(2 if ask else 1 for _, _, ask in commands)
        got = iter(await self._connection(address, self._redirects).execute(packed, count))
        replies = []
        for index, _, ask in commands:
            reply = next(got)
            if ask:
                answer = next(got)
                reply = reply if isinstance(reply, hiredis.ReplyError) else answer
            if _redirect(reply) is not None or _slot_busy(reply):
                raise ConnectionError(f"Redis Cluster redirected a command twice ({reply})")
            replies.append((index, reply))
        return replies

    async def execute(self, packed: bytes, count: int) -> list[object]:
        """Send ``count`` packed commands and return their replies (errors as values), on
        fresh connections when replies of earlier sends are unread (those are lost)."""
        if self._read != self._sent:
            await self.close()
        await self.connect()
        sent = self.send(packed, count)
        if sent is None:
            raise ConnectionError("not connected to every master of the Redis Cluster")
        return await self.receive(sent)

    async def close(self) -> None:
        """Close every node's connection (idempotent); later sends start on fresh ones."""
        self._generation += 1
        self._sent = self._read = 0
        self._parts.clear()
        for connection in (*self._nodes.values(), *self._redirects.values()):
            with contextlib.suppress(OSError):
                await connection.close()
        self._nodes.clear()
        self._redirects.clear()


def _redirect(reply: object) -> tuple[bool, int, Address] | None:
    """``(ask, slot, node)`` of an ``ASK``/``MOVED`` reply, else None; ConnectionError for a
    slot in the middle of a move (``TRYAGAIN``) or a cluster down."""
    if not isinstance(reply, hiredis.ReplyError):
        return None
    if _slot_busy(reply):
        raise ConnectionError(f"Redis Cluster refused a command for now ({reply})")
    kind, _, rest = str(reply).partition(" ")
    if kind not in ("ASK", "MOVED"):
        return None
    slot, _, node = rest.partition(" ")
    host, _, port = node.rpartition(":")
    return kind == "ASK", int(slot), (host, int(port))


def _slot_busy(reply: object) -> bool:
    return isinstance(reply, hiredis.ReplyError) and str(reply).startswith(_RETRY_WHOLE)


#: The hot path's connection: to one Redis, or to every master of a cluster.
HotConnection = RespConnection | ClusterRespConnection


def hot_connection(url: str, password: str | None, timeout: float) -> HotConnection:
    """The hot path's connection for ``url`` (``redis://``, ``rediss://`` or a cluster URL)."""
    if is_cluster_url(url):
        return ClusterRespConnection(url, password, timeout)
    return RespConnection(url, password, timeout)


__all__ += ["ClusterSeeds", "Command"]
