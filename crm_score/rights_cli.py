"""``crm-score erase``: a customer's data rights from the command line."""

from __future__ import annotations

import asyncio
import getpass
from datetime import UTC, datetime

import orjson
import typer

from crm_core.errors import CrmScoringError
from crm_core.settings import get_settings
from crm_score.services_cli import fail

__all__ = ["erase_command"]


def erase_command(
    customer_id: str = typer.Argument(..., help="the customer id to erase"),
) -> None:
    """Erase a customer: every key and index entry in Redis, a suppression record so its
    events are skipped from now on (also by rebuild and replay), ``customer_erased`` on
    crm.erasures, an audit entry. Idempotent; safe while workers run. Prints what it did."""
    from streams.api.policy import Principal
    from streams.api.rights import erase_customer
    from streams.state.profiles import connect_redis

    settings = get_settings()
    who = Principal(f"cli:{getpass.getuser()}", "admin")

    async def run() -> dict[str, object]:
        client = connect_redis(settings)
        try:
            report = await erase_customer(settings, client, customer_id, datetime.now(UTC), who)
        finally:
            await client.aclose()
        return report.to_dict()

    try:
        typer.echo(orjson.dumps(asyncio.run(run())).decode())
    except CrmScoringError as exc:
        raise fail(exc) from None
