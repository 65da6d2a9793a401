"""The approval service's notifications (the push side of the inbox), with a
real SMTP server and a real webhook receiver, on a moved clock:

- R3.1: an opened step mails its named approver, or its role's mailbox;
- R3.5: an overdue step mails the step's role, its escalation the Director;
- R3.1: a return for information mails the requester;
- R5.3: an emergency action mails the Director; a missed explanation the PM
  and the Director;
- another enterprise system subscribed to `ProcurementApproved` receives it,
  signed; a receiver that is down never blocks a decision.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.approval.service import SPEC as APPROVAL
from shared.clock import ManualClock
from shared.deadlines import DeadlineEngine
from shared.envelope import EventEnvelope
from shared.notify import verify_signature
from shared.settings import Settings
from tests.support.apps import RunningService, running
from tests.support.auth import auth
from tests.support.notifications import (
    DIRECTOR_BOX,
    Mailbox,
    Receiver,
    dispatch,
    outbox,
    with_notifications,
)

pytestmark = pytest.mark.integration

FRIDAY_9 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
FINANCE_BOX = "finance-team@corp.example"
DEPT_HEADS_BOX = "dept-heads@corp.example"


@pytest.fixture
async def svc(
    settings: Settings, mailbox: Mailbox
) -> AsyncIterator[tuple[RunningService, ManualClock, Settings]]:
    clock = ManualClock(FRIDAY_9)
    configured = with_notifications(
        settings,
        mailbox.port,
        notify_role_mailboxes={
            "director": DIRECTOR_BOX,
            "finance": FINANCE_BOX,
            "dept_head": DEPT_HEADS_BOX,
        },
    )
    async with running(
        APPROVAL, configured, relay=False, consumers=False, projectors=False, clock=clock
    ) as service:
        yield service, clock, configured


async def settle(service: RunningService) -> None:
    """Views, clocks and the notification queue follow every stored event."""
    for projector in service.runtime.projectors:
        await projector.catch_up()


async def fire(service: RunningService) -> None:
    await settle(service)
    engine = service.runtime.deadlines
    assert isinstance(engine, DeadlineEngine)
    await engine.fire_due()
    await settle(service)


async def post(service: RunningService, url: str, headers: dict[str, str], body: Any) -> Any:
    response = await service.client.post(url, headers=headers, json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def subjects(mailbox: Mailbox, address: str) -> list[str]:
    return [str(m["Subject"]) for m in mailbox.to(address)]


async def test_steps_mail_their_approvers_and_escalations_the_director(
    svc: tuple[RunningService, ManualClock, Settings], mailbox: Mailbox
) -> None:
    """R3.1, R3.5: opened, overdue and escalated steps reach the people who must act:
    a named approver personally, otherwise the role's mailbox; escalations the Director."""
    service, clock, settings = svc
    director = auth(settings, "director.zhang", "director")
    request = await post(
        service,
        "/v1/approvals",
        director,  # only the Director names approvers
        {
            "kind": "procurement",
            "title": "机房运维外包",
            "amount": "500000.00",
            "justification": "年度运维",
            "approvers": {"department_head": "dh.li", "finance": "fin.zhao"},
        },
    )
    await settle(service)
    await dispatch(service)
    (opened,) = mailbox.to("dh.li@corp.example")
    assert "department head review" in str(opened["Subject"])
    assert request["id"] in opened.get_content()
    assert mailbox.to(DEPT_HEADS_BOX) == []  # a named approver, not the whole role

    await post(
        service,
        f"/v1/approvals/{request['id']}/decisions",
        auth(settings, "dh.li", "dept_head"),
        {"decision": "approve"},
    )
    await settle(service)
    await dispatch(service)
    assert any("Finance review" in s for s in subjects(mailbox, "fin.zhao@corp.example"))

    clock.advance(timedelta(days=7))  # past 72 working hours
    await fire(service)
    await dispatch(service)
    overdue = subjects(mailbox, "fin.zhao@corp.example")
    assert any(s.startswith("Approval overdue") for s in overdue)  # the named assignee
    assert mailbox.to(FINANCE_BOX) == []
    assert any(s.startswith("Approval escalated") for s in subjects(mailbox, DIRECTOR_BOX))

    await post(
        service,
        f"/v1/approvals/{request['id']}/decisions",
        auth(settings, "fin.zhao", "finance"),
        {"decision": "return", "reason": "请补充报价单"},
    )
    await settle(service)
    await dispatch(service)
    (returned,) = mailbox.to("director.zhang@corp.example")
    assert "请补充报价单" in returned.get_content()
    rows = await outbox(service)
    assert {r["status"] for r in rows} == {"delivered"}


async def test_emergency_mails_the_director_and_a_missed_explanation_the_pm(
    svc: tuple[RunningService, ManualClock, Settings], mailbox: Mailbox
) -> None:
    """R5.3, R3.5: the Director hears of the action; the PM and the Director of the breach."""
    service, clock, settings = svc
    pm = auth(settings, "pm.wang", "project_manager")
    await post(
        service,
        "/v1/emergencies",
        pm,
        {
            "what_happened": "核心数据库服务器宕机",
            "action_taken": "临时调配备用服务器",
            "resources_changed": ["备用服务器2台"],
            "acted_at": FRIDAY_9.isoformat(),
        },
    )
    await settle(service)
    await dispatch(service)
    assert subjects(mailbox, DIRECTOR_BOX) == ["Emergency action taken"]
    clock.advance(timedelta(hours=25))
    await fire(service)
    await dispatch(service)
    assert subjects(mailbox, "pm.wang@corp.example") == ["Emergency explanation overdue"]
    assert "Emergency explanation overdue" in subjects(mailbox, DIRECTOR_BOX)


async def test_an_outcome_reaches_a_subscribed_system_and_a_dead_one_blocks_nothing(
    svc: tuple[RunningService, ManualClock, Settings], receiver: Receiver
) -> None:
    """R3.1: ProcurementApproved goes to another enterprise system, signed; while
    that system is down every decision still succeeds."""
    service, clock, settings = svc
    director = auth(settings, "director.zhang", "director")
    subscribed = await post(
        service,
        "/v1/notifications/webhooks",
        director,
        {"url": receiver.url, "event_types": ["ProcurementApproved"], "description": "ERP"},
    )
    receiver.fail_next = 1_000  # down
    request = await post(
        service,
        "/v1/approvals",
        auth(settings, "pm.wang", "project_manager"),
        {"kind": "procurement", "title": "服务台外包", "amount": "80000.00", "justification": "x"},
    )
    for user, role in (("dh.li", "dept_head"), ("fin.zhao", "finance"), ("ceo.chen", "ceo")):
        await post(
            service,
            f"/v1/approvals/{request['id']}/decisions",
            auth(settings, user, role),
            {"decision": "approve"},
        )
    await settle(service)
    await dispatch(service)
    (failed,) = [r for r in await outbox(service) if r["channel"] == "webhook"]
    assert failed["status"] == "pending" and failed["attempts"] == 1

    receiver.fail_next = 0  # back
    clock.advance(timedelta(hours=1))
    await dispatch(service)
    delivered = receiver.requests[-1]
    signature = delivered.headers["X-PartnerLedger-Signature"]
    assert verify_signature(subscribed["secret"], signature, delivered.body, clock.now())
    envelope = EventEnvelope.parse_message(delivered.body)
    assert envelope.event_type == "ProcurementApproved"
    assert envelope.payload["request_id"] == request["id"]
    assert [s["approver"] for s in envelope.payload["steps"]] == ["dh.li", "fin.zhao", "ceo.chen"]
