"""The parts of `approval.events` payloads the partner service reads.

The approval service (its own issue) publishes these; their schemas were
agreed first and are kept in docs/events/approval/ (marked `x-status:
agreed` until the approval service produces them). A contract test holds
these reader models against them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class _Reader(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ProcurementApprovedV1(_Reader):
    request_id: UUID
    project_id: UUID | None = Field(description="null for requests not raised by a project")
    amount: Decimal
    approved_at: datetime


class ProcurementRejectedV1(_Reader):
    request_id: UUID
    project_id: UUID | None
    step: str
    reason: str
    rejected_at: datetime


class DirectorDecisionApprovedV1(_Reader):
    decision_id: UUID
    project_id: UUID | None
    kind: str
    decided_at: datetime


class DirectorDecisionRejectedV1(_Reader):
    decision_id: UUID
    project_id: UUID | None
    kind: str
    reason: str
    decided_at: datetime


#: (producer service, event type, schema version) -> the model read here.
CONTRACTS: dict[tuple[str, str, int], type[BaseModel]] = {
    ("approval", "ProcurementApproved", 1): ProcurementApprovedV1,
    ("approval", "ProcurementRejected", 1): ProcurementRejectedV1,
    ("approval", "DirectorDecisionApproved", 1): DirectorDecisionApprovedV1,
    ("approval", "DirectorDecisionRejected", 1): DirectorDecisionRejectedV1,
}
