"""The query API's OpenAPI 3.1 document: served at ``/api/openapi.json`` and checked in as
``streams/api/openapi.json`` (a test fails when they differ; regenerate with
``python -m streams.api.openapi``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streams.api.openapi_schemas import SCHEMAS, ref

__all__ = ["OPENAPI_FILE", "openapi_document", "openapi_text"]

OPENAPI_FILE = Path(__file__).with_name("openapi.json")

_POPULATION = (
    " Population-level data (no customer data, no PII): any valid key may read it, whatever "
    "its scope; the call is audited like every read."
)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "404": {"$ref": "#/components/responses/NotFound"},
    "414": {"$ref": "#/components/responses/RequestLineTooLong"},
    "429": {"$ref": "#/components/responses/TooManyRequests"},
    "431": {"$ref": "#/components/responses/HeadersTooLarge"},
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
                    "responses": {"200": _json(ref("Customer"), "The customer."), **_ERRORS},
                },
                "delete": {
                    "summary": "Erase the customer (needs the `erase` permission: admin and "
                    "privacy keys): every key and index entry, a suppression record so its "
                    "events are skipped from now on, customer_erased on crm.erasures. "
                    "Idempotent; answers after CRM_ERASE_FENCE_SECONDS.",
                    "parameters": [customer],
                    "responses": {
                        "200": _json(ref("Erasure"), "Erased (or erased before)."),
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
                    "responses": {"200": _json(ref("SegmentCounts"), "Counts."), **_ERRORS},
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
                    "responses": {"200": _json(ref("SegmentMembers"), "A page."), **_ERRORS},
                }
            },
            "/api/value-groups": {
                "get": {
                    "summary": "Customers per value x risk group, in the caller's scope.",
                    "responses": {"200": _json(ref("ValueGroupCounts"), "Counts."), **_ERRORS},
                }
            },
            "/api/clusters": {
                "get": {
                    "summary": "The published exploratory segmentation: centres and customers "
                    "per cluster.",
                    "description": "Counts are over the whole customer base." + _POPULATION,
                    "responses": {"200": _json(ref("Clusters"), "Clusters."), **_ERRORS},
                }
            },
            "/api/cross-sell/rules": {
                "get": {
                    "summary": "The strongest cross-sell rules (lift x confidence) passing the "
                    "thresholds, as of the newest watermark.",
                    "description": "Support, confidence and lift over all customers." + _POPULATION,
                    "parameters": [limit],
                    "responses": {
                        "200": _json(ref("CrossSellRules"), "Rules."),
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
                    "responses": {"200": _json(ref("Alerts"), "Alerts."), **_ERRORS},
                }
            },
            "/api/health": {
                "get": {
                    "summary": "Kafka, Redis, model versions, watermark lag (no key needed).",
                    "security": [],
                    "responses": {
                        "200": _json(ref("Health"), "Healthy."),
                        "503": _json(ref("Health"), "Unhealthy."),
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
                name: _json(ref("Error"), text)
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
            "schemas": SCHEMAS,
        },
    }


def openapi_text() -> str:
    """The document as it is checked in."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OPENAPI_FILE.write_text(openapi_text(), encoding="utf-8")
    print(f"wrote {OPENAPI_FILE}")
