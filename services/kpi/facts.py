"""KPI facts: what each consumed event contributes to the figures (R6.1, R3.5, R1.2).

Every KPI is computed from one table of facts (ADR 0010). An event maps to
zero or more facts by `facts_of`, a pure function of the event and the policy;
the consumer stores the facts, the event itself (for drill-down) and its
position in one transaction. The figures are SQL over the facts
(services/kpi/metrics.py), so a figure can always name the events behind it,
a rebuild is a replay of this mapping, and "as of" a past moment is the same
SQL over the facts recorded by then.

A fact has a `kind` and a `subject` (the thing it is about: a milestone, a
task, an obligation), the moment it refers to (`at`) and the policy-zone day
it counts on (`day`), dimensions (project, partner, person) and a value, a
flag and two labels whose meaning depends on the kind.

Obligations (R3.5) follow one pattern for every deadline of the policy:
`obligation_due` (when it falls due), then `obligation_met` (flag: on time, or
None when the event does not say and the due moment decides) or
`obligation_breached` (the producer's Overdue event). An obligation ends
unowed when it is `obligation_cancelled` (a resolution handed to another
owner) or falls due after `obligations_ended` for its project (a closed
project, a closed report schedule), unless it was met or breached already.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from services.kpi.consumers import contracts as c
from shared.consumer import read_payload
from shared.envelope import EventEnvelope
from shared.policy import Policy, Quarter


@dataclass(frozen=True)
class Fact:
    kind: str
    subject: str
    at: datetime
    day: date
    project_id: UUID | None = None
    partner_id: UUID | None = None
    person: str | None = None
    label: str | None = None
    detail: str | None = None
    value: Decimal | None = None
    flag: bool | None = None


#: Obligation types of R3.5 and where each comes from.
OBLIGATIONS: dict[str, str] = {
    "approval_step": "R3.1: each approval step signed within its limit",
    "kickoff": "R3.2: kickoff meeting within X days of signing",
    "quarterly_review": "R3.3: a mid-term review every quarter",
    "minutes": "R4.2: minutes within 24 h of the meeting",
    "report": "R4.3: weekly, monthly and quarterly reports on time",
    "emergency_explanation": "R5.3: written explanation within 24 h",
    "resolution_owner": "R5.5: owner and deadline within 24 h of the meeting",
    "resolution": "R5.5: resolution completed by its deadline",
    "data_leak_report": "R6.4: a data leak reported within X hours of detection",
    "training": "R2.3: trainings attended against the yearly target",
    "evaluation": "R6.2: monthly self-assessment, quarterly assessment by the superior",
    "weekly_department_meeting": "R5.4: a department meeting every week",
    "quarterly_strategy_meeting": "R5.4: a strategy meeting every quarter",
}

Mapper = Callable[[EventEnvelope, Policy], list[Fact]]


def _hours(later: datetime, earlier: datetime) -> Decimal:
    return Decimal(round((later - earlier).total_seconds() / 3600, 4))


class _Maker:
    """Builds the facts of one event: the event's policy-zone day by default."""

    def __init__(self, event: EventEnvelope, policy: Policy) -> None:
        self.event = event
        self.policy = policy
        self.facts: list[Fact] = []

    def day_of(self, moment: datetime) -> date:
        return self.policy.clock.local_date(moment)

    def end_of(self, day: date) -> datetime:
        return self.policy.clock.end_of_day(day)

    def add(
        self,
        kind: str,
        subject: str,
        *,
        at: datetime | None = None,
        day: date | None = None,
        **dims: Any,
    ) -> None:
        moment = at if at is not None else self.event.occurred_at
        self.facts.append(
            Fact(kind=kind, subject=subject, at=moment, day=day or self.day_of(moment), **dims)
        )

    def due(self, subject: str, label: str, at: datetime, **dims: Any) -> None:
        self.add("obligation_due", subject, at=at, label=label, **dims)

    def met(
        self, subject: str, label: str, at: datetime, on_time: bool | None, **dims: Any
    ) -> None:
        self.add("obligation_met", subject, at=at, label=label, flag=on_time, **dims)

    def breached(self, subject: str, label: str, at: datetime, **dims: Any) -> None:
        self.add("obligation_breached", subject, at=at, label=label, **dims)


_read = read_payload


# -- partner.events ---------------------------------------------------------------


def _project_created(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ProjectCreatedV1)
    m = _Maker(e, policy)
    pid = e.aggregate_id
    m.add(
        "project",
        str(pid),
        project_id=pid,
        partner_id=p.partner_id,
        person=p.project_manager,
        label=p.title,
    )
    m.add("planned_budget", str(pid), project_id=pid, value=p.budget)
    for milestone in p.milestones:
        m.add(
            "milestone_due",
            f"{pid}:{milestone.milestone_id}",
            at=m.end_of(milestone.due_on),
            day=milestone.due_on,
            project_id=pid,
        )
    return m.facts


def _budget_changed(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.BudgetChangedV1)
    m = _Maker(e, policy)
    # Only a Director decision moves the approved budget (R5.2); a PM's raise
    # within the threshold, or a change of plan before approval, does not.
    kind = "approved_budget" if p.decision_id is not None else "planned_budget"
    m.add(kind, str(e.aggregate_id), project_id=e.aggregate_id, value=p.new_budget)
    return m.facts


def _procurement_granted(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ProcurementApprovalGrantedV1)
    m = _Maker(e, policy)
    m.add(
        "approved_budget", str(e.aggregate_id), project_id=e.aggregate_id, value=p.approved_amount
    )
    return m.facts


def _cost_recorded(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.CostRecordedV1)
    m = _Maker(e, policy)
    m.add(
        "cost",
        f"{e.aggregate_id}:{p.cost_id}",
        at=m.end_of(p.incurred_on),
        day=p.incurred_on,
        project_id=e.aggregate_id,
        label=p.category,
        value=p.amount,
    )
    return m.facts


def _contract_signed(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ContractSignedV1)
    m = _Maker(e, policy)
    pid = e.aggregate_id
    m.add("contract_signed", str(pid), day=p.signed_on, project_id=pid, value=p.value)
    m.due(f"{pid}:kickoff", "kickoff", p.kickoff_due_at, project_id=pid)
    return m.facts


def _kickoff_held(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.KickoffHeldV1)
    m = _Maker(e, policy)
    pid = e.aggregate_id
    m.due(f"{pid}:kickoff", "kickoff", p.due_at, project_id=pid)
    m.met(f"{pid}:kickoff", "kickoff", m.end_of(p.held_on), not p.late, project_id=pid)
    return m.facts


def _kickoff_overdue(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.KickoffOverdueV1)
    m = _Maker(e, policy)
    pid = e.aggregate_id
    m.due(f"{pid}:kickoff", "kickoff", p.due_at, project_id=pid)
    m.breached(f"{pid}:kickoff", "kickoff", p.due_at, project_id=pid)
    return m.facts


def _milestone_delivered(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.MilestoneDeliveredV1)
    m = _Maker(e, policy)
    m.add(
        "milestone_delivered",
        f"{e.aggregate_id}:{p.milestone_id}",
        at=m.end_of(p.delivered_on),
        day=p.delivered_on,
        project_id=e.aggregate_id,
        flag=p.on_time,
    )
    return m.facts


def _milestone(kind: str) -> Mapper:
    def mapper(e: EventEnvelope, policy: Policy) -> list[Fact]:
        m = _Maker(e, policy)
        ref = _read(e, c.MilestoneRefV1).milestone_id
        m.add(kind, f"{e.aggregate_id}:{ref}", project_id=e.aggregate_id)
        return m.facts

    return mapper


def _complaint_received(e: EventEnvelope, policy: Policy) -> list[Fact]:
    # v1 (before channels) and v2 give the same fact: a v1 message still on
    # the topic and the same complaint upcast to v2 by the producer agree.
    p = read_payload(e, c.ComplaintReceivedV1, versions=(1, 2))
    channel = (
        read_payload(e, c.ComplaintReceivedV2, versions=(2,)).channel
        if e.schema_version == 2
        else "unspecified"
    )
    m = _Maker(e, policy)
    m.add(
        "complaint_received",
        f"{e.aggregate_id}:{p.complaint_id}",
        at=p.received_at,
        project_id=e.aggregate_id,
        label=p.severity,
        detail=channel,
    )
    return m.facts


def _complaint(kind: str) -> Mapper:
    def mapper(e: EventEnvelope, policy: Policy) -> list[Fact]:
        m = _Maker(e, policy)
        ref = _read(e, c.ComplaintRefV1).complaint_id
        m.add(kind, f"{e.aggregate_id}:{ref}", project_id=e.aggregate_id)
        return m.facts

    return mapper


def _satisfaction(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.SatisfactionRecordedV1)
    m = _Maker(e, policy)
    m.add(
        "satisfaction",
        f"{e.aggregate_id}:{p.survey_id}",
        project_id=e.aggregate_id,
        person=p.respondent,
        value=Decimal(p.score),
    )
    return m.facts


def _task_assigned(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.TaskAssignedV1)
    m = _Maker(e, policy)
    subject = f"{e.aggregate_id}:{p.task_id}"
    m.add("task_assigned", subject, project_id=e.aggregate_id, person=p.specialist)
    m.add(
        "task_due",
        subject,
        at=m.end_of(p.due_on),
        day=p.due_on,
        project_id=e.aggregate_id,
        person=p.specialist,
    )
    return m.facts


def _task_acknowledged(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.TaskAcknowledgedV1)
    m = _Maker(e, policy)
    m.add(
        "task_acknowledged",
        f"{e.aggregate_id}:{p.task_id}",
        project_id=e.aggregate_id,
        person=p.specialist,
    )
    return m.facts


def _task_completed(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.TaskCompletedV1)
    m = _Maker(e, policy)
    m.add(
        "task_completed",
        f"{e.aggregate_id}:{p.task_id}",
        at=m.end_of(p.completed_on),
        day=p.completed_on,
        project_id=e.aggregate_id,
        person=p.specialist,
        flag=p.on_time,
    )
    return m.facts


def _review_subject(project: UUID, quarter: str) -> str:
    return f"{project}:review:{quarter}"


def _review_held(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ReviewHeldV1)
    m = _Maker(e, policy)
    quarter = Quarter.parse(p.quarter)
    subject = _review_subject(e.aggregate_id, p.quarter)
    due = policy.review_due(quarter)
    m.due(subject, "quarterly_review", due, project_id=e.aggregate_id)
    m.met(subject, "quarterly_review", m.end_of(p.held_on), None, project_id=e.aggregate_id)
    return m.facts


def _review_overdue(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.QuarterlyReviewOverdueV1)
    m = _Maker(e, policy)
    subject = _review_subject(e.aggregate_id, p.quarter)
    m.due(subject, "quarterly_review", p.due_at, project_id=e.aggregate_id)
    m.breached(subject, "quarterly_review", p.due_at, project_id=e.aggregate_id)
    return m.facts


def _project_closed(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ProjectClosedV1)
    m = _Maker(e, policy)
    pid = e.aggregate_id
    m.add("project_closed", str(pid), project_id=pid, label=p.outcome, value=p.costs_total)
    # What the project still owed after its closing is owed no more (reports,
    # a kickoff of a project ended before it, resolutions on it).
    m.add("obligations_ended", str(pid), project_id=pid)
    return m.facts


def _final_acceptance(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.FinalAcceptanceRecordedV1)
    m = _Maker(e, policy)
    m.add("final_acceptance", str(e.aggregate_id), day=p.accepted_on, project_id=e.aggregate_id)
    return m.facts


def _incident_reported(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.IncidentReportedV1)
    m = _Maker(e, policy)
    pid = e.aggregate_id
    subject = f"{pid}:{p.incident_id}"
    m.add(
        "incident",
        subject,
        at=p.detected_at,
        project_id=pid,
        label=p.category,
        detail=p.severity,
        value=_hours(e.occurred_at, p.detected_at),
        flag=p.late,
    )
    if p.report_due_at is not None:
        m.due(subject, "data_leak_report", p.report_due_at, project_id=pid)
        if p.late:
            m.breached(subject, "data_leak_report", p.report_due_at, project_id=pid)
        else:
            m.met(subject, "data_leak_report", e.occurred_at, True, project_id=pid)
    return m.facts


def _investigation_opened(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.InvestigationOpenedV1)
    m = _Maker(e, policy)
    m.add(
        "investigation_opened",
        f"{e.aggregate_id}:{p.investigation_id}",
        project_id=e.aggregate_id,
        detail=p.incident_id,
    )
    return m.facts


def _investigation_concluded(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.InvestigationConcludedV1)
    m = _Maker(e, policy)
    subject = f"{e.aggregate_id}:{p.investigation_id}"
    m.add("investigation_concluded", subject, project_id=e.aggregate_id)
    for n, sanction in enumerate(p.sanctions, start=1):
        staff = sanction.subject_kind == "staff"
        m.add(
            "sanction",
            f"{subject}:{n}",
            project_id=e.aggregate_id,
            person=sanction.subject if staff else None,
            label=sanction.level,
            detail=sanction.subject_kind,
        )
    return m.facts


# -- approval.events ----------------------------------------------------------------


def _step_subject(approval: UUID, step: str, round_: int) -> str:
    return f"{approval}:{step}:{round_}"


def _approval_requested(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ApprovalRequestedV1)
    m = _Maker(e, policy)
    m.add(
        "approval_requested",
        str(e.aggregate_id),
        project_id=p.project_id,
        partner_id=p.partner_id,
        person=p.requested_by,
        label=p.kind,
    )
    return m.facts


def _step_opened(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ApprovalStepOpenedV1)
    m = _Maker(e, policy)
    subject = _step_subject(e.aggregate_id, p.step, p.round)
    m.due(subject, "approval_step", p.due_at, person=p.assignee, detail=p.step)
    return m.facts


def _step_decided(
    m: _Maker, subject: str, step: str, who: str, opened: datetime, at: datetime, on_time: bool
) -> list[Fact]:
    m.met(subject, "approval_step", at, on_time, person=who, detail=step)
    m.add(
        "approval_cycle",
        subject,
        at=at,
        person=who,
        label=step,
        value=_hours(at, opened),
    )
    return m.facts


def _step_approved(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ApprovalStepApprovedV1)
    subject = _step_subject(e.aggregate_id, p.step, p.round)
    return _step_decided(
        _Maker(e, policy), subject, p.step, p.approver, p.opened_at, p.decided_at, p.on_time
    )


def _step_returned(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ApprovalReturnedV1)
    subject = _step_subject(e.aggregate_id, p.step, p.round)
    return _step_decided(
        _Maker(e, policy), subject, p.step, p.returned_by, p.opened_at, p.returned_at, p.on_time
    )


def _step_overdue(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ApprovalStepOverdueV1)
    m = _Maker(e, policy)
    subject = _step_subject(e.aggregate_id, p.step, p.round)
    m.breached(subject, "approval_step", p.due_at, detail=p.step)
    return m.facts


#: A rejection closes the step that is open; its round is not on the event, so
#: the consumer resolves it from the step's last opening (OPEN_STEP).
OPEN_STEP = "?"


def _procurement_rejected(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ProcurementRejectedV1)
    m = _Maker(e, policy)
    m.met(OPEN_STEP, "approval_step", p.rejected_at, None, person=p.rejected_by, detail=p.step)
    return m.facts


def _decision_rejected(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.DirectorDecisionRejectedV1)
    m = _Maker(e, policy)
    m.met(OPEN_STEP, "approval_step", p.decided_at, None, person=e.actor.user_id)
    return m.facts


def _emergency_recorded(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.EmergencyActionRecordedV1)
    m = _Maker(e, policy)
    m.add(
        "emergency_action",
        str(e.aggregate_id),
        at=p.acted_at,
        project_id=p.project_id,
        person=p.recorded_by,
    )
    m.due(
        str(e.aggregate_id),
        "emergency_explanation",
        p.explanation_due_at,
        project_id=p.project_id,
        person=p.recorded_by,
    )
    return m.facts


def _explanation_filed(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.EmergencyExplanationFiledV1)
    m = _Maker(e, policy)
    m.met(str(e.aggregate_id), "emergency_explanation", p.filed_at, p.on_time)
    return m.facts


def _explanation_overdue(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.EmergencyExplanationOverdueV1)
    m = _Maker(e, policy)
    m.breached(str(e.aggregate_id), "emergency_explanation", p.due_at)
    return m.facts


# -- docs.events ------------------------------------------------------------------------


def _meeting_held(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.MeetingHeldV1)
    m = _Maker(e, policy)
    mid = str(e.aggregate_id)
    m.add("meeting", mid, at=p.held_at, project_id=p.project_id, person=p.chaired_by, label=p.kind)
    m.due(
        f"{mid}:minutes",
        "minutes",
        p.minutes_due_at,
        project_id=p.project_id,
        person=p.chaired_by,
        detail=p.kind,
    )
    return m.facts


def _minutes_filed(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.MinutesFiledV1)
    m = _Maker(e, policy)
    m.met(f"{e.aggregate_id}:minutes", "minutes", p.filed_at, p.on_time)
    return m.facts


def _minutes_overdue(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.MinutesOverdueV1)
    m = _Maker(e, policy)
    m.breached(f"{e.aggregate_id}:minutes", "minutes", p.due_at)
    return m.facts


def _owner_subject(meeting: UUID, resolution: str) -> str:
    # Resolution ids are numbered per meeting (R1, R2, ...): the meeting is part
    # of the subject, or every meeting's R1 would be one obligation.
    return f"{meeting}:{resolution}:owner"


def _assignment_subject(meeting: UUID, resolution: str, assignment: int) -> str:
    return f"{meeting}:{resolution}:a{assignment}"


def _resolution_recorded(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ResolutionRecordedV1)
    m = _Maker(e, policy)
    subject = _owner_subject(e.aggregate_id, p.resolution_id)
    m.due(subject, "resolution_owner", p.owner_due_at, project_id=p.project_id)
    return m.facts


def _resolution_assigned(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ResolutionAssignedV1)
    m = _Maker(e, policy)
    if p.assignment == 1:
        m.met(
            _owner_subject(e.aggregate_id, p.resolution_id),
            "resolution_owner",
            p.assigned_at,
            p.on_time,
            project_id=p.project_id,
        )
    else:
        # The previous owner's obligation ends: released before its deadline
        # it is cancelled; after it, the producer recorded its breach first,
        # and a breach stays.
        previous = _assignment_subject(e.aggregate_id, p.resolution_id, p.assignment - 1)
        m.add("obligation_cancelled", previous, at=p.assigned_at, label="resolution")
    m.due(
        _assignment_subject(e.aggregate_id, p.resolution_id, p.assignment),
        "resolution",
        p.deadline,
        project_id=p.project_id,
        person=p.owner,
    )
    return m.facts


def _resolution_owner_overdue(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ResolutionOwnerOverdueV1)
    m = _Maker(e, policy)
    subject = _owner_subject(e.aggregate_id, p.resolution_id)
    m.breached(subject, "resolution_owner", p.due_at, project_id=p.project_id)
    return m.facts


def _resolution_completed(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ResolutionCompletedV1)
    m = _Maker(e, policy)
    subject = _assignment_subject(e.aggregate_id, p.resolution_id, p.assignment)
    m.met(subject, "resolution", p.completed_at, p.on_time, project_id=p.project_id, person=p.owner)
    return m.facts


def _resolution_overdue(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ResolutionOverdueV1)
    m = _Maker(e, policy)
    subject = _assignment_subject(e.aggregate_id, p.resolution_id, p.assignment)
    m.breached(subject, "resolution", p.deadline, project_id=p.project_id, person=p.owner)
    return m.facts


def _report_subject(project: UUID, kind: str, period: str) -> str:
    return f"{project}:{kind}:{period}"


def _report_opened(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ReportPeriodOpenedV1)
    m = _Maker(e, policy)
    m.due(
        _report_subject(p.project_id, p.kind, p.period),
        "report",
        p.due_at,
        project_id=p.project_id,
        person=p.project_manager,
        detail=p.kind,
    )
    return m.facts


def _report_filed(on_time: bool) -> Mapper:
    def mapper(e: EventEnvelope, policy: Policy) -> list[Fact]:
        p = _read(e, c.ReportFiledV1)
        m = _Maker(e, policy)
        subject = _report_subject(p.project_id, p.kind, p.period)
        # A period filed early, or one the engine never opened before it was
        # filed late, still is an obligation: its due time is on the event.
        m.due(subject, "report", p.due_at, project_id=p.project_id, detail=p.kind)
        m.met(subject, "report", p.filed_at, on_time, project_id=p.project_id, detail=p.kind)
        return m.facts

    return mapper


def _report_overdue(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ReportOverdueV1)
    m = _Maker(e, policy)
    subject = _report_subject(p.project_id, p.kind, p.period)
    m.due(subject, "report", p.due_at, project_id=p.project_id, detail=p.kind)
    m.breached(subject, "report", p.due_at, project_id=p.project_id, detail=p.kind)
    return m.facts


def _schedule_closed(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.ReportScheduleClosedV1)
    m = _Maker(e, policy)
    # Periods opened ahead and not yet due when the schedule closed are not owed.
    m.add(
        "obligations_ended",
        str(e.aggregate_id),
        at=p.closed_at,
        project_id=p.project_id,
        label="report",
    )
    return m.facts


def _document_filed(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.DocumentFiledV1)
    m = _Maker(e, policy)
    m.add(
        "document_filed",
        str(e.aggregate_id),
        at=p.filed_at,
        project_id=p.project_id,
        person=p.filed_by,
        label=p.doc_type,
    )
    return m.facts


def _document_reviewed(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.DocumentReviewedV1)
    m = _Maker(e, policy)
    m.add(
        "document_reviewed",
        f"{e.aggregate_id}:{p.version}",
        at=p.reviewed_at,
        project_id=p.project_id,
        person=p.filed_by,
        label=p.doc_type,
        flag=p.outcome == "accepted",
    )
    return m.facts


# -- kpi.events (the service's own) -------------------------------------------------------


def _training_held(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.TrainingHeldV1)
    m = _Maker(e, policy)
    for person in p.attendees:
        m.add(
            "training_attended",
            f"{p.training_id}:{person}",
            at=m.end_of(p.held_on),
            day=p.held_on,
            person=person,
            value=Decimal(str(p.hours)),
        )
    return m.facts


def _training_year_closed(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.TrainingYearClosedV1)
    m = _Maker(e, policy)
    subject = f"{p.user_id}:training:{p.year}"
    year_end = m.end_of(date(p.year, 12, 31))
    m.due(subject, "training", year_end, person=p.user_id, detail=p.role, value=Decimal(p.target))
    if p.met:
        m.met(subject, "training", year_end, True, person=p.user_id, value=Decimal(p.attended))
    else:
        m.breached(subject, "training", year_end, person=p.user_id, value=Decimal(p.attended))
    return m.facts


def _evaluation_opened(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.EvaluationOpenedV1)
    m = _Maker(e, policy)
    # The person writes their monthly self-assessment; the superior the quarterly one.
    owes = p.user_id if p.kind == "self" else p.superior
    m.due(str(e.aggregate_id), "evaluation", p.due_at, person=owes, detail=p.kind)
    return m.facts


def _assessment_submitted(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p = _read(e, c.AssessmentSubmittedV1)
    m = _Maker(e, policy)
    m.met(str(e.aggregate_id), "evaluation", p.submitted_at, p.on_time)
    return m.facts


def _assessment_overdue(e: EventEnvelope, policy: Policy) -> list[Fact]:
    p: c.SelfAssessmentOverdueV1 | c.SuperiorAssessmentOverdueV1
    if e.event_type == "SelfAssessmentOverdue":
        p = _read(e, c.SelfAssessmentOverdueV1)
    else:
        p = _read(e, c.SuperiorAssessmentOverdueV1)
    m = _Maker(e, policy)
    m.breached(str(e.aggregate_id), "evaluation", p.due_at, person=p.owed_by)
    return m.facts


#: (producing service, event type) -> its facts.
MAPPERS: dict[tuple[str, str], Mapper] = {
    ("partner", "ProjectCreated"): _project_created,
    ("partner", "BudgetChanged"): _budget_changed,
    ("partner", "ProcurementApprovalGranted"): _procurement_granted,
    ("partner", "CostRecorded"): _cost_recorded,
    ("partner", "ContractSigned"): _contract_signed,
    ("partner", "KickoffHeld"): _kickoff_held,
    ("partner", "KickoffOverdue"): _kickoff_overdue,
    ("partner", "MilestoneDelivered"): _milestone_delivered,
    ("partner", "MilestoneRejected"): _milestone("milestone_rejected"),
    ("partner", "MilestoneAccepted"): _milestone("milestone_accepted"),
    ("partner", "ComplaintReceived"): _complaint_received,
    ("partner", "ComplaintResponded"): _complaint("complaint_responded"),
    ("partner", "ComplaintResolved"): _complaint("complaint_resolved"),
    ("partner", "SatisfactionRecorded"): _satisfaction,
    ("partner", "TaskAssigned"): _task_assigned,
    ("partner", "TaskAcknowledged"): _task_acknowledged,
    ("partner", "TaskCompleted"): _task_completed,
    ("partner", "ReviewHeld"): _review_held,
    ("partner", "QuarterlyReviewOverdue"): _review_overdue,
    ("partner", "ProjectClosed"): _project_closed,
    ("partner", "FinalAcceptanceRecorded"): _final_acceptance,
    ("partner", "IncidentReported"): _incident_reported,
    ("partner", "InvestigationOpened"): _investigation_opened,
    ("partner", "InvestigationConcluded"): _investigation_concluded,
    ("approval", "ApprovalRequested"): _approval_requested,
    ("approval", "ApprovalStepOpened"): _step_opened,
    ("approval", "ApprovalStepApproved"): _step_approved,
    ("approval", "ApprovalReturned"): _step_returned,
    ("approval", "ApprovalStepOverdue"): _step_overdue,
    ("approval", "ProcurementRejected"): _procurement_rejected,
    ("approval", "DirectorDecisionRejected"): _decision_rejected,
    ("approval", "EmergencyActionRecorded"): _emergency_recorded,
    ("approval", "EmergencyExplanationFiled"): _explanation_filed,
    ("approval", "EmergencyExplanationOverdue"): _explanation_overdue,
    ("docs", "MeetingHeld"): _meeting_held,
    ("docs", "MinutesFiled"): _minutes_filed,
    ("docs", "MinutesOverdue"): _minutes_overdue,
    ("docs", "ResolutionRecorded"): _resolution_recorded,
    ("docs", "ResolutionAssigned"): _resolution_assigned,
    ("docs", "ResolutionOwnerOverdue"): _resolution_owner_overdue,
    ("docs", "ResolutionCompleted"): _resolution_completed,
    ("docs", "ResolutionOverdue"): _resolution_overdue,
    ("docs", "ReportPeriodOpened"): _report_opened,
    ("docs", "ReportFiled"): _report_filed(True),
    ("docs", "ReportFiledLate"): _report_filed(False),
    ("docs", "ReportOverdue"): _report_overdue,
    ("docs", "ReportScheduleClosed"): _schedule_closed,
    ("docs", "DocumentFiled"): _document_filed,
    ("docs", "DocumentReviewed"): _document_reviewed,
    ("kpi", "TrainingHeld"): _training_held,
    ("kpi", "TrainingYearClosed"): _training_year_closed,
    ("kpi", "EvaluationOpened"): _evaluation_opened,
    ("kpi", "SelfAssessmentSubmitted"): _assessment_submitted,
    ("kpi", "SuperiorAssessmentSubmitted"): _assessment_submitted,
    ("kpi", "SelfAssessmentOverdue"): _assessment_overdue,
    ("kpi", "SuperiorAssessmentOverdue"): _assessment_overdue,
}


def facts_of(source: str, event: EventEnvelope, policy: Policy) -> list[Fact]:
    """The facts an event contributes; none for an event no KPI reads."""
    mapper = MAPPERS.get((source, event.event_type))
    return mapper(event, policy) if mapper is not None else []
