"""The partner service's notice rules (services/partner/notices.py) on real
Project events, as pure domain: R3.2 a signed contract tells the project
managers when the kickoff is due, in the policy's time zone; R3.2/R3.3 with
R3.5 a missed kickoff or quarterly review tells them and the Director; other
events tell no one; and every rule's event type exists in the catalogue (the
service would refuse to start otherwise).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

from services.partner.application import PartnerApplication
from services.partner.domain.project import Project
from services.partner.notices import notice_rules
from shared.catalogue import EventCatalogue
from shared.clock import ManualClock, SequentialIds
from shared.domain import Actor, CommandContext, command_context
from shared.notify import resolve_recipients
from shared.policy import Policy

START = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
POLICY = Policy()
RULES = notice_rules(POLICY)


def _contracted() -> tuple[Project, ManualClock, SequentialIds]:
    clock, ids = ManualClock(START), SequentialIds()
    ctx = CommandContext(
        actor=Actor("pm.wang", "project_manager"), correlation_id=uuid4(), clock=clock, new_id=ids
    )
    today = date(2026, 11, 27)
    with command_context(ctx):
        project = Project.create(
            project_id=uuid4(),
            title="核心系统运维项目",
            scope="7x24",
            budget=Decimal("1000000"),
            currency="CNY",
            partner_id=uuid4(),
            project_manager="pm.wang",
            specialists=["spec.li"],
            milestones=[
                {"milestone_id": "M1", "name": "上线", "deliverable": "系统", "due_on": today}
            ],
        )
        request_id = ids()
        project.request_procurement_approval(
            request_id=request_id, justification="年度运维", requested_by="pm.wang"
        )
        assert project.procurement_approved(
            request_id=request_id, approved_at=clock.now(), amount=Decimal("1000000")
        )
        project.sign_contract(
            contract_number="HT-2026-001",
            value=Decimal("980000.00"),
            currency="CNY",
            signed_on=today,
            starts_on=today,
            ends_on=today + timedelta(days=365),
            sla_terms=["可用性 99.9%"],
            third_party_acceptor="福建省软件测评中心",
            kickoff_due_at=POLICY.kickoff_due(today),
            today=today,
        )
    return project, clock, ids


def _notices(event: Any) -> list[Any]:
    rule = RULES.get(event.EVENT_TYPE)
    return list(rule(event)) if rule else []


def test_a_signed_contract_tells_the_project_managers_when_the_kickoff_is_due_R3_2() -> None:
    project, _, _ = _contracted()
    events = project.collect_events()
    assert [len(_notices(e)) for e in events] == [0, 0, 0, 1]  # only ContractSigned
    (notice,) = _notices(events[-1])
    assert notice.subject == "Kickoff due by 2026-12-04 23:59: contract HT-2026-001 signed"
    assert "R3.2" in notice.body and str(project.id) in notice.body
    assert "Asia/Shanghai" in notice.body
    assert notice.to_roles == ("project_manager",)
    resolved = resolve_recipients(
        notice, email_domain=None, role_mailboxes={"project_manager": "pm-team@corp.example"}
    )
    assert resolved.addresses == ("pm-team@corp.example",)


def test_missed_kickoff_and_review_tell_the_managers_and_the_director_R3_5() -> None:
    project, clock, ids = _contracted()
    project.collect_events()
    clock.advance(timedelta(days=100))
    ctx = CommandContext(actor=Actor.SYSTEM, correlation_id=uuid4(), clock=clock, new_id=ids)
    with command_context(ctx):
        assert project.mark_kickoff_overdue(deadline_id=uuid4())
        assert project.mark_review_overdue(
            deadline_id=uuid4(),
            quarter="2027-Q1",
            due_at=POLICY.clock.end_of_day(date(2027, 3, 31)),
        )
    kickoff, review = project.collect_events()
    (late_kickoff,) = _notices(kickoff)
    assert late_kickoff.subject == "Kickoff overdue since 2026-12-04 23:59"
    assert late_kickoff.to_roles == ("project_manager", "director")
    assert "R3.5" in late_kickoff.body
    (late_review,) = _notices(review)
    assert late_review.subject == "Quarterly review 2027-Q1 overdue since 2027-03-31 23:59"
    assert late_review.to_roles == ("project_manager", "director")
    assert "R3.3" in late_review.body


def test_every_rule_names_an_event_the_service_publishes() -> None:
    catalogue = EventCatalogue("partner", PartnerApplication.AGGREGATES)
    assert set(RULES) <= set(catalogue.by_type)
