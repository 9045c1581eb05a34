"""The churn side of scoring a round: features, probabilities, alerts, examples and the
value x risk group.

After a round's walk (:class:`~scorers.timeline.Timeline`) and its vectorised probability
scores, :class:`ChurnPass` builds each checkpoint's feature row, scores all rows in one call,
then, checkpoint by checkpoint in walk order, applies the ``churn_risk`` hysteresis, keeps the
features of snapshots taken and turns resolved snapshots into training examples. The features
of snapshots still waiting for their label go back into the customer's state.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np

from scorers.churn_features import FEATURE_NAMES, churn_feature_values, present
from scorers.churn_scoring import _UNSCORED, ChurnScoring
from scorers.customer_state import CustomerState
from scorers.timeline import Checkpoint
from scorers.value_groups import ValueGroupPolicy

__all__ = ["ChurnPass"]


class ChurnPass:
    """One round's churn scoring; call :meth:`at_point` and :meth:`examples` in walk order."""

    def __init__(
        self,
        churn: ChurnScoring,
        points: Sequence[tuple[str, Checkpoint]],
        fields: Sequence[Mapping[str, Any]],
        before: Mapping[str, CustomerState],
        groups: ValueGroupPolicy | None = None,
        high_value_clv: float | None = None,
        *,
        fresh: Collection[int] = (),
    ) -> None:
        self._churn = churn
        self._before = before
        self._fields = fields
        self._groups = groups
        self._high_value_clv = high_value_clv
        self._fresh = fresh  # points where a customer starts afresh (its data expired)
        # Rows are built where they are used: every checkpoint when a model scores, else only
        # snapshots (training) and fallback scores high enough to need reasons.
        model = churn.active_model
        clusters = churn.clusters
        self._values: list[list[float] | None] = [None] * len(points)
        scored: list[int] = []
        self._scores = [_UNSCORED] * len(points)
        for n, (_, point) in enumerate(points):
            if point.state is None or point.profile.orders <= 0:
                continue
            if model is not None or clusters is not None or point.snapshot:
                self._values[n] = self._row(point, fields[n])
            if model is not None:
                scored.append(n)
            else:
                self._scores[n] = churn.fallback(
                    fields[n].get("p_alive"), partial(self._row_at, n, point, fields[n])
                )
        if scored:
            values = [self._values[n] for n in scored]
            for n, score in zip(scored, churn.score_values(values), strict=True):  # type: ignore[arg-type]
                self._scores[n] = score
        self._clusters: dict[int, int] = {}
        rows = [n for n, v in enumerate(self._values) if v is not None]
        if clusters is not None and rows:
            matrix = np.asarray([self._values[n] for n in rows], dtype=np.float64)
            ids = clusters.assign_matrix(matrix, FEATURE_NAMES)
            self._clusters = dict(zip(rows, ids, strict=True))
        self._alerted: dict[str, bool] = {}
        self._group: dict[str, str | None] = {}
        self._features: dict[str, dict[int, tuple[float | None, ...]]] = {}
        for customer_id, _ in points:
            if customer_id not in self._alerted:
                state = before[customer_id]
                self._alerted[customer_id] = state.churn_alerted
                self._group[customer_id] = state.value_group
                self._features[customer_id] = {at: f for at, f in state.pending if f is not None}

    @staticmethod
    def _row(point: Checkpoint, fields: Mapping[str, Any]) -> list[float]:
        state = point.state
        assert state is not None
        return churn_feature_values(
            point.profile,
            state.recent,
            point.at,
            quintiles=point.quintiles,
            p_alive=fields.get("p_alive"),
            expected_purchases_90d=fields.get("expected_purchases_90d"),
            last_gap_seconds=state.last_gap,
        )

    def _row_at(self, n: int, point: Checkpoint, fields: Mapping[str, Any]) -> dict[str, float]:
        values = self._values[n]
        if values is None:
            values = self._values[n] = self._row(point, fields)
        return present(values)

    def at_point(self, n: int, customer_id: str, point: Checkpoint) -> dict[str, Any]:
        """Snapshot fields of the ``n``-th checkpoint; adds a ``churn_risk`` alert to it."""
        if n in self._fresh:  # a new customer from here: nothing carries over
            self._alerted[customer_id], self._group[customer_id] = False, None
            self._features[customer_id] = {}
        score = self._scores[n]
        values = self._values[n]
        if point.snapshot and values is not None:
            # Missing values are kept as None, as they read back from Redis's JSON (NaN != NaN).
            self._features[customer_id][point.at] = tuple(None if v != v else v for v in values)
        if not point.late:
            alerted, draft = self._churn.alert(
                customer_id, score, self._alerted[customer_id], point.at
            )
            self._alerted[customer_id] = alerted
            if draft is not None:
                point.alerts.append(draft)
        out: dict[str, Any] = {
            "churn_probability": score.probability,
            "churn_model_version": score.version,
            "reasons": score.reasons,
        }
        if self._groups is not None:
            out["value_group"] = self._value_group(n, customer_id, point, score.probability)
        out["cluster"] = self._clusters.get(n)
        return out

    def _value_group(
        self, n: int, customer_id: str, point: Checkpoint, churn: float | None
    ) -> str | None:
        assert self._groups is not None
        profile, state, fields = point.profile, point.state, self._fields[n]
        # The tier decided at the last purchase, as the high_value_at_risk alert sees it.
        tier = None if state is None or state.value_minor is None else state.high_value
        alerted = state is not None and state.at_risk_episode == profile.last_purchase_at
        group = self._groups.group(
            orders=profile.orders,
            net_minor=profile.monetary_minor,
            clv=fields.get("clv"),
            churn=churn,
            high_value_clv=self._high_value_clv,
            tier=tier,
            alerted=alerted and profile.last_purchase_at is not None,
        )
        previous = self._group[customer_id]
        if group is None:
            return None
        if previous is not None and group != previous and not point.late:
            point.alerts.append(self._groups.changed(customer_id, previous, group, point.at))
        self._group[customer_id] = group
        return group

    def examples(self, customer_id: str, point: Checkpoint) -> list[bytes]:
        """``crm.training`` messages of the snapshots whose label resolved at ``point``."""
        known = self._features[customer_id]
        out = []
        for snapshot_at, label in point.resolved:
            features = known.pop(snapshot_at, None)
            if features is not None:  # None: taken before features were kept (skip it)
                out.append(self._churn.example(customer_id, snapshot_at, label, point.at, features))
        return out

    def final_states(self, walked: Mapping[str, CustomerState]) -> dict[str, CustomerState]:
        """States that differ from before the round once churn fields are filled in
        (``walked``: the walk's changed states; the rest are as before)."""
        out = {}
        for customer_id, alerted in self._alerted.items():
            before = self._before[customer_id]
            state = walked.get(customer_id, before)
            known = self._features[customer_id]
            pending = tuple((at, f if f is not None else known.get(at)) for at, f in state.pending)
            state = state._replace(
                pending=pending, churn_alerted=alerted, value_group=self._group[customer_id]
            )
            if state != before:
                out[customer_id] = state
        return out
