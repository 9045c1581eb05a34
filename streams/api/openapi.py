"""The query API's OpenAPI 3.1 document: served at ``/api/openapi.json`` and checked in as
``streams/api/openapi.json`` (a test fails when they differ; regenerate with
``python -m streams.api.openapi``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scorers.value_groups import VALUE_GROUPS

__all__ = ["OPENAPI_FILE", "openapi_document", "openapi_text"]

OPENAPI_FILE = Path(__file__).with_name("openapi.json")

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_STRING_OR_NULL = {"type": ["string", "null"]}
_INTEGER_OR_NULL = {"type": ["integer", "null"]}
_NUMBER = {"type": "number"}
_STRING = {"type": "string"}
_VALUE_GROUP = {"enum": [*VALUE_GROUPS, None]}
_RULE_NUMBERS = ("support", "confidence", "lift", "customers_with_both",
                 "antecedent_customers", "consequent_customers", "customers")  # fmt: skip
_POPULATION = (
    " Population-level data (no customer data, no PII): any valid key may read it, whatever "
    "its scope; the call is audited like every read."
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "404": {"$ref": "#/components/responses/NotFound"},
    "414": {"$ref": "#/components/responses/RequestLineTooLong"},
    "429": {"$ref": "#/components/responses/TooManyRequests"},
    "431": {"$ref": "#/components/responses/HeadersTooLarge"},
}

_SCHEMAS: dict[str, Any] = {
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
            "contact": {"oneOf": [_ref("Contact"), {"type": "null"}]},
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
        },
    },
}


def _param(name: str, where: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of ``/api``."""
    customer = _param("customer_id", "path", {"type": "string"}, "The customer id.")
    limit = _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500}, "Page size")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "crm-scoring query API",
            "version": "1",
            "description": "Customer scores, segments and alerts from Redis, scoped to the "
            "caller's API key (admin: everything; manager: its department and those under it; "
            "agent: customers it owns or that were shared with it). A customer outside the "
            "scope is answered 404, like one that does not exist. Every call is audited.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/customers/{customer_id}": {
                "get": {
                    "summary": "One customer: profile, scores, segment, P(alive), CLV, churn.",
                    "parameters": [customer],
                    "responses": {"200": _json(_ref("Customer"), "The customer."), **_ERRORS},
                },
                "delete": {
                    "summary": "Erase the customer (needs the `erase` permission: admin and "
                    "privacy keys): every key and index entry, a suppression record so its "
                    "events are skipped from now on, customer_erased on crm.erasures. "
                    "Idempotent; answers after CRM_ERASE_FENCE_SECONDS.",
                    "parameters": [customer],
                    "responses": {
                        "200": _json(_ref("Erasure"), "Erased (or erased before)."),
                        "403": {"$ref": "#/components/responses/Forbidden"},
                        **_ERRORS,
                    },
                },
            },
            "/api/customers/{customer_id}/export": {
                "get": {
                    "summary": "Everything stored about the customer as one document (profile, "
                    "scores, indexes, alert state, alerts, cross-sell, contact: masked without "
                    "`pii`). Same scope as GET /api/customers/{customer_id}; audited.",
                    "parameters": [customer],
                    "responses": {
                        "200": _json({"type": "object"}, "The export (export_version 1)."),
                        **_ERRORS,
                    },
                }
            },
            "/api/customers/{customer_id}/share": {
                "post": {
                    "summary": "Share a customer with an agent (needs the `share` permission).",
                    "parameters": [customer],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["identity"],
                                    "properties": {"identity": {"type": "string"}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json({"type": "object"}, "Shared."),
                        "400": {"$ref": "#/components/responses/BadRequest"},
                        "403": {"$ref": "#/components/responses/Forbidden"},
                        **_ERRORS,
                    },
                }
            },
            "/api/segments": {
                "get": {
                    "summary": "Customers per RFM segment, in the caller's scope.",
                    "responses": {"200": _json(_ref("SegmentCounts"), "Counts."), **_ERRORS},
                }
            },
            "/api/segments/{name}/customers": {
                "get": {
                    "summary": "A segment's customers in the caller's scope, highest first.",
                    "parameters": [
                        _param("name", "path", {"type": "string"}, "Segment name."),
                        _param("sort", "query", {"enum": ["clv", "churn"]}, "Order (clv)."),
                        _param("cursor", "query", {"type": "string"}, "From next_cursor."),
                        limit,
                    ],
                    "responses": {"200": _json(_ref("SegmentMembers"), "A page."), **_ERRORS},
                }
            },
            "/api/value-groups": {
                "get": {
                    "summary": "Customers per value x risk group, in the caller's scope.",
                    "responses": {"200": _json(_ref("ValueGroupCounts"), "Counts."), **_ERRORS},
                }
            },
            "/api/clusters": {
                "get": {
                    "summary": "The published exploratory segmentation: centres and customers "
                    "per cluster.",
                    "description": "Counts are over the whole customer base." + _POPULATION,
                    "responses": {"200": _json(_ref("Clusters"), "Clusters."), **_ERRORS},
                }
            },
            "/api/cross-sell/rules": {
                "get": {
                    "summary": "The strongest cross-sell rules (lift x confidence) passing the "
                    "thresholds, as of the newest watermark.",
                    "description": "Support, confidence and lift over all customers." + _POPULATION,
                    "parameters": [limit],
                    "responses": {
                        "200": _json(_ref("CrossSellRules"), "Rules."),
                        "400": {"$ref": "#/components/responses/BadRequest"},
                        **_ERRORS,
                    },
                }
            },
            "/api/alerts": {
                "get": {
                    "summary": "Recent alerts in the caller's scope, newest first.",
                    "parameters": [
                        _param("type", "query", {"type": "string"}, "Only this alert type."),
                        limit,
                    ],
                    "responses": {"200": _json(_ref("Alerts"), "Alerts."), **_ERRORS},
                }
            },
            "/api/health": {
                "get": {
                    "summary": "Kafka, Redis, model versions, watermark lag (no key needed).",
                    "security": [],
                    "responses": {
                        "200": _json(_ref("Health"), "Healthy."),
                        "503": _json(_ref("Health"), "Unhealthy."),
                    },
                }
            },
            "/api/ops": {
                "get": {
                    "summary": "Aggregates for the ops page (no customer data, no key needed).",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "Ops data.")},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer crm_<id>_<secret>` (or X-API-Key); "
                    "create with `crm-score api-key create`.",
                }
            },
            "responses": {
                name: _json(_ref("Error"), text)
                for name, text in (
                    ("Unauthorized", "No valid API key."),
                    ("NotFound", "No such customer or segment in the caller's scope."),
                    ("Forbidden", "The key lacks a permission."),
                    ("BadRequest", "Invalid parameters."),
                    ("RequestLineTooLong", "The request line is over 8 KiB (any path)."),
                    (
                        "TooManyRequests",
                        "Too many requests without a valid key from this address this minute "
                        "(CRM_API_AUTH_FAILURES_PER_MINUTE); see the Retry-After header.",
                    ),
                    (
                        "HeadersTooLarge",
                        "A header is over 8 KiB, or all headers over 32 KiB (any path).",
                    ),
                )
            },
            "schemas": _SCHEMAS,
        },
    }


def openapi_text() -> str:
    """The document as it is checked in."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OPENAPI_FILE.write_text(openapi_text(), encoding="utf-8")
    print(f"wrote {OPENAPI_FILE}")
