"""What a round writes for the query API (RoundIndexer, pure): latest snapshot, segment moves,
owners, contacts; late events never overwrite newer envelope fields. And the OpenAPI file."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from streams.api.openapi import OPENAPI_FILE, openapi_text
from streams.round.messages import OutputMessage
from streams.state.keys import Layout
from streams.state.query_index import CustomerIndex, RoundIndexer
from tests.unit.hand_built import applied_event

L = Layout("t")


def _snapshot(
    segment: str | None, clv: float | None = 10.0, churn: float | None = 0.2
) -> OutputMessage:
    body = {"customer_id": "c", "segment": segment, "clv": clv, "churn_probability": churn}
    return OutputMessage(0, b"c", orjson.dumps(body))


def test_the_last_snapshot_is_stored_and_indexed_in_its_segment() -> None:
    changed, commands = RoundIndexer(L).commands(
        {}, [], [_snapshot("Lost", 1.0), _snapshot("Loyal", 2.5, None)]
    )
    assert ("SET", L.snapshot("c"), _snapshot("Loyal", 2.5, None).value) in commands
    assert ("ZADD", L.segment("Loyal", "clv"), "2.5", b"c") in commands
    assert ("ZADD", L.segment("Loyal", "churn"), "-inf", b"c") in commands
    assert not any(c[1] == L.segment("Lost", "clv") for c in commands)
    assert changed == {"c": CustomerIndex(segment="Loyal")}


def test_moving_segment_removes_the_customer_from_the_old_one() -> None:
    before = {"c": CustomerIndex(segment="Lost")}
    changed, commands = RoundIndexer(L).commands(before, [], [_snapshot("Loyal")])
    assert ("ZREM", L.segment("Lost", "clv"), b"c") in commands
    assert ("ZREM", L.segment("Lost", "churn"), b"c") in commands
    assert changed["c"].segment == "Loyal"
    unchanged, again = RoundIndexer(L).commands(
        {"c": CustomerIndex(segment="Loyal")}, [], [_snapshot("Loyal")]
    )
    assert unchanged == {} and not any(c[0] == "ZREM" for c in again)


def _grouped(group: str | None, cluster: int | None, as_of: str = "2026-01-05T00:00:00Z") -> bytes:
    body = {"customer_id": "c", "as_of": as_of, "segment": "Loyal", "clv": 10.0,
            "value_group": group, "cluster": cluster}  # fmt: skip
    return orjson.dumps(body)


def test_value_group_and_cluster_sets_change_only_when_the_customer_moves() -> None:
    joined = repr(datetime(2026, 1, 5, tzinfo=UTC).timestamp())
    first = OutputMessage(0, b"c", _grouped("low_value_stable", 2))
    changed, commands = RoundIndexer(L).commands({}, [], [first])
    assert ("ZADD", L.value_group("low_value_stable"), joined, b"c") in commands
    assert ("ZADD", L.cluster(2), joined, b"c") in commands
    assert changed["c"] == CustomerIndex("Loyal", value_group="low_value_stable", cluster=2)
    assert sum(1 for c in commands if "{seg:" not in str(c[1]) and c[0] == "ZADD") == 2
    # the same group and cluster again: nothing but the segment's ZADDs and the snapshot
    same = OutputMessage(0, b"c", _grouped("low_value_stable", 2, "2026-02-01T00:00:00Z"))
    unchanged, again = RoundIndexer(L).commands(changed, [], [same])
    assert unchanged == {}
    assert {c[1] for c in again if c[0] in ("ZADD", "ZREM")} == {
        L.segment("Loyal", "clv"),
        L.segment("Loyal", "churn"),
    }
    # a move is one ZREM from the old set and one ZADD to the new one
    moved = OutputMessage(0, b"c", _grouped("low_value_at_risk", 2, "2026-02-01T00:00:00Z"))
    after, commands = RoundIndexer(L).commands(changed, [], [moved])
    later = repr(datetime(2026, 2, 1, tzinfo=UTC).timestamp())
    groups = [c for c in commands if "{vg:" in str(c[1]) or "{cluster:" in str(c[1])]
    assert groups == [
        ("ZREM", L.value_group("low_value_stable"), b"c"),
        ("ZADD", L.value_group("low_value_at_risk"), later, b"c"),
    ]
    assert after["c"].value_group == "low_value_at_risk" and after["c"].cluster == 2
    # no group any more (not scored yet): out of the old set, into none
    gone = OutputMessage(0, b"c", _grouped(None, None))
    _, commands = RoundIndexer(L).commands(after, [], [gone])
    assert [c for c in commands if "{vg:" in str(c[1]) or "{cluster:" in str(c[1])] == [
        ("ZREM", L.value_group("low_value_at_risk"), b"c"),
        ("ZREM", L.cluster(2), b"c"),
    ]


def test_departments_owner_and_contact_come_from_the_newest_event() -> None:
    contact = {"name": "Jane Doe", "email": "jane@example.com"}
    applied = [
        applied_event(100, department="sales/emea", owner="agent-1", contact=contact),
        applied_event(200, department="sales/emea/uk", owner="agent-2"),
    ]
    changed, commands = RoundIndexer(L).commands({}, applied, [])
    index = changed["c"]
    assert index.departments == {"purchase": "sales/emea/uk"} and index.owner == "agent-2"
    assert ("SADD", L.agent("agent-2", "owned"), "c") in commands
    assert ("SET", L.contact("c"), orjson.dumps(contact)) in commands
    assert index.contact is not None
    # the same contact again is not written again; a new owner leaves the old one's set
    changed2, commands2 = RoundIndexer(L).commands(
        {"c": index}, [applied_event(300, owner="agent-3", contact=contact)], []
    )
    assert ("SREM", L.agent("agent-2", "owned"), "c") in commands2
    assert ("SADD", L.agent("agent-3", "owned"), "c") in commands2
    assert not any(c[0] == "SET" for c in commands2)
    assert changed2["c"].owner == "agent-3"


def test_a_late_event_does_not_overwrite_what_a_newer_event_said() -> None:
    before = {"c": CustomerIndex(departments={"purchase": "sales/emea/uk"}, owner="agent-2")}
    late = applied_event(50, late=True, newest=200, department="sales/amer", owner="agent-9",
                    contact={"name": "Old Name"})  # fmt: skip
    changed, commands = RoundIndexer(L).commands(before, [late], [])
    assert changed == {} and commands == []
    # a late event that is still the newest of its customer does count
    newest = applied_event(50, late=True, newest=50, department="sales/amer")
    changed, _ = RoundIndexer(L).commands(before, [newest], [])
    assert changed["c"].departments == {"purchase": "sales/amer"}


def test_index_round_trips_through_bytes() -> None:
    index = CustomerIndex(
        "Loyal", {"purchase": "sales", "service": "service/emea"}, "agent-1", "ab12"
    )
    assert CustomerIndex.from_bytes(index.to_bytes()) == index
    grouped = index._replace(value_group="no_value", cluster=0)
    assert CustomerIndex.from_bytes(grouped.to_bytes()) == grouped
    assert CustomerIndex.from_bytes(None) == CustomerIndex()


def test_the_checked_in_openapi_document_is_current() -> None:
    assert OPENAPI_FILE.read_text(encoding="utf-8") == openapi_text(), (
        "streams/api/openapi.json is stale: run `python -m streams.api.openapi`"
    )
