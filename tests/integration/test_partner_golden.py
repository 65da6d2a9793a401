"""The golden scenario: one partner and one project from registration to
closure, through the HTTP API, on real PostgreSQL and Kafka. The approval
service's outcomes arrive as `approval.events` messages (the agreed schemas),
consumed by the partner service; its own events leave on `partner.events`.

R2.1 partner due diligence and qualification, R3.1 procurement approval before
the contract, R3.2 kickoff, R6.1 deliveries, tasks, complaints, costs and
satisfaction, R3.3 quarterly review, R6.4 a late data-leak report with its
investigation and sanctions, R5.2 a major budget decision, R3.4 final
acceptance with the third party, R1.2 closure.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.partner.application import PartnerApplication
from services.partner.service import SPEC as PARTNER
from shared.clock import ManualClock
from shared.envelope import ActorRef, EventEnvelope
from shared.settings import Settings
from tests.support.apps import RunningService, running
from tests.support.auth import auth
from tests.support.data import registration
from tests.support.events import produce, read_topic
from tests.support.partner_flow import SPECIALIST, THIRD_PARTY, Flow, scores
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SHANGHAI = timedelta(hours=8)


def local(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - SHANGHAI


def outcome(event_type: str, payload: dict[str, Any], actor: str, role: str) -> EventEnvelope:
    now = datetime.now(UTC)
    return EventEnvelope(
        event_id=uuid.uuid4(),
        event_type=event_type,
        schema_version=1,
        aggregate_type="ApprovalRequest",
        aggregate_id=uuid.uuid4(),
        aggregate_version=4,
        occurred_at=now,
        recorded_at=now,
        actor=ActorRef(user_id=actor, role=role),
        correlation_id=uuid.uuid4(),
        payload=payload,
    )


async def deliver(service: RunningService, settings: Settings, event: EventEnvelope) -> None:
    """Publishes an approval outcome and waits until the partner service's
    consumer has applied it (its stored offset moved past it)."""
    (offset,) = await produce(settings, settings.topic_of("approval"), [event])
    group = f"{settings.consumer_group_of('partner')}.approvals"

    async def applied() -> bool:
        stored = await service.runtime.pool.fetchval(
            "SELECT next_offset FROM consumer_offsets WHERE consumer_group = $1 AND partition = 0",
            group,
        )
        return stored is not None and stored > offset

    await wait_until(applied, within=60, what=f"{event.event_type} applied")


async def test_one_project_from_registration_to_closure(settings: Settings) -> None:
    clock = ManualClock(local(date(2026, 11, 2)))
    async with running(PARTNER, settings, clock=clock) as service:
        app = service.runtime.application
        assert isinstance(app, PartnerApplication)
        flow = Flow(service.client, settings, app)

        # R2.1: registration, due diligence by a specialist, the Director qualifies.
        partner = await flow.ok("POST", "/v1/partners", flow.pm, json=registration(1))
        await flow.ok(
            "POST",
            f"/v1/partners/{partner['id']}/evaluations",
            flow.specialist,
            json={
                "scores": scores(5),
                "qualifications": [
                    {
                        "name": "ISO/IEC 27001",
                        "certificate_no": "27001-88",
                        "expires_on": "2028-06-30",
                    },
                    {"name": "CMMI 3", "certificate_no": "CMMI-3-1", "expires_on": "2027-09-30"},
                ],
                "summary": "技术能力强，财务稳健",
            },
        )
        qualified = await flow.ok(
            "POST",
            f"/v1/partners/{partner['id']}/qualification",
            flow.director,
            json={"reason": "尽职调查通过"},
        )
        assert qualified["status"] == "qualified"
        assert qualified["valid_until"] == "2027-09-30"  # the earliest certificate expiry
        vendor_headers = auth(settings, "vendor.lin", "partner", partner_id=partner["id"])

        # Plan and R3.1 procurement approval through the approval service.
        project = await flow.ok(
            "POST",
            "/v1/projects",
            flow.pm,
            json=flow.project_body(partner["id"], date(2026, 12, 20)),
        )
        pid = project["id"]
        requested = await flow.ok(
            "POST",
            f"/v1/projects/{pid}/procurement-approval-requests",
            flow.pm,
            json={"justification": "核心系统运维外包"},
        )
        assert requested["status"] == "awaiting_approval"
        refused = await flow.client.post(
            f"/v1/projects/{pid}/contract",
            headers=flow.pm,
            json=flow.contract_body(date(2026, 11, 5)),
        )
        assert refused.status_code == 409 and refused.json()["rule"] == "R3.1"
        await deliver(
            service,
            settings,
            outcome(
                "ProcurementApproved",
                {
                    "request_id": requested["approval_request_id"],
                    "project_id": pid,
                    "amount": "1000000.00",
                    "currency": "CNY",
                    "approved_at": local(date(2026, 11, 4)).isoformat(),
                    "steps": [],
                },
                "ceo.chen",
                "ceo",
            ),
        )
        assert (await flow.ok("GET", f"/v1/projects/{pid}", flow.pm))["status"] == "approved"

        # Contract (the partner becomes active), R3.2 kickoff within 7 days.
        clock.set(local(date(2026, 11, 5)))
        signed = await flow.ok(
            "POST",
            f"/v1/projects/{pid}/contract",
            flow.pm,
            json=flow.contract_body(date(2026, 11, 5)),
        )
        assert signed["contract"]["kickoff_due_at"] == "2026-11-12T15:59:59.999999Z"
        partner_now = await flow.ok("GET", f"/v1/partners/{partner['id']}", flow.pm)
        assert partner_now["status"] == "active"
        clock.set(local(date(2026, 11, 9), 17))
        await flow.ok(
            "POST",
            f"/v1/projects/{pid}/kickoff",
            flow.pm,
            json=flow.kickoff_body(date(2026, 11, 9)),
        )

        # R6.1: a task, deliveries by the partner, acceptance by the PM.
        await flow.ok(
            "POST",
            f"/v1/projects/{pid}/tasks",
            flow.pm,
            json={
                "task_id": "T1",
                "title": "上线检查",
                "specialist": SPECIALIST,
                "due_on": "2026-11-20",
            },
        )
        await flow.ok("POST", f"/v1/projects/{pid}/tasks/T1/acknowledgement", flow.specialist)
        clock.set(local(date(2026, 11, 19)))
        done = await flow.ok("POST", f"/v1/projects/{pid}/tasks/T1/completion", flow.specialist)
        assert done["tasks"][0]["status"] == "completed"
        clock.set(local(date(2026, 12, 18), 17))
        first = await flow.ok(
            "POST",
            f"/v1/projects/{pid}/milestones/M1/deliveries",
            vendor_headers,
            json={"delivered_on": "2026-12-18", "note": "已上线"},
        )
        assert first["milestones"][0]["on_time"] is True
        await flow.ok(
            "POST",
            f"/v1/projects/{pid}/milestones/M1/acceptance",
            flow.pm,
            json={"accepted": False, "reasons": ["缺少运维手册"]},
        )
        clock.set(local(date(2026, 12, 22), 17))
        await flow.ok(
            "POST",
            f"/v1/projects/{pid}/milestones/M1/deliveries",
            vendor_headers,
            json={"delivered_on": "2026-12-22", "note": "补充手册"},
        )
        late = await flow.ok(
            "POST", f"/v1/projects/{pid}/milestones/M1/acceptance", flow.pm, json={"accepted": True}
        )
        assert late["milestones"][0]["on_time"] is False  # the second delivery was late

        # A complaint answered by the partner; a late data-leak report (R6.4).
        clock.set(local(date(2026, 12, 23), 10))
        complained = await flow.ok(
            "POST",
            f"/v1/projects/{pid}/complaints",
            flow.specialist,
            json={"source": "财务部", "severity": "medium", "summary": "报表延迟"},
        )
        (complaint_id,) = complained["complaints"]
        await flow.ok(
            "POST",
            f"/v1/projects/{pid}/complaints/{complaint_id}/response",
            vendor_headers,
            json={"response": "今日修复"},
        )
        await flow.ok(
            "POST",
            f"/v1/projects/{pid}/complaints/{complaint_id}/resolution",
            flow.pm,
            json={"resolution": "已修复并复盘"},
        )
        detected = clock.now() - timedelta(hours=3)
        leaked = await flow.ok(
            "POST",
            f"/v1/projects/{pid}/incidents",
            flow.specialist,
            json={
                "category": "data_leak",
                "severity": "high",
                "occurred_at": (detected - timedelta(hours=1)).isoformat(),
                "detected_at": detected.isoformat(),
                "description": "测试环境导出客户数据",
            },
        )
        (investigation_id,) = leaked["investigations"]
        await flow.ok(
            "POST",
            f"/v1/projects/{pid}/investigations/{investigation_id}/conclusion",
            flow.director,
            json={
                "findings": "权限配置错误",
                "sanctions": [
                    {"subject": "spec.li", "subject_kind": "staff", "level": "warning"},
                    {
                        "subject": partner["id"],
                        "subject_kind": "partner",
                        "level": "serious_warning",
                    },
                ],
            },
        )

        # Costs, satisfaction, R3.3 review, R5.2 a budget increase the Director approves.
        await flow.ok(
            "POST",
            f"/v1/projects/{pid}/costs",
            flow.pm,
            json={"amount": "420000.00", "category": "人力", "incurred_on": "2026-12-20"},
        )
        await flow.ok(
            "POST",
            f"/v1/projects/{pid}/satisfaction-surveys",
            flow.specialist,
            json={"score": 4, "respondent": "财务部"},
        )
        clock.set(local(date(2027, 1, 15)))
        await flow.ok(
            "POST",
            f"/v1/projects/{pid}/reviews",
            flow.pm,
            json={"held_on": "2027-01-15", "progress": "按计划", "risk_rating": "medium"},
        )
        asked = await flow.ok(
            "POST",
            f"/v1/projects/{pid}/budget",
            flow.pm,
            json={"new_budget": "1300000.00", "reason": "新增灾备"},
        )
        (decision,) = asked["pending_decisions"]
        await deliver(
            service,
            settings,
            outcome(
                "DirectorDecisionApproved",
                {
                    "decision_id": decision["decision_id"],
                    "project_id": pid,
                    "kind": "budget_increase",
                    "comment": "同意",
                    "decided_at": clock.now().isoformat(),
                },
                "director.zhang",
                "director",
            ),
        )
        raised = await flow.ok("GET", f"/v1/projects/{pid}", flow.pm)
        assert raised["budget"] == "1300000.00" and raised["pending_decisions"] == []

        # R3.4 final acceptance with the third party, then closure (R1.2).
        clock.set(local(date(2027, 2, 20), 17))
        await flow.ok(
            "POST",
            f"/v1/projects/{pid}/milestones/M2/deliveries",
            vendor_headers,
            json={"delivered_on": "2027-02-10"},
        )
        await flow.ok(
            "POST", f"/v1/projects/{pid}/milestones/M2/acceptance", flow.pm, json={"accepted": True}
        )
        accepted = await flow.ok(
            "POST",
            f"/v1/projects/{pid}/final-acceptance",
            flow.pm,
            json={
                "accepted_on": "2027-02-20",
                "third_party": THIRD_PARTY,
                "signatory": "陈工",
                "report_ref": "YS-2027-01",
            },
        )
        assert accepted["status"] == "accepted"
        closed = await flow.ok(
            "POST",
            f"/v1/projects/{pid}/closure",
            flow.pm,
            json={"outcome": "completed", "reason": "按期验收"},
        )
        assert closed["status"] == "closed" and closed["outcome"] == "completed"

        # The whole story is in the events, and on the topic for other systems.
        history = [e.event_type for e in app.history(uuid.UUID(pid))]
        assert history == [
            "ProjectCreated",
            "ProcurementApprovalRequested",
            "ProcurementApprovalGranted",
            "ContractSigned",
            "KickoffHeld",
            "TaskAssigned",
            "TaskAcknowledged",
            "TaskCompleted",
            "MilestoneDelivered",
            "MilestoneRejected",
            "MilestoneDelivered",
            "MilestoneAccepted",
            "ComplaintReceived",
            "ComplaintResponded",
            "ComplaintResolved",
            "IncidentReported",
            "LateIncidentReport",
            "InvestigationOpened",
            "InvestigationConcluded",
            "CostRecorded",
            "SatisfactionRecorded",
            "ReviewHeld",
            "DirectorDecisionRequested",
            "BudgetChanged",
            "MilestoneDelivered",
            "MilestoneAccepted",
            "FinalAcceptanceRecorded",
            "ProjectClosed",
        ]
        granted = app.history(uuid.UUID(pid))[2]
        assert granted.actor.user_id == "ceo.chen"  # the approver, not the service

        async def published() -> bool:
            status = await service.status()
            return bool(status["relay"]["position"] == status["relay"]["head"])

        await wait_until(published, what="the relay published everything")
        on_topic = [
            EventEnvelope.parse_message(r.value)
            for r in await read_topic(settings, settings.topic_of("partner"))
        ]
        request = next(e for e in on_topic if e.event_type == "ProcurementApprovalRequested")
        assert request.aggregate_id == uuid.UUID(pid)
        assert request.payload["amount"] == "1000000.00"
        assert request.payload["request_id"] == requested["approval_request_id"]
        assert {e.event_type for e in on_topic} >= {
            "PartnerQualified",
            "ContractSigned",
            "ProjectClosed",
        }
