"""``crm-score``: the one command-line entry point."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import orjson
import typer

from crm_core.errors import CrmScoringError
from crm_core.settings import get_settings
from crm_score.api_key_cli import api_key_app
from crm_score.fit_cli import fit_command
from crm_score.rights_cli import erase_command, export_command, rotate_pii_key_command
from crm_score.sentiment_cli import sentiment_command
from crm_score.services_cli import fail as _fail
from crm_score.services_cli import services_app, utc_option

__all__ = ["app", "main"]

app = typer.Typer(
    help="crm-scoring: streaming customer scoring on Kafka + Redis.", no_args_is_help=True
)
app.add_typer(services_app, name="services")
app.add_typer(api_key_app, name="api-key")
app.command("sentiment")(sentiment_command)
app.command("erase")(erase_command)
app.command("export")(export_command)
app.command("rotate-pii-key")(rotate_pii_key_command)


@app.command()
def worker(
    loglevel: str = typer.Option("info", "--loglevel", "-l", help="crit, error, warn, info, debug"),
) -> None:
    """Run the pipeline worker: consume, validate, apply to Redis, score, publish."""
    from streams.runtime.worker import run_worker

    try:
        run_worker(get_settings(), loglevel=loglevel)
    except CrmScoringError as exc:  # e.g. production without CRM_PII_KEYS: says what to set
        raise _fail(exc) from None


@app.command()
def learner(
    loglevel: str = typer.Option("info", "--loglevel", "-l", help="crit, error, warn, info, debug"),
) -> None:
    """Run only the churn learner: the lock holder learns crm.training and publishes churn
    model versions (workers run one too unless CRM_LEARNER_ENABLED=false)."""
    from streams.runtime.learner_worker import run_learner

    run_learner(get_settings(), loglevel=loglevel)


@app.command("simulate")
def simulate_command(
    customers: int = typer.Option(5000, help="number of customers"),
    days: float = typer.Option(365.0, help="history length, ending at --end"),
    end: str | None = typer.Option(
        None,
        help="when the history ends (ISO time, no offset means UTC; default: now). Fix it to "
        "get the same events on another day",
    ),
    seed: int = typer.Option(1, help="random seed (same seed and --end, same events)"),
    malformed: float = typer.Option(0.0, help="fraction of malformed messages to inject"),
    duplicates: float = typer.Option(0.0, help="fraction of events re-sent with the same id"),
    rate: float | None = typer.Option(
        None, help="events/s to Kafka (default: as fast as possible)"
    ),
    out: Path | None = typer.Option(None, help="write JSONL here instead of sending to Kafka"),
    truth: Path | None = typer.Option(None, help="also write per-customer ground truth (JSONL)"),
    anomalies: float = typer.Option(
        0.0, help="fraction of orders that start a purchase anomaly (large, burst, return spree)"
    ),
    anomaly_truth: Path | None = typer.Option(
        None, help="also write the injected anomalies and their event ids (JSONL)"
    ),
) -> None:
    """Generate a realistic, seeded customer base and event stream, to Kafka or a file."""
    from crm_score.event_files import write_jsonl
    from crm_score.produce import produce_messages
    from crm_score.simulate import SimulationConfig, simulate, write_ground_truth

    config = SimulationConfig.ending_at(
        datetime.now(UTC) if end is None else utc_option(end, "--end"),
        days=days,
        customers=customers,
        seed=seed,
        malformed_fraction=malformed,
        duplicate_fraction=duplicates,
        anomaly_fraction=anomalies,
    )
    simulation = simulate(config)
    try:
        if out is not None:
            written = write_jsonl(simulation, out)
            typer.echo(f"wrote {written} events to {out}")
        else:
            report = asyncio.run(
                produce_messages(get_settings(), simulation, rate=rate, progress=True)
            )
            typer.echo(f"sent {report.total} messages in {report.elapsed_seconds:.1f} s "
                       f"({report.rate:,.0f}/s): {report.counts}")  # fmt: skip
    except CrmScoringError as exc:
        raise _fail(exc) from None
    if truth is not None:
        typer.echo(f"wrote ground truth of {write_ground_truth(simulation.truth, truth)} customers")
    if anomaly_truth is not None:
        injected = simulation.anomaly_truth()
        anomaly_truth.write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in injected))
        typer.echo(f"wrote {len(injected)} injected purchase anomalies to {anomaly_truth}")


@app.command("produce")
def produce_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSONL or CSV events"),
    kind: str | None = typer.Option(
        None, help="topic kind for lines whose type is unknown (so they get dead-lettered)"
    ),
    rate: float | None = typer.Option(None, help="events/s (default: as fast as possible)"),
) -> None:
    """Send a file of events to the input topics (kind from each event's type)."""
    from crm_score.event_files import read_event_file
    from crm_score.produce import produce_messages

    try:
        messages = list(read_event_file(file, fallback_kind=kind))
        report = asyncio.run(produce_messages(get_settings(), messages, rate=rate, progress=True))
    except CrmScoringError as exc:
        raise _fail(exc) from None
    typer.echo(f"sent {report.total} messages in {report.elapsed_seconds:.1f} s: {report.counts}")


@app.command("profile")
def profile_command(
    customer_id: str = typer.Argument(..., help="the customer id"),
    as_of: datetime | None = typer.Option(None, help="score as of this time (default: now, UTC)"),
) -> None:
    """Print a customer's stored profile and scores as JSON."""
    from crm_score.inspect import profile_report

    moment = (as_of or datetime.now(UTC)).astimezone(UTC)
    report = asyncio.run(profile_report(get_settings(), customer_id, moment))
    if report is None:
        typer.secho(f"no profile for customer {customer_id!r}", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=1)
    typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


@app.command("demo")
def demo_command(
    customers: int = typer.Option(5000, help="simulated customers"),
    days: float = typer.Option(365.0, help="days of history"),
    seed: int = typer.Option(1, help="random seed"),
    anomalies: float = typer.Option(0.003, help="share of orders starting an injected anomaly"),
) -> None:
    """Worker + simulated shop through the real pipeline + a summary (services must be up)."""
    from crm_score.demo import DemoOptions, run_demo

    options = DemoOptions(customers=customers, days=days, seed=seed, anomaly_fraction=anomalies)
    try:
        asyncio.run(run_demo(get_settings(), options, echo=typer.echo))
    except CrmScoringError as exc:
        raise _fail(exc) from None


app.command("fit")(fit_command)


@app.command("rebuild")
def rebuild_command(
    until: datetime | None = typer.Option(
        None, help="where the replay's clock ends (ISO; default: now, UTC)"
    ),
    progress: bool = typer.Option(True, help="show a progress bar on stderr"),
) -> None:
    """Rebuild all Redis state by replaying the input topics from the start (into an empty
    key prefix; publishes nothing); prints a JSON report."""
    from crm_score.rebuild import rebuild_state

    moment = None if until is None else until.replace(tzinfo=until.tzinfo or UTC)
    try:
        report = asyncio.run(rebuild_state(get_settings(), until=moment, progress=progress))
    except CrmScoringError as exc:
        raise _fail(exc) from None
    typer.echo(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode())


@app.command("evaluate")
def evaluate_command(
    events: Path = typer.Option(
        ..., exists=True, dir_okay=False, help="JSONL or CSV event history to replay"
    ),
    fit_at: float = typer.Option(
        0.3,
        min=0.01,
        max=0.99,
        help="fit P(alive)/CLV and the RFM quintiles this far into the history's span",
    ),
    seed: int = typer.Option(0, help="random seed of the batch baseline"),
    purge: str = typer.Option(
        "horizon",
        help="drop training examples whose horizon had not ended at the first test snapshot "
        "(horizon), or only those resolved after it (resolved: biased against churn)",
    ),
    truth: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="also judge every customer's score at three cutoffs against what happened; this "
        "ground-truth file (crm-score simulate --truth) adds the latent dropout label",
    ),
    cutoff: list[str] | None = typer.Option(
        None, help="judge against the truth at this ISO time (repeat; default: three cutoffs)"
    ),
) -> None:
    """Replay an event file through the scoring code (no Kafka, no Redis); print the online
    churn model's quality next to a batch baseline on the same examples, as JSON; with --truth
    or --cutoff, also every customer's score at each cutoff against the truth."""
    from crm_score.evaluate import Purge, evaluate_history
    from crm_score.evaluate_truth import evaluate_truth

    if purge not in ("horizon", "resolved"):
        raise typer.BadParameter(f"{purge!r}: use horizon or resolved", param_hint="--purge")
    mode: Purge = "resolved" if purge == "resolved" else "horizon"
    cutoffs = None if not cutoff else [utc_option(value, "--cutoff") for value in cutoff]
    settings = get_settings()
    try:
        report = evaluate_history(events, settings, fit_at=fit_at, seed=seed, purge=mode)
        result = report.to_dict()
        if truth is not None or cutoffs is not None:
            judged = evaluate_truth(events, settings, truth_path=truth, cutoffs=cutoffs, seed=seed)
            result["truth"] = [cut.to_dict() for cut in judged]
    except CrmScoringError as exc:
        raise _fail(exc) from None
    typer.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


@app.command("score")
def score_command(
    events: Path = typer.Option(
        ..., exists=True, dir_okay=False, help="JSONL or CSV event history to replay"
    ),
    as_of: str = typer.Option(
        ..., help="score every customer as of this ISO time (no offset means UTC)"
    ),
    out: Path | None = typer.Option(None, help="write the JSON lines here (default: stdout)"),
) -> None:
    """Replay an event file through the worker's scoring (no Kafka, no Redis) up to --as-of and
    write one JSON line per customer: their score snapshot at --as-of (churn from a learner fed
    only labels resolved before it)."""
    from crm_score.score_file import score_file

    moment = utc_option(as_of, "--as-of")
    try:
        scored = score_file(events, get_settings(), moment, now=datetime.now(UTC))
    except CrmScoringError as exc:
        raise _fail(exc) from None
    data = b"".join(orjson.dumps(line) + b"\n" for line in scored.lines)
    if out is None:
        typer.echo(data.decode(), nl=False)
    else:
        out.write_bytes(data)
        typer.echo(
            f"scored {len(scored.lines)} customers as of {moment.isoformat()} "
            f"({scored.learner.n_examples} labelled examples learned) into {out}",
            err=True,
        )


@app.command("api")
def api_command(
    host: str | None = typer.Option(None, help="bind address (default CRM_WEB_HOST)"),
    port: int | None = typer.Option(None, help="port (default CRM_WEB_PORT)"),
) -> None:
    """Serve the query API, the ops page and /metrics alone (workers serve them too)."""
    from streams.api.server import run_api

    try:
        run_api(get_settings(), host, port)
    except CrmScoringError as exc:
        raise _fail(exc) from None


def main() -> None:
    """Console-script entry point."""
    app()
