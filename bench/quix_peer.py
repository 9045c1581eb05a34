"""The peer a Python user would pick instead: a quix-streams app with per-customer state.

Run by bench/pipeline.py as ``python -m bench.quix_peer GROUP TOTAL STATE_DIR``; topics and
broker from CRM_*. It reads the three input topics from the earliest offset as one stream
(``StreamingDataFrame.concat``) and, on every event, updates the customer's state in its own
RocksDB store (the message key is the customer id): order count, amount sum, first and last
purchase time, ticket and message counts. Changelog topics are off (the state is local, in
``STATE_DIR``); everything else is quix-streams' defaults (confluent-kafka, at-least-once).

It stops once it has processed TOTAL events and prints one JSON line: the events and the
seconds from the first event processed to the last (group join and the state store's opening
are left out, as the other rates of the bench leave them out).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson
from quixstreams import Application, State

from crm_core.settings import get_settings

__all__ = ["main", "update_customer"]

_EMPTY: dict[str, Any] = {
    "orders": 0,
    "amount_minor": 0,
    "first_purchase": None,
    "last_purchase": None,
    "tickets": 0,
    "messages": 0,
}


def update_customer(value: dict[str, Any], state: State[str, Any]) -> None:
    """Fold one event into its customer's state."""
    customer = dict(state.get("customer", _EMPTY))
    kind = str(value.get("type", ""))
    if kind == "order_placed":
        at = value["event_time"]
        customer["orders"] += 1
        customer["amount_minor"] += int(value["payload"]["amount_minor"])
        if customer["first_purchase"] is None or at < customer["first_purchase"]:
            customer["first_purchase"] = at
        if customer["last_purchase"] is None or at > customer["last_purchase"]:
            customer["last_purchase"] = at
    elif kind.startswith("ticket_"):
        customer["tickets"] += 1
    elif kind.startswith("message_"):
        customer["messages"] += 1
    state.set("customer", customer)


def main(group: str, total: int, state_dir: str) -> dict[str, float]:
    """Process ``total`` events; their count and the seconds they took."""
    settings = get_settings()
    app = Application(
        broker_address=settings.kafka_bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        use_changelog_topics=False,
        loglevel="WARNING",
    )
    frames = [app.dataframe(app.topic(name)) for name in settings.input_topics]
    stream = frames[0]
    for other in frames[1:]:
        stream = stream.concat(other)
    seen = 0
    first = last = 0.0

    def count(value: dict[str, Any]) -> None:
        nonlocal seen, first, last
        seen += 1
        if seen == 1:
            first = time.monotonic()
        if seen >= total:
            last = time.monotonic()
            app.stop()

    stream.update(update_customer, stateful=True)
    stream.update(count)
    app.run()
    seconds = last - first
    return {"events": seen, "seconds": seconds, "events_per_second": (seen - 1) / seconds}


if __name__ == "__main__":
    group_id, events, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    print(orjson.dumps(main(group_id, events, directory)).decode())
