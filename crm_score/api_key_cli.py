"""``crm-score api-key create|list|revoke``: the query API's keys (stored hashed in Redis)."""

from __future__ import annotations

import asyncio

import orjson
import typer

from crm_core.errors import CrmScoringError
from crm_core.settings import get_settings
from crm_score.services_cli import fail as _fail

__all__ = ["api_key_app"]

api_key_app = typer.Typer(help="Query API keys (stored hashed in Redis).", no_args_is_help=True)


@api_key_app.command("create")
def api_key_create(
    role: str = typer.Option(..., help="admin, manager, agent or privacy (may erase)"),
    department: str | None = typer.Option(None, help="managers: the department (a path)"),
    identity: str | None = typer.Option(None, help="agents: the identity customers name"),
    pii: bool = typer.Option(False, "--pii", help="may see contact details unmasked"),
    share: bool = typer.Option(False, "--share", help="may share customers with agents"),
) -> None:
    """Create a key and print it once; only its SHA-256 digest is stored."""
    from typing import cast

    from streams.api.auth import manage_keys
    from streams.api.policy import Principal, Role

    granted = frozenset(p for p, on in (("pii", pii), ("share", share)) if on)
    try:
        principal = Principal("", cast(Role, role), department, identity, granted)  # validated
        key = asyncio.run(manage_keys(get_settings(), lambda keys: keys.create(principal)))
    except CrmScoringError as exc:
        raise _fail(exc) from None
    typer.echo(key)
    typer.echo("keep it now: it is not stored and cannot be shown again", err=True)


@api_key_app.command("list")
def api_key_list() -> None:
    """The stored keys: id, role, department, identity, permissions (never the keys)."""
    from streams.api.auth import KeyStore, manage_keys

    async def listing(keys: KeyStore) -> list[dict[str, object]]:
        return [
            orjson.loads(r.to_json()) | {"key_id": r.principal.key_id} for r in await keys.list()
        ]

    for row in asyncio.run(manage_keys(get_settings(), listing)):
        row.pop("sha256")
        typer.echo(orjson.dumps(row).decode())


@api_key_app.command("revoke")
def api_key_revoke(key_id: str = typer.Argument(..., help="the key id (crm_<id>_...)")) -> None:
    """Delete a key (workers stop accepting it within CRM_API_KEY_CACHE_SECONDS)."""
    from streams.api.auth import manage_keys

    if not asyncio.run(manage_keys(get_settings(), lambda keys: keys.revoke(key_id))):
        typer.secho(f"no key {key_id!r}", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=1)
