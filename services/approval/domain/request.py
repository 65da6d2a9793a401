"""The ApprovalRequest aggregate: a chain of signatures in strict order.

Procurement (R3.1) has three steps; a Director decision (R5.1, R5.2) has one:

    pending(step i) --approve--> pending(step i+1) ... --approve last--> approved
    pending(step i) --reject (reason)--> rejected                   (the request ends)
    pending(step i) --return for information--> returned
    returned --resubmit (requester)--> pending(step i, next round)  (a new clock)
    pending(step i) --time limit passed--> pending(step i), overdue and escalated (R3.5)
                                   (a Director decision is not escalated: R5.1)

Who may sign a step: a user holding the step's role; after escalation also the
escalation role; when the step names an approver, only that person, their
delegate for the time being, or the escalation role. Segregation of duties
(R3.1): the requester never decides their own request, and one person never
signs two steps of one request (as approver or as the one delegated for).

Each step keeps its own record (opened, due, decided, by whom, for whom), so
the time spent per level is read from the events (KPI cycle time, R3.5).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, Literal

from typing_extensions import TypedDict

from shared.domain import LedgerAggregate, RuleViolation

ProcurementStep = Literal["department_head", "finance", "ceo"]
Step = Literal["department_head", "finance", "ceo", "director"]
Kind = Literal["procurement", "budget_increase", "scope_change", "contract_renewal"]
DecisionKind = Literal["budget_increase", "scope_change", "contract_renewal"]
State = Literal["pending", "returned", "approved", "rejected"]
Decision = Literal["approve", "reject", "return"]

PROCUREMENT_STEPS: Final[tuple[Step, ...]] = ("department_head", "finance", "ceo")
DIRECTOR_STEPS: Final[tuple[Step, ...]] = ("director",)
#: The role that signs each step (DESIGN.md section 5 role names).
STEP_ROLE: Final[dict[str, str]] = {
    "department_head": "dept_head",
    "finance": "finance",
    "ceo": "ceo",
    "director": "director",
}
APPROVER_ROLES: Final = frozenset(STEP_ROLE.values())

#: Computes when a step opened at a moment falls due (from the policy file).
DueFor = Callable[[Step, datetime], datetime]


class StepDecision(TypedDict):
    """One signature of a procurement approval (published in ProcurementApproved)."""

    step: ProcurementStep
    approver: str
    delegate_of: str | None
    decided_at: datetime


class StepRecord(TypedDict):
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


class Signer(TypedDict):
    """Who acts on a step: the user, their role, and whom they stand in for."""

    user_id: str
    role: str
    delegate_of: str | None


class ApprovalRequest(LedgerAggregate):
    AGGREGATE_TYPE = "ApprovalRequest"

    # -- events ------------------------------------------------------------------------

    class Created(LedgerAggregate.Created):
        """An approval was requested: a procurement (R3.1) or a Director decision (R5.1, R5.2)."""

        EVENT_TYPE = "ApprovalRequested"
        kind: Kind
        project_id: uuid.UUID | None
        partner_id: uuid.UUID | None
        title: str
        amount: Decimal | None
        currency: str
        justification: str
        requested_by: str
        source: Literal["partner.events", "api"]
        steps: list[Step]
        approvers: dict[str, str]
        new_budget: Decimal | None
        new_scope: str | None
        new_end_date: date | None
        new_value: Decimal | None

    class StepOpened(LedgerAggregate.Event):
        """A step awaits its signature; its time limit runs (R3.1, R3.5)."""

        EVENT_TYPE = "ApprovalStepOpened"
        step: Step
        round: int
        assignee_role: str
        assignee: str | None
        opened_at: datetime
        due_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.state = "pending"
            aggregate.records.append(
                StepRecord(
                    step=self.step,
                    round=self.round,
                    assignee_role=self.assignee_role,
                    assignee=self.assignee,
                    opened_at=self.opened_at,
                    due_at=self.due_at,
                    overdue=False,
                    escalated_to=None,
                    decision=None,
                    decided_by=None,
                    delegate_of=None,
                    decided_at=None,
                    reason="",
                )
            )

    class StepApproved(LedgerAggregate.Event):
        """A step was signed (R3.1); `delegate_of` names whom a delegate stood in for."""

        EVENT_TYPE = "ApprovalStepApproved"
        step: Step
        round: int
        approver: str
        approver_role: str
        delegate_of: str | None
        comment: str
        opened_at: datetime
        decided_at: datetime
        on_time: bool

        def apply(self, aggregate: Any) -> None:
            aggregate._decided(self, "approved", self.approver, self.comment)
            aggregate.signers.add(self.approver)
            if self.delegate_of:
                aggregate.signers.add(self.delegate_of)

    class Returned(LedgerAggregate.Event):
        """A step asked the requester for more information; its clock stops (R3.1)."""

        EVENT_TYPE = "ApprovalReturned"
        step: Step
        round: int
        requested_by: str
        returned_by: str
        returned_by_role: str
        delegate_of: str | None
        reason: str
        opened_at: datetime
        returned_at: datetime
        on_time: bool

        def apply(self, aggregate: Any) -> None:
            aggregate._decided(self, "returned", self.returned_by, self.reason)
            aggregate.state = "returned"

    class Resubmitted(LedgerAggregate.Event):
        """The requester answered; the same step opens again (next round)."""

        EVENT_TYPE = "ApprovalResubmitted"
        step: Step
        response: str
        resubmitted_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.responses.append(self.response)

    class StepOverdue(LedgerAggregate.Event):
        """A step passed its time limit unsigned (R3.1, R3.5); recorded once."""

        EVENT_TYPE = "ApprovalStepOverdue"
        deadline_id: uuid.UUID
        step: Step
        round: int
        assignee_role: str
        assignee: str | None
        due_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.overdue[self.deadline_id] = self.event_id
            aggregate.records[-1]["overdue"] = True

    class StepEscalated(LedgerAggregate.Event):
        """The overdue step went to the role the policy names for it; that role may sign."""

        EVENT_TYPE = "ApprovalStepEscalated"
        step: Step
        round: int
        escalated_to: str
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.records[-1]["escalated_to"] = self.escalated_to

    class ProcurementApproved(LedgerAggregate.Event):
        """All three signatures are given: department head, Finance, CEO (R3.1)."""

        EVENT_TYPE = "ProcurementApproved"
        request_id: uuid.UUID
        project_id: uuid.UUID | None
        amount: Decimal
        currency: str
        approved_at: datetime
        steps: list[StepDecision]

        def apply(self, aggregate: Any) -> None:
            aggregate.state = "approved"
            aggregate.closed_at = self.approved_at

    class ProcurementRejected(LedgerAggregate.Event):
        """A step rejected the procurement, with the reason; the request ends (R3.1)."""

        EVENT_TYPE = "ProcurementRejected"
        request_id: uuid.UUID
        project_id: uuid.UUID | None
        step: ProcurementStep
        reason: str
        rejected_by: str
        rejected_at: datetime
        delegate_of: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate._decided(self, "rejected", self.rejected_by, self.reason)
            aggregate.state = "rejected"
            aggregate.closed_at = self.rejected_at

    class DirectorDecisionApproved(LedgerAggregate.Event):
        """The Director approved a major decision: budget, scope or renewal (R5.1, R5.2)."""

        EVENT_TYPE = "DirectorDecisionApproved"
        decision_id: uuid.UUID
        project_id: uuid.UUID | None
        kind: DecisionKind
        comment: str
        decided_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.state = "approved"
            aggregate.closed_at = self.decided_at

    class DirectorDecisionRejected(LedgerAggregate.Event):
        """The Director refused a major decision, with the reason (R5.1, R5.2)."""

        EVENT_TYPE = "DirectorDecisionRejected"
        decision_id: uuid.UUID
        project_id: uuid.UUID | None
        kind: DecisionKind
        reason: str
        decided_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate._decided(self, "rejected", self.actor_id, self.reason)
            aggregate.state = "rejected"
            aggregate.closed_at = self.decided_at

    # -- state -------------------------------------------------------------------------

    def __init__(
        self,
        *,
        kind: Kind,
        project_id: uuid.UUID | None,
        partner_id: uuid.UUID | None,
        title: str,
        amount: Decimal | None,
        currency: str,
        justification: str,
        requested_by: str,
        source: str,
        steps: list[Step],
        approvers: dict[str, str],
        new_budget: Decimal | None,
        new_scope: str | None,
        new_end_date: date | None,
        new_value: Decimal | None,
    ) -> None:
        self.kind: Kind = kind
        self.project_id = project_id
        self.partner_id = partner_id
        self.title = title
        self.amount = amount
        self.currency = currency
        self.justification = justification
        self.requested_by = requested_by
        self.source = source
        self.steps: list[Step] = list(steps)
        self.approvers = dict(approvers)
        self.new_budget = new_budget
        self.new_scope = new_scope
        self.new_end_date = new_end_date
        self.new_value = new_value
        self.state: State = "pending"
        self.records: list[StepRecord] = []
        self.signers: set[str] = set()
        self.responses: list[str] = []
        self.overdue: dict[uuid.UUID, uuid.UUID] = {}
        self.closed_at: datetime | None = None

    def _decided(self, event: Any, decision: str, by: str, reason: str) -> None:
        record = self.records[-1]
        record["decision"] = decision  # type: ignore[typeddict-item]
        record["decided_by"] = by
        record["delegate_of"] = getattr(event, "delegate_of", None)
        record["decided_at"] = event.timestamp
        record["reason"] = reason

    # -- queries -----------------------------------------------------------------------

    @property
    def current(self) -> StepRecord | None:
        """The open step's record (also while returned to the requester)."""
        if self.state in ("approved", "rejected") or not self.records:
            return None
        return self.records[-1]

    @property
    def is_procurement(self) -> bool:
        return self.kind == "procurement"

    def may_sign(self, role: str) -> bool:
        """Whether a role signs the open step (its own, or escalated to it)."""
        record = self.current
        if record is None or self.state != "pending":
            return False
        return role in (record["assignee_role"], record["escalated_to"])

    # -- commands ----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        *,
        request_id: uuid.UUID,
        kind: Kind,
        project_id: uuid.UUID | None,
        partner_id: uuid.UUID | None,
        title: str,
        amount: Decimal | None,
        currency: str,
        justification: str,
        requested_by: str,
        source: Literal["partner.events", "api"],
        approvers: dict[str, str],
        now: datetime,
        due: DueFor,
        new_budget: Decimal | None = None,
        new_scope: str | None = None,
        new_end_date: date | None = None,
        new_value: Decimal | None = None,
    ) -> ApprovalRequest:
        steps = PROCUREMENT_STEPS if kind == "procurement" else DIRECTOR_STEPS
        if kind == "procurement" and (amount is None or amount <= 0):
            raise RuleViolation("R3.1", "a procurement approval needs a positive amount")
        unknown = sorted(set(approvers) - set(steps))
        if unknown:
            raise RuleViolation(
                "R3.1", f"named approvers for steps this request does not have: {unknown}"
            )
        if requested_by in approvers.values():
            raise RuleViolation(
                "R3.1", "the requester cannot be named an approver of their own request"
            )
        named = list(approvers.values())
        if len(set(named)) != len(named):
            raise RuleViolation("R3.1", "one person cannot be named for two steps")
        request = cls._create_in_context(
            cls.Created,
            id=request_id,
            kind=kind,
            project_id=project_id,
            partner_id=partner_id,
            title=title,
            amount=amount,
            currency=currency,
            justification=justification,
            requested_by=requested_by,
            source=source,
            steps=list(steps),
            approvers=dict(approvers),
            new_budget=new_budget,
            new_scope=new_scope,
            new_end_date=new_end_date,
            new_value=new_value,
        )
        request._open_step(steps[0], 1, now, due)
        return request

    def _open_step(self, step: Step, round_: int, now: datetime, due: DueFor) -> None:
        self.trigger_event(
            self.StepOpened,
            step=step,
            round=round_,
            assignee_role=STEP_ROLE[step],
            assignee=self.approvers.get(step),
            opened_at=now,
            due_at=due(step, now),
        )

    def _open_record(self, step: Step | None) -> StepRecord:
        if self.state in ("approved", "rejected"):
            raise RuleViolation("R3.1", f"the request is {self.state} already; it has ended")
        record = self.records[-1]
        if step is not None and step != record["step"]:
            raise RuleViolation(
                "R3.1",
                f"steps are signed in strict order: the open step is {record['step']}, not {step}",
            )
        return record

    def _check_signer(self, record: StepRecord, signer: Signer) -> None:
        user, role, on_behalf = signer["user_id"], signer["role"], signer["delegate_of"]
        step = record["step"]
        escalated = record["escalated_to"]
        if role not in (record["assignee_role"], escalated):
            allowed = record["assignee_role"] + (
                f" or {escalated} (escalated)" if escalated else ""
            )
            raise RuleViolation(
                "R3.1", f"the {step} step is signed by {allowed}, not {role}", forbidden=True
            )
        named = record["assignee"]
        by_escalation = escalated is not None and role == escalated
        if named is not None and not by_escalation and named not in (user, on_behalf):
            raise RuleViolation(
                "R3.1",
                f"the {step} step is assigned to {named}; only they or their delegate sign it",
                forbidden=True,
            )
        people = {user} | ({on_behalf} if on_behalf else set())
        sole_director = not self.is_procurement and role == "director"
        if self.requested_by in people and not sole_director:
            raise RuleViolation(
                "R3.1",
                "segregation of duties: the requester can never decide their own request",
                forbidden=True,
            )
        signed = people & self.signers
        if signed:
            raise RuleViolation(
                "R3.1",
                f"segregation of duties: {', '.join(sorted(signed))} signed another step of"
                " this request already; one person never signs two steps",
                forbidden=True,
            )

    def decide(
        self,
        *,
        decision: Decision,
        signer: Signer,
        reason: str,
        now: datetime,
        due: DueFor,
        step: Step | None = None,
        deadline_id: uuid.UUID | None = None,
    ) -> None:
        """`deadline_id` is the open step's clock: a decision after its limit
        that the deadline engine has not caught yet (it was down, or behind)
        records the missed limit first, so every late step has its
        ApprovalStepOverdue (R3.5), never escalated once decided."""
        record = self._open_record(step)
        if self.state == "returned":
            raise RuleViolation(
                "R3.1",
                f"the {record['step']} step was returned to the requester for more"
                " information; it can be decided after they resubmit",
            )
        self._check_signer(record, signer)
        if decision in ("reject", "return") and not reason.strip():
            raise RuleViolation("R3.1", f"to {decision} a step, give the reason")
        on_time = now <= record["due_at"]
        if not on_time and deadline_id is not None and not record["overdue"]:
            self.trigger_event(
                self.StepOverdue,
                deadline_id=deadline_id,
                step=record["step"],
                round=record["round"],
                assignee_role=record["assignee_role"],
                assignee=record["assignee"],
                due_at=record["due_at"],
            )
        user, role, on_behalf = signer["user_id"], signer["role"], signer["delegate_of"]
        if decision == "return":
            self.trigger_event(
                self.Returned,
                step=record["step"],
                round=record["round"],
                requested_by=self.requested_by,
                returned_by=user,
                returned_by_role=role,
                delegate_of=on_behalf,
                reason=reason,
                opened_at=record["opened_at"],
                returned_at=now,
                on_time=on_time,
            )
        elif decision == "reject":
            self._reject(record, signer, reason, now)
        else:
            self._approve(record, signer, reason, now, due, on_time)

    def _reject(self, record: StepRecord, signer: Signer, reason: str, now: datetime) -> None:
        if self.is_procurement:
            self.trigger_event(
                self.ProcurementRejected,
                request_id=self.id,
                project_id=self.project_id,
                step=record["step"],
                reason=reason,
                rejected_by=signer["user_id"],
                delegate_of=signer["delegate_of"],
                rejected_at=now,
            )
        else:
            self.trigger_event(
                self.DirectorDecisionRejected,
                decision_id=self.id,
                project_id=self.project_id,
                kind=self.kind,
                reason=reason,
                decided_at=now,
            )

    def _approve(
        self,
        record: StepRecord,
        signer: Signer,
        comment: str,
        now: datetime,
        due: DueFor,
        on_time: bool,
    ) -> None:
        self.trigger_event(
            self.StepApproved,
            step=record["step"],
            round=record["round"],
            approver=signer["user_id"],
            approver_role=signer["role"],
            delegate_of=signer["delegate_of"],
            comment=comment,
            opened_at=record["opened_at"],
            decided_at=now,
            on_time=on_time,
        )
        position = self.steps.index(record["step"])
        if position + 1 < len(self.steps):
            self._open_step(self.steps[position + 1], 1, now, due)
        elif self.is_procurement:
            assert self.amount is not None
            self.trigger_event(
                self.ProcurementApproved,
                request_id=self.id,
                project_id=self.project_id,
                amount=self.amount,
                currency=self.currency,
                approved_at=now,
                steps=self.signatures(),
            )
        else:
            self.trigger_event(
                self.DirectorDecisionApproved,
                decision_id=self.id,
                project_id=self.project_id,
                kind=self.kind,
                comment=comment,
                decided_at=now,
            )

    def signatures(self) -> list[StepDecision]:
        return [
            StepDecision(
                step=r["step"],  # type: ignore[typeddict-item]
                approver=r["decided_by"] or "",
                delegate_of=r["delegate_of"],
                decided_at=r["decided_at"] or r["opened_at"],
            )
            for r in self.records
            if r["decision"] == "approved"
        ]

    def resubmit(self, *, user_id: str, response: str, now: datetime, due: DueFor) -> None:
        if self.state != "returned":
            raise RuleViolation(
                "R3.1",
                f"only a request returned for information is resubmitted; it is {self.state}",
            )
        if user_id != self.requested_by:
            raise RuleViolation(
                "R3.1", "only the requester answers a request returned to them", forbidden=True
            )
        if not response.strip():
            raise RuleViolation("R3.1", "a resubmission answers the question asked")
        record = self.records[-1]
        self.trigger_event(
            self.Resubmitted, step=record["step"], response=response, resubmitted_by=user_id
        )
        self._open_step(record["step"], record["round"] + 1, now, due)

    def mark_step_overdue(
        self, *, deadline_id: uuid.UUID, step: str, round_: int, escalate_to: str | None
    ) -> uuid.UUID | None:
        """R3.5: records the missed limit once and escalates; None when the step
        was signed (or returned) meanwhile."""
        if deadline_id in self.overdue:
            return self.overdue[deadline_id]
        record = self.current
        if (
            record is None
            or self.state != "pending"
            or (record["step"], record["round"]) != (step, round_)
        ):
            return None
        self.trigger_event(
            self.StepOverdue,
            deadline_id=deadline_id,
            step=record["step"],
            round=record["round"],
            assignee_role=record["assignee_role"],
            assignee=record["assignee"],
            due_at=record["due_at"],
        )
        # A Director decision is never escalated: only the Director decides it (R5.1),
        # whatever role the policy file names for its step.
        if (
            self.is_procurement
            and escalate_to is not None
            and escalate_to != record["assignee_role"]
        ):
            self.trigger_event(
                self.StepEscalated,
                step=record["step"],
                round=record["round"],
                escalated_to=escalate_to,
                reason=f"the {record['step']} step passed its time limit (R3.5)",
            )
        return self.overdue[deadline_id]
