"""The component schemas of the query API's OpenAPI document (:mod:`streams.api.openapi`):
the shapes of what ``/api`` answers."""

from __future__ import annotations

from typing import Any

from scorers.value_groups import VALUE_GROUPS

__all__ = ["SCHEMAS", "ref"]

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_STRING_OR_NULL = {"type": ["string", "null"]}
_INTEGER_OR_NULL = {"type": ["integer", "null"]}
_NUMBER = {"type": "number"}
_STRING = {"type": "string"}
_VALUE_GROUP = {"enum": [*VALUE_GROUPS, None]}
_RULE_NUMBERS = ("support", "confidence", "lift", "customers_with_both",
                 "antecedent_customers", "consequent_customers", "customers")  # fmt: skip


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["status", "message"],
                "properties": {"status": {"type": "integer"}, "message": {"type": "string"}},
            }
        },
    },
    "Erasure": {
        "type": "object",
        "description": "What an erasure did; the customer is named only by its suppression tag "
        "(HMAC-SHA256 of the id with CRM_ERASURE_KEY).",
        "required": [
            "suppression_tag",
            "erased_at",
            "first_erasure",
            "keys_deleted",
            "index_entries_removed",
        ],
        "properties": {
            "suppression_tag": {"type": "string"},
            "erased_at": {"type": "string", "format": "date-time"},
            "first_erasure": {"type": "boolean"},
            "keys_deleted": {"type": "integer"},
            "index_entries_removed": {"type": "integer"},
        },
    },
    "Contact": {
        "type": "object",
        "description": "PII; every field masked (e.g. j***@example.com) without `pii`.",
        "properties": dict.fromkeys(("name", "email", "phone", "address"), _STRING_OR_NULL),
    },
    "Customer": {
        "type": "object",
        "required": ["customer_id", "profile", "departments", "reasons", "model_version"],
        "properties": {
            "customer_id": {"type": "string"},
            "segment": _STRING_OR_NULL,
            "p_alive": _NUMBER_OR_NULL,
            "clv": {**_NUMBER_OR_NULL, "description": "Minor units of the base currency."},
            "churn_probability": {
                **_NUMBER_OR_NULL,
                "description": "From the churn model version in `model_version.churn`.",
            },
            "reasons": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The churn score's top reasons in words (when it is at or above "
                "CRM_CHURN_ALERT_RESET).",
            },
            "value_group": {
                **_VALUE_GROUP,
                "description": "Value x risk group of the latest snapshot (null until CLV and "
                "churn are known).",
            },
            "cluster": {
                **_INTEGER_OR_NULL,
                "minimum": 0,
                "description": "Exploratory cluster: the nearest centre of GET /api/clusters.",
            },
            "model_version": {
                "type": "object",
                "properties": {
                    "probability": _STRING_OR_NULL,
                    "churn": {
                        **_STRING_OR_NULL,
                        "description": "The churn model version, or 'fallback:p_alive'.",
                    },
                },
            },
            "scores": {
                "description": "The latest score snapshot, as on crm.scores "
                "(schemas/json/score_snapshot.schema.json); null before the first.",
                "type": ["object", "null"],
            },
            "profile": {"type": "object", "additionalProperties": {"type": ["integer", "null"]}},
            "departments": {
                "type": "object",
                "description": "Latest department per event kind (purchase, service, marketing).",
                "additionalProperties": {"type": "string"},
            },
            "owner": _STRING_OR_NULL,
            "shared_with": {"type": ["array", "null"], "items": {"type": "string"}},
            "contact": {"oneOf": [ref("Contact"), {"type": "null"}]},
        },
    },
    "SegmentCounts": {
        "type": "object",
        "required": ["segments", "total"],
        "properties": {
            "segments": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "customers": {"type": "integer"}},
                },
            },
            "total": {"type": "integer"},
        },
    },
    "ValueGroupCounts": {
        "type": "object",
        "required": ["value_groups", "total"],
        "properties": {
            "value_groups": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"enum": list(VALUE_GROUPS)},
                        "label": {"type": "string"},
                        "customers": {"type": "integer"},
                    },
                },
            },
            "total": {"type": "integer"},
        },
    },
    "Clusters": {
        "type": "object",
        "required": ["version", "n_examples", "clusters"],
        "properties": {
            "version": {**_INTEGER_OR_NULL, "description": "null before the first publish."},
            "n_examples": {
                **_INTEGER_OR_NULL,
                "description": "Examples the segmentation had learned when published.",
            },
            "clusters": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "centre": {
                            "type": "object",
                            "description": "The centre in the features' own units (days, "
                            "log counts, rates).",
                            "additionalProperties": {"type": "number"},
                        },
                        "customers": {
                            **_INTEGER_OR_NULL,
                            "description": "Customers whose latest snapshot is in the cluster "
                            "(each as assigned by the version that scored it).",
                        },
                    },
                },
            },
        },
    },
    "CrossSellRules": {
        "type": "object",
        "required": ["as_of", "thresholds", "rules"],
        "properties": {
            "as_of": {"type": "string", "format": "date-time"},
            "thresholds": {
                "type": "object",
                "properties": dict.fromkeys(("min_confidence", "min_lift", "min_count"), _NUMBER),
            },
            "rules": {
                "type": "array",
                "items": {
                    "type": "object",
                    "description": "antecedent -> consequent; counts are customers, decayed "
                    "with CRM_CROSS_SELL_HALF_LIFE_DAYS.",
                    "properties": {
                        **dict.fromkeys(("antecedent", "consequent", "reason"), _STRING),
                        **dict.fromkeys(_RULE_NUMBERS, _NUMBER),
                    },
                },
            },
        },
    },
    "SegmentMembers": {
        "type": "object",
        "required": ["segment", "sort", "items", "next_cursor"],
        "properties": {
            "segment": {"type": "string"},
            "sort": {"enum": ["clv", "churn"]},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "customer_id": {"type": "string"},
                        "segment": {"type": "string"},
                        "clv": _NUMBER_OR_NULL,
                        "churn_probability": _NUMBER_OR_NULL,
                    },
                },
            },
            "next_cursor": {
                **_STRING_OR_NULL,
                "description": "Pass as `cursor` for the next page; null at the end. A scoped "
                "page may hold fewer than `limit` items before the end.",
            },
        },
    },
    "Alerts": {
        "type": "object",
        "required": ["alerts"],
        "properties": {
            "alerts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "description": "An alert as on crm.alerts (schemas/json/alert.schema.json) "
                    "plus its stream `id`.",
                },
            }
        },
    },
    "Health": {
        "type": "object",
        "required": ["ok", "redis", "kafka", "models", "watermarks"],
        "properties": {
            "ok": {"type": "boolean"},
            "redis": {"type": "boolean"},
            "kafka": {"type": ["boolean", "null"]},
            "models": {"type": "object", "additionalProperties": {"type": ["integer", "null"]}},
            "watermarks": {
                "type": "object",
                "description": "Per partition: the event-time watermark and its lag behind "
                "the wall clock, seconds.",
                "additionalProperties": {
                    "type": "object",
                    "properties": {"watermark": {"type": "string"}, "lag_seconds": {}},
                },
            },
            "worker": {"type": ["object", "null"]},
            "pii_encryption": {
                "type": "string",
                "description": "Whether contact details are encrypted at rest, and with which "
                "key id (`on: ...`), or stored in plain (`off: ...`, dev mode only).",
            },
        },
    },
}
