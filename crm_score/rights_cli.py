"""``crm-score erase``, ``export`` and ``rotate-pii-key``: customer data rights from the command
line."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson
import typer

from crm_core.errors import CrmScoringError
from crm_core.settings import Settings, get_settings
from crm_score.services_cli import fail

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["erase_command", "export_command", "rotate_pii_key_command"]


def erase_command(
    customer_id: str = typer.Argument(..., help="the customer id to erase"),
) -> None:
    """Erase a customer: every key and index entry in Redis, a suppression record so its
    events are skipped from now on (also by rebuild and replay), ``customer_erased`` on
    crm.erasures, an audit entry. Idempotent; safe while workers run. Prints what it did."""
    from streams.api.policy import Principal
    from streams.api.rights import erase_customer

    settings = get_settings()
    who = Principal(f"cli:{getpass.getuser()}", "admin")

    async def erase(client: Redis) -> dict[str, object]:
        report = await erase_customer(settings, client, customer_id, datetime.now(UTC), who)
        return report.to_dict()

    _print_report(settings, erase)


def export_command(
    customer_id: str = typer.Argument(..., help="the customer id to export"),
) -> None:
    """Print everything stored about a customer as one JSON document (contact unmasked), and
    audit it. Exit code 1 when no such customer is stored."""
    from streams.api.audit import AuditLog, Decision
    from streams.api.export import export_document
    from streams.api.policy import Principal
    from streams.api.queries import Queries
    from streams.state.keys import Layout
    from streams.state.pii import PiiCipher
    from streams.state.profiles import connect_redis

    settings = get_settings()
    who = Principal(f"cli:{getpass.getuser()}", "admin")
    layout = Layout(settings.redis_key_prefix)
    path = f"/api/customers/{customer_id}/export"

    async def run() -> dict[str, object] | None:
        client = connect_redis(settings)
        try:
            pii = PiiCipher.from_settings(settings)
            record = await Queries(client, layout, [], pii=pii).customer(customer_id)
            audit = AuditLog(client, layout, settings.api_audit_maxlen)
            decision: Decision = "allowed" if record is not None else "not_found"
            await audit.record(who, "CLI", path, customer_id, decision, 200 if record else 404)
            if record is None:
                return None
            return await export_document(client, layout, record, who, datetime.now(UTC))
        finally:
            await client.aclose()

    try:
        document = asyncio.run(run())
    except CrmScoringError as exc:
        raise fail(exc) from None
    if document is None:
        typer.secho(f"no customer {customer_id!r} is stored", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=1)
    typer.echo(orjson.dumps(document).decode())


def rotate_pii_key_command() -> None:
    """Re-encrypt every stored contact under the first key of CRM_PII_KEYS (values under an
    older key, or stored plain before encryption). Safe while workers run; prints what it did.
    An old key may leave CRM_PII_KEYS once this reports nothing found under it."""
    from streams.state.keys import Layout
    from streams.state.pii import PiiCipher
    from streams.state.pii_rotation import rotate_contacts

    settings = get_settings()

    async def rotate(client: Redis) -> dict[str, object]:
        cipher = PiiCipher.from_settings(settings)
        report = await rotate_contacts(client, Layout(settings.redis_key_prefix), cipher)
        return report.to_dict()

    _print_report(settings, rotate)


def _print_report(settings: Settings, job: Callable[[Redis], Awaitable[dict[str, object]]]) -> None:
    """Run ``job`` on a Redis client and print its report as JSON (errors: exit code 1)."""
    from streams.state.profiles import connect_redis

    async def run() -> dict[str, object]:
        client = connect_redis(settings)
        try:
            return await job(client)
        finally:
            await client.aclose()

    try:
        typer.echo(orjson.dumps(asyncio.run(run())).decode())
    except CrmScoringError as exc:
        raise fail(exc) from None
