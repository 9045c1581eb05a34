"""``crm-score services``: start, stop and show the local Kafka and Redis (or their clusters)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import typer

from crm_core.errors import CrmScoringError
from crm_core.settings import Settings, get_settings

__all__ = ["fail", "services_app"]

services_app = typer.Typer(help="Local Kafka and Redis without Docker.", no_args_is_help=True)


def fail(exc: CrmScoringError) -> typer.Exit:
    """Print ``exc`` as the command's error and the exit that ends the command with code 1."""
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def utc_option(value: str, option: str) -> datetime:
    """An ISO 8601 option value as an aware UTC time (no offset means UTC)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not ISO 8601", param_hint=option) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _services(settings: Settings, redis_cluster: int = 0, kafka_brokers: int = 1) -> list[Any]:
    """The local services to manage: one Redis or a Redis Cluster, one broker or a cluster."""
    from crm_score.services import LocalKafka, LocalKafkaCluster, LocalRedis, LocalRedisCluster

    redis: Any = (
        LocalRedisCluster(settings, redis_cluster) if redis_cluster else LocalRedis(settings)
    )
    kafka: Any = (
        LocalKafkaCluster(settings, kafka_brokers) if kafka_brokers > 1 else LocalKafka(settings)
    )
    return [redis, kafka]


_REDIS_CLUSTER = typer.Option(
    0, "--redis-cluster", help="Start a Redis Cluster of this many masters (>= 3) instead of "
    "one Redis, on CRM_REDIS_CLUSTER_PORT and the next ports.",
)  # fmt: skip
_KAFKA_BROKERS = typer.Option(
    1, "--kafka-brokers", help="Start this many replicated KRaft brokers (>= 3), one per address "
    "of CRM_KAFKA_BOOTSTRAP, controllers on CRM_KAFKA_CONTROLLER_PORT and the next ports.",
)  # fmt: skip


@services_app.command("up")
def services_up(redis_cluster: int = _REDIS_CLUSTER, kafka_brokers: int = _KAFKA_BROKERS) -> None:
    """Start Kafka (KRaft) and Redis on 127.0.0.1; a no-op for what already runs."""
    settings = get_settings()
    start = time.monotonic()
    try:
        for service in _services(settings, redis_cluster, kafka_brokers):
            typer.echo(service.up())
    except CrmScoringError as exc:
        raise fail(exc) from None
    typer.echo(f"services up in {time.monotonic() - start:.1f} s")


@services_app.command("down")
def services_down() -> None:
    """Stop the Kafka and Redis processes that `services up` started (by PID file), clusters
    included."""
    from crm_score.services import LocalKafka, LocalKafkaCluster, LocalRedis, LocalRedisCluster

    settings = get_settings()
    for service in (
        LocalKafka(settings), LocalKafkaCluster(settings), LocalRedis(settings),
        LocalRedisCluster(settings),
    ):  # fmt: skip
        typer.echo(service.down())


@services_app.command("status")
def services_status(
    redis_cluster: int = _REDIS_CLUSTER, kafka_brokers: int = _KAFKA_BROKERS
) -> None:
    """Say what runs where."""
    settings = get_settings()
    try:
        for service in _services(settings, redis_cluster, kafka_brokers):
            typer.echo(service.status())
    except CrmScoringError as exc:
        raise fail(exc) from None


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
        raise fail(exc) from None
    finally:
        for service in reversed(started):
            typer.echo(service.down())
    raise typer.Exit(code=code)
