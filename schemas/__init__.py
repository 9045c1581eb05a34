"""Versioned message schemas for every crm-scoring topic, and the parser for input events.

Input events (``crm.purchase``, ``crm.service``, ``crm.marketing``) are :class:`PurchaseEvent`,
:class:`ServiceEvent` and :class:`MarketingEvent`; :class:`EventParser` turns raw bytes into one
of them or raises :class:`crm_core.errors.EventRejected` with a :class:`DeadLetterReason`.
Outputs are :class:`DeadLetter`, :class:`ScoreSnapshot` and :class:`Alert`. JSON Schema files
for all of them are exported to ``schemas/json/`` by ``python -m schemas.export``.
"""

from schemas._envelope import Contact, EventEnvelope, EventKind
from schemas.currencies import ISO_4217_CODES, MINOR_UNITS, is_currency_code, minor_unit_exponent
from schemas.events import (
    EVENT_MODELS,
    EVENT_TYPES,
    Event,
    LineItem,
    MarketingEvent,
    MarketingPayload,
    MarketingType,
    PurchaseEvent,
    PurchasePayload,
    PurchaseType,
    ServiceEvent,
    ServicePayload,
    ServiceType,
    event_to_json_bytes,
)
from schemas.examples import REMOVE, example_event, example_event_dict, example_json
from schemas.outputs import (
    DEAD_LETTER_MAX_BYTES,
    Alert,
    AlertType,
    CustomerErased,
    DeadLetter,
    OutputModel,
    ScoreSnapshot,
    Severity,
    TrainingExample,
    dead_letter_key,
)
from schemas.parse import EventParser
from schemas.reasons import DeadLetterReason

__all__ = [
    "DEAD_LETTER_MAX_BYTES",
    "EVENT_MODELS",
    "EVENT_TYPES",
    "ISO_4217_CODES",
    "MINOR_UNITS",
    "REMOVE",
    "Alert",
    "AlertType",
    "Contact",
    "CustomerErased",
    "DeadLetter",
    "DeadLetterReason",
    "Event",
    "EventEnvelope",
    "EventKind",
    "EventParser",
    "LineItem",
    "MarketingEvent",
    "MarketingPayload",
    "MarketingType",
    "OutputModel",
    "PurchaseEvent",
    "PurchasePayload",
    "PurchaseType",
    "ScoreSnapshot",
    "ServiceEvent",
    "ServicePayload",
    "ServiceType",
    "Severity",
    "TrainingExample",
    "dead_letter_key",
    "event_to_json_bytes",
    "example_event",
    "example_event_dict",
    "example_json",
    "is_currency_code",
    "minor_unit_exponent",
]
