"""The recovery bookkeeping of a round (streams.state.recovery), without Redis: which journal
entries a save deletes, which recovered events are walked again, what a save writes before and
after the states, which alerts are published again, and what a restart rebases on.

The commands are Redis' own (the integration fault tests run them against a killed worker:
tests/integration/faults/test_kill.py); here they are read back as the writes they stand for."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from scorers.profile import FIELD_CODES, FIELD_ORDER, Profile, ProfileDelta
from streams.round.messages import OutputMessage
from streams.round.scorer import ScoredRound
from streams.state.due_index import DueIndex
from streams.state.keys import Layout
from streams.state.profiles import ApplyOutcome, ApplyRequest, ApplyResult
from streams.state.recovery import RoundRecovery, claim_confirmation
from streams.state.resp import Command

KEYS = Layout("t")
APPLIED = ApplyOutcome.APPLIED
RECOVERED = ApplyOutcome.RECOVERED


def _recovery(*, publishing: bool = True) -> RoundRecovery:
    return RoundRecovery("t", DueIndex(aioredis.Redis(), "t"), publishing=publishing)  # no I/O


def _request(customer: str, offset: int, kind: str = "purchase") -> ApplyRequest:
    return ApplyRequest(customer, kind, offset, f"e{offset}", 0, ProfileDelta())


def _result(outcome: ApplyOutcome, seq: int) -> ApplyResult:
    return ApplyResult(outcome, Profile(orders=1), seq)


def _alert(customer: str, key: str, partition: int = 0) -> tuple[str, str, OutputMessage]:
    return (customer, key, OutputMessage(partition, customer.encode(), key.encode()))


def _journal_deletes(commands: list[Command]) -> dict[str, set[str]]:
    return {
        str(c[1]): {str(f) for f in c[2:]}
        for c in commands
        if c[0] == "HDEL" and str(c[1]).endswith(":j")
    }


def _acknowledged() -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


def test_a_save_deletes_the_journal_entries_of_the_events_its_walk_included() -> None:
    recovery = _recovery()
    requests = [_request("a", 7), _request("a", 9), _request("b", 3, "service"), _request("c", 4)]
    results = [
        _result(APPLIED, 4),
        _result(RECOVERED, 2),  # recovered: walked again, its number is older
        _result(APPLIED, 1),
        ApplyResult(ApplyOutcome.REDELIVERED, None),  # not applied: no journal entry
    ]
    recovery.note_applied(requests, results)
    assert recovery.marks() == {"a": 4, "b": 1}
    deletes = _journal_deletes(recovery.after_save(ScoredRound()))
    assert deletes == {KEYS.journal("a"): {"op7", "op9"}, KEYS.journal("b"): {"os3"}}
    recovery.saved()
    assert recovery.marks() == {} and _journal_deletes(recovery.after_save(ScoredRound())) == {}


def test_a_revoked_customers_journal_entries_stay_for_the_next_owner() -> None:
    recovery = _recovery()
    recovery.note_applied([_request("a", 1), _request("b", 2)], [_result(APPLIED, 1)] * 2)
    recovery.forget({"b"})
    assert recovery.marks() == {"a": 1}
    assert _journal_deletes(recovery.after_save(ScoredRound())) == {KEYS.journal("a"): {"op1"}}


def test_an_event_the_last_save_walked_is_a_redelivery_not_a_recovery() -> None:
    recovery = _recovery()
    requests = [_request("a", 1), _request("a", 2), _request("b", 1)]
    unsaved = [_result(RECOVERED, 3), _result(RECOVERED, 5), _result(APPLIED, 1)]
    assert recovery.already_walked(requests, unsaved) == unsaved  # nothing saved yet
    recovery.note_applied([_request("a", 1)], [_result(APPLIED, 3)])
    recovery.saved()  # the save includes a's event number 3, not 5
    outcomes = [r.outcome for r in recovery.already_walked(requests, unsaved)]
    assert outcomes == [ApplyOutcome.REDELIVERED, RECOVERED, APPLIED]


def test_outbox_entries_are_written_before_the_due_times_and_only_when_publishing() -> None:
    scored = ScoredRound(
        snapshots=[OutputMessage(0, b"a", b"{}")],
        alerts=[_alert("a", "churn_risk:a:1")],
        due={0: [("a", 1_000.0)]},
    )
    commands = _recovery().before_save(scored)
    outbox = [i for i, c in enumerate(commands) if str(c[1]).startswith(KEYS.alert_outbox(0))]
    due = [i for i, c in enumerate(commands) if c[0] == "ZADD"]
    assert outbox and due and max(outbox) < min(due)
    assert ("HSET", KEYS.alert_outbox(0), "a\x00churn_risk:a:1", b"churn_risk:a:1") in commands
    rebuilt = _recovery(publishing=False).before_save(scored)
    assert [c[0] for c in rebuilt] == ["ZADD"]  # a rebuild publishes nothing, keeps no outbox


@pytest.mark.parametrize(
    ("publishing", "replies", "fresh"),
    [
        (True, [1, b"p"], [True]),  # claimed by this round
        (True, [0, b"p"], [True]),  # claimed before and never confirmed: publish again
        (True, [0, b"1"], [False]),  # published and acknowledged before
        (False, [1, b"1", 0, b"1"], [False, False]),  # a rebuild never publishes
    ],
)
def test_an_alert_is_published_when_claimed_now_or_still_pending(
    publishing: bool, replies: list[object], fresh: list[bool]
) -> None:
    assert _recovery(publishing=publishing).fresh(replies) == fresh


def test_claims_are_pending_while_publishing_and_confirmed_in_a_rebuild() -> None:
    alerts = [_alert("a", "k1"), _alert("b", "k2")]
    claims = _recovery().claim_commands(alerts)
    assert claims[:2] == [
        ("HSETNX", KEYS.alert_claims("a"), "k1", b"p"),
        ("HGET", KEYS.alert_claims("a"), "k1"),
    ]
    assert len(claims) == 4
    assert _recovery(publishing=False).claim_commands(alerts)[0][3] == b"1"


def test_parked_timers_are_released_in_chunks_once_their_due_times_are_saved() -> None:
    customers: list[tuple[str, float | None]] = [(f"c{i}", float(i)) for i in range(10_001)]
    commands = _recovery().after_save(ScoredRound(due={3: customers}))
    released = [c for c in commands if c[0] == "ZREM"]
    assert [c[1] for c in released] == [KEYS.due_inflight(3)] * 2
    assert [len(c) - 2 for c in released] == [10_000, 1]
    assert [str(m) for c in released for m in c[2:]] == [c for c, _ in customers]


async def test_acknowledged_alerts_are_confirmed_until_a_save_says_the_commands_ran() -> None:
    recovery = _recovery()
    pending: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    failed.set_exception(ConnectionError("broker gone"))
    recovery.published([_acknowledged()], [(0, "a", "k1")])
    recovery.published([pending], [(0, "b", "k2")])
    recovery.published([failed], [(1, "c", "k3")])
    confirm = [
        claim_confirmation(KEYS.alert_claims("a"), "k1"),
        ("HDEL", KEYS.alert_outbox(0), "a\x00k1"),
    ]
    assert recovery.confirm_commands() == confirm
    assert recovery.confirm_commands() == confirm  # the save failed: confirmed again
    recovery.saved()
    assert recovery.confirm_commands() == []  # a failed delivery keeps its outbox entry
    pending.set_result(None)
    assert recovery.confirm_commands()[0] == claim_confirmation(KEYS.alert_claims("b"), "k2")
    failed.exception()  # retrieved: no "exception never retrieved" warning


async def test_a_rebuild_confirms_nothing_it_did_not_publish() -> None:
    recovery = _recovery(publishing=False)
    recovery.published([_acknowledged()], [(0, "a", "k1")])
    assert recovery.confirm_commands() == []


def test_a_profile_with_applied_events_no_saved_walk_included_is_stale() -> None:
    recovery = _recovery()
    raws: list[dict[bytes | str, bytes | str]] = [
        {b"ja": b"5", b"jw": b"3"},  # two events after the saved walk
        {b"ja": b"4", b"jw": b"4"},  # walked
        {b"o": b"1"},  # never journaled
        {b"ja": b"6", b"jw": b"2"},  # this worker's last save (not read yet) walked to 6
    ]
    recovery.note_applied([_request("d", 1)], [_result(APPLIED, 6)])
    recovery.saved()
    assert recovery.stale(["a", "b", "c", "d"], raws) == {"a": 3}


def _entry(seq: int, before: Profile) -> bytes:
    values = ",".join("" if v is None else str(v) for v in before)
    return f"{seq}:after:{values}".encode()


def test_a_stale_profile_is_rebased_on_the_first_event_no_walk_included() -> None:
    first = Profile(orders=2, gross_minor=300, first_purchase_at=10, last_purchase_at=20)
    later = Profile(orders=3, gross_minor=500, first_purchase_at=10, last_purchase_at=30)
    raw: dict[bytes | str, bytes | str] = {
        FIELD_CODES["orders"].encode(): b"4",
        FIELD_CODES["gross_minor"].encode(): b"900",
        b"ja": b"7",
        b"jw": b"4",
    }
    journal = [
        b"op1",
        _entry(4, Profile(orders=1)),
        b"op2",
        _entry(6, later),
        b"op3",
        _entry(5, first),
    ]
    rebased = _recovery().rebase(raw, journal, walked=4)
    assert rebased[b"ja"] == b"7" and rebased[b"jw"] == b"4"  # not profile fields: kept
    assert rebased[FIELD_CODES["orders"].encode()] == b"2"  # entry 5 (the earliest after 4)
    assert rebased[FIELD_CODES["gross_minor"].encode()] == b"300"
    assert FIELD_CODES["last_ticket_at"].encode() not in rebased  # absent before too
    assert _recovery().rebase(raw, journal, walked=6) == raw  # nothing after the walk
    assert _recovery().rebase(raw, None, walked=0) == raw  # no journal


def test_an_entry_written_before_a_field_was_added_leaves_that_field_absent() -> None:
    old = "1,250"  # only the first two fields existed
    raw: dict[bytes | str, bytes | str] = {FIELD_CODES[FIELD_ORDER[-1]].encode(): b"9"}
    rebased = _recovery().rebase(raw, [b"op1", f"2:after:{old}".encode()], walked=1)
    assert rebased == {
        FIELD_CODES[FIELD_ORDER[0]].encode(): b"1",
        FIELD_CODES[FIELD_ORDER[1]].encode(): b"250",
    }


def test_an_outbox_is_split_into_alerts_to_publish_again_and_confirmed_ones_to_drop() -> None:
    recovery = _recovery()
    reply = [b"a\x00k1", b"v1", b"b\x00k2", b"v2", b"c\x00k3", b"v3"]
    entries, reads = recovery.unpublished(2, reply)
    assert entries == [("a", "k1", b"v1"), ("b", "k2", b"v2"), ("c", "k3", b"v3")]
    assert reads == [("HGET", KEYS.alert_claims(c), k) for c, k, _ in entries]
    again, drop = recovery.drop_confirmed(2, entries, [b"1", b"p", None])
    assert again == [("b", "k2", b"v2"), ("c", "k3", b"v3")]  # pending or never claimed
    assert drop == [("HDEL", KEYS.alert_outbox(2), "a\x00k1")]
    assert recovery.unpublished(2, None) == ([], [])  # no outbox


def test_restoring_a_partition_puts_its_parked_timers_back_in_one_script() -> None:
    (command,) = _recovery().restore_commands(5)
    assert command[0] == "EVAL" and command[2:] == (2, KEYS.due(5), KEYS.due_inflight(5))
