"""The event simulator: determinism, contract validity, fault injection and its statistics."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import types
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crm_score.simulate as simulate_pkg
from crm_core.errors import ConfigError, EventRejected
from crm_score.simulate import (
    DUPLICATE,
    MALFORMATION_REASONS,
    MALFORMATIONS,
    SimulatedMessage,
    Simulation,
    SimulationConfig,
    engagement,
    simulate,
    write_ground_truth,
)
from schemas import EVENT_TYPES, DeadLetterReason, EventParser

WINDOW = timedelta(days=42)
PARSER = EventParser()


def _parse_all(messages: list[SimulatedMessage]) -> list[dict[str, Any]]:
    return [orjson.loads(m.value) for m in messages]


@pytest.fixture(scope="module")
def clean() -> Simulation:
    """A year of 1500 customers, no faults: the statistics tests run on this."""
    return simulate(SimulationConfig(customers=1500, days=365, seed=11))


@pytest.fixture(scope="module")
def clean_events(clean: Simulation) -> list[dict[str, Any]]:
    return _parse_all(list(clean))


@pytest.fixture(scope="module")
def faulty() -> list[SimulatedMessage]:
    config = SimulationConfig(
        customers=600,
        days=180,
        seed=5,
        malformed_fraction=0.03,
        duplicate_fraction=0.02,
        disorder_fraction=0.05,
        max_disorder_seconds=900.0,
    )
    return list(simulate(config))


def _key(m: SimulatedMessage) -> tuple[str, bytes, bytes, datetime, str | None]:
    return (m.kind, m.key, m.value, m.event_time, m.fault)


# --- determinism ----------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes() -> None:
    config = SimulationConfig(
        customers=200, days=90, seed=42, malformed_fraction=0.02, duplicate_fraction=0.02
    )
    first = [_key(m) for m in simulate(config)]
    again = [_key(m) for m in simulate(config)]
    other = [_key(m) for m in simulate(SimulationConfig(customers=200, days=90, seed=43))]
    assert first == again
    assert first != other


def test_iterating_twice_gives_the_same_stream(clean: Simulation) -> None:
    head = [_key(m) for _, m in zip(range(3000), clean, strict=False)]
    assert head == [_key(m) for _, m in zip(range(3000), clean, strict=False)]
    assert len(clean) == sum(n for t, n in clean.summary().items() if t in EVENT_TYPES)


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    customers=st.integers(1, 40),
    days=st.floats(1.0, 60.0),
    malformed=st.floats(0.0, 0.2),
    duplicate=st.floats(0.0, 0.2),
)
def test_any_config_gives_valid_or_declared_faulty_messages(
    seed: int, customers: int, days: float, malformed: float, duplicate: float
) -> None:
    config = SimulationConfig(
        customers=customers,
        days=days,
        seed=seed,
        malformed_fraction=malformed,
        duplicate_fraction=duplicate,
    )
    now = config.end + timedelta(days=1)
    for message in simulate(config):
        assert config.start <= message.event_time < config.end
        if message.fault in MALFORMATIONS:
            with pytest.raises(EventRejected):
                PARSER.parse(message.value, message.kind, now)
        else:
            PARSER.parse(message.value, message.kind, now)


# --- the wire contract -----------------------------------------------------------------------


def test_every_valid_event_follows_the_contract(clean: Simulation) -> None:
    config = clean.config
    now = config.end + timedelta(days=1)
    sources = {"purchase": "shop", "service": "helpdesk", "marketing": "esp"}
    for message in clean:
        assert message.fault is None
        event = PARSER.parse(message.value, message.kind, now)
        raw = orjson.loads(message.value)
        assert raw["event_time"].endswith("+00:00")
        assert event.event_time == message.event_time
        assert config.start <= event.event_time < config.end
        assert message.key == event.customer_id.encode()
        assert EVENT_TYPES[event.type] == message.kind == event.kind
        assert event.source == sources[message.kind]
        assert event.department is not None
        assert "/" in event.department


def test_event_ids_are_unique(clean_events: list[dict[str, Any]]) -> None:
    ids = Counter(e["event_id"] for e in clean_events)
    assert ids.most_common(1)[0][1] == 1


def test_clean_stream_is_in_event_time_order(clean: Simulation) -> None:
    times = [m.event_time for m in clean]
    assert times == sorted(times)


def test_pii_and_owners_are_present(clean_events: list[dict[str, Any]]) -> None:
    opened = [e for e in clean_events if e["type"] == "ticket_opened"]
    assert all(e["contact"]["email"].endswith(("example.com", "example.org", "example.net"))
               for e in opened)  # fmt: skip
    assert all(e["owner"].startswith("agent-") for e in opened)
    departments = {e["department"] for e in clean_events}
    assert {"sales/emea/uk", "sales/amer", "service/apac", "marketing/emea"} <= departments


# --- fault injection --------------------------------------------------------------------------


def test_malformed_messages_are_rejected_with_their_reason(faulty: list[SimulatedMessage]) -> None:
    now = datetime(2027, 1, 1, tzinfo=UTC)
    seen: set[str] = set()
    for message in faulty:
        assert b"\n" not in message.value
        if message.fault not in MALFORMATIONS:
            continue
        seen.add(message.fault)
        with pytest.raises(EventRejected) as rejected:
            PARSER.parse(message.value, message.kind, now)
        assert rejected.value.reason == MALFORMATION_REASONS[message.fault], message.value[:200]
    assert seen == set(MALFORMATIONS)
    assert {DeadLetterReason(r) for r in MALFORMATION_REASONS.values()}


def test_duplicates_repeat_an_earlier_message_verbatim(faulty: list[SimulatedMessage]) -> None:
    emitted: set[bytes] = set()
    ids: Counter[str] = Counter()
    duplicates = 0
    for message in faulty:
        if message.fault == DUPLICATE:
            duplicates += 1
            assert message.value in emitted
        elif message.fault is None:
            emitted.add(message.value)
            ids[orjson.loads(message.value)["event_id"]] += 1
    assert duplicates > 0
    assert max(ids.values()) == 1


def test_late_events_are_late_by_at_most_the_bound(faulty: list[SimulatedMessage]) -> None:
    latest = faulty[0].event_time
    late = 0
    for message in (m for m in faulty if m.fault is None):
        assert message.event_time >= latest - timedelta(seconds=900)
        late += message.event_time < latest
        latest = max(latest, message.event_time)
    assert late > 0


# --- statistics -------------------------------------------------------------------------------


def _by_type(events: list[dict[str, Any]], *types_: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] in types_]


def test_purchase_rates_are_heterogeneous_and_match_truth(
    clean: Simulation, clean_events: list[dict[str, Any]]
) -> None:
    orders = Counter(e["customer_id"] for e in _by_type(clean_events, "order_placed"))
    assert all(orders[c] == t.orders for c, t in clean.truth.items())
    start = clean.config.start
    # customers present all year and never dropping out: a Poisson count with a Gamma rate
    stayers = [t for t in clean.truth.values() if t.acquired_at == start and t.dropout_at is None]
    counts = np.array([t.orders for t in stayers], dtype=float)
    rates = np.array([t.purchase_rate_per_day for t in stayers])
    assert counts.var() > 2 * counts.mean()  # over-dispersed, unlike one shared Poisson rate
    assert np.corrcoef(counts, rates * 365)[0, 1] > 0.7
    assert counts.mean() == pytest.approx(rates.mean() * 365, rel=0.15)


def test_order_values_follow_customer_spend(
    clean: Simulation, clean_events: list[dict[str, Any]]
) -> None:
    amounts: dict[str, list[int]] = defaultdict(list)
    for event in _by_type(clean_events, "order_placed"):
        payload = event["payload"]
        assert payload["amount_minor"] == sum(
            i["quantity"] * i["unit_price_minor"] for i in payload["items"]
        )
        amounts[event["customer_id"]].append(payload["amount_minor"])
    regulars = [c for c, a in amounts.items() if len(a) >= 3]
    realised = np.log([np.mean(amounts[c]) for c in regulars])
    truth = np.log([clean.truth[c].mean_order_value_minor for c in regulars])
    assert np.corrcoef(realised, truth)[0, 1] > 0.5
    overall = np.mean([a for c in amounts for a in amounts[c]])
    assert overall == pytest.approx(clean.config.mean_order_value_minor, rel=0.3)


def test_return_fraction_is_about_five_percent(clean_events: list[dict[str, Any]]) -> None:
    placed = _by_type(clean_events, "order_placed")
    returned = _by_type(clean_events, "order_returned")
    assert 0.035 < len(returned) / len(placed) < 0.065
    by_order = {e["payload"]["order_id"]: e for e in placed}
    for event in returned:
        original = by_order[event["payload"]["order_id"]]
        assert event["event_time"] > original["event_time"]
        assert event["payload"]["amount_minor"] <= original["payload"]["amount_minor"]


def test_ink_buyers_also_buy_paper(clean_events: list[dict[str, Any]]) -> None:
    baskets = [
        {i["category"] for i in e["payload"]["items"]}
        for e in _by_type(clean_events, "order_placed")
    ]
    with_ink = [b for b in baskets if "ink" in b]
    paper_given_ink = sum("paper" in b for b in with_ink) / len(with_ink)
    paper = sum("paper" in b for b in baskets) / len(baskets)
    assert paper_given_ink > paper + 0.1


def test_no_purchases_after_dropout(clean: Simulation, clean_events: list[dict[str, Any]]) -> None:
    for event in _by_type(clean_events, "order_placed"):
        gone = clean.truth[event["customer_id"]].dropout_at
        assert gone is None or datetime.fromisoformat(event["event_time"]) < gone
    assert 0.1 < sum(t.dropout_at is not None for t in clean.truth.values()) / 1500 < 0.6


def _complaints_per_day(clean: Simulation, events: list[dict[str, Any]]) -> tuple[float, float]:
    """Complaint rate of churners in the weeks before drop-out, and of stayers over the year."""
    complaints: dict[str, list[datetime]] = defaultdict(list)
    for event in _by_type(events, "ticket_opened"):
        if event["payload"]["complaint"]:
            complaints[event["customer_id"]].append(datetime.fromisoformat(event["event_time"]))
    end = clean.config.end
    churn_n = churn_days = stay_n = stay_days = 0.0
    for cid, truth in clean.truth.items():
        if truth.dropout_at is not None and truth.dropout_at <= end:
            lo = max(truth.dropout_at - WINDOW, truth.acquired_at)
            churn_n += sum(lo <= t < truth.dropout_at for t in complaints[cid])
            churn_days += (truth.dropout_at - lo).total_seconds() / 86_400
        elif truth.dropout_at is None:
            stay_n += len(complaints[cid])
            stay_days += (end - truth.acquired_at).total_seconds() / 86_400
    return churn_n / churn_days, stay_n / stay_days


def test_churners_complain_more_before_dropout(
    clean: Simulation, clean_events: list[dict[str, Any]]
) -> None:
    churners, stayers = _complaints_per_day(clean, clean_events)
    assert churners > 5 * stayers


def test_low_satisfaction_goes_with_negative_text(clean_events: list[dict[str, Any]]) -> None:
    resolved = [e["payload"] for e in _by_type(clean_events, "ticket_resolved")]
    rated = [p for p in resolved if "satisfaction" in p]
    assert 0.5 < len(rated) / len(resolved) < 0.8
    negative = ("unhappy", "disappointed", "Terrible", "poor")
    for payload in rated:
        if "text" in payload:
            is_negative = any(word in payload["text"] for word in negative)
            assert is_negative == (payload["satisfaction"] <= 2), payload


def test_engagement_falls_before_dropout(
    clean: Simulation, clean_events: list[dict[str, Any]]
) -> None:
    delivered: dict[tuple[str, str], datetime] = {}
    opened: set[tuple[str, str]] = set()
    for event in _by_type(clean_events, "message_delivered", "message_opened"):
        message = (event["customer_id"], event["payload"]["message_id"])
        if event["payload"]["channel"] != "email":
            continue
        if event["type"] == "message_delivered":
            delivered[message] = datetime.fromisoformat(event["event_time"])
        else:
            opened.add(message)
    fading = [m for m, t in delivered.items() if _before_dropout(clean, m[0], t)]
    normal = [m for m, t in delivered.items() if clean.truth[m[0]].dropout_at is None]
    fading_rate = sum(m in opened for m in fading) / len(fading)
    normal_rate = sum(m in opened for m in normal) / len(normal)
    assert fading_rate < 0.85 * normal_rate
    unsubscribed = _by_type(clean_events, "message_unsubscribed")
    assert any(_before_dropout(clean, e["customer_id"], _time(e)) for e in unsubscribed)


def _time(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["event_time"])


def _before_dropout(clean: Simulation, customer: str, t: datetime) -> bool:
    gone = clean.truth[customer].dropout_at
    return gone is not None and gone - WINDOW <= t < gone


def test_conversions_follow_a_click_and_an_online_order(
    clean_events: list[dict[str, Any]],
) -> None:
    clicks = {
        (e["customer_id"], e["payload"]["message_id"]): _time(e)
        for e in _by_type(clean_events, "message_clicked")
    }
    orders: dict[str, list[datetime]] = defaultdict(list)
    for event in _by_type(clean_events, "order_placed"):
        if event["payload"]["channel"] in ("web", "app"):
            orders[event["customer_id"]].append(_time(event))
    conversions = _by_type(clean_events, "message_converted")
    assert conversions
    for event in conversions:
        converted = _time(event)
        clicked = clicks[(event["customer_id"], event["payload"]["message_id"])]
        assert timedelta(0) < converted - clicked <= timedelta(days=5, minutes=15)
        assert any(clicked <= t < converted for t in orders[event["customer_id"]])


def test_marketing_dominates_and_every_type_occurs(clean: Simulation) -> None:
    summary = clean.summary()
    # The simulated shop withdraws consent by unsubscribing (message_unsubscribed); the
    # consent_withdrawn and consent_given events of consent platforms are not simulated.
    assert set(EVENT_TYPES) - {"consent_withdrawn", "consent_given"} <= set(summary)
    marketing = sum(n for t, n in summary.items() if t.startswith("message_"))
    assert marketing > 0.6 * len(clean)
    assert summary["message_converted"] > 0
    assert 25 < len(clean) / clean.config.customers < 60  # events per customer-year


def test_engagement_multiplier() -> None:
    t = np.array([0.0, 10.0, 20.0])
    assert engagement(t, np.full(3, np.nan), 5.0).tolist() == [1.0, 1.0, 1.0]
    assert engagement(t, np.full(3, 10.0), 5.0).tolist() == [1.0, 0.3, 0.05]


# --- config, files and the public surface -----------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"start": datetime(2026, 1, 1)},  # noqa: DTZ001 - a naive start is what is rejected
        {"customers": 0},
        {"seed": -1},
        {"days": 0},
        {"malformed_fraction": 1.5},
        {"duplicate_fraction": -0.1},
        {"dropout_beta": (0.0, 1.0)},
        {"max_disorder_seconds": -1.0},
    ],
)
def test_bad_config_is_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SimulationConfig(**changes)


def test_start_is_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    config = SimulationConfig(start=datetime(2026, 1, 1, 2, 0, tzinfo=plus_two))
    assert config.start == datetime(2026, 1, 1, tzinfo=UTC)
    assert config.start.utcoffset() == timedelta(0)


def test_a_window_ending_now_has_no_future_events() -> None:
    now = datetime(2026, 11, 24, 4, 32, 26, 123456, tzinfo=UTC)
    config = SimulationConfig.ending_at(now, days=20, customers=30, seed=2)
    assert config.end <= now
    assert max(m.event_time for m in simulate(config)) < now


def test_ground_truth_file(clean: Simulation, tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    assert write_ground_truth(clean.truth, path) == 1500
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert {r["customer_id"] for r in rows} == set(clean.truth)
    first = rows[0]
    assert first == clean.truth[first["customer_id"]].to_dict()


def test_public_names_are_exported() -> None:
    public = {
        name
        for name, value in vars(simulate_pkg).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(simulate_pkg.__all__)
    for name in simulate_pkg.__all__:
        assert getattr(simulate_pkg, name).__doc__ or name.isupper()


def _simulate_modules() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(simulate_pkg.__path__, "crm_score.simulate.")]
    return ["crm_score.simulate", *names]


@pytest.mark.parametrize("module_name", _simulate_modules())
def test_docstring_examples_run(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
