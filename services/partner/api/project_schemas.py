"""Request and response bodies of /v1/projects (other enterprise systems call
it: keep field names stable)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from services.partner.domain.project import (
    IncidentCategory,
    Milestone,
    Outcome,
    Project,
    Responsibility,
    RiskRating,
    Sanction,
    SanctionLevel,
    Severity,
)
from shared.text import Label, LongText, Name, PlainText, Reason, UserId

Money = Annotated[Decimal, Field(gt=0, max_digits=15, decimal_places=2)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. CNY")]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
TextList = Annotated[list[Annotated[PlainText, Field(max_length=500)]], Field(max_length=50)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MilestoneIn(_In):
    milestone_id: Identifier = Field(examples=["M1"])
    name: Name
    deliverable: Name
    due_on: date


class CreateProject(_In):
    """Plan an engagement with a qualified partner (R2.1, R2.2)."""

    partner_id: UUID
    title: Name
    scope: LongText
    budget: Money
    currency: Currency = "CNY"
    project_manager: UserId = Field(description="The responsible project manager (R2.2)")
    specialists: Annotated[list[UserId], Field(max_length=50)] = Field(default_factory=list)
    milestones: Annotated[list[MilestoneIn], Field(min_length=1, max_length=200)]

    @field_validator("milestones")
    @classmethod
    def _unique_ids(cls, milestones: list[MilestoneIn]) -> list[MilestoneIn]:
        ids = [m.milestone_id for m in milestones]
        if len(set(ids)) != len(ids):
            raise ValueError("milestone_id values must be unique")
        return milestones

    def milestone_values(self) -> list[Milestone]:
        return [
            Milestone(
                milestone_id=m.milestone_id, name=m.name, deliverable=m.deliverable, due_on=m.due_on
            )
            for m in self.milestones
        ]


class RequestApproval(_In):
    """Ask for the three-step procurement approval (R3.1)."""

    justification: LongText


class SignContract(_In):
    """The contract, signed after procurement approval (R3.1); names the third
    party that takes part in final acceptance (R3.4)."""

    contract_number: Label
    value: Money
    currency: Currency = "CNY"
    signed_on: date
    starts_on: date
    ends_on: date
    sla_terms: TextList = Field(default_factory=list)
    third_party_acceptor: Name = Field(description="Organisation taking part in acceptance (R3.4)")

    @model_validator(mode="after")
    def _dates(self) -> SignContract:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        return self


class ResponsibilityIn(_In):
    person: UserId
    duty: Name


class HoldKickoff(_In):
    """The kickoff meeting fixes goals, timetable and responsibilities (R3.2)."""

    held_on: date
    goals: Annotated[TextList, Field(min_length=1)]
    timetable: LongText
    responsibilities: Annotated[list[ResponsibilityIn], Field(min_length=1, max_length=100)]

    def responsibility_values(self) -> list[Responsibility]:
        return [Responsibility(person=r.person, duty=r.duty) for r in self.responsibilities]


class Deliver(_In):
    delivered_on: date
    note: Reason = "delivered"


class Acceptance(_In):
    """Accept a delivered milestone, or reject it with reasons."""

    accepted: bool
    reasons: TextList = Field(default_factory=list)

    @model_validator(mode="after")
    def _reasons_when_rejected(self) -> Acceptance:
        if not self.accepted and not self.reasons:
            raise ValueError("a rejection gives its reasons")
        return self


class AssignTask(_In):
    task_id: Identifier
    title: Name
    specialist: UserId
    due_on: date


class HoldReview(_In):
    """The quarterly mid-term review: progress and risk (R3.3)."""

    held_on: date
    progress: LongText
    risk_rating: RiskRating
    issues: TextList = Field(default_factory=list)


class ReceiveComplaint(_In):
    source: Name = Field(description="The business unit or customer complaining")
    channel: Literal["phone", "email", "meeting", "ticket", "letter"] | None = Field(
        default=None, description="How the complaint came in (omitted: unspecified)"
    )
    severity: Severity
    summary: LongText
    received_at: AwareDatetime | None = Field(default=None, description="Default: now")


class RespondToComplaint(_In):
    response: LongText


class ResolveComplaint(_In):
    resolution: LongText


class ReportIncident(_In):
    """An incident (R6.4): a data leak must be reported within the policy's
    hours of its detection and opens an internal investigation."""

    category: IncidentCategory
    severity: Severity
    occurred_at: AwareDatetime
    detected_at: AwareDatetime
    description: LongText

    @model_validator(mode="after")
    def _order(self) -> ReportIncident:
        if self.detected_at < self.occurred_at:
            raise ValueError("detected_at is before occurred_at")
        return self


class SanctionIn(_In):
    subject: UserId = Field(description="A staff user id, or the partner id")
    subject_kind: Literal["staff", "partner"]
    level: SanctionLevel


class ConcludeInvestigation(_In):
    findings: LongText
    sanctions: Annotated[list[SanctionIn], Field(max_length=50)] = Field(default_factory=list)

    def sanction_values(self) -> list[Sanction]:
        return [
            Sanction(subject=s.subject, subject_kind=s.subject_kind, level=s.level)
            for s in self.sanctions
        ]


class RecordCost(_In):
    amount: Money
    category: Label
    incurred_on: date
    note: Reason = ""

    @field_validator("note", mode="before")
    @classmethod
    def _empty_note(cls, value: object) -> object:
        return value or "-"


class RecordSatisfaction(_In):
    score: Annotated[int, Field(ge=1, le=5)]
    respondent: Name
    comment: Reason = "-"


class ChangeBudget(_In):
    """R5.2: an increase above the policy's threshold becomes a request to the Director."""

    new_budget: Money
    reason: Reason


class ChangeScope(_In):
    new_scope: LongText
    reason: Reason


class RequestRenewal(_In):
    """R5.1: contract renewal is the Director's decision."""

    new_end_date: date
    new_value: Money | None = None
    reason: Reason


class FinalAcceptance(_In):
    """R3.4: refused unless the third party named in the contract signs off."""

    accepted_on: date
    third_party: Name
    signatory: Name
    report_ref: Label


class CloseProject(_In):
    outcome: Outcome
    reason: Reason


# -- views --------------------------------------------------------------------------------


class MilestoneView(BaseModel):
    milestone_id: str
    name: str
    deliverable: str
    due_on: date
    status: str
    delivered_on: date | None
    on_time: bool | None


class TaskView(BaseModel):
    task_id: str
    title: str
    specialist: str
    due_on: date
    status: str


class ContractView(BaseModel):
    contract_number: str
    signed_on: date
    ends_on: date
    third_party_acceptor: str
    kickoff_due_at: datetime


class DecisionView(BaseModel):
    decision_id: UUID
    kind: str
    reason: str


class ProjectView(BaseModel):
    id: UUID
    title: str
    scope: str
    status: str
    partner_id: UUID
    project_manager: str
    specialists: list[str]
    budget: Decimal
    approved_budget: Decimal | None
    currency: str
    costs_total: Decimal
    approval_request_id: UUID | None
    contract: ContractView | None
    kickoff_held_on: date | None
    milestones: list[MilestoneView]
    tasks: list[TaskView]
    reviewed_quarters: list[str]
    complaints: dict[str, str] = Field(description="complaint id -> received/responded/resolved")
    incidents: list[str]
    investigations: dict[str, str] = Field(description="investigation id -> open/concluded")
    pending_decisions: list[DecisionView]
    outcome: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    warnings: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, project: Project) -> ProjectView:
        contract = None
        if project.contract_number is not None:
            assert project.signed_on and project.ends_on and project.kickoff_due_at
            contract = ContractView(
                contract_number=project.contract_number,
                signed_on=project.signed_on,
                ends_on=project.ends_on,
                third_party_acceptor=project.third_party_acceptor or "",
                kickoff_due_at=project.kickoff_due_at,
            )
        return cls(
            id=project.id,
            title=project.title,
            scope=project.scope,
            status=project.status,
            partner_id=project.partner_id,
            project_manager=project.project_manager,
            specialists=project.specialists,
            budget=project.budget,
            approved_budget=project.approved_budget,
            currency=project.currency,
            costs_total=project.costs_total,
            approval_request_id=project.approval_request_id,
            contract=contract,
            kickoff_held_on=project.kickoff_held_on,
            milestones=[
                MilestoneView(
                    milestone_id=m["milestone_id"],
                    name=m["name"],
                    deliverable=m["deliverable"],
                    due_on=m["due_on"],
                    status=project.milestone_states[m["milestone_id"]]["status"],
                    delivered_on=project.milestone_states[m["milestone_id"]]["delivered_on"],
                    on_time=project.milestone_states[m["milestone_id"]]["on_time"],
                )
                for m in project.milestones.values()
            ],
            tasks=[
                TaskView(
                    task_id=task_id,
                    title=t["title"],
                    specialist=t["specialist"],
                    due_on=t["due_on"],
                    status=t["status"],
                )
                for task_id, t in project.tasks.items()
            ],
            reviewed_quarters=sorted(project.reviewed_quarters),
            complaints=dict(project.complaints),
            incidents=sorted(project.incidents),
            investigations=dict(project.investigations),
            pending_decisions=[
                DecisionView(decision_id=k, kind=v["kind"], reason=v["reason"])
                for k, v in project.pending_decisions.items()
            ],
            outcome=project.outcome,
            version=project.version,
            created_at=project.created_on,
            updated_at=project.modified_on,
        )


class ProjectRow(BaseModel):
    id: UUID
    title: str
    partner_id: UUID
    project_manager: str
    status: str
    budget: Decimal
    currency: str
    created_at: datetime
    contract_signed_on: date | None
    outcome: str | None


class ProjectPage(BaseModel):
    items: list[ProjectRow]
    next_cursor: str | None
