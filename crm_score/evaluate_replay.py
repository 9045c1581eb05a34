"""Replay an event file through the worker's scoring code, in process: no Kafka, no Redis.

The events are parsed and deduplicated as the worker does (:mod:`scorers.dedup`: the first
occurrence of a customer's event id wins, in release order), sorted as the reorder buffer releases
them (event time, kind, event id), folded into profiles with the same deltas as the Redis script
(:func:`scorers.profile.apply_delta`), and scored by :class:`streams.round.scorer.RoundScorer` in
rounds of one day of event time. A round walks up to its limit (the last second before its
watermark): the events strictly before the watermark, plus every customer whose due time the
limit passed, exactly as a worker round with that watermark. Alert states go through the bytes
Redis would store between rounds.

The probability model and the RFM boundaries are fitted once, as of a fit time, on the profiles
of the events before it, and score the whole history (early examples are scored with a model
fitted later: population parameters only, and the same for every learner fed the examples).
RFM cut points are exact quantiles (numpy ``inverted_cdf``, what a KLL sketch in exact mode
returns), so a replay is repeatable at any size; the KLL sketch is randomised beyond ``k``
customers.

The replay stops at the last event: a snapshot whose horizon reaches past it stays unlabelled
(*censored*) or was labelled 0 by a purchase inside the history, as in a live worker. Running
the clock on would label the rest 1 for lack of data (purchases after the file's end are
unknown), so the evaluation keeps only snapshots whose whole horizon lies in the history.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np

from crm_core.errors import EventRejected, ModelError
from crm_core.settings import INPUT_KINDS, Settings
from crm_score.event_files import read_event_file
from schemas import Event, EventParser, TrainingExample
from scorers.churn_scoring import ChurnModelRef
from scorers.customer_state import CustomerState
from scorers.dedup import Dedup, Verdict, release_order
from scorers.deltas import delta_for, epoch_seconds
from scorers.probability import ProbabilityModel, fit_from_profiles
from scorers.probability_batch import high_value_cut
from scorers.profile import Profile, ProfileDelta, apply_delta
from scorers.quintiles import QUINTILE_RANKS, RfmBoundaries
from scorers.rfm import rfm
from streams.round.messages import Applied
from streams.round.scorer import CustomerBefore, RoundScorer, ScoredRound, round_scorer

__all__ = [
    "ParsedEvents",
    "Replayed",
    "ReplayedHistory",
    "ReplayedRound",
    "RoundReplay",
    "fit_population_at",
    "read_events",
    "replay_events",
    "replay_history",
    "rfm_boundaries",
]

_DAY = 86_400
_PARTITION = 0


@dataclass(frozen=True, slots=True)
class _Record:
    """What :class:`streams.round.messages.Applied` keeps of the consumed message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None = None


class _Item(NamedTuple):
    event: Event
    delta: ProfileDelta
    record: _Record
    order: tuple[float, str, str]  # the reorder buffer's release order


@dataclass(slots=True)
class ParsedEvents:
    """Valid, deduplicated events in release order, and what was left out."""

    items: list[_Item]
    rejected: int = 0
    duplicates: int = 0

    @property
    def first_at(self) -> int:
        """Epoch second of the first event."""
        return epoch_seconds(self.items[0].event.event_time)

    @property
    def last_at(self) -> int:
        """Epoch second of the last event."""
        return epoch_seconds(self.items[-1].event.event_time)


@dataclass(slots=True)
class ReplayedHistory:
    """What a replay produced: the training examples in emission (label-resolution) order."""

    parsed: ParsedEvents
    fit_at: datetime
    model: ProbabilityModel
    boundaries: RfmBoundaries
    examples: list[TrainingExample]
    customers: int
    censored: int  # snapshots still waiting for their label when the replay stopped
    until: datetime  # the last second walked
    seconds: dict[str, float] = field(default_factory=dict)


def read_events(path: Path, settings: Settings, *, now: datetime) -> ParsedEvents:
    """Parse ``path`` as the worker would: invalid lines are rejected, a repeated event id is
    a duplicate (the first occurrence in the file wins); the rest sorted in release order."""
    parser = EventParser(accepted_currencies=frozenset(settings.fx_rates))
    parsed = ParsedEvents([])
    items: list[_Item] = []
    # A line of no known type goes to a fallback topic and is rejected there, as in the worker.
    for offset, message in enumerate(read_event_file(path, fallback_kind=INPUT_KINDS[0])):
        try:
            event = parser.parse(message.value, message.kind, now)
            delta = delta_for(event, settings.fx_rates)
        except EventRejected:
            parsed.rejected += 1
            continue
        record = _Record(settings.topic(event.kind), _PARTITION, offset, message.key, message.value)
        items.append(_Item(event, delta, record, release_order(event)))
    items.sort(key=lambda item: item.order)
    dedup = Dedup(settings.dedup_window_days * 86400)  # the worker's rule, in its order
    for item in items:
        verdict = dedup.admit_event(item.event)
        if verdict is Verdict.NEW:
            parsed.items.append(item)
        elif verdict is Verdict.DUPLICATE:
            parsed.duplicates += 1
        else:
            parsed.rejected += 1  # the worker dead-letters it: beyond_dedup_window
    if not parsed.items:
        raise ModelError(f"{path} has no valid event to replay")
    return parsed


def rfm_boundaries(profiles: Iterable[Profile], as_of: datetime) -> RfmBoundaries:
    """The population's exact RFM quintile cut points as of ``as_of`` (version 1).

    The same cut points as :class:`scorers.quintiles.QuintileSketch` in exact mode.
    """
    rows = [r for r in (rfm(p, as_of) for p in profiles) if r.recency_days is not None]
    if not rows:
        raise ModelError(f"no customer has ordered by {as_of.isoformat()}; fit later")

    def cuts(values: Sequence[float]) -> tuple[float, float, float, float]:
        a, b, c, d = np.quantile(np.asarray(values, float), QUINTILE_RANKS, method="inverted_cdf")
        return (float(a), float(b), float(c), float(d))

    return RfmBoundaries(
        version=1,
        as_of=as_of,
        recency_days=cuts([r.recency_days for r in rows if r.recency_days is not None]),
        frequency=cuts([r.frequency for r in rows]),
        monetary_minor=cuts([r.monetary_minor for r in rows]),
    )


def fit_population_at(
    parsed: ParsedEvents, as_of: datetime, settings: Settings
) -> tuple[ProbabilityModel, RfmBoundaries]:
    """Probability model (with its value-tier cut) and RFM boundaries, fitted as of ``as_of``
    on the profiles of the events strictly before it."""
    cutoff = as_of.timestamp()
    profiles: dict[str, Profile] = {}
    for item in parsed.items:
        if item.order[0] >= cutoff:
            break
        customer = item.event.customer_id
        profiles[customer] = apply_delta(profiles.get(customer, Profile()), item.delta)
    population = list(profiles.values())
    model = fit_from_profiles(
        population, as_of, minor_per_major=100, dropout=settings.dropout_model
    )
    cut = high_value_cut(model, population, settings.high_value_top_fraction)
    model = replace(model, version="eval", high_value_clv=cut)
    return model, rfm_boundaries(population, as_of)


@dataclass(slots=True)
class Replayed:
    """What :func:`replay_events` produced: the training examples in emission order, every
    customer's final profile and state, and (when asked for) each round's score snapshots and
    alerts as the worker publishes them (JSON bytes, in publishing order)."""

    examples: list[TrainingExample]
    profiles: dict[str, Profile]
    states: dict[str, CustomerState]
    snapshots: list[bytes] = field(default_factory=list)
    alerts: list[bytes] = field(default_factory=list)


class ReplayedRound(NamedTuple):
    """One round of a replay: its limit (the last second walked), the events it applied, and
    what the scorer made of them."""

    limit: int
    applied: list[Applied]
    scored: ScoredRound


class RoundReplay:
    """Drives a :class:`~streams.round.scorer.RoundScorer` over parsed events in daily rounds, the
    way a worker with one partition would: profiles folded per event, alert states kept as the
    bytes Redis holds between rounds, due times in a heap standing in for the due-index.

    The scorer is the caller's: it may swap its models between two rounds, as a worker's
    :class:`~streams.refresh.ModelFollower` does.
    """

    def __init__(self, parsed: ParsedEvents, scorer: RoundScorer) -> None:
        self.parsed = parsed
        self.scorer = scorer
        #: Every customer's profile after the rounds replayed so far.
        self.profiles: dict[str, Profile] = {}
        #: Alert states as Redis holds them between rounds, by customer.
        self.stored: dict[str, bytes] = {}

    def states(self) -> dict[str, CustomerState]:
        """Every customer's alert state after the rounds replayed so far."""
        return {c: CustomerState.from_bytes(raw) for c, raw in self.stored.items()}

    def rounds(self, *, until: int) -> Iterator[ReplayedRound]:
        """Score every event and timer up to epoch second ``until`` (inclusive), one round per
        day of event time; each round is yielded once its states and due times are kept."""
        items, profiles, stored = self.parsed.items, self.profiles, self.stored
        due_of: dict[str, int] = {}
        heap: list[tuple[int, str]] = []  # (due, customer); stale entries are skipped
        i = 0
        edge = self.parsed.first_at // _DAY * _DAY + _DAY  # the round's watermark
        while True:
            edge = min(edge, until + 1)
            limit = edge - 1
            applied: list[Applied] = []
            before: dict[str, CustomerBefore] = {}
            while i < len(items) and items[i].order[0] < edge:
                item = items[i]
                customer = item.event.customer_id
                known = profiles.get(customer)
                if customer not in before:
                    before[customer] = CustomerBefore(
                        known, CustomerState.from_bytes(stored.get(customer)), _PARTITION
                    )
                profile = apply_delta(known or Profile(), item.delta)
                profiles[customer] = profile
                at = float(epoch_seconds(item.event.event_time))
                applied.append(Applied(item.record, item.event, profile, at, False))
                i += 1
            while heap and heap[0][0] <= limit:
                due, customer = heapq.heappop(heap)
                if due_of.get(customer) != due:
                    continue
                del due_of[customer]
                if customer not in before:
                    state = CustomerState.from_bytes(stored.get(customer))
                    before[customer] = CustomerBefore(profiles.get(customer), state, _PARTITION)
            if before:
                out = self.scorer.score(applied, before, {_PARTITION: limit})
                for customer, state in out.states.items():
                    stored[customer] = state.to_bytes()
                for customer, next_due in out.due.get(_PARTITION, []):
                    if next_due is None:
                        due_of.pop(customer, None)
                    else:
                        due_of[customer] = math.ceil(next_due)
                        heapq.heappush(heap, (due_of[customer], customer))
                yield ReplayedRound(limit, applied, out)
            if edge > until:
                break
            edge += _DAY


def replay_events(
    parsed: ParsedEvents,
    settings: Settings,
    model: ProbabilityModel,
    boundaries: RfmBoundaries,
    *,
    until: int,
    churn_model: ChurnModelRef | None = None,
    outputs: bool = False,
) -> Replayed:
    """Score every event and timer up to epoch second ``until`` (inclusive) in daily rounds,
    with ``churn_model`` published from the start (None: the cold-start fallback); keep the
    snapshots and alerts too when ``outputs``."""
    scorer = round_scorer(settings, boundaries=boundaries, model=model)
    scorer.retention = None  # scores every customer of the file: retention is the worker's
    if scorer.churn is not None:
        scorer.churn.model = churn_model
    replay = RoundReplay(parsed, scorer)
    examples: list[TrainingExample] = []
    snapshots: list[bytes] = []
    alerts: list[bytes] = []
    for round_ in replay.rounds(until=until):
        out = round_.scored
        examples += [TrainingExample.from_json_bytes(m.value) for m in out.examples]
        if outputs:
            snapshots += [m.value for m in out.snapshots]
            alerts += [m.value for _, _, m in out.alerts]
    return Replayed(examples, replay.profiles, replay.states(), snapshots, alerts)


def replay_history(
    path: Path,
    settings: Settings,
    *,
    fit_at: float = 0.3,
    now: datetime | None = None,
) -> ReplayedHistory:
    """Read, fit as of ``fit_at`` of the history's span, and replay ``path``.

    ``now`` only bounds how far in the future an event may lie (default: the wall clock).
    """
    if not 0 < fit_at < 1:
        raise ModelError(f"fit_at={fit_at!r} must be a fraction of the history in (0, 1)")
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    parsed = read_events(path, settings, now=now or datetime.now(UTC))
    seconds["read"] = time.perf_counter() - start

    start = time.perf_counter()
    first, last = parsed.first_at, parsed.last_at
    fit_time = datetime.fromtimestamp(first + round(fit_at * (last - first)), UTC)
    model, boundaries = fit_population_at(parsed, fit_time, settings)
    seconds["fit"] = time.perf_counter() - start

    start = time.perf_counter()
    replayed = replay_events(parsed, settings, model, boundaries, until=last)
    examples, states = replayed.examples, replayed.states
    seconds["replay"] = time.perf_counter() - start
    return ReplayedHistory(
        parsed=parsed,
        fit_at=fit_time,
        model=model,
        boundaries=boundaries,
        examples=examples,
        customers=len({item.event.customer_id for item in parsed.items}),
        censored=sum(len(state.pending) for state in states.values()),
        until=datetime.fromtimestamp(last, UTC),
        seconds=seconds,
    )
