"""``crm-score``: the one command-line entry point."""

from __future__ import annotations

import time

import typer

from crm_score.errors import CrmScoringError
from crm_score.settings import get_settings

__all__ = ["app", "main"]

app = typer.Typer(
    help="crm-scoring: streaming customer scoring on Kafka + Redis.", no_args_is_help=True
)
services_app = typer.Typer(help="Local Kafka and Redis without Docker.", no_args_is_help=True)
app.add_typer(services_app, name="services")


def _fail(exc: CrmScoringError) -> typer.Exit:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@services_app.command("up")
def services_up() -> None:
    """Start Kafka (KRaft) and Redis on 127.0.0.1; a no-op for what already runs."""
    from crm_score.services import LocalKafka, LocalRedis

    settings = get_settings()
    start = time.monotonic()
    try:
        for service in (LocalRedis(settings), LocalKafka(settings)):
            typer.echo(service.up())
    except CrmScoringError as exc:
        raise _fail(exc) from None
    typer.echo(f"services up in {time.monotonic() - start:.1f} s")


@services_app.command("down")
def services_down() -> None:
    """Stop the Kafka and Redis processes that `services up` started (by PID file)."""
    from crm_score.services import LocalKafka, LocalRedis

    settings = get_settings()
    for service in (LocalKafka(settings), LocalRedis(settings)):
        typer.echo(service.down())


@services_app.command("status")
def services_status() -> None:
    """Say what runs where."""
    from crm_score.services import LocalKafka, LocalRedis

    settings = get_settings()
    for service in (LocalKafka(settings), LocalRedis(settings)):
        typer.echo(service.status())


@services_app.command(
    "run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def services_run(ctx: typer.Context) -> None:
    """Run a command with the services up; stop afterwards only what this call started.

    Example: ``crm-score services run -- pytest -q``. Exits with the command's exit code.
    """
    import subprocess

    from crm_score.services import LocalKafka, LocalRedis

    if not ctx.args:
        raise typer.BadParameter("give the command to run after --")
    settings = get_settings()
    services = (LocalRedis(settings), LocalKafka(settings))
    started = []
    try:
        for service in services:
            was_running = service.process.pid() is not None
            typer.echo(service.up())
            if not was_running:
                started.append(service)
        code = subprocess.call(ctx.args)
    except CrmScoringError as exc:
        raise _fail(exc) from None
    finally:
        for service in reversed(started):
            typer.echo(service.down())
    raise typer.Exit(code=code)


@app.command()
def worker(
    loglevel: str = typer.Option("info", "--loglevel", "-l", help="crit, error, warn, info, debug"),
) -> None:
    """Run the pipeline worker: consume, validate, apply to Redis, score, publish."""
    from streams.worker import run_worker

    run_worker(get_settings(), loglevel=loglevel)


def main() -> None:
    """Console-script entry point."""
    app()
