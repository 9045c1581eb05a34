"""The outbox of score snapshots and training examples (streams.state.outbox): what a save
writes, what it deletes once Kafka acknowledged, and what a new owner publishes again."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from streams.round.messages import OutputMessage
from streams.state.due_index import DueIndex
from streams.state.outbox import OutputOutbox


def _outbox() -> OutputOutbox:
    return OutputOutbox(DueIndex(aioredis.Redis(), "t"))  # builds commands, never connects


def _reply(commands: list[tuple[str | bytes | int, ...]]) -> list[object]:
    """What HGETALL of the outbox would answer after ``commands`` (HSET only)."""
    reply: list[object] = []
    for _, _, field, value in commands:
        reply += [str(field).encode(), value]
    return reply


messages = st.lists(
    st.builds(
        OutputMessage,
        partition=st.just(3),
        key=st.binary(min_size=1, max_size=20),
        value=st.binary(max_size=200),
    ),
    max_size=20,
)


@given(messages, messages)
def test_what_a_save_writes_is_what_a_new_owner_publishes_again(
    snapshots: list[OutputMessage], examples: list[OutputMessage]
) -> None:
    outbox = _outbox()
    commands = outbox.write_commands(snapshots, examples)
    assert [c[1] for c in commands] == (["t:{due:3}:outs"] if snapshots or examples else [])
    by_topic, drops = outbox.unsent(3, _reply(commands))
    assert by_topic.get("scores", []) == snapshots
    assert by_topic.get("training", []) == examples
    assert drops == ([("HDEL", "t:{due:3}:outs", commands[0][2].encode())] if commands else [])  # type: ignore[union-attr]


def test_a_retried_save_writes_the_same_field_and_the_next_round_a_new_one() -> None:
    outbox = _outbox()
    one = [OutputMessage(0, b"c1", b"{}")]
    first = outbox.write_commands(one, [])
    assert outbox.write_commands(one, []) == first  # the save failed and is built again
    outbox.saved()
    assert outbox.write_commands(one, [])[0][2] != first[0][2]


async def test_fields_are_deleted_only_after_every_delivery_is_acknowledged() -> None:
    outbox = _outbox()
    loop = asyncio.get_running_loop()
    field = outbox.write_commands([OutputMessage(1, b"c", b"{}")], [])[0][2]
    outbox.saved()
    acked, pending = loop.create_future(), loop.create_future()
    outbox.sent([acked, pending])
    acked.set_result(None)
    assert outbox.confirm_commands() == []  # one delivery is still in flight
    outbox.saved()
    pending.set_result(None)
    assert outbox.confirm_commands() == [("HDEL", "t:{due:1}:outs", field)]
    outbox.saved()
    assert outbox.confirm_commands() == []  # confirmed once, then forgotten


async def test_a_failed_delivery_keeps_its_field_for_the_next_owner() -> None:
    outbox = _outbox()
    failed = asyncio.get_running_loop().create_future()
    outbox.write_commands([OutputMessage(1, b"c", b"{}")], [])
    outbox.saved()
    outbox.sent([failed])
    failed.set_exception(RuntimeError("broker gone"))
    assert outbox.confirm_commands() == []
    outbox.saved()
    assert outbox.confirm_commands() == []  # not retried here: the partition's next owner does
