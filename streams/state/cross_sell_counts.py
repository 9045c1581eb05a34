"""The Redis side of the cross-sell rules (:mod:`scorers.cross_sell`), fitted to a round.

Keys (``{prefix}`` is the Redis key prefix):

- ``{prefix}:{xsell}:m`` hash: ``n`` (customers, stored units), ``ref`` (reference epoch
  seconds of the units), ``seq`` (a counter for the dedup set);
- ``{prefix}:{xsell}:i`` hash: item → ``count(A)``;
- ``{prefix}:{xsell}:r:<A>`` hash: partner ``B`` → ``count(A, B)`` (at most
  ``2 * max_partners`` fields);
- ``{prefix}:{xsell}:d`` sorted set: 8-byte ids of the last ``dedup_keep`` orders that changed
  the counts (see below);
- ``{prefix}:{<customer>}:xc`` hash: ``c:<A>`` → epoch second the customer first bought ``A``;
  ``s:<A>\\x1f<B>`` → when ``A → B`` was suggested to them; ``d``: event time and id of the
  last order a suggestion was looked for (an order redone, or late, is not looked at again).

A round uses them in three steps, none a round trip of its own:

1. :meth:`CrossSellRound.read_keys` — ``HGETALL`` keys to read with the round's profiles (they
   ride in the same packed write): the counters of the items in the round's orders and the
   category sets of its ordering customers.
2. :meth:`CrossSellRound.decide` (no I/O) — walks the round's applied orders in order: what each
   adds (:func:`scorers.cross_sell.plan_order`) and the best rule to suggest, from the counters
   as they were when the round was read.
3. :meth:`CrossSellDecision.commands` — appended to the round's packed save: one ``EVAL`` on the
   ``{xsell}`` slot that folds every order into the counters (the same arithmetic as
   :func:`scorers.cross_sell.apply_order`), then one ``HSET`` per customer.

Idempotent: an order adds only items new for its customer, so a redone round whose customer
writes landed adds nothing; if the save was cut between the two (counters written, customer
sets not), the redone round computes the same orders again and the script skips those whose id
is in the dedup set. Cluster: the script touches only ``{xsell}`` keys and each ``HSET`` one
customer's slot. The counters a round decides on may miss the previous round's orders (its save
runs on another connection); a round's own orders count for the next round.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources

import redis.asyncio as aioredis

from crm_core.settings import Settings
from schemas import Event, PurchaseEvent
from scorers.consent import contactable
from scorers.cross_sell import (
    CrossSellPolicy,
    CrossSellRule,
    CrossSellStats,
    OrderUpdate,
    plan_order,
    recommend,
    top_rules,
)
from streams.round.cross_sell_alert import CrossSellDraft
from streams.round.messages import Applied, OutputMessage
from streams.state.keys import Layout
from streams.state.resp import Command

__all__ = ["CrossSellDecision", "CrossSellReads", "CrossSellRound"]

_SEP = "\x1f"

# The counters' update: KEYS and ARGV are described at the top of the script.
_APPLY = resources.files("streams.state").joinpath("scripts", "cross_sell.lua").read_text()


@dataclass(frozen=True, slots=True)
class CrossSellReads:
    """The keys a round reads (in this order): meta, items, the rows of ``items``, then the
    category sets of ``customers``."""

    items: tuple[str, ...] = ()
    customers: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()


@dataclass(slots=True)
class _Customer:
    items: dict[str, int] = field(default_factory=dict)  # item -> first bought (epoch s)
    suggested: set[tuple[str, str]] = field(default_factory=set)
    decided: tuple[float, str] | None = None  # the last order a suggestion was looked for
    written: dict[str, int | str] = field(default_factory=dict)  # fields to HSET this round


@dataclass(slots=True)
class CrossSellDecision:
    """What a round decided: drafts to publish, and the orders to fold into the counters."""

    drafts: list[CrossSellDraft]
    orders: list[tuple[bytes, OrderUpdate]]
    customer_fields: dict[str, dict[str, int | str]]
    _round: CrossSellRound

    def commands(self) -> list[Command]:
        """Commands to append to the round's packed save, in this order."""
        return self._round.apply_commands(self.orders, self.customer_fields)

    def alerts(self) -> list[tuple[str, str, OutputMessage]]:
        """The drafts to publish as entries of :attr:`streams.round.scorer.ScoredRound.alerts`:
        those for a customer who is not contactable only if the settings ask for them."""
        when_not = self._round.when_not_contactable
        return [d.message() for d in self.drafts if d.contactable or when_not]


class CrossSellRound:
    """Builds a round's cross-sell reads, decisions and writes (see the module doc)."""

    def __init__(
        self,
        prefix: str,
        policy: CrossSellPolicy,
        dedup_keep: int = 20_000,
        *,
        when_not_contactable: bool = False,
    ) -> None:
        self.policy = policy
        self.when_not_contactable = when_not_contactable
        self._prefix = prefix
        self._keys = Layout(prefix)
        self._tag = self._keys.cross_sell_counters()
        self._dedup_keep = dedup_keep
        self._last: dict[str, _Customer] = {}  # customers of the last round decided

    @classmethod
    def from_settings(cls, settings: Settings) -> CrossSellRound:
        """The round's cross-sell from ``CRM_CROSS_SELL_*`` settings."""
        policy = CrossSellPolicy(
            min_confidence=settings.cross_sell_min_confidence,
            min_lift=settings.cross_sell_min_lift,
            min_count=settings.cross_sell_min_count,
            half_life_days=settings.cross_sell_half_life_days,
            max_items_per_customer=settings.cross_sell_max_categories,
            max_partners=settings.cross_sell_max_partners,
        )
        return cls(
            settings.redis_key_prefix,
            policy,
            settings.cross_sell_dedup_keep,
            when_not_contactable=settings.marketing_alerts_when_not_contactable,
        )

    # --- keys ----------------------------------------------------------------------------------
    @property
    def meta_key(self) -> str:
        """``n``, ``ref``, ``seq``."""
        return f"{self._tag}:m"

    @property
    def items_key(self) -> str:
        """Item → ``count(A)``."""
        return f"{self._tag}:i"

    @property
    def dedup_key(self) -> str:
        """Ids of the last orders folded into the counters."""
        return f"{self._tag}:d"

    def row_key(self, item: str) -> str:
        """Partner → ``count(A, B)`` of ``item``."""
        return f"{self._tag}:r:{item}"

    def customer_key(self, customer_id: str) -> str:
        """The customer's items and suggestions."""
        return self._keys.cross_sell(customer_id)

    # --- a round -------------------------------------------------------------------------------
    def read_keys(self, events: Iterable[Event]) -> CrossSellReads:
        """The keys to ``HGETALL`` with the round's profiles, for the round's events."""
        items: set[str] = set()
        customers: dict[str, None] = {}
        for event in events:
            basket = _basket(event)
            if basket:
                items |= basket
                customers[event.customer_id] = None
        if not customers:
            return CrossSellReads()
        names = tuple(sorted(items))
        keys = (
            self.meta_key,
            self.items_key,
            *(self.row_key(a) for a in names),
            *(self.customer_key(c) for c in customers),
        )
        return CrossSellReads(names, tuple(customers), keys)

    def decide(
        self,
        reads: CrossSellReads,
        hashes: Sequence[Mapping[bytes | str, bytes | str]],
        applied: Sequence[Applied],
    ) -> CrossSellDecision:
        """Walk the round's applied orders (in the order given) over what ``reads`` returned
        (``hashes``, one ``HGETALL`` reply per key)."""
        stats, customers = self._parse(reads, hashes)
        drafts: list[CrossSellDraft] = []
        orders: list[tuple[bytes, OrderUpdate]] = []
        for a in applied:
            event = a.event
            basket = _basket(event)
            if not basket or not isinstance(event, PurchaseEvent):
                continue
            customer = customers.setdefault(event.customer_id, _Customer())
            had = frozenset(customer.items)
            at = a.event_time
            order = (event.event_time.timestamp(), event.event_id)
            found = None
            if customer.decided is None or order > customer.decided:  # else: decided before
                skip = frozenset(customer.suggested)
                found = recommend(stats, self.policy, had, basket, at, skip)
                customer.decided = order
                customer.written["d"] = f"{order[0]!r}{_SEP}{order[1]}"
            update = plan_order(self.policy, had, basket, at)
            if update.changes:
                orders.append((_order_id(event.event_id), update))
                for item in update.new:
                    customer.items[item] = int(at)
                    customer.written[f"c:{item}"] = int(at)
            if found is not None:
                pair = (found.antecedent, found.consequent)
                customer.suggested.add(pair)
                customer.written[f"s:{pair[0]}{_SEP}{pair[1]}"] = int(at)
                drafts.append(
                    CrossSellDraft(
                        event.customer_id,
                        a.record.partition,
                        event.event_time,
                        event.event_id,
                        event.payload.order_id,
                        found,
                        contactable(a.profile),
                    )
                )
        fields = {c: dict(known.written) for c, known in customers.items() if known.written}
        for known in customers.values():
            known.written.clear()
        self._last = customers
        return CrossSellDecision(drafts, orders, fields, self)

    def apply_commands(
        self,
        orders: Sequence[tuple[bytes, OrderUpdate]],
        customer_fields: Mapping[str, Mapping[str, int | str]],
    ) -> list[Command]:
        """The counters' ``EVAL`` (first: see the module doc), then one ``HSET`` per customer."""
        commands: list[Command] = []
        if orders:
            names = sorted({x for _, u in orders for x in (*u.new, *u.had)})
            index = {name: i + 1 for i, name in enumerate(names)}
            h = self.policy.half_life_seconds
            args: list[str | bytes | int] = [
                "0" if math.isinf(h) else repr(h),
                self.policy.max_partners,
                self._dedup_keep,
                self.row_key(""),
                len(names),
                *names,
            ]
            for order_id, u in orders:
                args += [order_id, repr(u.at), int(u.first), len(u.new)]
                args += [index[x] for x in u.new]
                args += [len(u.had), *(index[x] for x in u.had)]
            keys = [self.meta_key, self.items_key, self.dedup_key]
            keys += [self.row_key(name) for name in names]
            commands.append(("EVAL", _APPLY, len(keys), *keys, *args))
        for customer_id, values in customer_fields.items():
            flat = [x for k, v in values.items() for x in (k, v)]
            commands.append(("HSET", self.customer_key(customer_id), *flat))
        return commands

    def _parse(
        self, reads: CrossSellReads, hashes: Sequence[Mapping[bytes | str, bytes | str]]
    ) -> tuple[CrossSellStats, dict[str, _Customer]]:
        if len(hashes) != len(reads.keys):
            raise ValueError(f"{len(reads.keys)} cross-sell keys read, {len(hashes)} replies")
        if not reads.keys:
            return CrossSellStats(), {}
        meta, counts = hashes[0], hashes[1]
        rows = hashes[2 : 2 + len(reads.items)]
        ref = _get(meta, "ref")
        stats = CrossSellStats(
            ref=None if ref is None else float(ref),
            customers=float(_get(meta, "n") or 0.0),
            items={_text(k): float(v) for k, v in counts.items()},
            partners={
                a: {_text(k): float(v) for k, v in row.items()}
                for a, row in zip(reads.items, rows, strict=True)
            },
        )
        customers: dict[str, _Customer] = {}
        raw_customers = hashes[2 + len(reads.items) :]
        for customer_id, raw in zip(reads.customers, raw_customers, strict=True):
            # The last round's save may have landed after these reads: its view is current.
            last = self._last.get(customer_id)
            customers[customer_id] = _customer(raw) if last is None else _copy(last)
        return stats, customers

    # --- the query API -------------------------------------------------------------------------
    async def stats(self, client: aioredis.Redis) -> CrossSellStats:
        """Every counter, read back (a few reads per item: for the query API and tests)."""
        meta = await client.hgetall(self.meta_key)
        counts = await client.hgetall(self.items_key)
        items = {_text(k): float(v) for k, v in counts.items()}
        partners = {}
        for a in sorted(items):
            row = await client.hgetall(self.row_key(a))
            if row:
                partners[a] = {_text(k): float(v) for k, v in row.items()}
        ref = _get(meta, "ref")
        return CrossSellStats(
            None if ref is None else float(ref), float(_get(meta, "n") or 0.0), items, partners
        )

    async def top_rules(
        self, client: aioredis.Redis, as_of: datetime, limit: int = 50
    ) -> list[CrossSellRule]:
        """The strongest rules passing the thresholds at ``as_of`` (``GET
        /api/cross-sell/rules``)."""
        stats = await self.stats(client)
        return top_rules(stats, self.policy, as_of.astimezone(UTC).timestamp(), limit)


def _basket(event: Event) -> frozenset[str]:
    """The categories of an order placed (empty for anything else)."""
    if not isinstance(event, PurchaseEvent) or event.type != "order_placed":
        return frozenset()
    return frozenset(item.category for item in event.payload.items)


def _order_id(event_id: str) -> bytes:
    return hashlib.blake2b(event_id.encode(), digest_size=8).digest()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _get(raw: Mapping[bytes | str, bytes | str], name: str) -> str | None:
    value = raw.get(name.encode(), raw.get(name))
    return None if value is None else _text(value)


def _customer(raw: Mapping[bytes | str, bytes | str]) -> _Customer:
    known = _Customer()
    for k, v in raw.items():
        name = _text(k)
        if name.startswith("c:"):
            known.items[name[2:]] = int(v)
        elif name.startswith("s:"):
            a, _, b = name[2:].partition(_SEP)
            known.suggested.add((a, b))
        elif name == "d":
            at, _, event_id = _text(v).partition(_SEP)
            known.decided = (float(at), event_id)
    return known


def _copy(known: _Customer) -> _Customer:
    return _Customer(dict(known.items), set(known.suggested), known.decided)
