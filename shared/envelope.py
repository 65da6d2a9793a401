"""The one event contract of DESIGN.md section 3.

Every event published on Kafka is an `EventEnvelope` serialised as JSON. Its
JSON Schema lives in docs/events/envelope.v1.json and a test holds the model
against it. Consumers parse with `EventEnvelope.parse_message` and read only
the payload fields they need (tolerant reader), so producers may add optional
payload fields without breaking anyone.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

ENVELOPE_SCHEMA_VERSION = 1

# Kafka header names. Headers repeat what a router needs without parsing JSON.
H_EVENT_TYPE = "event_type"
H_EVENT_ID = "event_id"
H_SCHEMA_VERSION = "schema_version"
H_TRACEPARENT = "traceparent"
H_SOURCE = "pl_source"  # producing service
H_POSITION = "pl_position"  # notification id in the producer's event store
H_EPOCH = "pl_epoch"  # relay generation: grows when the broker lost the topic


class ActorRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    user_id: str = Field(min_length=1, max_length=200)
    role: str = Field(min_length=1, max_length=50)


class EventEnvelope(BaseModel):
    """A stored domain event as published to other systems."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        title="Partner Ledger event envelope",
        json_schema_extra={"$id": "https://partnerledger.example/events/envelope.v1.json"},
    )

    event_id: UUID = Field(description="Unique per event; consumers deduplicate on it.")
    event_type: str = Field(min_length=1, max_length=100, examples=["PartnerRegistered"])
    schema_version: int = Field(ge=1, description="Version of the payload schema.")
    aggregate_type: str = Field(min_length=1, max_length=100, examples=["Partner"])
    aggregate_id: UUID
    aggregate_version: int = Field(ge=1, description="Position of the event in its aggregate.")
    occurred_at: AwareDatetime = Field(description="When the fact happened.")
    recorded_at: AwareDatetime = Field(description="When the producing service recorded it.")
    actor: ActorRef = Field(description="Who caused it (user id and role; 'system').")
    correlation_id: UUID = Field(description="Shared by every event of one business flow.")
    causation_id: UUID | None = Field(
        default=None, description="The event that caused this one, if any."
    )
    payload: dict[str, Any] = Field(description="Event-type specific; see docs/events/.")

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def parse_message(cls, value: bytes) -> EventEnvelope:
        return cls.model_validate_json(value)


def envelope_json_schema() -> dict[str, Any]:
    return EventEnvelope.model_json_schema()
