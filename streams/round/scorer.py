"""Score one round: walk each customer's applied events and silences in event-time order.

A *round* is what the ingest loop does each time the watermark moves: the events the reorder
buffer released (and any late ones), applied to Redis, plus the customers whose due time the
watermark passed. :class:`RoundScorer` turns the store's answers into score snapshots, alerts,
the customers' new alert state and their next due times. It does no I/O;
:mod:`streams.state.round_store` does the reading and writing around it.

Probability scores are computed for all checkpoints of a round in two vectorised calls (one for
events, one for timers), since the exact per-customer score costs ~0.7 ms.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crm_core.settings import Settings
from schemas import Alert, Event, PurchaseEvent
from schemas.fast import encode_score_snapshot
from scorers._special import FloatArray
from scorers.alerts import AlertPolicy, EscalationPolicy
from scorers.anomaly import AnomalyPolicy, AnomalyScorer
from scorers.churn_features import signal_of
from scorers.churn_labels import LabelPolicy
from scorers.churn_pass import ChurnPass
from scorers.churn_scoring import ChurnPolicy, ChurnScoring
from scorers.consent import contactable, publishable
from scorers.deltas import base_amount_minor
from scorers.probability import ProbabilityModel
from scorers.probability_batch import BatchScores, score_batch
from scorers.profile import Profile
from scorers.quintiles import RfmBoundaries
from scorers.retention import due_with_retention, expires_at, retention_seconds, starts_afresh
from scorers.segments import load_segments
from scorers.timeline import Checkpoint, CustomerState, Timeline
from scorers.value_groups import ValueGroupPolicy
from streams.round.messages import Applied, OutputMessage

__all__ = ["CustomerBefore", "RoundScorer", "ScoredRound", "round_scorer"]


@dataclass(frozen=True, slots=True)
class CustomerBefore:
    """A customer as stored before the round: profile (None if new), alert state, partition."""

    profile: Profile | None
    state: CustomerState
    partition: int


@dataclass(slots=True)
class ScoredRound:
    """What a round produced. ``alerts`` pairs each alert's customer and idempotency key with
    the message, so the caller can publish only alerts not published before."""

    snapshots: list[OutputMessage] = field(default_factory=list)
    alerts: list[tuple[str, str, OutputMessage]] = field(default_factory=list)
    states: dict[str, CustomerState] = field(default_factory=dict)
    due: dict[int, list[tuple[str, float | None]]] = field(default_factory=dict)
    timer_checkpoints: int = 0
    examples: list[OutputMessage] = field(default_factory=list)
    # Retention (scorers/retention.py): customers whose data expired at the round's end
    # (customer -> partition, the newest event time they were removed with), and those whose
    # old data an event found expired (it started a new customer: the old data must go).
    expired: dict[str, tuple[int, int]] = field(default_factory=dict)
    reset: set[str] = field(default_factory=set)

    def only(self, partitions: Collection[int], partition_of: Mapping[str, int]) -> ScoredRound:
        """The part of the round on ``partitions`` (``partition_of``: customer -> partition);
        a worker drops the rest when those partitions were revoked while the round finished."""
        return ScoredRound(
            [m for m in self.snapshots if m.partition in partitions],
            [a for a in self.alerts if a[2].partition in partitions],
            {c: s for c, s in self.states.items() if partition_of[c] in partitions},
            {p: items for p, items in self.due.items() if p in partitions},
            self.timer_checkpoints,
            [m for m in self.examples if m.partition in partitions],
            {c: e for c, e in self.expired.items() if e[0] in partitions},
            {c for c in self.reset if partition_of[c] in partitions},
        )


class RoundScorer:
    """Walks a round's customers through :class:`~scorers.timeline.Timeline`."""

    def __init__(
        self,
        timeline: Timeline,
        churn: ChurnScoring | None = None,
        groups: ValueGroupPolicy | None = None,
        fx_rates: Mapping[str, float] | None = None,
        *,
        marketing_when_not_contactable: bool = False,
        retention: int | None = None,
    ) -> None:
        self.timeline = timeline
        self.churn = churn
        self.groups = groups
        self.fx_rates = dict(fx_rates) if fx_rates is not None else {"USD": 1.0}
        self.marketing_when_not_contactable = marketing_when_not_contactable
        self.retention = retention  # seconds of silence before a customer expires (None: off)

    def _order(self, event: Event) -> tuple[str, str, int] | None:
        if not isinstance(event, PurchaseEvent):
            return None
        # Only accepted events reach the walk: their currency has a rate.
        return event.event_id, event.type, base_amount_minor(event, self.fx_rates)

    def score(
        self,
        applied: Sequence[Applied],
        before: dict[str, CustomerBefore],
        watermarks: dict[int, int],
        *,
        at_watermark: bool = False,
    ) -> ScoredRound:
        """Checkpoints of every customer in ``before`` up to its partition's watermark.

        ``applied`` are the round's applied events in the order they were applied (late ones
        first, then by event time); ``before`` holds every customer with an applied event or a
        due time passed by the watermark. ``at_watermark``: every customer also gets a
        checkpoint at the watermark itself (``crm-score score``; a worker never asks for it).
        """
        timeline = self.timeline
        model = timeline.model
        event_scores = None
        if model is not None and applied:
            event_scores = _Columns(
                score_batch(model, [a.profile for a in applied], [a.event_time for a in applied])
            )
        by_customer: dict[str, list[int]] = {}
        for i, a in enumerate(applied):
            by_customer.setdefault(a.event.customer_id, []).append(i)

        out = ScoredRound()
        points: list[tuple[str, CustomerBefore, Checkpoint]] = []
        fresh: set[int] = set()  # points where a customer starts afresh (retention)
        retention = self.retention
        for customer_id, known in before.items():
            state, profile = known.state, known.profile or Profile()
            watermark = watermarks[known.partition]
            walked: list[Checkpoint] = []
            for i in by_customer.get(customer_id, ()):
                a = applied[i]
                at = int(a.event_time)
                if starts_afresh(profile, at, retention):
                    state, walked = self._expire(customer_id, state, profile, walked)
                    state, profile = CustomerState(), Profile()
                    fresh.add(len(points) + len(walked))
                    out.reset.add(customer_id)
                if not a.late:
                    state, silent = timeline.silence(customer_id, state, profile, at, upto=False)
                    walked += silent
                clv = None if event_scores is None else event_scores.clv[i]
                state, point = timeline.event(
                    customer_id,
                    state,
                    a.profile,
                    at,
                    purchase=a.event.type == "order_placed",
                    clv=clv,
                    late=a.late,
                    event_index=i,
                    signals=signal_of(a.event),
                    order=self._order(a.event),
                )
                walked.append(point)
                profile = a.profile
                if state.evaluated_at is None:  # only late events so far
                    state = state._replace(evaluated_at=watermark)
            end = expires_at(profile, retention)
            if end is not None and end <= watermark:
                _, walked = self._expire(customer_id, state, profile, walked)
                out.expired[customer_id] = (known.partition, end - (retention or 0))
                out.due.setdefault(known.partition, []).append((customer_id, None))
                points += [(customer_id, known, p) for p in walked]
                continue
            state, silent = timeline.silence(customer_id, state, profile, watermark, upto=True)
            walked += silent
            if at_watermark and not (walked and walked[-1].at == watermark):
                state, point = timeline.checkpoint(customer_id, state, profile, watermark)
                walked.append(point)
            after = max(watermark, state.evaluated_at or watermark)
            due = due_with_retention(timeline.next_due(state, profile, after), profile, retention)
            out.due.setdefault(known.partition, []).append((customer_id, due))
            if state != known.state:
                out.states[customer_id] = state
            points += [(customer_id, known, p) for p in walked]

        timers = [p for _, _, p in points if p.trigger == "timer"]
        out.timer_checkpoints = len(timers)
        timer_scores = None
        if model is not None and timers:
            timer_scores = _Columns(
                score_batch(model, [p.profile for p in timers], [p.at for p in timers])
            )
        fields_of: list[dict[str, Any]] = []
        timer_index = 0
        for _, _, point in points:
            if point.event_index is not None:
                fields_of.append(_probability_fields(event_scores, point.event_index, model))
            else:
                fields_of.append(_probability_fields(timer_scores, timer_index, model))
                timer_index += 1
        churn = None
        if self.churn is not None:
            states = {c: known.state for c, known in before.items()}
            cut = None if model is None else model.high_value_clv
            churn = ChurnPass(
                self.churn, [(c, p) for c, _, p in points], fields_of, states, self.groups, cut,
                fresh=fresh,
            )  # fmt: skip
        for n, (customer_id, known, point) in enumerate(points):
            fields = fields_of[n]
            if point.event_index is not None:
                a = applied[point.event_index]
                as_of, event_id = a.event.event_time, a.event.event_id
            else:
                as_of, event_id = datetime.fromtimestamp(point.at, UTC), None
            scores = point.rfm
            if point.quintiles is not None:
                r, f, m = point.quintiles
                fields.update(r_score=r, f_score=f, m_score=m, segment=point.segment)
            key = customer_id.encode()  # outputs are keyed by customer, like the inputs
            if churn is not None:
                fields.update(churn.at_point(n, customer_id, point))
                out.examples += [
                    OutputMessage(known.partition, key, example)
                    for example in churn.examples(customer_id, point)
                ]
            snapshot = encode_score_snapshot(
                customer_id=customer_id,
                as_of=as_of,
                trigger=point.trigger,
                event_id=event_id,
                recency_days=scores.recency_days,
                frequency=scores.frequency,
                monetary_minor=scores.monetary_minor,
                **fields,
            )
            out.snapshots.append(OutputMessage(known.partition, key, snapshot))
            may_contact = contactable(point.profile)
            for draft in point.alerts:
                if not publishable(
                    draft.alert_type,
                    contactable=may_contact,
                    when_not=self.marketing_when_not_contactable,
                ):
                    continue
                alert = Alert(
                    alert_type=draft.alert_type,
                    severity=draft.severity,
                    customer_id=customer_id,
                    event_time=datetime.fromtimestamp(point.at, UTC),
                    idempotency_key=draft.idempotency_key,
                    scores={
                        "recency_days": scores.recency_days,
                        "frequency": scores.frequency,
                        "monetary_minor": scores.monetary_minor,
                        "r_score": fields.get("r_score"),
                        "f_score": fields.get("f_score"),
                        "m_score": fields.get("m_score"),
                        "segment": point.segment,
                        "p_alive": fields.get("p_alive"),
                        "clv": fields.get("clv"),
                        "churn_probability": fields.get("churn_probability"),
                        "value_group": fields.get("value_group"),
                    },
                    reasons=draft.reasons,
                    details=draft.details,
                    contactable=may_contact,
                )
                message = OutputMessage(known.partition, key, alert.to_json_bytes())
                out.alerts.append((customer_id, draft.idempotency_key, message))
        if churn is not None:
            for customer_id, state in churn.final_states(out.states).items():
                out.states[customer_id] = state
        for customer_id in out.expired:
            out.states.pop(customer_id, None)
        return out

    def _expire(
        self, customer_id: str, state: CustomerState, profile: Profile, walked: list[Checkpoint]
    ) -> tuple[CustomerState, list[Checkpoint]]:
        """The customer's checkpoints up to (not at) its expiry (scorers/retention.py)."""
        end = expires_at(profile, self.retention)
        assert end is not None  # only called for a customer that expires
        state, silent = self.timeline.silence(customer_id, state, profile, end, upto=False)
        return state, walked + silent


def round_scorer(
    settings: Settings,
    *,
    boundaries: RfmBoundaries | None = None,
    model: ProbabilityModel | None = None,
) -> RoundScorer:
    """The round scorer every path uses (the worker, ``crm-score evaluate``), from settings;
    the worker hot-swaps ``boundaries``, the probability model and the churn model."""
    s = settings
    timeline = Timeline(
        AlertPolicy(s.p_alive_alert_threshold, s.win_back_after_days),
        load_segments(),
        boundaries,
        model,
        LabelPolicy(s.churn_horizon_days, s.churn_sample_days, s.churn_sample_max_silence_days),
        EscalationPolicy(complaints=s.escalation_complaints, sentiment=s.escalation_sentiment),
        AnomalyScorer(
            AnomalyPolicy(
                quantile=s.anomaly_quantile,
                min_orders=s.anomaly_min_orders,
                amount_tau_days=s.anomaly_amount_tau_days,
            )
        )
        if s.anomaly_enabled
        else None,
        s.value_group_high_clv,
    )
    churn = ChurnScoring(
        ChurnPolicy(
            s.churn_alert_threshold, s.churn_alert_reset, s.churn_min_examples, s.churn_horizon_days
        )
    )
    groups = ValueGroupPolicy(s.value_group_churn_threshold, s.value_group_high_clv)
    return RoundScorer(
        timeline,
        churn,
        groups,
        s.fx_rates,
        marketing_when_not_contactable=s.marketing_alerts_when_not_contactable,
        retention=retention_seconds(s.retention_days),
    )


class _Columns:
    """A batch's scores as Python lists (NaN: None); indexing numpy arrays one element at a
    time costs more than the whole vectorised computation."""

    __slots__ = ("clv", "e30", "e90", "next_at", "p_alive")

    def __init__(self, scores: BatchScores) -> None:
        def column(array: FloatArray) -> list[float | None]:
            return [None if math.isnan(v) else v for v in array.tolist()]

        self.p_alive = column(scores.p_alive)
        self.e30 = column(scores.expected_purchases_30d)
        self.e90 = column(scores.expected_purchases_90d)
        self.clv = column(scores.clv)
        self.next_at = column(scores.next_purchase_at)


def _probability_fields(scores: _Columns | None, i: int, model: Any) -> dict[str, Any]:
    """One checkpoint's probability scores as snapshot fields."""
    if scores is None or model is None:
        return {}
    p_alive, next_at = scores.p_alive[i], scores.next_at[i]
    return {
        "p_alive": p_alive,
        "expected_purchases_30d": scores.e30[i],
        "expected_purchases_90d": scores.e90[i],
        "clv": scores.clv[i],
        "next_purchase_at": None if next_at is None else datetime.fromtimestamp(next_at, UTC),
        "probability_model_version": model.version if p_alive is not None else None,
    }
