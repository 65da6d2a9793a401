"""`facts_of` (services/kpi/facts.py), the pure mapping of every consumed event
to the facts the KPIs are computed from (R6.1, R3.5, R1.2).

Proves that:

- every event type of `MAPPERS` maps to exactly its documented facts, built
  from a payload that fits the producer's published schema (docs/events/):
  kinds, subjects, dimensions, values and flags;
- the day a fact counts on is the policy-zone (Asia/Shanghai) day: an event
  at 2026-03-31T23:30+08:00 (15:30Z) is on March 31, one at
  2026-04-01T00:10+08:00 (March 31, 16:10Z) on April 1;
- a due moment given as a day is the end of that day in the policy zone
  (R3.5); on-time flags come from the event (KickoffHeld.late,
  ReportFiled/ReportFiledLate, MilestoneDelivered.on_time, ...), a review held
  leaves on-time to its due moment (flag None);
- ComplaintReceived v2 gives v1's fact with its channel as detail;
- resolution obligations are per meeting and per assignment (a meeting's
  R1 is not another meeting's R1); a re-assignment cancels the previous
  assignment; a staff evaluation is owed by the person (self-assessment) or
  the superior (R6.2);
- only a procurement approval or a Director-decided budget change is the
  approved budget; closings (ProjectClosed, ReportScheduleClosed) end the
  obligations still ahead; filed and overdue reports state their own due
  moment;
- drill-down payloads drop an assessment's words and an investigation's
  findings;
- unknown event types, and known types from another source, map to no fact;
- a payload that does not fit its contract, or an unknown schema version,
  raises PoisonEvent (the consumer parks it).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from services.kpi.fact_store import kept_payload
from services.kpi.facts import MAPPERS, OPEN_STEP, Fact, facts_of
from shared.consumer import PoisonEvent
from shared.envelope import ActorRef, EventEnvelope
from shared.policy import Policy
from tests.support.event_schemas import assert_fits, schema_of

POLICY = Policy()
SHANGHAI = timedelta(hours=8)

P = UUID("11111111-1111-4111-8111-111111111111")  # a project
PARTNER = UUID("22222222-2222-4222-8222-222222222222")
A = UUID("33333333-3333-4333-8333-333333333333")  # an approval request
E = UUID("44444444-4444-4444-8444-444444444444")  # an emergency action
M = UUID("55555555-5555-4555-8555-555555555555")  # a meeting
S = UUID("66666666-6666-4666-8666-666666666666")  # a report schedule
D = UUID("77777777-7777-4777-8777-777777777777")  # a document
DEPT = UUID("88888888-8888-4888-8888-888888888888")  # the department
TRAINING = UUID("99999999-9999-4999-8999-999999999999")
DOC_ID = uuid.UUID("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa")
DEADLINE = uuid.UUID("bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb")
EV = UUID("cccccccc-cccc-4ccc-8ccc-cccccccccccc")  # an evaluation

#: The event's moment: 2026-03-10 10:00 in Shanghai.
T = datetime(2026, 3, 10, 2, tzinfo=UTC)
DAY = date(2026, 3, 10)


def local(day: date, hour: int = 10, minute: int = 0) -> datetime:
    """A Shanghai wall-clock moment, as UTC."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) - SHANGHAI


def eod(day: date) -> datetime:
    """The last instant of `day` in Shanghai, as UTC (R3.5 deadlines)."""
    return datetime(day.year, day.month, day.day, 15, 59, 59, 999999, tzinfo=UTC)


# -- payloads held against the published schemas -----------------------------------------


def published(
    source: str, event_type: str, payload: dict[str, Any], version: int = 1
) -> dict[str, Any]:
    return assert_fits(source, event_type, payload, version)


def envelope(
    source: str,
    event_type: str,
    aggregate_id: UUID,
    payload: dict[str, Any],
    *,
    at: datetime = T,
    version: int = 1,
    check: bool = True,
    schema_version: int = 1,
) -> EventEnvelope:
    if check:
        published(source, event_type, payload, schema_version)
    return EventEnvelope(
        event_id=uuid.uuid4(),
        event_type=event_type,
        schema_version=schema_version,
        aggregate_type=(
            schema_of(source, event_type, schema_version)["x-aggregate-type"]
            if check
            else "Project"
        ),
        aggregate_id=aggregate_id,
        aggregate_version=version,
        occurred_at=at,
        recorded_at=at,
        actor=ActorRef(user_id="director.zhang", role="director"),
        correlation_id=uuid.uuid4(),
        payload=payload,
    )


def iso(moment: datetime) -> str:
    return moment.isoformat()


# -- the table: one event of each type and its facts --------------------------------------

KICKOFF_DUE = eod(date(2026, 3, 8))
OPENED = local(date(2026, 3, 9), 9)
STEP_DUE = local(date(2026, 3, 11), 9)
DECIDED = local(date(2026, 3, 10), 15, 30)
DETECTED = T - timedelta(minutes=30)
LEAK_DUE = DETECTED + timedelta(hours=1)
ACTED = local(date(2026, 3, 9), 22)
EXPLAIN_DUE = ACTED + timedelta(hours=24)
HELD = local(date(2026, 3, 9), 9)
MINUTES_DUE = HELD + timedelta(hours=24)
OWNER_DUE = MINUTES_DUE
DEADLINE_AT = eod(date(2026, 3, 31))
REPORT_DUE = eod(date(2026, 4, 7))
STEP_SUBJECT = f"{A}:department_head:1"
#: A resolution's obligations are the meeting's (R1, R2, ... are numbered per meeting).
OWNER_SUBJECT = f"{M}:r1:owner"
A1_SUBJECT = f"{M}:r1:a1"


def _milestone(mid: str, due: str) -> dict[str, Any]:
    return {"milestone_id": mid, "name": mid, "deliverable": "交付物", "due_on": due}


def _project(
    **over: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "partner_id": str(PARTNER),
        "title": "甲项目",
        "scope": "运维外包",
        "budget": "100000.00",
        "currency": "CNY",
        "project_manager": "pm.wang",
        "specialists": ["sp.zhao"],
        "milestones": [_milestone("m1", "2026-01-31"), _milestone("m2", "2026-03-31")],
    }
    body.update(over)
    return body


def _incident(late: bool, category: str = "data_leak") -> dict[str, Any]:
    return {
        "incident_id": "i1",
        "category": category,
        "severity": "critical",
        "description": "客户数据外泄",
        "incident_occurred_at": iso(DETECTED - timedelta(hours=2)),
        "detected_at": iso(DETECTED),
        "late": late,
        "report_due_at": iso(LEAK_DUE) if category == "data_leak" else None,
    }


def _resolution_assigned(n: int) -> dict[str, Any]:
    return {
        "resolution_id": "r1",
        "project_id": str(P),
        "assignment": n,
        "owner": "pm.li",
        "assigned_at": iso(T),
        "deadline": iso(DEADLINE_AT),
        "on_time": True,
        "owner_due_at": iso(OWNER_DUE),
    }


def _report(kind: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "project_id": str(P),
        "kind": "monthly",
        "period": "2026-03",
        "document_id": str(DOC_ID),
        "due_at": iso(REPORT_DUE),
        "filed_at": iso(T),
        "filed_by": "pm.wang",
    }
    if kind == "ReportFiledLate":
        body["hours_late"] = 2.5
    return body


def _approved(late: bool) -> dict[str, Any]:
    return {
        "step": "department_head",
        "round": 1,
        "approver": "dh.li",
        "approver_role": "dept_head",
        "delegate_of": None,
        "comment": "同意",
        "opened_at": iso(OPENED),
        "decided_at": iso(DECIDED),
        "on_time": not late,
    }


def F(kind: str, subject: str, at: datetime = T, day: date | None = None, **dims: Any) -> Fact:
    return Fact(kind=kind, subject=subject, at=at, day=day or POLICY.clock.local_date(at), **dims)


Case = tuple[str, str, UUID, dict[str, Any], list[Fact]]

CASES: list[Case] = [
    (
        "partner",
        "ProjectCreated",
        P,
        _project(),
        [
            F(
                "project",
                str(P),
                project_id=P,
                partner_id=PARTNER,
                person="pm.wang",
                label="甲项目",
            ),
            F("planned_budget", str(P), project_id=P, value=Decimal("100000")),
            F("milestone_due", f"{P}:m1", eod(date(2026, 1, 31)), date(2026, 1, 31), project_id=P),
            F("milestone_due", f"{P}:m2", eod(date(2026, 3, 31)), date(2026, 3, 31), project_id=P),
        ],
    ),
    (
        "partner",
        "BudgetChanged",
        P,
        {"old_budget": "100000", "new_budget": "120000", "reason": "扩容", "decision_id": None},
        [F("planned_budget", str(P), project_id=P, value=Decimal("120000"))],
    ),
    (
        "partner",
        "BudgetChanged",
        P,
        {
            "old_budget": "100000",
            "new_budget": "130000",
            "reason": "扩容",
            "decision_id": str(A),
        },
        [F("approved_budget", str(P), project_id=P, value=Decimal("130000"))],
    ),
    (
        "partner",
        "ProcurementApprovalGranted",
        P,
        {"request_id": str(A), "approved_at": iso(DECIDED), "approved_amount": "98000.00"},
        [F("approved_budget", str(P), project_id=P, value=Decimal("98000"))],
    ),
    (
        "partner",
        "CostRecorded",
        P,
        {
            "cost_id": "k1",
            "amount": "5000.50",
            "category": "人力",
            "currency": "CNY",
            "incurred_on": "2026-03-09",
            "note": "",
        },
        [
            F(
                "cost",
                f"{P}:k1",
                eod(date(2026, 3, 9)),
                date(2026, 3, 9),
                project_id=P,
                label="人力",
                value=Decimal("5000.50"),
            )
        ],
    ),
    (
        "partner",
        "ContractSigned",
        P,
        {
            "contract_number": "HT-2026-001",
            "partner_id": str(PARTNER),
            "value": "980000.00",
            "currency": "CNY",
            "signed_on": "2026-03-01",
            "starts_on": "2026-03-01",
            "ends_on": "2027-02-28",
            "sla_terms": ["可用性 99.9%"],
            "third_party_acceptor": "福建省软件测评中心",
            "kickoff_due_at": iso(KICKOFF_DUE),
        },
        [
            F("contract_signed", str(P), T, date(2026, 3, 1), project_id=P, value=Decimal(980000)),
            F("obligation_due", f"{P}:kickoff", KICKOFF_DUE, label="kickoff", project_id=P),
        ],
    ),
    (
        "partner",
        "KickoffHeld",
        P,
        {
            "held_on": "2026-03-09",
            "goals": ["稳定运行"],
            "timetable": "三月启动",
            "responsibilities": [{"person": "pm.wang", "duty": "总体负责"}],
            "late": True,
            "due_at": iso(KICKOFF_DUE),
        },
        [
            F("obligation_due", f"{P}:kickoff", KICKOFF_DUE, label="kickoff", project_id=P),
            F(
                "obligation_met",
                f"{P}:kickoff",
                eod(date(2026, 3, 9)),
                label="kickoff",
                project_id=P,
                flag=False,
            ),
        ],
    ),
    (
        "partner",
        "KickoffOverdue",
        P,
        {"deadline_id": str(DEADLINE), "due_at": iso(KICKOFF_DUE)},
        [
            F("obligation_due", f"{P}:kickoff", KICKOFF_DUE, label="kickoff", project_id=P),
            F("obligation_breached", f"{P}:kickoff", KICKOFF_DUE, label="kickoff", project_id=P),
        ],
    ),
    (
        "partner",
        "MilestoneDelivered",
        P,
        {
            "milestone_id": "m1",
            "delivered_on": "2026-02-01",
            "due_on": "2026-01-31",
            "on_time": False,
            "note": "",
        },
        [
            F(
                "milestone_delivered",
                f"{P}:m1",
                eod(date(2026, 2, 1)),
                date(2026, 2, 1),
                project_id=P,
                flag=False,
            )
        ],
    ),
    (
        "partner",
        "MilestoneRejected",
        P,
        {"milestone_id": "m1", "reasons": ["缺少文档"]},
        [F("milestone_rejected", f"{P}:m1", project_id=P)],
    ),
    (
        "partner",
        "MilestoneAccepted",
        P,
        {"milestone_id": "m1"},
        [F("milestone_accepted", f"{P}:m1", project_id=P)],
    ),
    (
        "partner",
        "ComplaintReceived",
        P,
        {
            "complaint_id": "c1",
            "received_at": "2026-03-31T23:30:00+08:00",
            "severity": "high",
            "source": "客户",
            "summary": "延期",
        },
        [
            F(
                "complaint_received",
                f"{P}:c1",
                datetime(2026, 3, 31, 15, 30, tzinfo=UTC),
                date(2026, 3, 31),
                project_id=P,
                label="high",
                detail="unspecified",  # v1 knows no channel
            )
        ],
    ),
    (
        "partner",
        "ComplaintResponded",
        P,
        {"complaint_id": "c1", "response": "已处理"},
        [F("complaint_responded", f"{P}:c1", project_id=P)],
    ),
    (
        "partner",
        "ComplaintResolved",
        P,
        {"complaint_id": "c1", "resolution": "已解决"},
        [F("complaint_resolved", f"{P}:c1", project_id=P)],
    ),
    (
        "partner",
        "SatisfactionRecorded",
        P,
        {"survey_id": "s1", "score": 4, "respondent": "客户张三", "comment": ""},
        [F("satisfaction", f"{P}:s1", project_id=P, person="客户张三", value=Decimal(4))],
    ),
    (
        "partner",
        "TaskAssigned",
        P,
        {"task_id": "t1", "title": "巡检", "specialist": "sp.zhao", "due_on": "2026-03-20"},
        [
            F("task_assigned", f"{P}:t1", project_id=P, person="sp.zhao"),
            F(
                "task_due",
                f"{P}:t1",
                eod(date(2026, 3, 20)),
                date(2026, 3, 20),
                project_id=P,
                person="sp.zhao",
            ),
        ],
    ),
    (
        "partner",
        "TaskAcknowledged",
        P,
        {"task_id": "t1", "specialist": "sp.zhao"},
        [F("task_acknowledged", f"{P}:t1", project_id=P, person="sp.zhao")],
    ),
    (
        "partner",
        "TaskCompleted",
        P,
        {
            "task_id": "t1",
            "specialist": "sp.zhao",
            "completed_on": "2026-03-19",
            "due_on": "2026-03-20",
            "on_time": True,
        },
        [
            F(
                "task_completed",
                f"{P}:t1",
                eod(date(2026, 3, 19)),
                date(2026, 3, 19),
                project_id=P,
                person="sp.zhao",
                flag=True,
            )
        ],
    ),
    (
        "partner",
        "ReviewHeld",
        P,
        {
            "quarter": "2026-Q1",
            "held_on": "2026-03-25",
            "progress": "正常",
            "risk_rating": "low",
            "issues": [],
        },
        [
            F(
                "obligation_due",
                f"{P}:review:2026-Q1",
                eod(date(2026, 3, 31)),
                label="quarterly_review",
                project_id=P,
            ),
            F(
                "obligation_met",
                f"{P}:review:2026-Q1",
                eod(date(2026, 3, 25)),
                label="quarterly_review",
                project_id=P,
            ),
        ],
    ),
    (
        "partner",
        "QuarterlyReviewOverdue",
        P,
        {"deadline_id": str(DEADLINE), "quarter": "2026-Q1", "due_at": iso(eod(date(2026, 3, 31)))},
        [
            F(
                "obligation_due",
                f"{P}:review:2026-Q1",
                eod(date(2026, 3, 31)),
                label="quarterly_review",
                project_id=P,
            ),
            F(
                "obligation_breached",
                f"{P}:review:2026-Q1",
                eod(date(2026, 3, 31)),
                label="quarterly_review",
                project_id=P,
            ),
        ],
    ),
    (
        "partner",
        "ProjectClosed",
        P,
        {"outcome": "completed", "reason": "交付完成", "budget": "100000", "costs_total": "95000"},
        [
            F("project_closed", str(P), project_id=P, label="completed", value=Decimal(95000)),
            F("obligations_ended", str(P), project_id=P),
        ],
    ),
    (
        "partner",
        "FinalAcceptanceRecorded",
        P,
        {
            "accepted_on": "2026-03-28",
            "third_party": "福建省软件测评中心",
            "report_ref": "YS-1",
            "signatory": "王工",
        },
        [F("final_acceptance", str(P), T, date(2026, 3, 28), project_id=P)],
    ),
    (
        "partner",
        "IncidentReported",
        P,
        _incident(late=False),
        [
            F(
                "incident",
                f"{P}:i1",
                DETECTED,
                project_id=P,
                label="data_leak",
                detail="critical",
                value=Decimal("0.5"),
                flag=False,
            ),
            F("obligation_due", f"{P}:i1", LEAK_DUE, label="data_leak_report", project_id=P),
            F(
                "obligation_met",
                f"{P}:i1",
                T,
                label="data_leak_report",
                project_id=P,
                flag=True,
            ),
        ],
    ),
    (
        "partner",
        "IncidentReported",
        P,
        _incident(late=True),
        [
            F(
                "incident",
                f"{P}:i1",
                DETECTED,
                project_id=P,
                label="data_leak",
                detail="critical",
                value=Decimal("0.5"),
                flag=True,
            ),
            F("obligation_due", f"{P}:i1", LEAK_DUE, label="data_leak_report", project_id=P),
            F("obligation_breached", f"{P}:i1", LEAK_DUE, label="data_leak_report", project_id=P),
        ],
    ),
    (
        "partner",
        "IncidentReported",
        P,
        _incident(late=False, category="availability"),
        [
            F(
                "incident",
                f"{P}:i1",
                DETECTED,
                project_id=P,
                label="availability",
                detail="critical",
                value=Decimal("0.5"),
                flag=False,
            )
        ],
    ),
    (
        "partner",
        "InvestigationOpened",
        P,
        {"investigation_id": "v1", "incident_id": "i1"},
        [F("investigation_opened", f"{P}:v1", project_id=P, detail="i1")],
    ),
    (
        "partner",
        "InvestigationConcluded",
        P,
        {
            "investigation_id": "v1",
            "findings": "流程缺陷",
            "sanctions": [
                {"subject": "pm.wang", "subject_kind": "staff", "level": "warning"},
                {"subject": str(PARTNER), "subject_kind": "partner", "level": "serious_warning"},
            ],
        },
        [
            F("investigation_concluded", f"{P}:v1", project_id=P),
            F(
                "sanction",
                f"{P}:v1:1",
                project_id=P,
                person="pm.wang",
                label="warning",
                detail="staff",
            ),
            F("sanction", f"{P}:v1:2", project_id=P, label="serious_warning", detail="partner"),
        ],
    ),
    (
        "approval",
        "ApprovalRequested",
        A,
        {
            "kind": "procurement",
            "source": "partner.events",
            "project_id": str(P),
            "partner_id": str(PARTNER),
            "title": "甲项目采购",
            "amount": "100000",
            "currency": "CNY",
            "justification": "年度运维",
            "requested_by": "pm.wang",
            "steps": ["department_head", "finance", "ceo"],
            "approvers": {},
            "new_budget": None,
            "new_scope": None,
            "new_end_date": None,
            "new_value": None,
        },
        [
            F(
                "approval_requested",
                str(A),
                project_id=P,
                partner_id=PARTNER,
                person="pm.wang",
                label="procurement",
            )
        ],
    ),
    (
        "approval",
        "ApprovalStepOpened",
        A,
        {
            "step": "department_head",
            "round": 1,
            "assignee_role": "dept_head",
            "assignee": "dh.li",
            "opened_at": iso(OPENED),
            "due_at": iso(STEP_DUE),
        },
        [
            F(
                "obligation_due",
                STEP_SUBJECT,
                STEP_DUE,
                label="approval_step",
                person="dh.li",
                detail="department_head",
            )
        ],
    ),
    (
        "approval",
        "ApprovalStepApproved",
        A,
        _approved(late=False),
        [
            F(
                "obligation_met",
                STEP_SUBJECT,
                DECIDED,
                label="approval_step",
                person="dh.li",
                detail="department_head",
                flag=True,
            ),
            F(
                "approval_cycle",
                STEP_SUBJECT,
                DECIDED,
                person="dh.li",
                label="department_head",
                value=Decimal("30.5"),
            ),
        ],
    ),
    (
        "approval",
        "ApprovalReturned",
        A,
        {
            "step": "department_head",
            "round": 1,
            "requested_by": "pm.wang",
            "returned_by": "dh.li",
            "returned_by_role": "dept_head",
            "delegate_of": None,
            "reason": "补充材料",
            "opened_at": iso(OPENED),
            "returned_at": iso(STEP_DUE + timedelta(hours=1)),
            "on_time": False,
        },
        [
            F(
                "obligation_met",
                STEP_SUBJECT,
                STEP_DUE + timedelta(hours=1),
                label="approval_step",
                person="dh.li",
                detail="department_head",
                flag=False,
            ),
            F(
                "approval_cycle",
                STEP_SUBJECT,
                STEP_DUE + timedelta(hours=1),
                person="dh.li",
                label="department_head",
                value=Decimal(49),
            ),
        ],
    ),
    (
        "approval",
        "ApprovalStepOverdue",
        A,
        {
            "deadline_id": str(DEADLINE),
            "step": "department_head",
            "round": 1,
            "assignee_role": "dept_head",
            "assignee": "dh.li",
            "due_at": iso(STEP_DUE),
        },
        [
            F(
                "obligation_breached",
                STEP_SUBJECT,
                STEP_DUE,
                label="approval_step",
                detail="department_head",
            )
        ],
    ),
    (
        "approval",
        "ProcurementRejected",
        A,
        {
            "request_id": str(A),
            "project_id": str(P),
            "step": "finance",
            "reason": "预算不足",
            "rejected_by": "fin.zhao",
            "delegate_of": None,
            "rejected_at": iso(DECIDED),
        },
        [
            F(
                "obligation_met",
                OPEN_STEP,
                DECIDED,
                label="approval_step",
                person="fin.zhao",
                detail="finance",
            )
        ],
    ),
    (
        "approval",
        "DirectorDecisionRejected",
        A,
        {
            "decision_id": str(A),
            "project_id": str(P),
            "kind": "budget_increase",
            "reason": "不批",
            "decided_at": iso(DECIDED),
        },
        [F("obligation_met", OPEN_STEP, DECIDED, label="approval_step", person="director.zhang")],
    ),
    (
        "approval",
        "EmergencyActionRecorded",
        E,
        {
            "project_id": str(P),
            "what_happened": "服务器故障",
            "action_taken": "调配资源",
            "resources_changed": ["服务器"],
            "acted_at": iso(ACTED),
            "recorded_by": "pm.wang",
            "explanation_due_at": iso(EXPLAIN_DUE),
        },
        [
            F("emergency_action", str(E), ACTED, project_id=P, person="pm.wang"),
            F(
                "obligation_due",
                str(E),
                EXPLAIN_DUE,
                label="emergency_explanation",
                project_id=P,
                person="pm.wang",
            ),
        ],
    ),
    (
        "approval",
        "EmergencyExplanationFiled",
        E,
        {
            "explanation": "书面说明",
            "filed_by": "pm.wang",
            "filed_at": iso(T),
            "due_at": iso(EXPLAIN_DUE),
            "on_time": True,
        },
        [F("obligation_met", str(E), T, label="emergency_explanation", flag=True)],
    ),
    (
        "approval",
        "EmergencyExplanationOverdue",
        E,
        {
            "deadline_id": str(DEADLINE),
            "project_id": str(P),
            "recorded_by": "pm.wang",
            "due_at": iso(EXPLAIN_DUE),
        },
        [F("obligation_breached", str(E), EXPLAIN_DUE, label="emergency_explanation")],
    ),
    (
        "docs",
        "MeetingHeld",
        M,
        {
            "kind": "weekly_department",
            "title": "部门周例会",
            "project_id": None,
            "held_at": iso(HELD),
            "chaired_by": "director.zhang",
            "attendees": ["director.zhang", "pm.wang"],
            "minutes_due_at": iso(MINUTES_DUE),
            "owners_due_at": iso(OWNER_DUE),
            "source": "api",
        },
        [
            F("meeting", str(M), HELD, person="director.zhang", label="weekly_department"),
            F(
                "obligation_due",
                f"{M}:minutes",
                MINUTES_DUE,
                label="minutes",
                person="director.zhang",
                detail="weekly_department",
            ),
        ],
    ),
    (
        "docs",
        "MinutesFiled",
        M,
        {
            "kind": "weekly_department",
            "project_id": None,
            "document_id": str(DOC_ID),
            "document_name": "信息技术部-2026-03-09-会议纪要",
            "filed_by": "director.zhang",
            "filed_at": iso(T),
            "due_at": iso(MINUTES_DUE),
            "on_time": True,
        },
        [F("obligation_met", f"{M}:minutes", T, label="minutes", flag=True)],
    ),
    (
        "docs",
        "MinutesOverdue",
        M,
        {
            "deadline_id": str(DEADLINE),
            "kind": "weekly_department",
            "project_id": None,
            "chaired_by": "director.zhang",
            "due_at": iso(MINUTES_DUE),
        },
        [F("obligation_breached", f"{M}:minutes", MINUTES_DUE, label="minutes")],
    ),
    (
        "docs",
        "ResolutionRecorded",
        M,
        {
            "resolution_id": "r1",
            "project_id": str(P),
            "text": "完成巡检",
            "owner_due_at": iso(OWNER_DUE),
        },
        [F("obligation_due", OWNER_SUBJECT, OWNER_DUE, label="resolution_owner", project_id=P)],
    ),
    (
        "docs",
        "ResolutionAssigned",
        M,
        _resolution_assigned(1),
        [
            F(
                "obligation_met",
                OWNER_SUBJECT,
                T,
                label="resolution_owner",
                project_id=P,
                flag=True,
            ),
            F(
                "obligation_due",
                A1_SUBJECT,
                DEADLINE_AT,
                label="resolution",
                project_id=P,
                person="pm.li",
            ),
        ],
    ),
    (
        "docs",
        "ResolutionAssigned",
        M,
        _resolution_assigned(2),
        [
            F("obligation_cancelled", A1_SUBJECT, T, label="resolution"),
            F(
                "obligation_due",
                f"{M}:r1:a2",
                DEADLINE_AT,
                label="resolution",
                project_id=P,
                person="pm.li",
            ),
        ],
    ),
    (
        "docs",
        "ResolutionOwnerOverdue",
        M,
        {
            "deadline_id": str(DEADLINE),
            "resolution_id": "r1",
            "project_id": str(P),
            "chaired_by": "director.zhang",
            "due_at": iso(OWNER_DUE),
        },
        [
            F(
                "obligation_breached",
                OWNER_SUBJECT,
                OWNER_DUE,
                label="resolution_owner",
                project_id=P,
            )
        ],
    ),
    (
        "docs",
        "ResolutionCompleted",
        M,
        {
            "resolution_id": "r1",
            "project_id": str(P),
            "assignment": 1,
            "owner": "pm.li",
            "note": "",
            "completed_at": iso(T),
            "deadline": iso(DEADLINE_AT),
            "on_time": True,
        },
        [
            F(
                "obligation_met",
                A1_SUBJECT,
                T,
                label="resolution",
                project_id=P,
                person="pm.li",
                flag=True,
            )
        ],
    ),
    (
        "docs",
        "ResolutionOverdue",
        M,
        {
            "deadline_id": str(DEADLINE),
            "resolution_id": "r1",
            "project_id": str(P),
            "assignment": 1,
            "owner": "pm.li",
            "deadline": iso(DEADLINE_AT),
        },
        [
            F(
                "obligation_breached",
                A1_SUBJECT,
                DEADLINE_AT,
                label="resolution",
                project_id=P,
                person="pm.li",
            )
        ],
    ),
    (
        "docs",
        "ReportPeriodOpened",
        S,
        {
            "project_id": str(P),
            "kind": "monthly",
            "period": "2026-03",
            "period_start": "2026-03-01",
            "period_end": "2026-03-31",
            "due_at": iso(REPORT_DUE),
            "project_manager": "pm.wang",
        },
        [
            F(
                "obligation_due",
                f"{P}:monthly:2026-03",
                REPORT_DUE,
                label="report",
                project_id=P,
                person="pm.wang",
                detail="monthly",
            )
        ],
    ),
    (
        "docs",
        "ReportFiled",
        S,
        _report("ReportFiled"),
        [
            F(
                "obligation_due",
                f"{P}:monthly:2026-03",
                REPORT_DUE,
                label="report",
                project_id=P,
                detail="monthly",
            ),
            F(
                "obligation_met",
                f"{P}:monthly:2026-03",
                T,
                label="report",
                project_id=P,
                detail="monthly",
                flag=True,
            ),
        ],
    ),
    (
        "docs",
        "ReportFiledLate",
        S,
        _report("ReportFiledLate"),
        [
            F(
                "obligation_due",
                f"{P}:monthly:2026-03",
                REPORT_DUE,
                label="report",
                project_id=P,
                detail="monthly",
            ),
            F(
                "obligation_met",
                f"{P}:monthly:2026-03",
                T,
                label="report",
                project_id=P,
                detail="monthly",
                flag=False,
            ),
        ],
    ),
    (
        "docs",
        "ReportOverdue",
        S,
        {
            "deadline_id": str(DEADLINE),
            "project_id": str(P),
            "kind": "monthly",
            "period": "2026-03",
            "due_at": iso(REPORT_DUE),
            "project_manager": "pm.wang",
        },
        [
            F(
                "obligation_due",
                f"{P}:monthly:2026-03",
                REPORT_DUE,
                label="report",
                project_id=P,
                detail="monthly",
            ),
            F(
                "obligation_breached",
                f"{P}:monthly:2026-03",
                REPORT_DUE,
                label="report",
                project_id=P,
                detail="monthly",
            ),
        ],
    ),
    (
        "docs",
        "ReportScheduleClosed",
        S,
        {"project_id": str(P), "reason": "项目关闭", "closed_at": iso(DECIDED)},
        [F("obligations_ended", str(S), DECIDED, project_id=P, label="report")],
    ),
    (
        "docs",
        "DocumentFiled",
        D,
        {
            "doc_type": "周报",
            "name": "甲项目-2026年3月-周报",
            "project_id": str(P),
            "meeting_id": None,
            "contract_number": None,
            "period": "2026-W11",
            "period_start": "2026-03-09",
            "period_end": "2026-03-15",
            "file_name": "weekly.pdf",
            "media_type": "application/pdf",
            "size": 1024,
            "sha256": "0" * 64,
            "content_id": str(DOC_ID),
            "encrypted": False,
            "note": "",
            "filed_by": "sp.zhao",
            "filed_at": iso(T),
        },
        [
            F("document_filed", str(D), T, project_id=P, person="sp.zhao", label="周报"),
        ],
    ),
    (
        "docs",
        "DocumentReviewed",
        D,
        {
            "doc_type": "周报",
            "project_id": str(P),
            "version": 2,
            "filed_by": "sp.zhao",
            "reviewer": "pm.wang",
            "outcome": "needs_correction",
            "reasons": ["格式"],
            "reviewed_at": iso(T),
        },
        [
            F(
                "document_reviewed",
                f"{D}:2",
                T,
                project_id=P,
                person="sp.zhao",
                label="周报",
                flag=False,
            )
        ],
    ),
    (
        "kpi",
        "TrainingHeld",
        DEPT,
        {
            "training_id": str(TRAINING),
            "title": "ITIL 4",
            "held_on": "2026-03-09",
            "hours": 3.5,
            "attendees": ["sp.zhao", "pm.wang"],
        },
        [
            F(
                "training_attended",
                f"{TRAINING}:sp.zhao",
                eod(date(2026, 3, 9)),
                date(2026, 3, 9),
                person="sp.zhao",
                value=Decimal("3.5"),
            ),
            F(
                "training_attended",
                f"{TRAINING}:pm.wang",
                eod(date(2026, 3, 9)),
                date(2026, 3, 9),
                person="pm.wang",
                value=Decimal("3.5"),
            ),
        ],
    ),
    (
        "kpi",
        "TrainingYearClosed",
        DEPT,
        {
            "deadline_id": str(DEADLINE),
            "user_id": "sp.zhao",
            "role": "specialist",
            "year": 2026,
            "attended": 3,
            "target": 4,
            "met": False,
        },
        [
            F(
                "obligation_due",
                "sp.zhao:training:2026",
                eod(date(2026, 12, 31)),
                label="training",
                person="sp.zhao",
                detail="specialist",
                value=Decimal(4),
            ),
            F(
                "obligation_breached",
                "sp.zhao:training:2026",
                eod(date(2026, 12, 31)),
                label="training",
                person="sp.zhao",
                value=Decimal(3),
            ),
        ],
    ),
    (
        "kpi",
        "TrainingYearClosed",
        DEPT,
        {
            "deadline_id": str(DEADLINE),
            "user_id": "pm.wang",
            "role": "project_manager",
            "year": 2026,
            "attended": 4,
            "target": 4,
            "met": True,
        },
        [
            F(
                "obligation_due",
                "pm.wang:training:2026",
                eod(date(2026, 12, 31)),
                label="training",
                person="pm.wang",
                detail="project_manager",
                value=Decimal(4),
            ),
            F(
                "obligation_met",
                "pm.wang:training:2026",
                eod(date(2026, 12, 31)),
                label="training",
                person="pm.wang",
                value=Decimal(4),
                flag=True,
            ),
        ],
    ),
]


SELF_DUE = eod(date(2026, 4, 5))


def _opened(kind: str) -> dict[str, Any]:
    return {
        "user_id": "sp.zhao",
        "name": "赵专员",
        "role": "specialist",
        "superior": "pm.wang",
        "kind": kind,
        "period": "2026-03" if kind == "self" else "2026-Q1",
        "period_start": "2026-03-01" if kind == "self" else "2026-01-01",
        "period_end": "2026-03-31",
        "due_at": iso(SELF_DUE),
    }


def _submitted(superior: bool, on_time: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user_id": "sp.zhao",
        "period": "2026-03",
        "rating": 4,
        "strengths": "响应快",
        "improvements": "文档",
        "comment": None,
        "due_at": iso(SELF_DUE),
        "submitted_at": iso(T),
        "on_time": on_time,
    }
    if superior:
        body |= {"assessor": "pm.wang", "assessor_role": "project_manager"}
    return body


CASES += [
    (
        "kpi",
        "EvaluationOpened",
        EV,
        _opened("self"),
        [
            F(
                "obligation_due",
                str(EV),
                SELF_DUE,
                label="evaluation",
                person="sp.zhao",
                detail="self",
            )
        ],
    ),
    (
        "kpi",
        "EvaluationOpened",
        EV,
        _opened("superior"),
        [
            F(
                "obligation_due",
                str(EV),
                SELF_DUE,
                label="evaluation",
                person="pm.wang",  # the superior owes the quarterly assessment
                detail="superior",
            )
        ],
    ),
    (
        "kpi",
        "SelfAssessmentSubmitted",
        EV,
        _submitted(superior=False, on_time=True),
        [F("obligation_met", str(EV), T, label="evaluation", flag=True)],
    ),
    (
        "kpi",
        "SuperiorAssessmentSubmitted",
        EV,
        _submitted(superior=True, on_time=False),
        [F("obligation_met", str(EV), T, label="evaluation", flag=False)],
    ),
    (
        "kpi",
        "SelfAssessmentOverdue",
        EV,
        {
            "user_id": "sp.zhao",
            "period": "2026-03",
            "due_at": iso(SELF_DUE),
            "deadline_id": str(DEADLINE),
            "owed_by": "sp.zhao",
            "superior": "pm.wang",
        },
        [F("obligation_breached", str(EV), SELF_DUE, label="evaluation", person="sp.zhao")],
    ),
    (
        "kpi",
        "SuperiorAssessmentOverdue",
        EV,
        {
            "user_id": "pm.li",
            "period": "2026-Q1",
            "due_at": iso(SELF_DUE),
            "deadline_id": str(DEADLINE),
            "owed_by": None,  # nobody above to assess
        },
        [F("obligation_breached", str(EV), SELF_DUE, label="evaluation")],
    ),
]


def test_the_table_covers_every_mapped_event_type() -> None:
    """R6.1, R3.5: every event type the facts consumer reads has a case below."""
    assert {(source, event_type) for source, event_type, *_ in CASES} == set(MAPPERS)


@pytest.mark.parametrize(
    ("source", "event_type", "aggregate", "payload", "expected"),
    CASES,
    ids=[f"{c[1]}-{n}" for n, c in enumerate(CASES)],
)
def test_each_event_maps_to_its_documented_facts(
    source: str, event_type: str, aggregate: UUID, payload: dict[str, Any], expected: list[Fact]
) -> None:
    """R6.1, R3.5, R1.2: the facts of one event (payload fitting the published
    schema), field by field, in order."""
    event = envelope(source, event_type, aggregate, payload)
    assert facts_of(source, event, POLICY) == expected


def test_days_are_policy_zone_days_R3_5() -> None:
    """R3.5: 2026-03-31T23:30+08:00 (15:30Z) counts on March 31 and
    2026-04-01T00:10+08:00 (March 31 in UTC) on April 1; the event's own
    moment decides when the payload names none."""

    def received(text: str) -> Fact:
        payload = {
            "complaint_id": "c9",
            "received_at": text,
            "severity": "low",
            "source": "客户",
            "summary": "",
        }
        (fact,) = facts_of("partner", envelope("partner", "ComplaintReceived", P, payload), POLICY)
        return fact

    march = received("2026-03-31T23:30:00+08:00")
    assert (march.at, march.day) == (datetime(2026, 3, 31, 15, 30, tzinfo=UTC), date(2026, 3, 31))
    april = received("2026-04-01T00:10:00+08:00")
    assert (april.at, april.day) == (datetime(2026, 3, 31, 16, 10, tzinfo=UTC), date(2026, 4, 1))

    ack = {"task_id": "t1", "specialist": "sp.zhao"}
    for moment, day in (
        (datetime(2026, 3, 31, 15, 59, 59, tzinfo=UTC), date(2026, 3, 31)),
        (datetime(2026, 3, 31, 16, 0, tzinfo=UTC), date(2026, 4, 1)),
    ):
        event = envelope("partner", "TaskAcknowledged", P, ack, at=moment)
        assert [f.day for f in facts_of("partner", event, POLICY)] == [day]


def test_due_moments_are_the_end_of_the_day_in_the_policy_zone_R3_5() -> None:
    """R3.5: a milestone due 2026-01-31 falls due at 2026-01-31 23:59:59.999999
    in Shanghai (15:59:59.999999Z); a delivery on 2026-02-01 is dated that day."""
    facts = facts_of("partner", envelope("partner", "ProjectCreated", P, _project()), POLICY)
    due = [f for f in facts if f.kind == "milestone_due"]
    assert [(f.at, f.day) for f in due] == [
        (datetime(2026, 1, 31, 15, 59, 59, 999999, tzinfo=UTC), date(2026, 1, 31)),
        (datetime(2026, 3, 31, 15, 59, 59, 999999, tzinfo=UTC), date(2026, 3, 31)),
    ]
    assert POLICY.clock.end_of_day(date(2026, 1, 31)) == due[0].at


def test_a_complaint_v2_counts_like_v1_with_its_channel_R6_1() -> None:
    """R6.1: ComplaintReceived v2 (with the channel) gives the same complaint
    fact as v1, its channel as detail; v1 has "unspecified"."""
    body = {
        "complaint_id": "c1",
        "received_at": "2026-04-01T00:10:00+08:00",
        "severity": "low",
        "source": "客户",
        "summary": "",
    }
    v1 = envelope("partner", "ComplaintReceived", P, body)
    v2 = envelope("partner", "ComplaintReceived", P, {**body, "channel": "phone"}, schema_version=2)
    (one,) = facts_of("partner", v1, POLICY)
    (two,) = facts_of("partner", v2, POLICY)
    assert (one.day, one.label, one.detail) == (date(2026, 4, 1), "low", "unspecified")
    assert two == Fact(**{**one.__dict__, "detail": "phone"})
    v3 = envelope("partner", "ComplaintReceived", P, body, check=False, schema_version=3)
    with pytest.raises(PoisonEvent, match="v3 is not understood"):
        facts_of("partner", v3, POLICY)


@pytest.mark.parametrize(
    ("event_type", "flag"), [("ReportFiled", True), ("ReportFiledLate", False)]
)
def test_report_filings_carry_their_on_time_flag_R4_3(event_type: str, flag: bool) -> None:
    """R4.3, R3.5: ReportFiled is met on time, ReportFiledLate met late; each
    also states the period's due moment (fix 10)."""
    event = envelope("docs", event_type, S, _report(event_type))
    assert [(f.kind, f.flag) for f in facts_of("docs", event, POLICY)] == [
        ("obligation_due", None),
        ("obligation_met", flag),
    ]


@pytest.mark.parametrize("event_type", ["ReportFiled", "ReportFiledLate"])
def test_a_filed_report_is_owed_from_its_own_due_moment_R4_3(event_type: str) -> None:
    """R4.3, R3.5 (regression, fix 10): a period filed early, before the engine
    opened it, is still an obligation: the filing brings its `obligation_due`
    from `due_at`, on the same subject as the met fact."""
    early = {**_report(event_type), "filed_at": iso(REPORT_DUE - timedelta(days=20))}
    facts = facts_of("docs", envelope("docs", event_type, S, early), POLICY)
    due = [f for f in facts if f.kind == "obligation_due"]
    met = [f for f in facts if f.kind == "obligation_met"]
    assert [(f.subject, f.at, f.label) for f in due] == [
        (f"{P}:monthly:2026-03", REPORT_DUE, "report")
    ]
    assert [f.subject for f in met] == [f"{P}:monthly:2026-03"]


def test_an_overdue_report_is_owed_even_if_no_period_was_opened_R4_3() -> None:
    """R4.3, R3.5 (regression, fix 10): ReportOverdue states the due moment
    itself, so a breach without a ReportPeriodOpened still counts as missed."""
    body = {
        "deadline_id": str(DEADLINE),
        "project_id": str(P),
        "kind": "weekly",
        "period": "2026-W11",
        "due_at": iso(REPORT_DUE),
        "project_manager": "pm.wang",
    }
    facts = facts_of("docs", envelope("docs", "ReportOverdue", S, body), POLICY)
    assert [(f.kind, f.subject, f.at) for f in facts] == [
        ("obligation_due", f"{P}:weekly:2026-W11", REPORT_DUE),
        ("obligation_breached", f"{P}:weekly:2026-W11", REPORT_DUE),
    ]


def _recorded(meeting: UUID) -> EventEnvelope:
    body = {
        "resolution_id": "R1",
        "project_id": str(P),
        "text": "完成巡检",
        "owner_due_at": iso(OWNER_DUE),
    }
    return envelope("docs", "ResolutionRecorded", meeting, body)


def test_resolutions_of_two_meetings_are_two_obligations_R4_2() -> None:
    """R4.2, R3.5 (regression, fix 1): resolution ids are numbered per
    meeting, so two meetings' R1 are two owner obligations and two
    resolution obligations, not one."""
    other = UUID("dddddddd-dddd-4ddd-8ddd-dddddddddddd")
    owners = {f.subject for m in (M, other) for f in facts_of("docs", _recorded(m), POLICY)}
    assert owners == {f"{M}:R1:owner", f"{other}:R1:owner"}
    assigned = {
        f.subject
        for m in (M, other)
        for f in facts_of(
            "docs",
            envelope(
                "docs", "ResolutionAssigned", m, {**_resolution_assigned(1), "resolution_id": "R1"}
            ),
            POLICY,
        )
        if f.kind == "obligation_due"
    }
    assert assigned == {f"{M}:R1:a1", f"{other}:R1:a1"}


def test_a_reassignment_cancels_the_previous_assignment_R4_2() -> None:
    """R4.2, R3.5 (regression, fix 1): assignment n cancels assignment n-1 at
    the moment of the hand-over and is itself a new obligation; completion
    and overdue name their assignment, so the old owner's and the new
    owner's deadlines never merge."""
    third = {**_resolution_assigned(3), "owner": "sp.zhao", "assigned_at": iso(DECIDED)}
    facts = facts_of("docs", envelope("docs", "ResolutionAssigned", M, third), POLICY)
    assert [(f.kind, f.subject, f.at, f.label, f.person) for f in facts] == [
        ("obligation_cancelled", f"{M}:r1:a2", DECIDED, "resolution", None),
        ("obligation_due", f"{M}:r1:a3", DEADLINE_AT, "resolution", "sp.zhao"),
    ]
    done = {
        "resolution_id": "r1",
        "project_id": str(P),
        "assignment": 3,
        "owner": "sp.zhao",
        "note": "",
        "completed_at": iso(T),
        "deadline": iso(DEADLINE_AT),
        "on_time": True,
    }
    (met,) = facts_of("docs", envelope("docs", "ResolutionCompleted", M, done), POLICY)
    assert (met.kind, met.subject) == ("obligation_met", f"{M}:r1:a3")


def test_only_an_approval_sets_the_approved_budget_R6_1() -> None:
    """R6.1, R5.2 (regression, fix 5): the planned budget of ProjectCreated and
    a BudgetChanged without a Director decision are `planned_budget`; the
    procurement approval's amount and a decided change are `approved_budget`;
    ProjectClosed no longer restates a budget."""
    kinds = {
        name: [f.kind for f in facts_of("partner", envelope("partner", t, P, body), POLICY)]
        for name, t, body in (
            ("created", "ProjectCreated", _project()),
            (
                "raised",
                "BudgetChanged",
                {"old_budget": "1", "new_budget": "2", "reason": "x", "decision_id": None},
            ),
            (
                "decided",
                "BudgetChanged",
                {"old_budget": "1", "new_budget": "2", "reason": "x", "decision_id": str(A)},
            ),
            (
                "granted",
                "ProcurementApprovalGranted",
                {"request_id": str(A), "approved_at": iso(T), "approved_amount": 90000},
            ),
            (
                "closed",
                "ProjectClosed",
                {"outcome": "completed", "reason": "", "budget": "9", "costs_total": "8"},
            ),
        )
    }
    assert "approved_budget" not in kinds["created"] and "planned_budget" in kinds["created"]
    assert kinds["raised"] == ["planned_budget"]
    assert kinds["decided"] == ["approved_budget"]
    assert kinds["granted"] == ["approved_budget"]
    assert kinds["closed"] == ["project_closed", "obligations_ended"]


def test_closings_end_the_obligations_still_ahead_R3_5() -> None:
    """R3.5 (regression, fix 3): ProjectClosed ends every obligation type of
    the project (label None) at its moment; ReportScheduleClosed ends the
    reports (label `report`) at `closed_at`."""
    closed = envelope(
        "partner",
        "ProjectClosed",
        P,
        {"outcome": "terminated", "reason": "", "budget": "9", "costs_total": "8"},
        at=DECIDED,
    )
    ended = [f for f in facts_of("partner", closed, POLICY) if f.kind == "obligations_ended"]
    assert [(f.project_id, f.at, f.label) for f in ended] == [(P, DECIDED, None)]
    body = {"project_id": str(P), "reason": "项目关闭", "closed_at": iso(DECIDED)}
    (end,) = facts_of("docs", envelope("docs", "ReportScheduleClosed", S, body, at=T), POLICY)
    assert (end.kind, end.project_id, end.at, end.label) == (
        "obligations_ended",
        P,
        DECIDED,
        "report",
    )


def test_drill_down_payloads_drop_the_private_parts_R6_2() -> None:
    """R6.2 (regression, fix 2): what `fact_events.payload` keeps of an
    assessment has no rating, strengths, improvements or comment, and of a
    concluded investigation no findings; other payloads are kept whole."""
    for event_type, superior in (
        ("SelfAssessmentSubmitted", False),
        ("SuperiorAssessmentSubmitted", True),
    ):
        body = {**_submitted(superior=superior, on_time=True), "comment": "私下的话"}
        kept = kept_payload(envelope("kpi", event_type, EV, body))
        assert not {"rating", "strengths", "improvements", "comment"} & set(kept), event_type
        assert kept["user_id"] == "sp.zhao" and kept["on_time"] is True
        assert ("assessor" in kept) is superior
    concluded = envelope(
        "partner",
        "InvestigationConcluded",
        P,
        {"investigation_id": "v1", "findings": "流程缺陷", "sanctions": []},
    )
    assert kept_payload(concluded) == {"investigation_id": "v1", "sanctions": []}
    report = envelope("docs", "ReportFiled", S, _report("ReportFiled"))
    assert kept_payload(report) == report.payload


@pytest.mark.parametrize(
    ("source", "event_type"),
    [
        ("partner", "PartnerRegistered"),
        ("partner", "NoSuchEvent"),
        ("docs", "ProjectCreated"),
        ("approval", "ProcurementApproved"),
        ("kpi", "StaffJoined"),
    ],
)
def test_events_no_kpi_reads_map_to_no_facts(source: str, event_type: str) -> None:
    """R6.1: an event type no KPI reads (or a known type from another source)
    contributes nothing; its payload is not even read."""
    event = envelope(source, event_type, P, {"anything": 1}, check=False)
    assert facts_of(source, event, POLICY) == []


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        ("MilestoneDelivered", {"milestone_id": "m1", "delivered_on": "2026-02-01"}),
        (
            "MilestoneDelivered",
            {
                "milestone_id": "m1",
                "delivered_on": "yesterday",
                "due_on": "2026-01-31",
                "on_time": False,
                "note": "",
            },
        ),
        (
            "ComplaintReceived",
            {
                "complaint_id": "c1",
                "received_at": "2026-03-31T23:30:00",  # no offset: not an aware moment
                "severity": "high",
                "source": "客户",
                "summary": "",
            },
        ),
        ("SatisfactionRecorded", {"survey_id": "s", "score": 9, "respondent": "x", "comment": ""}),
        ("ProjectCreated", _project(budget="lots")),
    ],
)
def test_a_payload_off_its_contract_is_poison(event_type: str, payload: dict[str, Any]) -> None:
    """R6.1: a payload that does not fit the contract raises PoisonEvent (parked,
    never retried forever), naming the event type."""
    event = envelope("partner", event_type, P, payload, check=False)
    with pytest.raises(PoisonEvent, match=event_type):
        facts_of("partner", event, POLICY)


def test_an_unknown_schema_version_is_poison() -> None:
    """R6.1: a payload version the reader does not know is parked, not guessed at."""
    event = envelope("partner", "ProjectCreated", P, _project(), check=False, schema_version=2)
    with pytest.raises(PoisonEvent, match="v2 is not understood"):
        facts_of("partner", event, POLICY)


def test_the_schema_check_of_these_tests_refuses_off_schema_payloads() -> None:
    """R6.1 (the event contract the facts rest on): the payloads above are
    held against the published schemas; the check itself refuses a missing
    field, an unknown one and a wrong type."""
    good = {"milestone_id": "m1", "reasons": ["x"]}
    published("partner", "MilestoneRejected", good)
    for bad in ({"milestone_id": "m1"}, {**good, "extra": 1}, {**good, "reasons": "x"}):
        with pytest.raises(AssertionError):
            published("partner", "MilestoneRejected", bad)
