"""``crm-score fit``: fit the population's models on the stored profiles (or an event file),
publish them and print a JSON report."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import typer

from crm_core.errors import CrmScoringError
from crm_core.settings import get_settings
from crm_score.services_cli import fail as _fail
from crm_score.services_cli import utc_option

__all__ = ["fit_command"]


def fit_command(
    as_of: str | None = typer.Option(
        None,
        help="fit as of this ISO time (default: now, or the newest event of --events; "
        "no offset means UTC); with --events, later events are left out",
    ),
    events: Path | None = typer.Option(
        None, help="fit on this JSONL/CSV event file instead of the stored profiles"
    ),
) -> None:
    """Fit BG/NBD, the dropout model (CRM_DROPOUT_MODEL), Gamma-Gamma and RFM quintiles on the
    stored profiles (or an event file); publish them and print JSON (crm_score/fit_report.py)."""
    from crm_score.event_files import profiles_from_file
    from crm_score.fit_report import fit_report
    from scorers.probability import ProbabilityModel
    from scorers.profile import Profile
    from scorers.quintiles import RfmBoundaries
    from streams.models.population import fit_population
    from streams.state.profiles import connect_redis

    settings = get_settings()
    asked = None if as_of is None else utc_option(as_of, "--as-of")
    profiles: list[Profile] | None = None
    newest: datetime | None = None
    if events is not None:
        try:
            by_customer, newest, rejected = profiles_from_file(
                events,
                settings.fx_rates,
                now=datetime.now(UTC),
                dedup_window_days=settings.dedup_window_days,
                until=asked,
            )
        except CrmScoringError as exc:
            raise _fail(exc) from None
        profiles = list(by_customer.values())
        typer.echo(f"{len(profiles)} customers from {events} ({rejected} lines skipped)", err=True)
    moment = asked or newest or datetime.now(UTC)

    async def run() -> tuple[ProbabilityModel, RfmBoundaries]:
        client = connect_redis(settings)
        try:
            return await fit_population(settings, client, as_of=moment, profiles=profiles)
        finally:
            await client.aclose()

    start = time.perf_counter()
    try:
        model, boundaries = asyncio.run(run())
    except CrmScoringError as exc:
        raise _fail(exc) from None
    report = fit_report(model)
    report["rfm_boundaries"] = boundaries.model_dump(mode="json")
    report["fit_seconds"] = round(time.perf_counter() - start, 3)
    typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
