"""Every Redis key of a deployment, spelled here and nowhere else.

Every key has the deployment's prefix and a hash tag (``{...}``), so the layout works on Redis
Cluster unchanged: a customer's keys share the customer's slot; per-partition keys share the
partition's (``{due:<p>}``); the indexes and registries have their own.

Per customer (``{prefix}:{<customer>}:...``):

- ``:p``: the profile record (:mod:`streams.state.records`); besides the profile it holds the
  alert state (field ``as``), the journal mark (``jw``) and the query API's
  :class:`~streams.state.query_index.CustomerIndex` (``ix``);
- ``:seen``: recently seen event ids (dedup) as kept before they moved into the record's
  ``ids`` (read once, then deleted); ``:j``: the recovery journal
  (:mod:`streams.state.recovery`); ``:al``: idempotency keys of alerts claimed or published;
  ``:xc``: the customer's cross-sell items and suggestions;
- ``:sc``: the latest score snapshot (its values, :mod:`streams.state.snapshots`); ``:id``:
  the latest contact details (PII: encrypted, :mod:`streams.state.pii`; JSON without keys);
  ``:sh``: agents the customer is shared with.

Per partition (``{prefix}:{due:<p>}...``): the due-index sorted set itself; ``:inflight``
(popped timers until saved); ``:wm`` (last watermark); ``:out`` (alert outbox); ``:outs``
(snapshot and example outbox).

Shared: ``{seg:<segment>}:clv`` / ``:churn`` (a segment's customers by CLV / churn
probability, ``-inf``: not scored yet); ``{vg:<group>}`` / ``{cluster:<k>}`` (customers by when
they joined the value group / cluster); ``{agent:<identity>}:owned`` / ``:shared``;
``{alerts}`` (recent alerts, capped); ``{audit}``; ``{apikeys}`` (hashes only); ``{ops}:auc``
(the churn model's AUC over time); ``{model:<name>}:<suffix>`` (the model registry);
``{lock:<name>}`` (the learner's and the population refresh's locks); ``{xsell}:...`` (the
cross-sell counters); ``{quarantine}`` (dead letters the dead-letter topic refused);
``{erased}`` (suppression records of erased customers: keyed hash of the id -> when, see
:mod:`streams.state.erasure`).
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["OFFSET_FIELDS", "SORTS", "Layout", "Sort"]

Sort = Literal["clv", "churn"]
#: The orders a segment listing supports (each is a sorted set per segment).
SORTS: tuple[Sort, ...] = ("clv", "churn")
#: The profile field holding the customer's last applied offset, per input kind.
OFFSET_FIELDS = {"purchase": "op", "service": "os", "marketing": "om"}


class Layout:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.alerts = f"{prefix}:{{alerts}}"
        self.audit = f"{prefix}:{{audit}}"
        self.api_keys = f"{prefix}:{{apikeys}}"
        self.auc_history = f"{prefix}:{{ops}}:auc"
        self.erased = f"{prefix}:{{erased}}"

    def profile(self, customer_id: str) -> str:
        """The profile record (its ``ix`` field is the API's)."""
        return f"{self.prefix}:{{{customer_id}}}:p"

    def profile_pattern(self) -> str:
        """A ``SCAN`` pattern that matches every profile record (and only those)."""
        return self._pattern("p")

    def contact_pattern(self) -> str:
        """A ``SCAN`` pattern that matches every customer's contact details key."""
        return self._pattern("id")

    def customer_of(self, key: str) -> str:
        """The customer a per-customer key belongs to.

        >>> Layout("crm").customer_of("crm:{c-1}:id")
        'c-1'
        """
        return key[len(self.prefix) + 2 : key.rindex("}:")]

    def _pattern(self, suffix: str) -> str:
        return re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix) + ":{*}:" + suffix

    def customer_keys(self, customer_id: str) -> tuple[str, ...]:
        """Every key that belongs to one customer alone (what an erasure deletes)."""
        return (
            self.profile(customer_id),
            self.seen(customer_id),
            self.journal(customer_id),
            self.alert_claims(customer_id),
            self.cross_sell(customer_id),
            self.snapshot(customer_id),
            self.contact(customer_id),
            self.shared(customer_id),
        )

    def seen(self, customer_id: str) -> str:
        """The customer's recently seen event ids, before the record held them."""
        return f"{self.prefix}:{{{customer_id}}}:seen"

    def journal(self, customer_id: str) -> str:
        """Profiles after the customer's applied events whose round is not saved yet."""
        return f"{self.prefix}:{{{customer_id}}}:j"

    def alert_claims(self, customer_id: str) -> str:
        """Idempotency keys of the customer's alerts, claimed or published."""
        return f"{self.prefix}:{{{customer_id}}}:al"

    def cross_sell(self, customer_id: str) -> str:
        """The customer's cross-sell items and suggestions."""
        return f"{self.prefix}:{{{customer_id}}}:xc"

    def snapshot(self, customer_id: str) -> str:
        """The latest score snapshot."""
        return f"{self.prefix}:{{{customer_id}}}:sc"

    def contact(self, customer_id: str) -> str:
        """The latest contact details (PII)."""
        return f"{self.prefix}:{{{customer_id}}}:id"

    def shared(self, customer_id: str) -> str:
        """Agents the customer is shared with."""
        return f"{self.prefix}:{{{customer_id}}}:sh"

    def segment(self, segment: str, sort: Sort) -> str:
        """The segment's customers, scored by ``sort``."""
        return f"{self.prefix}:{{seg:{segment}}}:{sort}"

    def value_group(self, group: str) -> str:
        """The value group's customers."""
        return f"{self.prefix}:{{vg:{group}}}"

    def cluster(self, cluster: int) -> str:
        """The exploratory cluster's customers."""
        return f"{self.prefix}:{{cluster:{cluster}}}"

    def agent(self, identity: str, relation: Literal["owned", "shared"]) -> str:
        """Customers an agent owns, or that were shared with it."""
        return f"{self.prefix}:{{agent:{identity}}}:{relation}"

    def due(self, partition: int) -> str:
        """The partition's due-index (sorted set of customers by due time)."""
        return f"{self.prefix}:{{due:{partition}}}"

    def due_inflight(self, partition: int) -> str:
        """Customers popped from the partition's due-index until their round is saved."""
        return f"{self.due(partition)}:inflight"

    def watermark(self, partition: int) -> str:
        """A partition's last watermark (written by the round, see streams.state.round_store)."""
        return f"{self.due(partition)}:wm"

    def alert_outbox(self, partition: int) -> str:
        """The partition's alerts written before their claims were confirmed."""
        return f"{self.due(partition)}:out"

    def output_outbox(self, partition: int) -> str:
        """The partition's score snapshots and training examples not yet acknowledged."""
        return f"{self.due(partition)}:outs"

    def cross_sell_counters(self) -> str:
        """The cross-sell counters' key stem (all share the hash tag ``{xsell}``)."""
        return f"{self.prefix}:{{xsell}}"

    def model(self, name: str, suffix: str) -> str:
        """The key ``suffix`` of registry model ``name``."""
        return f"{self.prefix}:{{model:{name}}}:{suffix}"

    def lock(self, name: str) -> str:
        """A lock one worker of a deployment holds (``learner``, ``population``)."""
        return f"{self.prefix}:{{lock:{name}}}"

    def quarantine(self) -> str:
        """Dead letters the dead-letter topic refused."""
        return f"{self.prefix}:{{quarantine}}"
