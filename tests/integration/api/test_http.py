"""The query API over HTTP against the real Redis: every scope rule, 401/404, masking per role,
paging, recent alerts and the audit trail read back.

Redis is filled by the same code a round's save uses (RoundIndexer's commands, RoundStore's
recent alerts), so what is read is what the worker writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from crm_core.settings import Settings
from schemas import PurchaseEvent, example_event_dict
from scorers.cross_sell import OrderUpdate
from scorers.profile import Profile
from streams.api.audit import AuditLog
from streams.api.auth import KeyStore
from streams.api.policy import Principal
from streams.api.server import mount_api
from streams.models.registry import CLUSTERS_MODEL, ModelRegistry
from streams.round.messages import Applied, OutputMessage
from streams.state.cross_sell_counts import CrossSellRound
from streams.state.keys import Layout
from streams.state.profiles import RedisProfileStore
from streams.state.query_index import RoundIndexer
from streams.state.round_store import RoundStore

pytestmark = pytest.mark.integration

CONTACT = {"name": "Jane Doe", "email": "jane.doe@example.com", "phone": "+1-555-0142"}
#: customer -> (department, owner, segment, clv, churn)
CUSTOMERS = {
    "c-uk": ("sales/emea/uk", "agent-1", "Champions", 900.0, 0.1),
    "c-de": ("sales/emea/de", None, "Champions", 500.0, 0.4),
    "c-us": ("sales/amer/us", "agent-2", "Champions", 700.0, 0.8),
    "c-lost": ("sales/amer", None, "Lost", 10.0, 0.95),
}
#: customer -> (value group, cluster)
GROUPS = {
    "c-uk": ("high_value_stable", 0),
    "c-de": ("low_value_stable", 1),
    "c-us": ("high_value_at_risk", 0),
    "c-lost": ("low_value_at_risk", 1),
}


@dataclass(frozen=True)
class _Record:
    topic: str = "crm.purchase"
    partition: int = 0
    offset: int = 0
    key: bytes | None = None
    value: bytes | None = b""
    timestamp: int | None = None


def _applied(customer: str, department: str, owner: str | None) -> Applied:
    raw = example_event_dict("order_placed")
    raw.pop("owner", None)
    when = datetime(2026, 1, 5, tzinfo=UTC).isoformat()
    raw.update(customer_id=customer, event_id=f"e-{customer}", department=department,
               event_time=when, contact=CONTACT)  # fmt: skip
    if owner:
        raw["owner"] = owner
    at = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())
    profile = Profile(orders=3, gross_minor=9000, last_purchase_at=at, last_purchase_event_at=at)
    return Applied(_Record(), PurchaseEvent.model_validate(raw), profile, float(at), False)


def _snapshot(customer: str, segment: str, clv: float, churn: float) -> OutputMessage:
    body = {"customer_id": customer, "as_of": "2026-01-05T00:00:00Z", "trigger": "event",
            "segment": segment, "clv": clv, "churn_probability": churn, "p_alive": 0.8,
            "reasons": ["opens fell 80%"], "churn_model_version": "4",
            "probability_model_version": "2", "frequency": 3, "monetary_minor": 9000,
            "value_group": GROUPS[customer][0], "cluster": GROUPS[customer][1]}  # fmt: skip
    return OutputMessage(0, customer.encode(), orjson.dumps(body))


@dataclass
class Api:
    client: TestClient[Any, Any]
    keys: dict[str, str]
    settings: Settings

    async def get(self, path: str, who: str | None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        response = await self.client.get(path, headers=headers)
        return response.status, await response.json()


@pytest.fixture
async def api(isolated_settings: Settings, redis_client: aioredis.Redis) -> AsyncIterator[Api]:
    secret = SecretStr("test-erasure-key-" + "k" * 32)
    settings = isolated_settings.model_copy(
        update={"erasure_key": secret, "erase_fence_seconds": 0.0}
    )
    layout = Layout(settings.redis_key_prefix)
    applied = [_applied(c, d, o) for c, (d, o, *_) in CUSTOMERS.items()]
    snapshots = [_snapshot(c, s, v, p) for c, (_, _, s, v, p) in CUSTOMERS.items()]
    changed, commands = RoundIndexer(layout).commands({}, applied, snapshots)
    async with redis_client.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        for customer, index in changed.items():
            pipe.hset(layout.profile(customer), mapping={"n": 3, "g": 9000, "ix": index.to_bytes()})
        await pipe.execute()
    rounds = RoundStore(redis_client, RedisProfileStore(redis_client, settings), settings)
    alert = {"alert_type": "churn_risk", "customer_id": "", "reasons": ["x"]}
    await rounds.record_alerts(
        [(c, "churn_risk", orjson.dumps({**alert, "customer_id": c})) for c in CUSTOMERS]
        + [("c-uk", "win_back", orjson.dumps({**alert, "alert_type": "win_back"}))]
    )
    await rounds.close()
    store = KeyStore(redis_client, layout)
    principals = {
        "admin": Principal("", "admin"),
        "emea": Principal("", "manager", department="sales/emea"),
        "sales": Principal("", "manager", department="sales"),
        "agent1": Principal("", "agent", identity="agent-1"),
        "agent3": Principal("", "agent", identity="agent-3"),
        "agent3pii": Principal("", "agent", identity="agent-3", granted=frozenset({"pii"})),
        "privacy": Principal("", "privacy"),
    }
    keys = {name: await store.create(p) for name, p in principals.items()}
    root = web.Application()
    mount_api(root, settings)
    client: TestClient[Any, Any] = TestClient(TestServer(root))
    await client.start_server()
    yield Api(client, keys, settings)
    await client.close()


async def test_no_key_or_a_wrong_key_is_401(api: Api) -> None:
    status, body = await api.get("/api/customers/c-uk", None)
    assert status == 401 and body["error"]["status"] == 401
    api.keys["forged"] = api.keys["admin"][:-2] + "xx"
    assert (await api.get("/api/customers/c-uk", "forged"))[0] == 401
    api.keys["garbage"] = "hunter2"
    assert (await api.get("/api/segments", "garbage"))[0] == 401


async def test_admin_sees_a_customer_with_scores_and_pii(api: Api) -> None:
    status, body = await api.get("/api/customers/c-us", "admin")
    assert status == 200
    assert body["segment"] == "Champions" and body["clv"] == 700.0
    assert body["churn_probability"] == 0.8 and body["p_alive"] == 0.8
    assert body["reasons"] == ["opens fell 80%"]
    assert body["model_version"] == {"probability": "2", "churn": "4"}
    assert body["departments"] == {"purchase": "sales/amer/us"} and body["owner"] == "agent-2"
    assert body["contact"] == CONTACT
    assert body["value_group"] == "high_value_at_risk" and body["cluster"] == 0
    assert (await api.get("/api/customers/nobody", "admin"))[0] == 404


async def test_manager_sees_its_department_and_sub_departments_only(api: Api) -> None:
    assert (await api.get("/api/customers/c-uk", "emea"))[0] == 200  # sales/emea/uk
    assert (await api.get("/api/customers/c-de", "emea"))[0] == 200
    status, body = await api.get("/api/customers/c-us", "emea")  # out of scope: as if absent
    assert status == 404 and body == (await api.get("/api/customers/nobody", "emea"))[1] | {
        "error": {"status": 404, "message": "no customer 'c-us'"}
    }
    assert (await api.get("/api/customers/c-us", "sales"))[0] == 200


async def test_agent_sees_owned_and_shared_customers(api: Api) -> None:
    assert (await api.get("/api/customers/c-uk", "agent1"))[0] == 200  # owner
    assert (await api.get("/api/customers/c-de", "agent1"))[0] == 404
    assert (await api.get("/api/customers/c-de", "agent3"))[0] == 404
    headers = {"Authorization": f"Bearer {api.keys['agent3']}"}
    refused = await api.client.post("/api/customers/c-de/share", json={"identity": "agent-3"},
                                    headers=headers)  # fmt: skip
    assert refused.status == 403  # agents may not share
    headers = {"Authorization": f"Bearer {api.keys['admin']}"}
    shared = await api.client.post("/api/customers/c-de/share", json={"identity": "agent-3"},
                                   headers=headers)  # fmt: skip
    assert shared.status == 200
    status, body = await api.get("/api/customers/c-de", "agent3")
    assert status == 200 and body["shared_with"] is None  # agents do not see who else has it
    assert (await api.get("/api/customers/c-de", "admin"))[1]["shared_with"] == ["agent-3"]


async def test_pii_is_masked_for_roles_without_the_permission(api: Api) -> None:
    masked = {"name": "J*** D***", "email": "j***@example.com", "phone": "***42"}
    assert (await api.get("/api/customers/c-uk", "emea"))[1]["contact"] == masked
    assert (await api.get("/api/customers/c-uk", "agent1"))[1]["contact"] == masked
    assert (await api.get("/api/customers/c-uk", "admin"))[1]["contact"] == CONTACT
    headers = {"Authorization": f"Bearer {api.keys['admin']}"}
    await api.client.post(
        "/api/customers/c-uk/share", json={"identity": "agent-3"}, headers=headers
    )
    assert (await api.get("/api/customers/c-uk", "agent3pii"))[1]["contact"] == CONTACT


async def test_segment_counts_and_listings_are_scoped(api: Api) -> None:
    def counts(body: Any) -> dict[str, int]:
        return {s["name"]: s["customers"] for s in body["segments"] if s["customers"]}

    assert counts((await api.get("/api/segments", "admin"))[1]) == {"Champions": 3, "Lost": 1}
    assert counts((await api.get("/api/segments", "emea"))[1]) == {"Champions": 2}
    assert counts((await api.get("/api/segments", "agent1"))[1]) == {"Champions": 1}

    status, body = await api.get("/api/segments/Champions/customers?sort=clv&limit=2", "admin")
    assert status == 200
    assert [i["customer_id"] for i in body["items"]] == ["c-uk", "c-us"]
    assert body["items"][0] == {"customer_id": "c-uk", "segment": "Champions", "clv": 900.0,
                                "churn_probability": 0.1}  # fmt: skip
    cursor = body["next_cursor"]
    _, rest = await api.get(f"/api/segments/Champions/customers?limit=2&cursor={cursor}", "admin")
    assert [i["customer_id"] for i in rest["items"]] == ["c-de"] and rest["next_cursor"] is None
    _, by_churn = await api.get("/api/segments/Champions/customers?sort=churn", "admin")
    assert [i["customer_id"] for i in by_churn["items"]] == ["c-us", "c-de", "c-uk"]
    _, emea = await api.get("/api/segments/Champions/customers?sort=churn", "emea")
    assert [i["customer_id"] for i in emea["items"]] == ["c-de", "c-uk"]
    _, mine = await api.get("/api/segments/Champions/customers", "agent1")
    assert [i["customer_id"] for i in mine["items"]] == ["c-uk"]
    assert (await api.get("/api/segments/Nope/customers", "admin"))[0] == 404
    assert (await api.get("/api/segments/Champions/customers?sort=age", "admin"))[0] == 400


async def test_value_group_counts_are_scoped(api: Api) -> None:
    def counts(body: Any) -> dict[str, int]:
        return {g["name"]: g["customers"] for g in body["value_groups"] if g["customers"]}

    assert (await api.get("/api/value-groups", None))[0] == 401
    status, body = await api.get("/api/value-groups", "admin")
    assert status == 200 and body["total"] == 4
    assert counts(body) == dict.fromkeys(
        ["high_value_stable", "low_value_stable", "high_value_at_risk", "low_value_at_risk"], 1
    )
    label = "high value & likely to churn"
    assert body["value_groups"][1] == {"name": "high_value_at_risk", "label": label, "customers": 1}
    assert counts((await api.get("/api/value-groups", "emea"))[1]) == {
        "high_value_stable": 1, "low_value_stable": 1}  # fmt: skip
    assert counts((await api.get("/api/value-groups", "sales"))[1]) == counts(body)
    assert counts((await api.get("/api/value-groups", "agent1"))[1]) == {"high_value_stable": 1}
    assert (await api.get("/api/value-groups", "agent3"))[1]["total"] == 0


async def test_clusters_are_population_level_for_any_key(
    api: Api, redis_client: aioredis.Redis
) -> None:
    assert (await api.get("/api/clusters", None))[0] == 401
    status, body = await api.get("/api/clusters", "admin")
    assert status == 200 and body == {"version": None, "n_examples": None, "clusters": []}
    centres = [
        {"recency_days": 12.5, "log_orders": 1.9},
        {"recency_days": 210.0, "log_orders": 0.7},
    ]
    registry = ModelRegistry(redis_client, api.settings.redis_key_prefix)
    version = await registry.publish(
        CLUSTERS_MODEL, b"assigner", {"n_examples": 640, "centres": centres}
    )
    expected = {
        "version": version,
        "n_examples": 640,
        "clusters": [
            {"id": 0, "centre": centres[0], "customers": 2},
            {"id": 1, "centre": centres[1], "customers": 2},
        ],
    }
    assert (await api.get("/api/clusters", "admin"))[1] == expected
    assert (await api.get("/api/clusters", "agent3"))[1] == expected  # whatever the scope


async def test_cross_sell_rules_as_of_the_newest_watermark(
    api: Api, redis_client: aioredis.Redis
) -> None:
    at = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())
    xsell = CrossSellRound.from_settings(api.settings)
    baskets = [("ink", "paper")] * 30 + [("ink",)] * 10 + [("toys",)] * 20
    orders = [
        (i.to_bytes(8, "big"), OrderUpdate(float(at), basket, (), True))
        for i, basket in enumerate(baskets)
    ]
    layout = Layout(api.settings.redis_key_prefix)
    async with redis_client.pipeline(transaction=False) as pipe:
        for command in xsell.apply_commands(orders, {}):
            pipe.execute_command(*command)
        pipe.set(layout.watermark(0), repr(float(at - 3600)))
        pipe.set(layout.watermark(1), repr(float(at)))
        await pipe.execute()

    assert (await api.get("/api/cross-sell/rules", None))[0] == 401
    status, body = await api.get("/api/cross-sell/rules", "agent3")  # no customers, any key
    assert status == 200 and body["as_of"] == "2026-01-05T00:00:00+00:00"
    assert body["thresholds"] == {"min_confidence": 0.5, "min_lift": 1.1, "min_count": 20.0}
    assert [(r["antecedent"], r["consequent"]) for r in body["rules"]] == [
        ("paper", "ink"), ("ink", "paper")]  # fmt: skip
    assert body["rules"][1] == {
        "antecedent": "ink", "consequent": "paper", "support": 0.5, "confidence": 0.75,
        "lift": 1.5, "customers_with_both": 30.0, "antecedent_customers": 40.0,
        "consequent_customers": 30.0, "customers": 60.0,
        "reason": "75% of buyers of ink also buy paper (lift 1.5)"}  # fmt: skip
    _, first = await api.get("/api/cross-sell/rules?limit=1", "admin")
    assert [r["antecedent"] for r in first["rules"]] == ["paper"]
    assert (await api.get("/api/cross-sell/rules?limit=0", "admin"))[0] == 400
    entries = await AuditLog(redis_client, layout).read()
    assert [(e.path, e.decision, e.status) for e in entries if "cross-sell" in e.path] == [
        ("/api/cross-sell/rules", "unauthenticated", 401),
        ("/api/cross-sell/rules", "allowed", 200),
        ("/api/cross-sell/rules", "allowed", 200),
    ]


async def test_recent_alerts_filtered_by_type_and_scope(api: Api) -> None:
    _, body = await api.get("/api/alerts", "admin")
    assert len(body["alerts"]) == 5 and body["alerts"][0]["alert_type"] == "win_back"
    _, churn = await api.get("/api/alerts?type=churn_risk&limit=2", "admin")
    assert [a["customer_id"] for a in churn["alerts"]] == ["c-lost", "c-us"]
    _, emea = await api.get("/api/alerts?type=churn_risk", "emea")
    assert sorted(a["customer_id"] for a in emea["alerts"]) == ["c-de", "c-uk"]


async def test_every_read_is_audited(api: Api, redis_client: aioredis.Redis) -> None:
    await api.get("/api/customers/c-uk", "agent1")
    await api.get("/api/customers/c-us", "agent1")
    await api.get("/api/customers/ghost", "agent1")
    await api.get("/api/customers/c-uk", None)
    await api.get("/api/segments", "emea")
    entries = await AuditLog(redis_client, Layout(api.settings.redis_key_prefix)).read()
    seen = [(e.role, e.path, e.customer, e.decision, e.status) for e in entries]
    assert seen == [
        ("agent", "/api/customers/c-uk", "c-uk", "allowed", 200),
        ("agent", "/api/customers/c-us", "c-us", "denied", 404),
        ("agent", "/api/customers/ghost", "ghost", "not_found", 404),
        ("-", "/api/customers/c-uk", "c-uk", "unauthenticated", 401),
        ("manager", "/api/segments", None, "allowed", 200),
    ]
    agent_key_id = api.keys["agent1"].split("_")[1]
    assert entries[0].key_id == agent_key_id and entries[0].at.tzinfo is not None


async def test_health_and_openapi_need_no_key(api: Api) -> None:
    response = await api.client.get("/api/health")
    body = await response.json()
    assert response.status == 200 and body["redis"] is True and body["kafka"] is True
    assert set(body["models"]) == {"probability", "churn", "rfm"}
    document = await (await api.client.get("/api/openapi.json")).json()
    assert "/api/customers/{customer_id}" in document["paths"]


async def test_erase_needs_the_permission_and_leaves_only_the_suppression_record(
    api: Api, redis_client: aioredis.Redis
) -> None:
    layout = Layout(api.settings.redis_key_prefix)
    for who in ("emea", "agent1"):
        headers = {"Authorization": f"Bearer {api.keys[who]}"}
        response = await api.client.delete("/api/customers/c-uk", headers=headers)
        assert response.status == 403
    assert (await api.get("/api/customers/c-uk", "privacy"))[0] == 200  # privacy sees everyone

    headers = {"Authorization": f"Bearer {api.keys['privacy']}"}
    response = await api.client.delete("/api/customers/c-uk", headers=headers)
    body = await response.json()
    assert response.status == 200 and body["first_erasure"] and body["keys_deleted"] >= 2
    assert await redis_client.hkeys(layout.erased) == [body["suppression_tag"].encode()]
    # Nothing under the prefix names the customer any more: keys, index members, recent
    # alerts and the audit trail (its entries name the suppression tag instead).
    async for key in redis_client.scan_iter(match=f"{layout.prefix}:*", count=10_000):
        assert b"c-uk" not in key
    members = await redis_client.zrange(layout.segment("Champions", "clv"), 0, -1)
    assert b"c-uk" not in members and len(members) == 2
    alerts: Any = await redis_client.xrange(layout.alerts)
    assert alerts and all(fields[b"c"] != b"c-uk" for _, fields in alerts)
    entries = await AuditLog(redis_client, layout).read()
    assert entries and all(e.customer != "c-uk" and "c-uk" not in e.path for e in entries)
    assert entries[-1].role == "privacy" and entries[-1].method == "DELETE"
    assert (await api.get("/api/customers/c-uk", "admin"))[0] == 404
    assert (await api.get("/api/segments", "admin"))[1]["total"] == len(CUSTOMERS) - 1

    again = await api.client.delete("/api/customers/c-uk", headers=headers)
    assert again.status == 200 and not (await again.json())["first_erasure"]


async def test_export_holds_everything_stored_in_scope_and_is_audited(
    api: Api, redis_client: aioredis.Redis
) -> None:
    status, doc = await api.get("/api/customers/c-uk/export", "admin")
    assert status == 200 and doc["customer_id"] == "c-uk" and doc["export_version"] == 1
    assert doc["contact"] == CONTACT and doc["contact_unmasked"] is True
    assert doc["profile"]["orders"] == 3 and doc["profile"]["gross_minor"] == 9000
    assert doc["scores"]["clv"] == 900.0 and doc["segment"] == "Champions"
    assert (doc["value_group"], doc["cluster"]) == GROUPS["c-uk"]
    assert doc["departments"] == {"purchase": "sales/emea/uk"} and doc["owner"] == "agent-1"
    assert [a["alert_type"] for a in doc["recent_alerts"]] == ["churn_risk", "win_back"]
    assert doc["contactable"] is True

    status, masked = await api.get("/api/customers/c-uk/export", "agent1")  # owns c-uk
    assert status == 200 and masked["contact_unmasked"] is False
    assert masked["contact"]["email"] == "j***@example.com"
    assert (await api.get("/api/customers/c-uk/export", "agent3"))[0] == 404  # not in scope
    entries = await AuditLog(redis_client, Layout(api.settings.redis_key_prefix)).read()
    assert [(e.path, e.decision) for e in entries[-3:]] == [
        ("/api/customers/c-uk/export", "allowed"),
        ("/api/customers/c-uk/export", "allowed"),
        ("/api/customers/c-uk/export", "denied"),
    ]
