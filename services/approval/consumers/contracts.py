"""The parts of `partner.events` payloads the approval service reads: the
requests for approval raised by projects (R3.1, R5.1, R5.2). A contract test
holds these reader models against the schemas the partner service publishes.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class _Reader(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ProcurementApprovalRequestedV1(_Reader):
    request_id: UUID
    title: str
    partner_id: UUID
    amount: Decimal
    currency: str
    justification: str
    requested_by: str


class DirectorDecisionRequestedV1(_Reader):
    decision_id: UUID
    kind: Literal["budget_increase", "scope_change", "contract_renewal"]
    reason: str
    new_budget: Decimal | None
    new_scope: str | None
    new_end_date: date | None
    new_value: Decimal | None


#: (producer service, event type, schema version) -> the model read here.
CONTRACTS: dict[tuple[str, str, int], type[BaseModel]] = {
    ("partner", "ProcurementApprovalRequested", 1): ProcurementApprovalRequestedV1,
    ("partner", "DirectorDecisionRequested", 1): DirectorDecisionRequestedV1,
}
