"""The Project aggregate: one outsourcing engagement, from plan to closure.

    planned --request procurement approval--> awaiting_approval
    awaiting_approval --ProcurementApproved--> approved
    awaiting_approval --ProcurementRejected--> procurement_rejected
    procurement_rejected --request again--> awaiting_approval
    approved --contract signed--> contracted        (R3.1: only after approval)
    contracted --kickoff held--> in_progress        (R3.2: before work starts)
    in_progress --final acceptance with the third party--> accepted   (R3.4)
    accepted --close completed--> closed
    any open status --close failed / terminated--> closed             (R1.2)

Each step is a method that guards its rule and raises `RuleViolation` naming
the requirement; the policy's numbers (deadlines, thresholds) are computed by
the application and handed in as values, so the domain stays free of I/O.
Methods that record a missed deadline are idempotent: they return the id of
the Overdue event recorded for that deadline, recorded once.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, Literal

from typing_extensions import TypedDict

from shared.domain import LedgerAggregate, RuleViolation

ProjectStatus = Literal[
    "planned",
    "awaiting_approval",
    "approved",
    "procurement_rejected",
    "contracted",
    "in_progress",
    "accepted",
    "closed",
]
OPEN_AFTER_CONTRACT: Final = frozenset({"contracted", "in_progress", "accepted"})
Outcome = Literal["completed", "failed", "terminated"]
RiskRating = Literal["low", "medium", "high", "critical"]
Severity = Literal["low", "medium", "high", "critical"]
#: How a complaint came in; `unspecified` only for complaints of schema v1.
ComplaintChannel = Literal["phone", "email", "meeting", "ticket", "letter", "unspecified"]
IncidentCategory = Literal["availability", "security", "data_leak", "quality", "other"]
SanctionLevel = Literal["warning", "serious_warning", "demotion"]
DecisionKind = Literal["budget_increase", "scope_change", "contract_renewal"]


class Milestone(TypedDict):
    milestone_id: str
    name: str
    deliverable: str
    due_on: date


class Responsibility(TypedDict):
    person: str
    duty: str


class Sanction(TypedDict):
    subject: str  # a staff user id, or the partner id
    subject_kind: Literal["staff", "partner"]
    level: SanctionLevel


class MilestoneState(TypedDict):
    status: Literal["planned", "delivered", "accepted", "rejected"]
    delivered_on: date | None
    on_time: bool | None


class TaskState(TypedDict):
    title: str
    specialist: str
    due_on: date
    status: Literal["assigned", "acknowledged", "completed"]


class Project(LedgerAggregate):
    AGGREGATE_TYPE = "Project"

    # -- events ------------------------------------------------------------------------

    class Created(LedgerAggregate.Created):
        """A project manager planned an engagement with a qualified partner."""

        EVENT_TYPE = "ProjectCreated"
        title: str
        scope: str
        budget: Decimal
        currency: str
        partner_id: uuid.UUID
        project_manager: str
        specialists: list[str]
        milestones: list[Milestone]

    class ProcurementApprovalRequested(LedgerAggregate.Event):
        """The three-step procurement approval was requested (R3.1)."""

        EVENT_TYPE = "ProcurementApprovalRequested"
        request_id: uuid.UUID
        title: str
        partner_id: uuid.UUID
        amount: Decimal
        currency: str
        justification: str
        requested_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "awaiting_approval"
            aggregate.approval_request_id = self.request_id

    class ProcurementApprovalGranted(LedgerAggregate.Event):
        """The approval service reported the procurement approved (R3.1)."""

        EVENT_TYPE = "ProcurementApprovalGranted"
        request_id: uuid.UUID
        approved_at: datetime
        approved_amount: Decimal

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "approved"
            aggregate.approved_budget = self.approved_amount

    class ProcurementApprovalDenied(LedgerAggregate.Event):
        """The approval service reported the procurement rejected (R3.1)."""

        EVENT_TYPE = "ProcurementApprovalDenied"
        request_id: uuid.UUID
        step: str
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "procurement_rejected"

    class ContractSigned(LedgerAggregate.Event):
        """The contract was signed; the kickoff clock starts (R3.1, R3.2)."""

        EVENT_TYPE = "ContractSigned"
        partner_id: uuid.UUID
        contract_number: str
        value: Decimal
        currency: str
        signed_on: date
        starts_on: date
        ends_on: date
        sla_terms: list[str]
        third_party_acceptor: str
        kickoff_due_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "contracted"
            aggregate.contract_number = self.contract_number
            aggregate.signed_on = self.signed_on
            aggregate.ends_on = self.ends_on
            aggregate.third_party_acceptor = self.third_party_acceptor
            aggregate.kickoff_due_at = self.kickoff_due_at

    class KickoffHeld(LedgerAggregate.Event):
        """The kickoff meeting fixed goals, timetable and responsibilities (R3.2)."""

        EVENT_TYPE = "KickoffHeld"
        held_on: date
        goals: list[str]
        timetable: str
        responsibilities: list[Responsibility]
        due_at: datetime
        late: bool

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "in_progress"
            aggregate.kickoff_held_on = self.held_on

    class KickoffOverdue(LedgerAggregate.Event):
        """No kickoff by the deadline after contract signing (R3.2, R3.5)."""

        EVENT_TYPE = "KickoffOverdue"
        deadline_id: uuid.UUID
        due_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.overdue[self.deadline_id] = self.event_id

    class MilestoneDelivered(LedgerAggregate.Event):
        """A milestone's deliverable was handed over; on time if by its due date."""

        EVENT_TYPE = "MilestoneDelivered"
        milestone_id: str
        delivered_on: date
        due_on: date
        on_time: bool
        note: str

        def apply(self, aggregate: Any) -> None:
            aggregate.milestone_states[self.milestone_id] = MilestoneState(
                status="delivered", delivered_on=self.delivered_on, on_time=self.on_time
            )

    class MilestoneAccepted(LedgerAggregate.Event):
        """The project manager accepted a delivered milestone."""

        EVENT_TYPE = "MilestoneAccepted"
        milestone_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.milestone_states[self.milestone_id]["status"] = "accepted"

    class MilestoneRejected(LedgerAggregate.Event):
        """The project manager rejected a delivery, with reasons; it may come again."""

        EVENT_TYPE = "MilestoneRejected"
        milestone_id: str
        reasons: list[str]

        def apply(self, aggregate: Any) -> None:
            aggregate.milestone_states[self.milestone_id]["status"] = "rejected"

    class TaskAssigned(LedgerAggregate.Event):
        """A project manager assigned a task to a specialist (R2.2, R6.1)."""

        EVENT_TYPE = "TaskAssigned"
        task_id: str
        title: str
        specialist: str
        due_on: date

        def apply(self, aggregate: Any) -> None:
            aggregate.tasks[self.task_id] = TaskState(
                title=self.title, specialist=self.specialist, due_on=self.due_on, status="assigned"
            )

    class TaskAcknowledged(LedgerAggregate.Event):
        """The specialist acknowledged the task (response speed, R6.1)."""

        EVENT_TYPE = "TaskAcknowledged"
        task_id: str
        specialist: str

        def apply(self, aggregate: Any) -> None:
            aggregate.tasks[self.task_id]["status"] = "acknowledged"

    class TaskCompleted(LedgerAggregate.Event):
        """The specialist completed the task; on time if by its due date (R6.1)."""

        EVENT_TYPE = "TaskCompleted"
        task_id: str
        specialist: str
        completed_on: date
        due_on: date
        on_time: bool

        def apply(self, aggregate: Any) -> None:
            aggregate.tasks[self.task_id]["status"] = "completed"

    class ReviewHeld(LedgerAggregate.Event):
        """The quarterly mid-term review assessed progress and risk (R3.3)."""

        EVENT_TYPE = "ReviewHeld"
        quarter: str
        held_on: date
        progress: str
        risk_rating: RiskRating
        issues: list[str]

        def apply(self, aggregate: Any) -> None:
            aggregate.reviewed_quarters.add(self.quarter)

    class QuarterlyReviewOverdue(LedgerAggregate.Event):
        """An active project went through a quarter without its review (R3.3, R3.5)."""

        EVENT_TYPE = "QuarterlyReviewOverdue"
        deadline_id: uuid.UUID
        quarter: str
        due_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.overdue[self.deadline_id] = self.event_id

    class ComplaintReceived(LedgerAggregate.Event):
        """A business unit or customer complained (R6.1 complaint rate), by
        a channel (v2: phone, email, meeting, ticket, letter; `unspecified`
        for complaints recorded before channels were asked for)."""

        EVENT_TYPE = "ComplaintReceived"
        #: v2 added `channel`. Stored v1 events are upcast when read, so the
        #: relay and every reader see v2; consumers still accept v1 messages
        #: already on the topic (docs/events/partner/ComplaintReceived.v1.json).
        class_version = 2
        complaint_id: str
        source: str
        channel: ComplaintChannel
        severity: Severity
        summary: str
        received_at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["channel"] = "unspecified"

        def apply(self, aggregate: Any) -> None:
            aggregate.complaints[self.complaint_id] = "received"

    class ComplaintResponded(LedgerAggregate.Event):
        """The first response to a complaint (response speed, R6.1)."""

        EVENT_TYPE = "ComplaintResponded"
        complaint_id: str
        response: str

        def apply(self, aggregate: Any) -> None:
            aggregate.complaints[self.complaint_id] = "responded"

    class ComplaintResolved(LedgerAggregate.Event):
        """A complaint was resolved."""

        EVENT_TYPE = "ComplaintResolved"
        complaint_id: str
        resolution: str

        def apply(self, aggregate: Any) -> None:
            aggregate.complaints[self.complaint_id] = "resolved"

    class IncidentReported(LedgerAggregate.Event):
        """An incident was reported (R6.4); a data leak has a reporting deadline."""

        EVENT_TYPE = "IncidentReported"
        incident_id: str
        category: IncidentCategory
        severity: Severity
        incident_occurred_at: datetime  # `occurred_at` is the report's own time
        detected_at: datetime
        description: str
        report_due_at: datetime | None
        late: bool

        def apply(self, aggregate: Any) -> None:
            aggregate.incidents.add(self.incident_id)

    class LateIncidentReport(LedgerAggregate.Event):
        """A data leak was reported after the policy's limit (R6.4, R3.5)."""

        EVENT_TYPE = "LateIncidentReport"
        incident_id: str
        detected_at: datetime
        due_at: datetime
        reported_at: datetime

    class InvestigationOpened(LedgerAggregate.Event):
        """A major failure opened an internal investigation (R6.4)."""

        EVENT_TYPE = "InvestigationOpened"
        investigation_id: str
        incident_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.investigations[self.investigation_id] = "open"

    class InvestigationConcluded(LedgerAggregate.Event):
        """The investigation's findings and sanctions, warning to demotion (R6.4)."""

        EVENT_TYPE = "InvestigationConcluded"
        investigation_id: str
        findings: str
        sanctions: list[Sanction]

        def apply(self, aggregate: Any) -> None:
            aggregate.investigations[self.investigation_id] = "concluded"

    class CostRecorded(LedgerAggregate.Event):
        """A cost against the budget (R6.1 cost control)."""

        EVENT_TYPE = "CostRecorded"
        cost_id: str
        amount: Decimal
        currency: str
        category: str
        incurred_on: date
        note: str

        def apply(self, aggregate: Any) -> None:
            aggregate.costs_total += self.amount
            aggregate.cost_ids.add(self.cost_id)

    class SatisfactionRecorded(LedgerAggregate.Event):
        """A customer satisfaction survey, 1 (poor) to 5 (excellent) (R6.1)."""

        EVENT_TYPE = "SatisfactionRecorded"
        survey_id: str
        score: int
        respondent: str
        comment: str

        def apply(self, aggregate: Any) -> None:
            aggregate.survey_ids.add(self.survey_id)

    class DirectorDecisionRequested(LedgerAggregate.Event):
        """A major decision awaits the Director (R5.1 renewal, R5.2 budget/scope)."""

        EVENT_TYPE = "DirectorDecisionRequested"
        decision_id: uuid.UUID
        kind: DecisionKind
        reason: str
        new_budget: Decimal | None
        new_scope: str | None
        new_end_date: date | None
        new_value: Decimal | None

        def apply(self, aggregate: Any) -> None:
            aggregate.pending_decisions[self.decision_id] = {
                "kind": self.kind,
                "new_budget": self.new_budget,
                "new_scope": self.new_scope,
                "new_end_date": self.new_end_date,
                "new_value": self.new_value,
                "reason": self.reason,
            }

    class DirectorDecisionDenied(LedgerAggregate.Event):
        """The Director refused a requested major decision."""

        EVENT_TYPE = "DirectorDecisionDenied"
        decision_id: uuid.UUID
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.pending_decisions.pop(self.decision_id, None)
            aggregate.decided.add(self.decision_id)

    class BudgetChanged(LedgerAggregate.Event):
        """The budget changed: directly below the threshold, else by decision (R5.2)."""

        EVENT_TYPE = "BudgetChanged"
        old_budget: Decimal
        new_budget: Decimal
        reason: str
        decision_id: uuid.UUID | None

        def apply(self, aggregate: Any) -> None:
            aggregate.budget = self.new_budget
            if self.decision_id is not None:  # only the Director moves the approved budget
                aggregate.approved_budget = self.new_budget
                aggregate.pending_decisions.pop(self.decision_id, None)
                aggregate.decided.add(self.decision_id)

    class ScopeChanged(LedgerAggregate.Event):
        """The scope changed (a major decision unless the policy says otherwise, R5.2)."""

        EVENT_TYPE = "ScopeChanged"
        old_scope: str
        new_scope: str
        reason: str
        decision_id: uuid.UUID | None

        def apply(self, aggregate: Any) -> None:
            aggregate.scope = self.new_scope
            if self.decision_id is not None:
                aggregate.pending_decisions.pop(self.decision_id, None)
                aggregate.decided.add(self.decision_id)

    class ContractRenewed(LedgerAggregate.Event):
        """The Director renewed the contract (R5.1)."""

        EVENT_TYPE = "ContractRenewed"
        decision_id: uuid.UUID
        new_end_date: date
        new_value: Decimal | None

        def apply(self, aggregate: Any) -> None:
            aggregate.ends_on = self.new_end_date
            aggregate.pending_decisions.pop(self.decision_id, None)
            aggregate.decided.add(self.decision_id)

    class FinalAcceptanceRecorded(LedgerAggregate.Event):
        """Final acceptance, signed off by the named third party (R3.4)."""

        EVENT_TYPE = "FinalAcceptanceRecorded"
        accepted_on: date
        third_party: str
        signatory: str
        report_ref: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "accepted"

    class Closed(LedgerAggregate.Event):
        """The project closed: completed, failed or terminated (R1.2)."""

        EVENT_TYPE = "ProjectClosed"
        outcome: Outcome
        reason: str
        budget: Decimal
        costs_total: Decimal

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "closed"
            aggregate.outcome = self.outcome
            aggregate.pending_decisions.clear()  # nothing is decided for a closed project

    # -- state ---------------------------------------------------------------------------

    def __init__(
        self,
        *,
        title: str,
        scope: str,
        budget: Decimal,
        currency: str,
        partner_id: uuid.UUID,
        project_manager: str,
        specialists: list[str],
        milestones: list[Milestone],
    ) -> None:
        self.title = title
        self.scope = scope
        self.budget = budget
        self.currency = currency
        self.partner_id = partner_id
        self.project_manager = project_manager
        self.specialists = list(specialists)
        self.milestones = {m["milestone_id"]: m for m in milestones}
        self.milestone_states: dict[str, MilestoneState] = {
            m["milestone_id"]: MilestoneState(status="planned", delivered_on=None, on_time=None)
            for m in milestones
        }
        self.status: ProjectStatus = "planned"
        self.approval_request_id: uuid.UUID | None = None
        self.approved_budget: Decimal | None = None
        self.contract_number: str | None = None
        self.signed_on: date | None = None
        self.ends_on: date | None = None
        self.third_party_acceptor: str | None = None
        self.kickoff_due_at: datetime | None = None
        self.kickoff_held_on: date | None = None
        self.tasks: dict[str, TaskState] = {}
        self.reviewed_quarters: set[str] = set()
        self.complaints: dict[str, str] = {}
        self.incidents: set[str] = set()
        self.investigations: dict[str, str] = {}
        self.costs_total = Decimal(0)
        self.cost_ids: set[str] = set()
        self.survey_ids: set[str] = set()
        self.pending_decisions: dict[uuid.UUID, dict[str, Any]] = {}
        self.decided: set[uuid.UUID] = set()
        self.outcome: Outcome | None = None
        #: deadline id -> id of the Overdue event recorded for it (once each)
        self.overdue: dict[uuid.UUID, uuid.UUID] = {}

    # -- creation and procurement (R3.1) ----------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        project_id: uuid.UUID,
        title: str,
        scope: str,
        budget: Decimal,
        currency: str,
        partner_id: uuid.UUID,
        project_manager: str,
        specialists: list[str],
        milestones: list[Milestone],
    ) -> Project:
        if budget <= 0:
            raise RuleViolation("R6.1", "a project needs a positive budget")
        if not milestones:
            raise RuleViolation("R6.1", "a project plans at least one milestone")
        ids = [m["milestone_id"] for m in milestones]
        if len(set(ids)) != len(ids):
            raise RuleViolation("R6.1", "milestone ids must be unique within the project")
        return cls._create_in_context(
            cls.Created,
            id=project_id,
            title=title,
            scope=scope,
            budget=budget,
            currency=currency,
            partner_id=partner_id,
            project_manager=project_manager,
            specialists=list(dict.fromkeys(specialists)),
            milestones=sorted(milestones, key=lambda m: (m["due_on"], m["milestone_id"])),
        )

    def request_procurement_approval(
        self, *, request_id: uuid.UUID, justification: str, requested_by: str
    ) -> None:
        if self.status not in ("planned", "procurement_rejected"):
            raise RuleViolation(
                "R3.1",
                f"procurement approval is requested for a planned project, not {self.status}",
            )
        self.trigger_event(
            self.ProcurementApprovalRequested,
            request_id=request_id,
            title=self.title,
            partner_id=self.partner_id,
            amount=self.budget,
            currency=self.currency,
            justification=justification,
            requested_by=requested_by,
        )

    def procurement_approved(
        self, *, request_id: uuid.UUID, approved_at: datetime, amount: Decimal
    ) -> bool:
        """Applies the approval service's outcome; False if it changes nothing
        (a redelivery, or an outcome of an older request)."""
        if self.approval_request_id != request_id or self.status != "awaiting_approval":
            return False
        self.trigger_event(
            self.ProcurementApprovalGranted,
            request_id=request_id,
            approved_at=approved_at,
            approved_amount=amount,
        )
        return True

    def procurement_rejected(self, *, request_id: uuid.UUID, step: str, reason: str) -> bool:
        if self.approval_request_id != request_id or self.status != "awaiting_approval":
            return False
        self.trigger_event(
            self.ProcurementApprovalDenied, request_id=request_id, step=step, reason=reason
        )
        return True

    # -- contract and kickoff (R3.1, R3.2, R3.4) ---------------------------------------------

    def sign_contract(
        self,
        *,
        contract_number: str,
        value: Decimal,
        currency: str,
        signed_on: date,
        starts_on: date,
        ends_on: date,
        sla_terms: list[str],
        third_party_acceptor: str,
        kickoff_due_at: datetime,
        today: date,
    ) -> None:
        if self.status != "approved":
            raise RuleViolation(
                "R3.1",
                f"a contract is signed only after procurement approval, not {self.status}",
            )
        if not third_party_acceptor.strip():
            raise RuleViolation("R3.4", "the contract names the third party for final acceptance")
        if signed_on > today:
            raise RuleViolation("R3.1", f"a contract is recorded once signed, not for {signed_on}")
        if currency != self.currency:
            raise RuleViolation(
                "R3.1", f"the contract is in {currency}, the approved budget in {self.currency}"
            )
        if self.approved_budget is not None and value > self.approved_budget:
            raise RuleViolation(
                "R3.1", f"the contract value {value} exceeds the approved {self.approved_budget}"
            )
        if ends_on < starts_on:
            raise RuleViolation("R3.1", "the contract ends before it starts")
        self.trigger_event(
            self.ContractSigned,
            partner_id=self.partner_id,
            contract_number=contract_number,
            value=value,
            currency=currency,
            signed_on=signed_on,
            starts_on=starts_on,
            ends_on=ends_on,
            sla_terms=list(sla_terms),
            third_party_acceptor=third_party_acceptor.strip(),
            kickoff_due_at=kickoff_due_at,
        )

    def hold_kickoff(
        self,
        *,
        held_on: date,
        held_by_end_of: datetime,
        goals: list[str],
        timetable: str,
        responsibilities: list[Responsibility],
        today: date,
    ) -> None:
        if self.status != "contracted":
            raise RuleViolation(
                "R3.2", f"the kickoff follows the contract; the project is {self.status}"
            )
        assert self.signed_on is not None and self.kickoff_due_at is not None
        if held_on < self.signed_on:
            raise RuleViolation("R3.2", "the kickoff cannot be before the contract was signed")
        if held_on > today:
            raise RuleViolation("R3.2", f"a kickoff is recorded once held, not for {held_on}")
        if not goals or not responsibilities or not timetable.strip():
            raise RuleViolation("R3.2", "a kickoff fixes goals, timetable and responsibilities")
        self.trigger_event(
            self.KickoffHeld,
            held_on=held_on,
            goals=list(goals),
            timetable=timetable,
            responsibilities=list(responsibilities),
            due_at=self.kickoff_due_at,
            late=held_by_end_of > self.kickoff_due_at,
        )

    def mark_kickoff_overdue(self, *, deadline_id: uuid.UUID) -> uuid.UUID | None:
        if deadline_id in self.overdue:
            return self.overdue[deadline_id]
        if self.status != "contracted":
            return None  # held meanwhile, or the project ended
        assert self.kickoff_due_at is not None
        self.trigger_event(self.KickoffOverdue, deadline_id=deadline_id, due_at=self.kickoff_due_at)
        return self.overdue[deadline_id]

    # -- delivery (R3.2: work starts after the kickoff) ---------------------------------------

    def _working(self, what: str) -> None:
        if self.status != "in_progress":
            raise RuleViolation(
                "R3.2", f"{what} needs the kickoff held; the project is {self.status}"
            )

    def _milestone(self, milestone_id: str) -> Milestone:
        try:
            return self.milestones[milestone_id]
        except KeyError:
            raise RuleViolation("R6.1", f"no milestone {milestone_id!r} in this project") from None

    def deliver_milestone(
        self, *, milestone_id: str, delivered_on: date, note: str, today: date
    ) -> None:
        self._working("a delivery")
        milestone = self._milestone(milestone_id)
        if delivered_on > today or (self.kickoff_held_on and delivered_on < self.kickoff_held_on):
            raise RuleViolation(
                "R6.1", f"a delivery is dated between the kickoff and today, not {delivered_on}"
            )
        state = self.milestone_states[milestone_id]["status"]
        if state in ("delivered", "accepted"):
            raise RuleViolation("R6.1", f"milestone {milestone_id!r} is {state} already")
        self.trigger_event(
            self.MilestoneDelivered,
            milestone_id=milestone_id,
            delivered_on=delivered_on,
            due_on=milestone["due_on"],
            on_time=delivered_on <= milestone["due_on"],
            note=note,
        )

    def accept_milestone(self, *, milestone_id: str) -> None:
        self._working("accepting a milestone")
        self._milestone(milestone_id)
        if self.milestone_states[milestone_id]["status"] != "delivered":
            raise RuleViolation("R6.1", f"milestone {milestone_id!r} is not awaiting acceptance")
        self.trigger_event(self.MilestoneAccepted, milestone_id=milestone_id)

    def reject_milestone(self, *, milestone_id: str, reasons: list[str]) -> None:
        self._working("rejecting a milestone")
        self._milestone(milestone_id)
        if self.milestone_states[milestone_id]["status"] != "delivered":
            raise RuleViolation("R6.1", f"milestone {milestone_id!r} is not awaiting acceptance")
        if not reasons:
            raise RuleViolation("R6.1", "a rejected delivery says why")
        self.trigger_event(self.MilestoneRejected, milestone_id=milestone_id, reasons=reasons)

    def assign_task(self, *, task_id: str, title: str, specialist: str, due_on: date) -> None:
        self._working("assigning a task")
        if specialist not in self.specialists:
            raise RuleViolation("R2.2", f"{specialist} is not a specialist of this project")
        if task_id in self.tasks:
            raise RuleViolation("R2.2", f"task {task_id!r} exists already")
        self.trigger_event(
            self.TaskAssigned, task_id=task_id, title=title, specialist=specialist, due_on=due_on
        )

    def _task(self, task_id: str) -> TaskState:
        try:
            return self.tasks[task_id]
        except KeyError:
            raise RuleViolation("R2.2", f"no task {task_id!r} in this project") from None

    def acknowledge_task(self, *, task_id: str) -> None:
        self._open("a task")
        task = self._task(task_id)
        if task["status"] != "assigned":
            raise RuleViolation("R2.2", f"task {task_id!r} is {task['status']} already")
        self.trigger_event(self.TaskAcknowledged, task_id=task_id, specialist=task["specialist"])

    def complete_task(self, *, task_id: str, completed_on: date) -> None:
        self._open("a task")
        task = self._task(task_id)
        if task["status"] == "completed":
            raise RuleViolation("R2.2", f"task {task_id!r} is completed already")
        self.trigger_event(
            self.TaskCompleted,
            task_id=task_id,
            specialist=task["specialist"],
            completed_on=completed_on,
            due_on=task["due_on"],
            on_time=completed_on <= task["due_on"],
        )

    # -- reviews (R3.3) -------------------------------------------------------------------------

    def hold_review(
        self,
        *,
        quarter: str,
        held_on: date,
        progress: str,
        risk_rating: RiskRating,
        issues: list[str],
        today: date,
    ) -> None:
        if self.status not in ("contracted", "in_progress"):
            raise RuleViolation(
                "R3.3", f"mid-term reviews are for active projects, not {self.status}"
            )
        assert self.signed_on is not None
        if held_on > today or held_on < self.signed_on:
            raise RuleViolation(
                "R3.3", f"a review is dated between the contract and today, not {held_on}"
            )
        self.trigger_event(
            self.ReviewHeld,
            quarter=quarter,
            held_on=held_on,
            progress=progress,
            risk_rating=risk_rating,
            issues=list(issues),
        )

    def mark_review_overdue(
        self, *, deadline_id: uuid.UUID, quarter: str, due_at: datetime
    ) -> uuid.UUID | None:
        if deadline_id in self.overdue:
            return self.overdue[deadline_id]
        if quarter in self.reviewed_quarters or self.status not in ("contracted", "in_progress"):
            return None
        self.trigger_event(
            self.QuarterlyReviewOverdue, deadline_id=deadline_id, quarter=quarter, due_at=due_at
        )
        return self.overdue[deadline_id]

    # -- complaints, incidents, costs, satisfaction ---------------------------------------------

    def _open(self, what: str) -> None:
        if self.status == "closed":
            raise RuleViolation("R1.2", f"{what}: the project is closed")

    def receive_complaint(
        self,
        *,
        complaint_id: str,
        source: str,
        channel: ComplaintChannel,
        severity: Severity,
        summary: str,
        received_at: datetime,
        now: datetime,
    ) -> None:
        self._open("a complaint")
        if received_at > now:
            raise RuleViolation("R6.1", "a complaint is recorded once received")
        if complaint_id in self.complaints:
            raise RuleViolation("R6.1", f"complaint {complaint_id!r} exists already")
        self.trigger_event(
            self.ComplaintReceived,
            complaint_id=complaint_id,
            source=source,
            channel=channel,
            severity=severity,
            summary=summary,
            received_at=received_at,
        )

    def _complaint(self, complaint_id: str) -> str:
        try:
            return self.complaints[complaint_id]
        except KeyError:
            raise RuleViolation("R6.1", f"no complaint {complaint_id!r} in this project") from None

    def respond_to_complaint(self, *, complaint_id: str, response: str) -> None:
        if self._complaint(complaint_id) != "received":
            raise RuleViolation(
                "R6.1", f"complaint {complaint_id!r} has its first response already"
            )
        self.trigger_event(self.ComplaintResponded, complaint_id=complaint_id, response=response)

    def resolve_complaint(self, *, complaint_id: str, resolution: str) -> None:
        if self._complaint(complaint_id) == "resolved":
            raise RuleViolation("R6.1", f"complaint {complaint_id!r} is resolved already")
        self.trigger_event(self.ComplaintResolved, complaint_id=complaint_id, resolution=resolution)

    def report_incident(
        self,
        *,
        incident_id: str,
        category: IncidentCategory,
        severity: Severity,
        occurred_at: datetime,
        detected_at: datetime,
        description: str,
        reported_at: datetime,
        leak_report_due_at: datetime | None,
        investigation_id: str,
    ) -> None:
        """R6.4: a data leak must be reported within the policy's hours of its
        detection (later: `LateIncidentReport`) and opens an investigation."""
        self._open("an incident")
        if incident_id in self.incidents:
            raise RuleViolation("R6.4", f"incident {incident_id!r} is reported already")
        if investigation_id in self.investigations:
            raise RuleViolation("R6.4", f"investigation {investigation_id!r} exists already")
        if detected_at < occurred_at or reported_at < detected_at:
            raise RuleViolation("R6.4", "an incident occurs, then is detected, then is reported")
        leak = category == "data_leak"
        due = leak_report_due_at if leak else None
        late = due is not None and reported_at > due
        self.trigger_event(
            self.IncidentReported,
            incident_id=incident_id,
            category=category,
            severity=severity,
            incident_occurred_at=occurred_at,
            detected_at=detected_at,
            description=description,
            report_due_at=due,
            late=late,
        )
        if late:
            assert due is not None
            self.trigger_event(
                self.LateIncidentReport,
                incident_id=incident_id,
                detected_at=detected_at,
                due_at=due,
                reported_at=reported_at,
            )
        if leak or severity == "critical":
            self.trigger_event(
                self.InvestigationOpened, investigation_id=investigation_id, incident_id=incident_id
            )

    def conclude_investigation(
        self, *, investigation_id: str, findings: str, sanctions: list[Sanction]
    ) -> None:
        state = self.investigations.get(investigation_id)
        if state is None:
            raise RuleViolation("R6.4", f"no investigation {investigation_id!r} in this project")
        if state == "concluded":
            raise RuleViolation("R6.4", f"investigation {investigation_id!r} is concluded already")
        self.trigger_event(
            self.InvestigationConcluded,
            investigation_id=investigation_id,
            findings=findings,
            sanctions=list(sanctions),
        )

    def record_cost(
        self,
        *,
        cost_id: str,
        amount: Decimal,
        category: str,
        incurred_on: date,
        note: str,
        today: date,
    ) -> None:
        if self.status not in OPEN_AFTER_CONTRACT:
            raise RuleViolation(
                "R6.1", f"costs are recorded under a contract; the project is {self.status}"
            )
        if cost_id in self.cost_ids:
            raise RuleViolation("R6.1", f"cost {cost_id!r} is recorded already")
        if amount <= 0:
            raise RuleViolation("R6.1", "a cost is a positive amount")
        if incurred_on > today:
            raise RuleViolation("R6.1", f"an actual cost is incurred by today, not {incurred_on}")
        self.trigger_event(
            self.CostRecorded,
            cost_id=cost_id,
            amount=amount,
            currency=self.currency,
            category=category,
            incurred_on=incurred_on,
            note=note,
        )

    def record_satisfaction(
        self, *, survey_id: str, score: int, respondent: str, comment: str
    ) -> None:
        worked = self.status in OPEN_AFTER_CONTRACT or (
            self.status == "closed" and self.contract_number is not None
        )
        if not worked:
            raise RuleViolation(
                "R6.1", f"satisfaction is surveyed once work began, not {self.status}"
            )
        if not 1 <= score <= 5:
            raise RuleViolation("R6.1", "a satisfaction score is 1 to 5")
        if survey_id in self.survey_ids:
            raise RuleViolation("R6.1", f"survey {survey_id!r} is recorded already")
        self.trigger_event(
            self.SatisfactionRecorded,
            survey_id=survey_id,
            score=score,
            respondent=respondent,
            comment=comment,
        )

    # -- major decisions (R5.1, R5.2) --------------------------------------------------------

    def change_budget(
        self, *, new_budget: Decimal, reason: str, threshold_percent: float, decision_id: uuid.UUID
    ) -> bool:
        """Below the threshold the budget changes now (True); above it the
        Director is asked (False)."""
        self._open("a budget change")
        if self.status == "awaiting_approval":
            raise RuleViolation("R3.1", "the budget under procurement approval cannot change")
        if new_budget <= 0:
            raise RuleViolation("R5.2", "a budget is a positive amount")
        if self.approved_budget is None:  # not approved yet: the plan itself changes
            self.trigger_event(
                self.BudgetChanged,
                old_budget=self.budget,
                new_budget=new_budget,
                reason=reason,
                decision_id=None,
            )
            return True
        limit = self.approved_budget * (1 + Decimal(str(threshold_percent)) / 100)
        if new_budget > limit:
            self._request_decision(decision_id, "budget_increase", reason, new_budget=new_budget)
            return False
        self.trigger_event(
            self.BudgetChanged,
            old_budget=self.budget,
            new_budget=new_budget,
            reason=reason,
            decision_id=None,
        )
        return True

    def change_scope(
        self, *, new_scope: str, reason: str, is_major: bool, decision_id: uuid.UUID
    ) -> bool:
        self._open("a scope change")
        if self.status == "awaiting_approval":
            raise RuleViolation("R3.1", "the scope under procurement approval cannot change")
        if is_major and self.approved_budget is not None:
            self._request_decision(decision_id, "scope_change", reason, new_scope=new_scope)
            return False
        self.trigger_event(
            self.ScopeChanged,
            old_scope=self.scope,
            new_scope=new_scope,
            reason=reason,
            decision_id=None,
        )
        return True

    def request_renewal(
        self, *, new_end_date: date, new_value: Decimal | None, reason: str, decision_id: uuid.UUID
    ) -> None:
        if self.status not in OPEN_AFTER_CONTRACT:
            raise RuleViolation("R5.1", f"only a contracted project is renewed, not {self.status}")
        assert self.ends_on is not None
        if new_end_date <= self.ends_on:
            raise RuleViolation("R5.1", f"a renewal extends the contract beyond {self.ends_on}")
        self._request_decision(
            decision_id, "contract_renewal", reason, new_end_date=new_end_date, new_value=new_value
        )

    def _request_decision(
        self,
        decision_id: uuid.UUID,
        kind: DecisionKind,
        reason: str,
        *,
        new_budget: Decimal | None = None,
        new_scope: str | None = None,
        new_end_date: date | None = None,
        new_value: Decimal | None = None,
    ) -> None:
        if any(d["kind"] == kind for d in self.pending_decisions.values()):
            rule = "R5.1" if kind == "contract_renewal" else "R5.2"
            raise RuleViolation(rule, f"a {kind.replace('_', ' ')} awaits the Director already")
        self.trigger_event(
            self.DirectorDecisionRequested,
            decision_id=decision_id,
            kind=kind,
            reason=reason,
            new_budget=new_budget,
            new_scope=new_scope,
            new_end_date=new_end_date,
            new_value=new_value,
        )

    def decision_made(
        self, *, decision_id: uuid.UUID, kind: str, approved: bool, reason: str
    ) -> bool:
        """Applies the Director's decision from the approval service; False if
        it changes nothing (a redelivery, an unknown or mismatched decision, or
        a closed project, whose pending decisions lapsed)."""
        pending = self.pending_decisions.get(decision_id)
        if pending is None or decision_id in self.decided or pending["kind"] != kind:
            return False
        if not approved:
            self.trigger_event(self.DirectorDecisionDenied, decision_id=decision_id, reason=reason)
        elif pending["kind"] == "budget_increase":
            self.trigger_event(
                self.BudgetChanged,
                old_budget=self.budget,
                new_budget=pending["new_budget"],
                reason=pending["reason"],
                decision_id=decision_id,
            )
        elif pending["kind"] == "scope_change":
            self.trigger_event(
                self.ScopeChanged,
                old_scope=self.scope,
                new_scope=pending["new_scope"],
                reason=pending["reason"],
                decision_id=decision_id,
            )
        else:
            self.trigger_event(
                self.ContractRenewed,
                decision_id=decision_id,
                new_end_date=pending["new_end_date"],
                new_value=pending["new_value"],
            )
        return True

    # -- acceptance and closure (R3.4, R1.2) --------------------------------------------------

    def record_final_acceptance(
        self,
        *,
        accepted_on: date,
        third_party: str,
        signatory: str,
        report_ref: str,
        today: date,
    ) -> None:
        if self.status != "in_progress":
            raise RuleViolation(
                "R3.4", f"final acceptance is for a project in progress, not {self.status}"
            )
        assert self.third_party_acceptor is not None
        if _normal(third_party) != _normal(self.third_party_acceptor):
            raise RuleViolation(
                "R3.4",
                f"final acceptance needs the third party named in the contract"
                f" ({self.third_party_acceptor}), not {third_party!r}",
            )
        if not signatory.strip():
            raise RuleViolation("R3.4", "the third party's signatory signs off the acceptance")
        if accepted_on > today:
            raise RuleViolation(
                "R3.4", f"an acceptance is recorded once signed, not for {accepted_on}"
            )
        open_milestones = [m for m, s in self.milestone_states.items() if s["status"] != "accepted"]
        if open_milestones:
            raise RuleViolation(
                "R3.4", f"milestones not accepted yet: {', '.join(sorted(open_milestones))}"
            )
        self.trigger_event(
            self.FinalAcceptanceRecorded,
            accepted_on=accepted_on,
            third_party=self.third_party_acceptor,
            signatory=signatory.strip(),
            report_ref=report_ref,
        )

    def close(self, *, outcome: Outcome, reason: str) -> None:
        self._open("closing")
        if outcome == "completed" and self.status != "accepted":
            raise RuleViolation("R3.4", "a project completes only after final acceptance")
        if outcome != "completed" and self.status == "accepted":
            raise RuleViolation(
                "R3.4", "a project the third party accepted closes as completed, not as failed"
            )
        self.trigger_event(
            self.Closed,
            outcome=outcome,
            reason=reason,
            budget=self.budget,
            costs_total=self.costs_total,
        )


def _normal(name: str) -> str:
    return " ".join(name.split()).casefold()
