"""The parts of other services' event payloads this service reads.

Tolerant readers: only the fields used, extra fields ignored, so producers can
add optional fields freely. A contract test holds each model against the
producer's published JSON Schema in docs/events/.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PartnerRegisteredV1(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(min_length=1)
    unified_social_credit_code: str = Field(min_length=18, max_length=18)


class PartnerQualifiedV1(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: str


class PartnerActivatedV1(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: str


class PartnerStatusChangedV1(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    to_status: str


#: (producer service, event type, schema version) -> the model read here.
CONTRACTS: dict[tuple[str, str, int], type[BaseModel]] = {
    ("partner", "PartnerRegistered", 1): PartnerRegisteredV1,
    ("partner", "PartnerQualified", 1): PartnerQualifiedV1,
    ("partner", "PartnerActivated", 1): PartnerActivatedV1,
    ("partner", "PartnerStatusChanged", 1): PartnerStatusChangedV1,
}
