"""The Kafka loop: consume the input topics, validate (records.py), release events in event-time
order (clock.py), run each round, publish its outputs and commit behind them (kafka_io.py),
hand partitions over between workers (handover.py); plus the topics, the consumer lag and the
pipeline's metrics.
"""

from streams.ingest.clock import EventClock
from streams.ingest.records import PipelineProcessor
from streams.ingest.service import IngestService

__all__ = ["EventClock", "IngestService", "PipelineProcessor"]
