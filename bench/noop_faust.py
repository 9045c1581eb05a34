"""A Faust agent that does nothing per event: the framework's own ceiling on this machine.

Run by bench/pipeline.py as ``python -m bench.noop_faust worker``; topics and group from CRM_*.
Default Faust settings except the ones crm-scoring must set anyway (partitions, bind address).
"""

from __future__ import annotations

import faust

from crm_core.settings import get_settings

settings = get_settings()
app = faust.App(
    f"{settings.app_id}-noop",
    broker=f"kafka://{settings.kafka_bootstrap}",
    topic_partitions=settings.partitions,
    web_bind="127.0.0.1",
    web_enabled=False,
    store="memory://",
    autodiscover=False,
)
topics = app.topic(*settings.input_topics, value_serializer="raw", key_serializer="raw")


@app.agent(topics)
async def noop(stream: faust.StreamT[bytes]) -> None:
    """Consume and acknowledge; nothing else."""
    async for _ in stream:
        pass


if __name__ == "__main__":
    app.main()
