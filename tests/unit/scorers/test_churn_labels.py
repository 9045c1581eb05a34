"""Churn labels on a hand-built history whose snapshots and labels are known exactly."""

from __future__ import annotations

import orjson
import pytest

from schemas import TrainingExample
from scorers.alerts import AlertPolicy
from scorers.churn_features import FEATURE_NAMES
from scorers.churn_labels import LabelPolicy
from scorers.churn_scoring import FALLBACK_VERSION, ChurnPolicy, ChurnScoring
from scorers.segments import load_segments
from scorers.timeline import CustomerState, Timeline
from streams.round.messages import Applied
from streams.round.scorer import CustomerBefore, RoundScorer, ScoredRound
from tests.unit.hand_built import DAY, T0, Record, profile_of, purchase_event

H = 90
POLICY = LabelPolicy(horizon_days=H, sample_days=30, max_silence_days=180)
PURCHASE_DAYS = (0, 30, 200)
END = T0 + 400 * DAY


def _scorer() -> RoundScorer:
    timeline = Timeline(AlertPolicy(), load_segments(), None, None, POLICY)
    return RoundScorer(timeline, ChurnScoring(ChurnPolicy(horizon_days=H)))


def _applied(days: tuple[int, ...]) -> list[Applied]:
    out = []
    for n, day in enumerate(days):
        at = T0 + day * DAY
        profile = profile_of(*(T0 + d * DAY for d in PURCHASE_DAYS[: PURCHASE_DAYS.index(day) + 1]))
        out.append(
            Applied(Record(offset=n), purchase_event(at, f"e{day}"), profile, float(at), False)
        )
    return out


def _examples(out: ScoredRound) -> list[tuple[int, int, int]]:
    """(snapshot day, label, resolved: seconds after T0) of each example."""
    rows: list[tuple[int, int, int]] = []
    for message in out.examples:
        example = TrainingExample.from_json_bytes(message.value)
        snapshot = (int(example.snapshot_at.timestamp()) - T0) / DAY
        resolved = int(example.resolved_at.timestamp()) - T0
        rows.append((round(snapshot), example.label, resolved))
    return rows


# Purchases on days 0, 30 and 200; horizon 90 days, a silence sample every 30 days for 180 days.
EXPECTED = [
    (0, 0, 30 * DAY),  # the purchase on day 30 came within 90 days
    (30, 1, 120 * DAY + 1),  # day 30 + 90 passed without a purchase: known 1 s after
    (60, 1, 150 * DAY + 1),
    (90, 1, 180 * DAY + 1),
    (120, 0, 200 * DAY),  # samples taken in the silence, resolved by the day-200 purchase
    (150, 0, 200 * DAY),
    (180, 0, 200 * DAY),
    (200, 1, 290 * DAY + 1),
    (230, 1, 320 * DAY + 1),
    (260, 1, 350 * DAY + 1),
    (290, 1, 380 * DAY + 1),
]  # still waiting at day 400: snapshots 320, 350 and 380 (the last sample: 180 days silent)


def test_labels_of_a_hand_built_history_in_one_round() -> None:
    before = {"c": CustomerBefore(None, CustomerState(), 0)}
    out = _scorer().score(_applied(PURCHASE_DAYS), before, {0: END})

    assert _examples(out) == EXPECTED
    state = out.states["c"]
    assert [round((at - T0) / DAY) for at, _ in state.pending] == [320, 350, 380]
    assert all(f is not None and len(f) == len(FEATURE_NAMES) for _, f in state.pending)
    ((_, due),) = out.due[0]
    assert due == T0 + (320 + H) * DAY + 1  # the next label; sampling stopped at 180 days


def test_the_same_history_in_many_rounds_gives_the_same_examples() -> None:
    scorer = _scorer()
    state, profile = CustomerState(), None
    examples: list[tuple[int, int, int]] = []
    applied = _applied(PURCHASE_DAYS)
    for limit_day in (10, 29, 31, 119, 121, 199, 200, 201, 320, 400):
        limit = T0 + limit_day * DAY
        due_now = [a for a in applied if a.event_time <= limit]
        applied = applied[len(due_now) :]
        before = {"c": CustomerBefore(profile, state, 0)}
        out = scorer.score(due_now, before, {0: limit})
        examples += _examples(out)
        state = out.states.get("c", state)
        profile = due_now[-1].profile if due_now else profile
        # What Redis stores and reads back between rounds.
        state = CustomerState.from_bytes(state.to_bytes())
    assert examples == EXPECTED


def test_features_are_those_of_the_snapshot_time() -> None:
    before = {"c": CustomerBefore(None, CustomerState(), 0)}
    out = _scorer().score(_applied(PURCHASE_DAYS), before, {0: END})
    by_snapshot = {
        round((e.snapshot_at.timestamp() - T0) / DAY): e
        for e in (TrainingExample.from_json_bytes(m.value) for m in out.examples)
    }
    assert by_snapshot[0].features["recency_days"] == 0
    assert by_snapshot[0].features["log_orders"] == 0.693  # log(1 + 1 order), 3 decimals
    assert by_snapshot[90].features["recency_days"] == pytest.approx(60)
    assert by_snapshot[200].features["mean_gap_days"] == pytest.approx(100)
    assert by_snapshot[200].features["last_gap_ratio"] == pytest.approx(1.7)  # 170 / 100


def test_a_late_purchase_labels_earlier_snapshots_zero_and_takes_none() -> None:
    pending = ((T0, None), (T0 + 30 * DAY, None))
    step = POLICY.step(
        pending, T0 + 30 * DAY, T0, at=T0 + 40 * DAY, purchase=True, late=True, orders=2
    )
    assert step.resolved == [(T0, 0), (T0 + 30 * DAY, 0)]
    assert step.pending == () and not step.snapshot


def test_without_a_model_churn_falls_back_to_one_minus_p_alive() -> None:
    churn = ChurnScoring(ChurnPolicy())
    (score,) = churn.score([{"p_alive": 0.25, "recency_days": 80.0}], [0.25])
    assert score.probability == 0.75 and score.version == FALLBACK_VERSION
    assert score.reasons and score.reasons[0].startswith("no purchase for 80 days")
    assert churn.score([None], [None])[0].probability is None


def test_churn_alert_has_hysteresis() -> None:
    churn = ChurnScoring(ChurnPolicy(alert_threshold=0.7, alert_reset=0.5))
    alerted, keys = False, []
    for n, p_alive in enumerate([0.9, 0.2, 0.35, 0.25, 0.6, 0.55, 0.2]):
        (score,) = churn.score([{"p_alive": p_alive}], [p_alive])
        alerted, draft = churn.alert("c", score, alerted, n)
        if draft is not None:
            keys.append(draft.idempotency_key)
    # 0.8 fires; 0.65 and 0.75 stay inside the band; 0.4 re-arms; 0.8 fires again.
    assert keys == ["churn_risk:c:1", "churn_risk:c:6"]


def test_state_with_churn_fields_round_trips_through_bytes() -> None:
    state = (
        _scorer()
        .score(_applied(PURCHASE_DAYS), {"c": CustomerBefore(None, CustomerState(), 0)}, {0: END})
        .states["c"]
    )
    assert CustomerState.from_bytes(state.to_bytes()) == state
    assert len(orjson.loads(state.to_bytes())[8]) == 3  # the snapshots waiting for labels
