"""The Redis keys the query API reads and the round writes for it.

Every key has the deployment's prefix and a hash tag (``{...}``), so the layout works on Redis
Cluster unchanged: a customer's keys share the customer's slot; the indexes have their own.

- ``{prefix}:{<customer>}:p`` field ``ix``: :class:`~streams.state.query_index.CustomerIndex`,
  what the indexes hold for the customer (segment, departments, owner) and when it was learned;
- ``{prefix}:{<customer>}:sc``: the customer's latest score snapshot (JSON, as on ``crm.scores``);
- ``{prefix}:{<customer>}:id``: the latest contact details (JSON; PII);
- ``{prefix}:{<customer>}:sh``: set of agent identities the customer is shared with;
- ``{prefix}:{seg:<segment>}:clv`` / ``:churn``: sorted sets of the segment's customers by CLV
  and by churn probability (``-inf``: not scored yet);
- ``{prefix}:{vg:<group>}`` / ``{prefix}:{cluster:<k>}``: sorted sets of the customers whose
  latest snapshot is in the value group / cluster (scored by when they joined it, epoch s);
- ``{prefix}:{agent:<identity>}:owned`` / ``:shared``: customers an agent owns / was given;
- ``{prefix}:{alerts}``: stream of recent alerts (capped); ``{prefix}:{audit}``: the audit
  trail; ``{prefix}:{apikeys}``: API keys by key id (hashes only); ``{prefix}:{ops}:auc``:
  the churn model's published AUC over time.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["SORTS", "Layout", "Sort"]

Sort = Literal["clv", "churn"]
#: The orders a segment listing supports (each is a sorted set per segment).
SORTS: tuple[Sort, ...] = ("clv", "churn")


class Layout:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.alerts = f"{prefix}:{{alerts}}"
        self.audit = f"{prefix}:{{audit}}"
        self.api_keys = f"{prefix}:{{apikeys}}"
        self.auc_history = f"{prefix}:{{ops}}:auc"

    def profile(self, customer_id: str) -> str:
        """The profile hash (the ``ix`` field is the API's)."""
        return f"{self.prefix}:{{{customer_id}}}:p"

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

    def watermark(self, partition: int) -> str:
        """A partition's last watermark (written by the round, see streams.rounds)."""
        return f"{self.prefix}:{{due:{partition}}}:wm"
