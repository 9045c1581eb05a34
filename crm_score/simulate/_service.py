"""Help-desk tickets: opened, updated and resolved, with complaints rising before drop-out."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ._config import SimulationConfig
from ._purchases import PurchaseOutcome
from ._records import DAY, HOUR, SERVICE, EventRecord, rfc3339
from ._text import TICKET_CATEGORIES, closing_text, opening_text

__all__ = ["simulate_service"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

PRIORITIES: tuple[str, ...] = ("low", "normal", "high", "urgent")
_MEDIAN_RESOLUTION_HOURS = np.array([60.0, 30.0, 12.0, 4.0])
# Ticket origin: 0 = spontaneous, 1 = about an order, 2 = about a return, 3 = churn-related.
_COMPLAINT_P = np.array([0.08, 0.3, 0.15, 0.7])
_IN_WINDOW_COMPLAINT_P = 0.5
_CATEGORY_WEIGHTS = np.array(
    [
        # account, billing, delivery, product_quality, returns, technical, other
        [0.2, 0.15, 0.15, 0.1, 0.05, 0.2, 0.15],
        [0.0, 0.2, 0.5, 0.3, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
        [0.1, 0.25, 0.3, 0.25, 0.05, 0.0, 0.05],
    ]
)
_PRIORITY_WEIGHTS = np.array([[0.3, 0.5, 0.15, 0.05], [0.1, 0.4, 0.35, 0.15]])
# Satisfaction 1..5 for: ordinary tickets, complaints, tickets in the weeks before drop-out.
_SATISFACTION_WEIGHTS = np.array(
    [[0.03, 0.05, 0.12, 0.35, 0.45], [0.2, 0.25, 0.25, 0.2, 0.1], [0.35, 0.3, 0.2, 0.1, 0.05]]
)


def _categorical(rng: np.random.Generator, weights: FloatArray, rows: IntArray) -> IntArray:
    cdf = np.cumsum(weights, axis=1)
    cdf /= cdf[:, -1:]
    picked = (rng.random(rows.size)[:, None] > cdf[rows]).sum(axis=1)
    out: IntArray = np.minimum(picked, weights.shape[1] - 1)
    return out


def _open_times(
    rng: np.random.Generator, pop_birth: FloatArray, rate: FloatArray, out: PurchaseOutcome,
    config: SimulationConfig,
) -> tuple[IntArray, FloatArray, IntArray, list[str | None]]:  # fmt: skip
    """Customer, opening time, origin and referenced order of every ticket, by time."""
    horizon, window = config.horizon_seconds, config.churn_signal_days * DAY
    n = pop_birth.size
    alive_until = np.fmin(out.dropout, horizon)
    exposure = np.clip(alive_until - pop_birth, 0.0, None)
    c0 = np.repeat(np.arange(n), rng.poisson(rate * exposure / DAY))
    t0 = pop_birth[c0] + rng.random(c0.size) * exposure[c0]
    about_order = np.flatnonzero(rng.random(out.order_customer.size) < 0.05)
    c1 = out.order_customer[about_order]
    t1 = out.order_time[about_order] + (1.0 + 9.0 * rng.random(c1.size)) * DAY
    about_return = np.flatnonzero(rng.random(out.return_customer.size) < 0.4)
    c2 = out.return_customer[about_return]
    t2 = out.return_time[about_return] - 2.0 * rng.random(c2.size) * DAY
    churners = np.flatnonzero(~np.isnan(out.dropout))
    c3 = np.repeat(churners, rng.poisson(0.6, size=churners.size))
    lo = np.fmax(pop_birth[c3], out.dropout[c3] - window)
    t3 = lo + rng.random(c3.size) * (out.dropout[c3] - lo)
    refs: list[str | None] = [None] * c0.size
    refs += [out.order_ids[k] for k in about_order.tolist()]
    refs += [out.return_order_ids[k] for k in about_return.tolist()]
    refs += [None] * c3.size
    cust = np.concatenate([c0, c1, c2, c3])
    times = np.concatenate([t0, t1, t2, t3])
    origin = np.repeat(np.arange(4), [c0.size, c1.size, c2.size, c3.size])
    order = np.argsort(times, kind="stable")
    order = order[times[order] < horizon]
    return cust[order], times[order], origin[order], [refs[k] for k in order.tolist()]


def simulate_service(
    rng: np.random.Generator,
    pop_birth: FloatArray,
    ticket_rate: FloatArray,
    contacts: list[dict[str, str]],
    out: PurchaseOutcome,
    config: SimulationConfig,
) -> list[EventRecord]:
    """Tickets from three sources (spontaneous, about an order or return, churn-related).

    In the ``churn_signal_days`` before a customer drops out they open extra tickets, and every
    ticket in that period is more often a complaint with a low satisfaction score.
    """
    horizon, window = config.horizon_seconds, config.churn_signal_days * DAY
    cust, opened, origin, refs = _open_times(rng, pop_birth, ticket_rate, out, config)
    m = cust.size
    drop = out.dropout[cust]
    in_window = ~np.isnan(drop) & (opened >= drop - window) & (opened < drop)
    base_p = _COMPLAINT_P[origin]
    p = np.where(in_window, np.maximum(base_p, _IN_WINDOW_COMPLAINT_P), base_p)
    complaint = rng.random(m) < p
    category = _categorical(rng, _CATEGORY_WEIGHTS, origin)
    priority = _categorical(rng, _PRIORITY_WEIGHTS, complaint.astype(np.intp))
    escalated = np.minimum(priority + (complaint & (rng.random(m) < 0.25)), 3)
    hours = _MEDIAN_RESOLUTION_HOURS[priority] * rng.lognormal(0.0, 0.9, size=m)
    resolved = opened + hours * HOUR
    n_updates = rng.poisson(0.4 + 0.8 * complaint).tolist()
    level = np.where(in_window, 2, complaint.astype(np.intp))
    satisfaction = (_categorical(rng, _SATISFACTION_WEIGHTS, level) + 1).tolist()
    surveyed = (rng.random(m) < 0.65).tolist()
    commented = (rng.random(m) < 0.5).tolist()
    agent = rng.integers(101, 141, size=m).tolist()
    u = rng.random((m, 2)).tolist()
    start_epoch = int(config.start.timestamp())

    records: list[EventRecord] = []
    cols = (cust.tolist(), opened.tolist(), resolved.tolist(), complaint.tolist())
    for k, (c, t_open, t_done, is_complaint) in enumerate(zip(*cols, strict=True)):
        ticket = f"tkt-{k + 1:07d}"
        base: dict[str, Any] = {
            "ticket_id": ticket,
            "category": TICKET_CATEGORIES[int(category[k])],
            "priority": PRIORITIES[int(priority[k])],
            "complaint": is_complaint,
        }
        text = opening_text(base["category"], is_complaint, u[k][0], refs[k])
        owner = {"owner": f"agent-{agent[k]}"}
        opening = {"owner": owner["owner"], "contact": contacts[c]}
        records.append(
            EventRecord(t_open, SERVICE, c, "ticket_opened", {**base, "text": text}, opening)
        )
        later = {**base, "priority": PRIORITIES[int(escalated[k])]}
        for t in sorted(rng.uniform(t_open, t_done, size=n_updates[k]).tolist()):
            if t < horizon:
                records.append(EventRecord(t, SERVICE, c, "ticket_updated", later, owner))
        if t_done >= horizon:
            continue
        done: dict[str, Any] = {**later, "opened_at": rfc3339(start_epoch + int(t_open))}
        if surveyed[k]:
            done["satisfaction"] = satisfaction[k]
            if commented[k]:
                done["text"] = closing_text(satisfaction[k], u[k][1])
        records.append(EventRecord(t_done, SERVICE, c, "ticket_resolved", done, owner))
    return records
