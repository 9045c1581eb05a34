"""Routing the hot path's commands on a Redis Cluster: slots, scripts' keys, cluster URLs."""

from __future__ import annotations

import doctest

import pytest
from redis.crc import key_slot

import streams.state.resp_cluster
from crm_core.errors import StateStoreError
from streams.state.keys import Layout
from streams.state.records import get_command, read_command, write_command
from streams.state.resp import RespConnection
from streams.state.resp_cluster import (
    ClusterRespConnection,
    CrossSlotError,
    cluster_seeds,
    command_slot,
    hot_connection,
)


def _args(command: tuple[str | bytes | int, ...]) -> list[bytes]:
    return [x if isinstance(x, bytes) else str(x).encode() for x in command]


def test_a_command_goes_to_the_slot_of_its_hash_tag() -> None:
    keys = Layout("crm")
    fields: dict[bytes, bytes | str | int] = {b"as": b"x", b"jw": 3}
    for customer in ("c-1", "c-2", "someone@example.com"):
        expected = key_slot(customer.encode())  # only the tag is hashed
        for command in (
            ("HGETALL", keys.profile(customer)),
            ("DEL", keys.journal(customer)),
            read_command("f" * 40, keys.profile(customer)),
            get_command("f" * 40, keys.profile(customer), "as"),
            write_command("f" * 40, keys.profile(customer), fields),
        ):
            assert command_slot(_args(command)) == expected, command


def test_a_script_over_two_slots_is_refused_before_sending() -> None:
    keys = Layout("crm")
    command = ("EVALSHA", "f" * 40, 2, keys.profile("c-1"), keys.journal("c-2"), "read")
    with pytest.raises(CrossSlotError, match="same hash tag") as raised:
        command_slot(_args(command))
    assert isinstance(raised.value, StateStoreError)  # a round that hits it is not committed


def test_a_script_of_one_slot_and_a_command_without_keys() -> None:
    keys = Layout("crm")
    same = ("EVAL", "return 1", 2, keys.profile("c-9"), keys.alert_claims("c-9"))
    assert command_slot(_args(same)) == key_slot(b"c-9")
    assert command_slot(_args(("EVAL", "return 1", 0))) is None
    assert command_slot([b"PING"]) is None


def test_cluster_urls_name_seeds_and_credentials() -> None:
    seeds = cluster_seeds("rediss+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2:7001/0")
    assert seeds.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001))
    assert (seeds.username, seeds.password, seeds.tls) == ("app", "s@cret", True)
    plain = cluster_seeds("redis+cluster://127.0.0.1:7000")
    assert (plain.username, plain.password, plain.tls) == (None, None, False)
    for bad in ("redis://127.0.0.1:6379/0", "redis+cluster://", "redis+cluster://host"):
        with pytest.raises(StateStoreError):
            cluster_seeds(bad)


def test_the_url_picks_the_hot_connection() -> None:
    assert isinstance(hot_connection("redis://127.0.0.1:6379/0", None, 1.0), RespConnection)
    cluster = hot_connection("redis+cluster://127.0.0.1:7000", None, 1.0)
    assert isinstance(cluster, ClusterRespConnection)
    assert cluster.send(b"*1\r\n$4\r\nPING\r\n", 1) is None  # no slot map yet: nothing sent


def test_doctests() -> None:
    assert doctest.testmod(streams.state.resp_cluster, raise_on_error=True).attempted > 0
