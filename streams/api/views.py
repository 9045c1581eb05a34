"""JSON bodies of the API's answers, built from what was read (pure)."""

from __future__ import annotations

from typing import Any

from streams.api.policy import Principal, mask_contact
from streams.api.queries import CustomerRecord

__all__ = ["customer_view", "error_body"]


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


def error_body(status: int, message: str) -> dict[str, Any]:
    """The body of every error answer."""
    return {"error": {"status": status, "message": message}}
