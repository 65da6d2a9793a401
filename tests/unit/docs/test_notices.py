"""R3.5, R4.1, R4.2, R4.3, R5.5, R6.1: who the docs service tells of what
(`services.docs.notices`), from events the aggregates really raise."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

from services.docs.domain.document import Document
from services.docs.domain.meeting import Meeting
from services.docs.domain.periods import Period, first_report_period, report_due_at
from services.docs.domain.schedule import ReportSchedule
from services.docs.notices import docs_notices
from shared.clock import ManualClock, SequentialIds
from shared.domain import Actor, CommandContext, command_context
from shared.notify import Notice
from shared.policy import load_policy

POLICY = load_policy()
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
RULES = docs_notices(POLICY)


def ctx(user: str = "pm.wang", role: str = "project_manager") -> CommandContext:
    return CommandContext(
        actor=Actor(user, role),
        correlation_id=uuid4(),
        clock=ManualClock(NOW),
        new_id=SequentialIds(),
    )


def notices(event: Any) -> list[Notice]:
    return list(RULES[event.EVENT_TYPE](event))


def test_a_missed_report_reaches_the_manager_and_the_director_R4_3_R3_5() -> None:
    with command_context(ctx()):
        schedule = ReportSchedule.start(
            project_id=uuid4(),
            project_name="核心系统运维项目",
            project_manager="pm.wang",
            first_day=date(2026, 11, 23),
            first_period=lambda k, d: first_report_period(POLICY, k, d),
            due=lambda k, p: report_due_at(POLICY, k, p),
        )
        schedule.mark_overdue(
            kind="weekly",
            period=Period.parse("2026-W48"),
            deadline_id=uuid4(),
            due=lambda k, p: report_due_at(POLICY, k, p),
        )
    overdue = next(e for e in schedule.pending_events if type(e).__name__ == "Overdue")
    (notice,) = notices(overdue)
    assert notice.to_users == ("pm.wang",) and notice.to_roles == ("director",)
    assert "2026-W48" in notice.subject and "R4.3" in notice.body


def _meeting() -> Meeting:
    with command_context(ctx()):
        return Meeting.hold(
            meeting_id=uuid4(),
            kind="weekly_department",
            title="部门周会",
            project_id=None,
            held_at=NOW - timedelta(hours=1),
            chaired_by="pm.wang",
            attendees=["sp.zhao"],
            source="api",
            now=NOW,
            minutes_due_at=NOW + timedelta(hours=23),
            owners_due_at=NOW + timedelta(hours=23),
            resolutions=[("R1", "升级监控")],
        )


def test_meetings_minutes_and_resolutions_reach_chair_and_owner_R4_2_R5_5() -> None:
    meeting = _meeting()
    held, recorded = meeting.pending_events
    (minutes_due,) = notices(held)
    assert minutes_due.to_users == ("pm.wang",) and "R4.2" in minutes_due.body
    assert recorded.EVENT_TYPE not in RULES  # written down: nobody to tell yet
    meeting.collect_events()
    with command_context(ctx()):
        meeting.mark_minutes_overdue(deadline_id=uuid4())
        meeting.mark_owner_overdue(resolution_id="R1", deadline_id=uuid4())
        meeting.assign_resolution(
            resolution_id="R1",
            owner="sp.zhao",
            deadline=NOW + timedelta(days=3),
            now=NOW + timedelta(days=1),
            owner_clock=uuid4(),
        )
        meeting.mark_resolution_overdue(resolution_id="R1", assignment=1, deadline_id=uuid4())
    by_type = {e.EVENT_TYPE: notices(e) for e in meeting.pending_events}
    assert by_type["MinutesOverdue"][0].to_roles == ("director",)
    assert by_type["ResolutionOwnerOverdue"][0].to_users == ("pm.wang",)
    assert by_type["ResolutionAssigned"][0].to_users == ("sp.zhao",)
    assert by_type["ResolutionOverdue"][0].to_users == ("sp.zhao",)


def test_corrections_reach_the_filer_and_refused_contract_reads_the_director_R6_1_R4_1() -> None:
    with command_context(ctx("sp.zhao", "specialist")):
        report = Document.file(
            project_id=uuid4(),
            name="核心系统运维项目-2026年11月-周报",
            doc_type="周报",
            period="2026-W48",
            period_start=date(2026, 11, 23),
            period_end=date(2026, 11, 29),
            meeting_id=None,
            contract_number=None,
            content_id=uuid4(),
            sha256="0" * 64,
            size=1,
            media_type="application/pdf",
            file_name="a.pdf",
            filed_by="sp.zhao",
            now=NOW,
        )
    report.collect_events()
    with command_context(ctx()):
        report.review(version=1, outcome="accepted", reasons=[], reviewer="pm.wang", now=NOW)
    assert notices(report.collect_events()[0]) == []  # accepted: nothing to do
    with command_context(ctx("sp.zhao", "specialist")):
        report.revise(
            doc_type="周报",
            period="2026-W48",
            content_id=uuid4(),
            sha256="2" * 64,
            size=2,
            media_type="application/pdf",
            file_name="b.pdf",
            filed_by="sp.zhao",
            now=NOW,
        )
    with command_context(ctx()):
        report.review(
            version=2,
            outcome="needs_correction",
            reasons=["缺少事件清单"],
            reviewer="pm.wang",
            now=NOW,
        )
    (correction,) = notices(report.collect_events()[-1])
    assert correction.to_users == ("sp.zhao",) and "缺少事件清单" in correction.body
    with command_context(ctx("pm.wang", "project_manager")):
        contract = Document.file(
            project_id=uuid4(),
            name="核心系统运维项目-2026-11-16-合同",
            doc_type="合同",
            period="2026-11-16",
            period_start=date(2026, 11, 16),
            period_end=date(2026, 11, 16),
            meeting_id=None,
            contract_number="HT-1",
            content_id=uuid4(),
            sha256="1" * 64,
            size=1,
            media_type="application/pdf",
            file_name="c.pdf",
            filed_by="pm.wang",
            now=NOW,
        )
        contract.collect_events()
        contract.record_read(
            version=None, reader="pm.wang", role="project_manager", may_read_contract=False, now=NOW
        )
    (alert,) = notices(contract.collect_events()[0])
    assert alert.to_roles == ("director",) and "HT-1" in alert.body
