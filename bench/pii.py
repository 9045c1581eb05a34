"""What encrypting contact details at rest adds to a round, per event (no I/O).

Runs the round's contact write (:meth:`streams.state.query_index.RoundIndexer.commands`, which
digests every event's contact and seals it only when it changed) over simulated valid events
in rounds of ``--round`` events, keeping each customer's index between rounds as the store
does, once plain and once encrypting, alternating in one process. Prints JSON with the medians
over ``--runs`` of the CPU microseconds per event (process time), their difference, what one
seal and one open cost, how many events carry contact details and how many writes the stream
made, and the load average.

    python -m bench.pii --customers 2000 --runs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from crm_score.simulate import SimulationConfig, simulate
from schemas import Event, EventParser
from scorers.profile import Profile
from streams.round.messages import Applied
from streams.state.keys import Layout
from streams.state.pii import PLAIN, PiiCipher
from streams.state.query_index import CustomerIndex, RoundIndexer


class _Record:
    topic, partition, offset, key, value, timestamp = "crm.purchase", 0, 0, None, b"", None


def _events(customers: int, days: int) -> list[Event]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    config = SimulationConfig.ending_at(now, days=days, customers=customers, seed=1)
    parser = EventParser(max_future_skew=timedelta(days=1))
    messages = sorted((m for m in simulate(config) if m.fault is None), key=lambda m: m.event_time)
    return [parser.parse(m.value, m.kind, now) for m in messages]


def _walk(indexer: RoundIndexer, rounds: list[list[Applied]]) -> tuple[float, int]:
    """CPU seconds of the whole stream's contact writes, and how many were written."""
    stored: dict[str, CustomerIndex] = {}
    writes = 0
    start = time.process_time()
    for applied in rounds:
        changed, commands = indexer.commands(stored, applied, [])
        stored.update(changed)
        writes += sum(1 for c in commands if c[0] == "SET")
    return time.process_time() - start, writes


def main(args: argparse.Namespace) -> dict[str, Any]:
    events = _events(args.customers, args.days)
    applied = [Applied(_Record(), e, Profile(), e.event_time.timestamp(), False) for e in events]
    rounds = [applied[i : i + args.round] for i in range(0, len(applied), args.round)]
    layout = Layout("bench")
    cipher = PiiCipher([("k1", os.urandom(32))])
    indexers = {"plain": RoundIndexer(layout, PLAIN), "encrypted": RoundIndexer(layout, cipher)}
    times: dict[str, list[float]] = {name: [] for name in indexers}
    writes: dict[str, int] = {}
    for _ in range(args.runs):
        for name, indexer in indexers.items():
            seconds, writes[name] = _walk(indexer, rounds)
            times[name].append(seconds / len(applied) * 1e6)
    plain = b'{"name":"Ada Lovelace","email":"ada@example.com","phone":"+1-555-0100"}'
    n = 20_000
    start = time.process_time()
    sealed = [cipher.seal(f"c-{i}", plain) for i in range(n)]
    seal_us = (time.process_time() - start) / n * 1e6
    start = time.process_time()
    for i, value in enumerate(sealed):
        cipher.open(f"c-{i}", value)
    open_us = (time.process_time() - start) / n * 1e6
    medians = {name: statistics.median(v) for name, v in times.items()}
    return {
        "events": len(applied),
        "events_with_contact": sum(1 for e in events if e.contact is not None),
        "contact_writes": writes,
        "runs": args.runs,
        "plain_us_per_event": round(medians["plain"], 3),
        "encrypted_us_per_event": round(medians["encrypted"], 3),
        "added_us_per_event": round(medians["encrypted"] - medians["plain"], 3),
        "seal_us": round(seal_us, 2),
        "open_us": round(open_us, 2),
        "load_average": os.getloadavg(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--round", type=int, default=2_000, help="events per round")
    parser.add_argument("--runs", type=int, default=5)
    print(orjson.dumps(main(parser.parse_args()), option=orjson.OPT_INDENT_2).decode())
