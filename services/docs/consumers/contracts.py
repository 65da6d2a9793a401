"""The parts of `partner.events` payloads the docs service reads: the
projects (their names for R4.4, their staff for access), contracts signed
(the report schedule, R4.3; the contract's metadata, R4.1), the project
meetings whose minutes fall due (R3.2, R3.3, R4.2) and closures. A contract
test holds these reader models against the schemas the partner service
publishes.
"""

from __future__ import annotations

from datetime import date
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class _Reader(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ProjectCreatedV1(_Reader):
    title: str
    partner_id: UUID
    project_manager: str
    specialists: list[str]


class ContractSignedV1(_Reader):
    partner_id: UUID
    contract_number: str
    signed_on: date
    starts_on: date
    ends_on: date


class ContractRenewedV1(_Reader):
    new_end_date: date


class ProjectClosedV1(_Reader):
    outcome: str
    reason: str


class KickoffHeldV1(_Reader):
    held_on: date


class ReviewHeldV1(_Reader):
    quarter: str
    held_on: date


class FinalAcceptanceRecordedV1(_Reader):
    accepted_on: date
    third_party: str


#: (producer service, event type, schema version) -> the model read here.
CONTRACTS: dict[tuple[str, str, int], type[BaseModel]] = {
    ("partner", "ProjectCreated", 1): ProjectCreatedV1,
    ("partner", "ContractSigned", 1): ContractSignedV1,
    ("partner", "ContractRenewed", 1): ContractRenewedV1,
    ("partner", "ProjectClosed", 1): ProjectClosedV1,
    ("partner", "KickoffHeld", 1): KickoffHeldV1,
    ("partner", "ReviewHeld", 1): ReviewHeldV1,
    ("partner", "FinalAcceptanceRecorded", 1): FinalAcceptanceRecordedV1,
}
