"""JSON bodies of the API's answers, built from what was read (pure)."""

from __future__ import annotations

from typing import Any

from scorers.cross_sell import CrossSellRule
from streams.api.policy import Principal, mask_contact
from streams.api.queries import CustomerRecord
from streams.models.registry import ModelVersion

__all__ = ["clusters_view", "customer_view", "error_body", "rule_view"]


def customer_view(record: CustomerRecord, principal: Principal) -> dict[str, Any]:
    """One customer as ``principal`` may see it: scores, profile, departments, contact (masked
    without the ``pii`` permission)."""
    snapshot = record.snapshot or {}
    profile = record.profile
    contact = None if record.contact is None else mask_contact(record.contact, principal)
    return {
        "customer_id": record.customer_id,
        "segment": snapshot.get("segment"),
        "p_alive": snapshot.get("p_alive"),
        "clv": snapshot.get("clv"),
        "churn_probability": snapshot.get("churn_probability"),
        "reasons": snapshot.get("reasons", []),
        "value_group": snapshot.get("value_group"),
        "cluster": snapshot.get("cluster"),
        "model_version": {
            "probability": snapshot.get("probability_model_version"),
            "churn": snapshot.get("churn_model_version"),
        },
        "scores": record.snapshot,
        "profile": {
            **profile.to_dict(),
            "monetary_minor": profile.monetary_minor,
            "open_tickets": profile.open_tickets,
        },
        "departments": dict(record.index.departments),
        "owner": record.index.owner,
        # who else may see the customer is the sharer's business, not another agent's
        "shared_with": None if principal.role == "agent" else sorted(record.shared_with),
        "contact": contact,
    }


def rule_view(rule: CrossSellRule) -> dict[str, Any]:
    """One cross-sell rule with its numbers (counts are decayed customer counts).

    >>> rule = CrossSellRule("ink", "paper", 46.0, 50.0, 60.0, 80.0, 0.92, 1.2267, 0.575)
    >>> view = rule_view(rule)
    >>> view["confidence"], view["customers_with_both"], view["reason"]
    (0.92, 46.0, '92% of buyers of ink also buy paper (lift 1.2)')
    """
    return {
        "antecedent": rule.antecedent,
        "consequent": rule.consequent,
        "support": round(rule.support, 4),
        "confidence": round(rule.confidence, 4),
        "lift": round(rule.lift, 4),
        "customers_with_both": round(rule.count, 3),
        "antecedent_customers": round(rule.antecedent_count, 3),
        "consequent_customers": round(rule.consequent_count, 3),
        "customers": round(rule.customers, 3),
        "reason": rule.reason(),
    }


def clusters_view(model: ModelVersion | None, counts: list[int] | None) -> dict[str, Any]:
    """The published segmentation: each centre in the features' units and, when ``counts``
    is given, how many customers' latest snapshot is in it.

    >>> view = clusters_view(ModelVersion(3, b"", {"n_examples": 500, "centres": [{"x": 1.0}]}),
    ...                      [7])
    >>> view["version"], view["clusters"]
    (3, [{'id': 0, 'centre': {'x': 1.0}, 'customers': 7}])
    >>> clusters_view(None, None)["clusters"]
    []
    """
    centres: list[dict[str, float]] = [] if model is None else model.metadata.get("centres", [])
    return {
        "version": None if model is None else model.version,
        "n_examples": None if model is None else model.metadata.get("n_examples"),
        "clusters": [
            {"id": k, "centre": centre, "customers": None if counts is None else counts[k]}
            for k, centre in enumerate(centres)
        ],
    }


def error_body(status: int, message: str) -> dict[str, Any]:
    """The body of every error answer."""
    return {"error": {"status": status, "message": message}}
