"""The query API's OpenAPI 3.1 document: served at ``/api/openapi.json`` and checked in as
``streams/api/openapi.json`` (a test fails when they differ; regenerate with
``python -m streams.api.openapi``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["OPENAPI_FILE", "openapi_document", "openapi_text"]

OPENAPI_FILE = Path(__file__).with_name("openapi.json")

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_STRING_OR_NULL = {"type": ["string", "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "404": {"$ref": "#/components/responses/NotFound"},
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
            "churn_probability": _NUMBER_OR_NULL,
            "reasons": {"type": "array", "items": {"type": "string"}},
            "model_version": {
                "type": "object",
                "properties": {"probability": _STRING_OR_NULL, "churn": _STRING_OR_NULL},
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
