"""Orders and returns: a BG/NBD-like purchase process with gamma-gamma-like order values."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._catalog import BASKETS, CHANNELS, Catalog
from ._config import SimulationConfig
from ._population import Population, row_pick
from ._records import DAY, PURCHASE, EventRecord

__all__ = ["PurchaseOutcome", "simulate_purchases"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
_ONLINE = (CHANNELS.index("web"), CHANNELS.index("app"))


@dataclass(frozen=True, slots=True, eq=False)
class PurchaseOutcome:
    """Purchase events plus what the service and marketing simulations need to know about them.

    ``dropout`` is seconds since start when the customer became inactive (their last purchase
    plus a short disengagement period), ``nan`` for customers still alive when the window ends.
    """

    records: list[EventRecord]
    order_customer: IntArray
    order_time: FloatArray
    order_online: npt.NDArray[np.bool_]
    order_ids: list[str]
    return_customer: IntArray
    return_time: FloatArray
    return_order_ids: list[str]
    orders_per_customer: npt.NDArray[np.int64]
    dropout: FloatArray


def _purchase_times(
    rng: np.random.Generator, pop: Population, horizon: float
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Purchase (customer, time) sorted by customer then time, and the drop-out times.

    While alive a customer buys as a Poisson process; after each purchase they drop out with
    probability ``p``, i.e. they make ``Geometric(p)`` purchases in total. Newcomers' first
    purchase is their acquisition.
    """
    n = len(pop)
    span = horizon - pop.birth
    counts = rng.poisson(pop.rate * span / DAY)
    cust = np.repeat(np.arange(n), counts)
    times = pop.birth[cust] + rng.random(cust.size) * span[cust]
    newcomers = np.flatnonzero(pop.birth > 0)
    cust = np.concatenate([cust, newcomers])
    times = np.concatenate([times, pop.birth[newcomers]])
    order = np.lexsort((times, cust))
    cust, times = cust[order], times[order]
    rank = np.arange(cust.size) - np.searchsorted(cust, np.arange(n))[cust]
    allowed = rng.geometric(pop.dropout_p)
    keep = rank < allowed[cust]
    cust, times = cust[keep], times[keep]
    made = np.bincount(cust, minlength=n)
    last = np.full(n, np.nan)
    bought = made > 0
    last[bought] = times[np.cumsum(made)[bought] - 1]
    linger = (2.0 + 19.0 * rng.random(n)) * DAY
    dropout = np.where(bought & (made == allowed), last + linger, np.nan)
    return cust, times, dropout


def _items(
    catalog: Catalog, cheapest: list[int], basket: int, budget: float, u: list[float]
) -> list[dict[str, Any]]:
    """Order lines for one order: categories from the basket type, SKUs that fit the budget."""
    members = BASKETS[basket][1]
    cats = [catalog.index(c) for k, (c, p) in enumerate(members) if u[k] < p]
    if not cats:
        cats = [catalog.index(members[0][0])]
    affordable = [c for c in cats if cheapest[c] <= 2.0 * budget] or [
        min(cats, key=cheapest.__getitem__)
    ]
    weights = [0.3 + u[4 + k] for k in range(len(affordable))]
    total = sum(weights)
    items: list[dict[str, Any]] = []
    for k, ci in enumerate(affordable):
        share = budget * weights[k] / total
        prices = catalog.prices[ci]
        sku = int(u[8 + k] * max(1, bisect_right(prices, share)))
        price = prices[sku]
        quantity = max(1, min(50, round(share / price)))
        items.append(
            {
                "sku": catalog.skus[ci][sku],
                "category": catalog.categories[ci],
                "quantity": quantity,
                "unit_price_minor": price,
            }
        )
    return items


def _returned(items: list[dict[str, Any]], whole: bool, part: float) -> list[dict[str, Any]]:
    if whole:
        return items
    line = items[0]
    return [{**line, "quantity": 1 + int(part * line["quantity"])}]


def _amount(items: list[dict[str, Any]]) -> int:
    return sum(int(i["quantity"]) * int(i["unit_price_minor"]) for i in items)


def simulate_purchases(
    rng: np.random.Generator, pop: Population, catalog: Catalog, config: SimulationConfig
) -> PurchaseOutcome:
    """Draw every customer's orders and returns inside the window."""
    horizon = config.horizon_seconds
    cust, times, dropout = _purchase_times(rng, pop, horizon)
    m = cust.size
    rank = np.arange(m) - np.searchsorted(cust, np.arange(len(pop)))[cust]
    basket = row_pick(pop.basket_cdf, cust, rng.random(m)).tolist()
    channel = row_pick(pop.channel_cdf, cust, rng.random(m))
    shape = config.order_value_shape
    budget = rng.gamma(shape, pop.spend[cust] / shape).tolist()
    with_contact = ((rank == 0) | (rng.random(m) < 0.1)).tolist()
    returned = rng.random(m) < config.return_fraction
    returned_at = times + (2.0 + rng.gamma(2.0, 4.0, size=m)) * DAY
    returned &= returned_at < horizon
    uniforms = rng.random((m, 14)).tolist()
    cheapest = catalog.cheapest().tolist()

    records: list[EventRecord] = []
    order_ids = [f"ord-{k + 1:07d}" for k in range(m)]
    return_rows = np.flatnonzero(returned)
    returned_list, cust_list, time_list = returned.tolist(), cust.tolist(), times.tolist()
    channel_list = channel.tolist()
    for k in range(m):
        c, u = cust_list[k], uniforms[k]
        items = _items(catalog, cheapest, basket[k], budget[k], u)
        payload = {
            "order_id": order_ids[k],
            "amount_minor": _amount(items),
            "currency": "USD",
            "items": items,
            "channel": CHANNELS[channel_list[k]],
        }
        owner = pop.sales_owner[c]
        extra = {**(owner or {}), "contact": pop.contact[c]} if with_contact[k] else owner
        records.append(EventRecord(time_list[k], PURCHASE, c, "order_placed", payload, extra))
        if returned_list[k]:
            lines = _returned(items, u[12] < 0.6, u[13])
            refund = {**payload, "amount_minor": _amount(lines), "items": lines}
            records.append(
                EventRecord(float(returned_at[k]), PURCHASE, c, "order_returned", refund, owner)
            )
    return PurchaseOutcome(
        records=records,
        order_customer=cust,
        order_time=times,
        order_online=np.isin(channel, _ONLINE),
        order_ids=order_ids,
        return_customer=cust[return_rows],
        return_time=returned_at[return_rows],
        return_order_ids=[order_ids[k] for k in return_rows.tolist()],
        orders_per_customer=np.bincount(cust, minlength=len(pop)),
        dropout=dropout,
    )
