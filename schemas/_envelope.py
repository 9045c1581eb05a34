"""The envelope every input event shares, whatever its kind.

Unknown envelope fields are ignored, so producers can add fields without breaking consumers;
payloads (see :mod:`schemas.events`) are validated strictly instead.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas._types import CustomerId, Identifier, UtcDatetime

__all__ = ["Contact", "EventEnvelope", "EventKind"]

#: The three input streams; each has its own topic and event model.
EventKind = Literal["purchase", "service", "marketing"]


class Contact(BaseModel):
    """How to reach the customer, as the source system knows it. Every field is PII."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    address: str | None = None


class EventEnvelope(BaseModel):
    """Fields common to every input event (schema version 1).

    Concrete events add a ``type`` (the discriminator) and a kind-specific ``payload``.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    #: Which input stream (and topic) this event model belongs to.
    kind: ClassVar[EventKind]

    schema_version: Literal[1] = Field(description="Version of this envelope; only 1 exists.")

    @field_validator("schema_version", mode="before")
    @classmethod
    def _integer_version(cls, value: object) -> object:
        # Literal[1] also matches True and 1.0 (they compare equal to 1); only the integer is 1.
        if type(value) is not int:
            raise ValueError("schema_version must be the integer 1")
        return value

    event_id: Identifier = Field(description="Unique id given by the producer; used for dedup.")
    customer_id: CustomerId = Field(description="The customer the event is about.")
    event_time: UtcDatetime = Field(
        description="When it happened: RFC 3339 with an offset; normalised to UTC."
    )
    source: str = Field(
        min_length=1, max_length=64, description="Producing system (shop, helpdesk, esp...)."
    )
    department: str | None = Field(
        default=None, description="Owning department as a path, e.g. 'sales/emea'."
    )
    owner: str | None = Field(default=None, description="Identity of the responsible agent.")
    contact: Contact | None = Field(default=None, description="Contact details (PII).")
