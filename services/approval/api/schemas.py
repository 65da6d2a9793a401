"""Request and response bodies of /v1/approvals and /v1/emergencies (other
enterprise systems call them: keep field names stable)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.approval.domain.delegation import Delegations, Grant
from services.approval.domain.emergency import EmergencyAction, EmergencyState
from services.approval.domain.request import (
    ApprovalRequest,
    Decision,
    DecisionKind,
    Kind,
    State,
    Step,
)
from shared.text import LongText, Moment, Name, PlainText, Reason, UserId

Money = Annotated[Decimal, Field(gt=0, max_digits=15, decimal_places=2)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. CNY")]
ProcurementStepName = Literal["department_head", "finance", "ceo"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests ---------------------------------------------------------------------------------


class OpenProcurement(_In):
    """A three-step procurement approval raised by another enterprise system (R3.1)."""

    kind: Literal["procurement"] = "procurement"
    title: Name
    amount: Money
    currency: Currency = "CNY"
    justification: LongText
    partner_id: UUID | None = None
    project_id: UUID | None = Field(
        default=None, description="Only for projects of the partner service (usually null here)"
    )
    approvers: dict[ProcurementStepName, UserId] = Field(
        default_factory=dict,
        description=(
            "Director only: a named approver per step (R3.1); otherwise anyone holding"
            " the step's role signs"
        ),
    )


class OpenDecision(_In):
    """A major decision for the Director (R5.1 budget and renewal, R5.2 PM major decisions)."""

    kind: DecisionKind
    title: Name
    justification: LongText
    project_id: UUID | None = None
    current_budget: Money | None = Field(
        default=None, description="budget_increase: the approved budget now"
    )
    new_budget: Money | None = None
    new_scope: LongText | None = None
    new_end_date: date | None = None
    new_value: Money | None = None
    currency: Currency = "CNY"

    @model_validator(mode="after")
    def _fields_of_kind(self) -> OpenDecision:
        needed: dict[str, tuple[str, ...]] = {
            "budget_increase": ("current_budget", "new_budget"),
            "scope_change": ("new_scope",),
            "contract_renewal": ("new_end_date",),
        }
        missing = [f for f in needed[self.kind] if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.kind} decision needs {', '.join(missing)}")
        return self


class Decide(_In):
    """Sign, reject or return the open step (R3.1); reject and return need the reason."""

    decision: Decision
    reason: Reason | None = Field(
        default=None, description="Required to reject or return; a comment when approving"
    )
    step: Step | None = Field(
        default=None, description="The step you mean to decide; refused if it is not the open one"
    )
    on_behalf_of: UserId | None = Field(
        default=None, description="The approver who delegated their signature to you"
    )
    expected_version: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="The request version you decided on (409 if it moved on)"
    )

    @model_validator(mode="after")
    def _reason_when_needed(self) -> Decide:
        if self.decision != "approve" and not self.reason:
            raise ValueError(f"to {self.decision} a step, give the reason")
        return self


class Resubmit(_In):
    response: LongText = Field(description="The information the approver asked for")


class StepView(BaseModel):
    step: Step
    round: int
    assignee_role: str
    assignee: str | None
    opened_at: datetime
    due_at: datetime
    overdue: bool
    escalated_to: str | None
    decision: Literal["approved", "rejected", "returned"] | None
    decided_by: str | None
    delegate_of: str | None
    decided_at: datetime | None
    reason: str
    hours_open: float | None = Field(description="Opened to decided (cycle time of the level)")


class ApprovalView(BaseModel):
    id: UUID
    kind: Kind
    state: State
    title: str
    project_id: UUID | None
    partner_id: UUID | None
    amount: Decimal | None
    currency: str
    justification: str
    requested_by: str
    source: str
    steps: list[Step]
    open_step: Step | None
    history: list[StepView]
    responses: list[str]
    new_budget: Decimal | None
    new_scope: str | None
    new_end_date: date | None
    new_value: Decimal | None
    closed_at: datetime | None
    version: int

    @classmethod
    def of(cls, r: ApprovalRequest) -> ApprovalView:
        current = r.current
        return cls(
            id=r.id,
            kind=r.kind,
            state=r.state,
            title=r.title,
            project_id=r.project_id,
            partner_id=r.partner_id,
            amount=r.amount,
            currency=r.currency,
            justification=r.justification,
            requested_by=r.requested_by,
            source=r.source,
            steps=r.steps,
            open_step=current["step"] if current else None,
            history=[
                StepView(
                    **rec,
                    hours_open=(
                        round((rec["decided_at"] - rec["opened_at"]).total_seconds() / 3600, 3)
                        if rec["decided_at"]
                        else None
                    ),
                )
                for rec in r.records
            ],
            responses=r.responses,
            new_budget=r.new_budget,
            new_scope=r.new_scope,
            new_end_date=r.new_end_date,
            new_value=r.new_value,
            closed_at=r.closed_at,
            version=r.version,
        )


class ApprovalRow(BaseModel):
    id: UUID
    kind: Kind
    state: State
    title: str
    project_id: UUID | None
    amount: Decimal | None
    currency: str
    requested_by: str
    step: Step | None
    round: int | None
    assignee_role: str | None
    assignee: str | None
    escalated_to: str | None
    due_at: datetime | None
    overdue: bool
    opened_at: datetime
    closed_at: datetime | None


class ApprovalPage(BaseModel):
    items: list[ApprovalRow]
    next_cursor: str | None


class InboxItem(ApprovalRow):
    why: Literal["assigned", "escalated", "delegated", "returned_to_you"]
    on_behalf_of: str | None = None


class Inbox(BaseModel):
    items: list[InboxItem]


# -- delegations --------------------------------------------------------------------------------


class Delegate(_In):
    """Hand your signature to a colleague with the same role while you are away (R3.1)."""

    delegate: UserId
    starts_at: Moment
    ends_at: Moment
    reason: Reason


class DelegationView(BaseModel):
    grant_id: UUID
    delegator: str
    delegate: str
    role: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    revoked_at: datetime | None

    @classmethod
    def of(cls, book: Delegations, grant: Grant) -> DelegationView:
        return cls(delegator=book.delegator, **grant)


class DelegationsView(BaseModel):
    delegator: str
    delegations: list[DelegationView]
    version: int

    @classmethod
    def of(cls, book: Delegations) -> DelegationsView:
        return cls(
            delegator=book.delegator,
            delegations=[DelegationView.of(book, g) for g in book.grants.values()],
            version=book.version,
        )


class DelegationList(BaseModel):
    given: list[DelegationView]
    received: list[DelegationView]


# -- emergency actions ---------------------------------------------------------------------------


class RecordEmergency(_In):
    """An emergency action the PM took first (R5.3)."""

    project_id: UUID | None = None
    what_happened: LongText
    action_taken: LongText
    resources_changed: Annotated[
        list[Annotated[PlainText, Field(max_length=500)]], Field(max_length=50)
    ] = Field(default_factory=list)
    acted_at: Moment


class Explain(_In):
    explanation: LongText


class Ratify(_In):
    ratify: bool
    reason: Reason | None = Field(default=None, description="Required when not ratified")

    @model_validator(mode="after")
    def _reason_for_rejection(self) -> Ratify:
        if not self.ratify and not self.reason:
            raise ValueError("a rejected emergency action needs the reason")
        return self


class EmergencyView(BaseModel):
    id: UUID
    project_id: UUID | None
    state: EmergencyState
    what_happened: str
    action_taken: str
    resources_changed: list[str]
    acted_at: datetime
    recorded_by: str
    explanation_due_at: datetime
    explanation: str | None
    explained_at: datetime | None
    explanation_overdue: bool
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    version: int

    @classmethod
    def of(cls, a: EmergencyAction) -> EmergencyView:
        return cls(
            id=a.id,
            project_id=a.project_id,
            state=a.state,
            what_happened=a.what_happened,
            action_taken=a.action_taken,
            resources_changed=a.resources_changed,
            acted_at=a.acted_at,
            recorded_by=a.recorded_by,
            explanation_due_at=a.explanation_due_at,
            explanation=a.explanation,
            explained_at=a.explained_at,
            explanation_overdue=a.explanation_overdue,
            decided_by=a.decided_by,
            decided_at=a.decided_at,
            decision_reason=a.decision_reason,
            version=a.version,
        )


class EmergencyRow(BaseModel):
    id: UUID
    project_id: UUID | None
    recorded_by: str
    state: EmergencyState
    acted_at: datetime
    explanation_due_at: datetime
    explained_at: datetime | None
    overdue: bool
    recorded_at: datetime


class EmergencyPage(BaseModel):
    items: list[EmergencyRow]
    next_cursor: str | None
