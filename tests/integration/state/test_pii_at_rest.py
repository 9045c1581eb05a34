"""Contact details encrypted at rest against the real Kafka and Redis: a worker writes
ciphertext (no raw value holds an address), the API and the export show the contact, a key
rotation runs while a worker applies events, a plain value of an old store still reads and is
encrypted by the rotation, and production mode refuses to start without a key."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from crm_core.errors import DecryptionError
from crm_core.settings import Settings
from crm_score.produce import produce_messages
from schemas._envelope import Contact
from streams.api.auth import KeyStore
from streams.api.export import export_document
from streams.api.policy import Principal
from streams.api.queries import Queries
from streams.api.rights import erase_customer
from streams.api.server import mount_api
from streams.state.keys import Layout
from streams.state.pii import PiiCipher, key_id
from streams.state.pii_rotation import RotationReport, rotate_contacts
from streams.state.profiles import connect_redis
from streams.state.records import ProfileRecords
from tests.integration.harness import WorkerProcess, wait_caught_up
from tests.integration.histories import History, fault_settings, make_history, publish_models
from tests.integration.keyspace import holding, wipe

pytestmark = pytest.mark.integration


def _keys(*pairs: tuple[str, bytes]) -> SecretStr:
    return SecretStr(",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in pairs))


def latest_contacts(history: History) -> dict[str, dict[str, str]]:
    """Each customer's contact details as its newest event carrying them says (the oracle)."""
    latest: dict[str, dict[str, str]] = {}
    for message in history.messages:  # in event-time order
        contact = orjson.loads(message.value).get("contact")
        if message.key and contact:
            latest[message.key.decode()] = Contact.model_validate(contact).model_dump(
                exclude_none=True
            )
    return latest


async def stored_contacts(settings: Settings) -> dict[str, bytes]:
    """The raw value of every contact key under the settings' prefix, by customer."""
    layout = Layout(settings.redis_key_prefix)
    client = connect_redis(settings)
    try:
        keys = [k async for k in client.scan_iter(match=layout.contact_pattern(), count=10_000)]
        values = await client.mget(keys) if keys else []
    finally:
        await client.aclose()
    return {
        layout.customer_of(bytes(k).decode()): bytes(v)
        for k, v in zip(keys, values, strict=True)
        if isinstance(v, bytes)
    }


async def rotate(settings: Settings) -> RotationReport:
    """``crm-score rotate-pii-key`` without the process."""
    client = connect_redis(settings)
    try:
        cipher = PiiCipher.from_settings(settings)
        return await rotate_contacts(client, Layout(settings.redis_key_prefix), cipher)
    finally:
        await client.aclose()


async def api_keys(settings: Settings) -> dict[str, str]:
    client = connect_redis(settings)
    try:
        store = KeyStore(client, Layout(settings.redis_key_prefix))
        return {
            "admin": await store.create(Principal("", "admin")),
            "privacy": await store.create(Principal("", "privacy")),
        }
    finally:
        await client.aclose()


async def api_get(port: int, path: str, key: str) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}", headers={"X-API-Key": key}) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


async def test_the_worker_stores_ciphertext_and_a_rotation_runs_beside_it(
    base_settings: Settings, tmp_path: Path
) -> None:
    history = make_history(customers=60, seed=5, malformed=0.0)
    expected = latest_contacts(history)
    k1, k2 = os.urandom(32), os.urandom(32)
    messages = history.messages
    half = next(i for i in range(len(messages) // 2, len(messages))
                if messages[i].event_time > messages[i - 1].event_time)  # fmt: skip
    # The first worker's clock ends just past the first half, so the second half is not late.
    first_until = messages[half - 1].event_time + timedelta(seconds=1)
    first = fault_settings(
        base_settings, history, environment="production", pii_keys=_keys(("k1", k1))
    )
    first = first.model_copy(update={"replay_until": first_until})
    await publish_models(first, history)
    await produce_messages(first, history.messages[:half])
    worker = WorkerProcess(first, str(tmp_path / "worker1.log"))
    try:
        await worker.start()
        await wait_caught_up(first, [worker], timeout=180)
        health = worker.health()
    finally:
        await worker.stop()
    assert health["pii_encryption"] == "on: AES-256-GCM, encrypting with key k1", health
    stored = await stored_contacts(first)
    assert stored and set(stored) <= set(expected)
    for c, value in stored.items():  # every value sealed; no address in any of them
        assert key_id(value) == "k1" and expected[c]["email"].encode() not in value

    # The new key goes first, the old one stays listed; the rotation runs while a worker
    # applies the rest of the history (writing under k2).
    second = first.model_copy(
        update={"pii_keys": _keys(("k2", k2), ("k1", k1)), "replay_until": history.until}
    )
    worker = WorkerProcess(second, str(tmp_path / "worker2.log"))
    try:
        await worker.start()
        report, _ = await asyncio.gather(
            rotate(second), produce_messages(second, history.messages[half:])
        )
        await wait_caught_up(second, [worker], timeout=180)
        keys = await api_keys(second)
        customer = sorted(expected)[0]
        admin = await api_get(worker.web_port, f"/api/customers/{customer}", keys["admin"])
        masked = await api_get(worker.web_port, f"/api/customers/{customer}", keys["privacy"])
        export = await api_get(worker.web_port, f"/api/customers/{customer}/export", keys["admin"])
    finally:
        await worker.stop()

    assert report.key_id == "k2" and report.unreadable == [], report
    assert set(report.old_keys) <= {"k1"}, report
    assert report.re_encrypted + report.changed_meanwhile + report.already_current > 0, report
    assert admin["contact"] == expected[customer] == export["contact"]
    assert export["contact_unmasked"] is True
    email = expected[customer]["email"]
    assert masked["contact"]["email"] != email and "@" in masked["contact"]["email"]

    # Every contact is now under k2 alone: k1 may leave the key list.
    only_k2 = PiiCipher([("k2", k2)])
    stored = await stored_contacts(second)
    assert set(stored) == set(expected)
    for c, value in stored.items():
        assert key_id(value) == "k2" and expected[c]["email"].encode() not in value
        assert orjson.loads(only_k2.open(c, value)) == expected[c]
    assert await holding(second, email) == []  # no key or value anywhere holds the address
    assert (await rotate(second)).to_dict()["found_under_old_keys"] == {}
    await wipe(second, keep_suppression=False)


async def test_a_plain_contact_of_an_old_store_reads_and_is_encrypted_by_the_rotation(
    isolated_settings: Settings,
) -> None:
    key = os.urandom(32)
    settings = isolated_settings.model_copy(
        update={
            "pii_keys": _keys(("k1", key)),
            "erasure_key": SecretStr(os.urandom(16).hex()),
            "erase_fence_seconds": 0.0,
        }
    )
    layout, cipher = Layout(settings.redis_key_prefix), PiiCipher([("k1", key)])
    contact = {"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+1-555-0100"}
    admin = Principal("cli:test", "admin")
    client = connect_redis(settings)
    try:
        # As a store written before encryption left them: a profile and plain JSON.
        await ProfileRecords(client).write(layout.profile("old-1"), {"n": 2, "g": 5000})
        await client.set(layout.contact("old-1"), orjson.dumps(contact))
        queries = Queries(client, layout, [], pii=cipher)
        before = await queries.customer("old-1")
        assert before is not None and before.contact == contact

        report = await rotate_contacts(client, layout, cipher)
        assert report.to_dict()["found_under_old_keys"] == {"plain": 1}
        assert report.re_encrypted == 1
        raw = await client.get(layout.contact("old-1"))
        assert isinstance(raw, bytes) and key_id(raw) == "k1" and b"ada" not in raw
        after = await queries.customer("old-1")
        assert after is not None and after.contact == contact
        document = await export_document(client, layout, after, admin, datetime.now(UTC))
        assert document["contact"] == contact

        # A value altered in Redis is refused, not shown.
        await client.set(layout.contact("old-1"), raw[:-1] + bytes([raw[-1] ^ 1]))
        tampered = await rotate_contacts(client, layout, cipher)
        assert tampered.unreadable == [] and tampered.already_current == 1
        with pytest.raises(DecryptionError, match="do not decrypt"):
            await queries.customer("old-1")
        # The API answers 500 and keeps the detail (key ids) for its log.
        api_key = await KeyStore(client, layout).create(admin)
        root = web.Application()
        mount_api(root, settings)
        async with TestClient(TestServer(root)) as http:
            response = await http.get("/api/customers/old-1", headers={"X-API-Key": api_key})
            body = await response.json()
        assert response.status == 500 and "do not decrypt" in body["error"]["message"], body
        assert "k1" not in body["error"]["message"]

        # Erasure removes the encrypted contact like the plain one.
        await erase_customer(settings, client, "old-1", datetime.now(UTC), admin)
        assert await client.exists(layout.contact("old-1")) == 0
    finally:
        await client.aclose()
    await wipe(settings, keep_suppression=False)


def test_production_without_a_key_refuses_to_start_and_says_what_to_set(
    base_settings: Settings,
) -> None:
    env = base_settings.subprocess_env(CRM_ENVIRONMENT="production")
    env.pop("CRM_PII_KEYS", None)
    done = subprocess.run(
        [sys.executable, "-m", "crm_score", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "CRM_ENVIRONMENT=production needs CRM_PII_KEYS" in done.stderr
    assert "os.urandom(32)" in done.stderr
