"""Report schedules over HTTP with a moved clock (R4.3, R3.5): a contracted
project owes a weekly report each Friday, a monthly one on day 5 of the next
month and a quarterly one on the last day of the quarter, each due at the end
of the day in Asia/Shanghai; a due day that is not a working day moves to the
next working day (the National Day holiday of the policy's calendar).

On time -> ReportFiled; late -> ReportFiledLate (after its one ReportOverdue);
nothing -> ReportOverdue at the due time, not a microsecond before. The deadline
engine is driven by hand (`fire`), never by sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from services.docs.domain.schedule import schedule_id
from services.docs.service import SPEC as DOCS
from shared.clock import ManualClock
from shared.settings import Settings
from tests.support.apps import running
from tests.support.docs_api import PM, PROJECT_NAME, SPECIALIST, DocsApi, end_of_day, local

pytestmark = pytest.mark.integration

OPENING = ["ReportScheduleOpened", "ReportPeriodOpened", "ReportPeriodOpened", "ReportPeriodOpened"]
MICROSECOND = timedelta(microseconds=1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(local(2026, 11, 23, 9))  # Monday 09:00 Shanghai


@pytest.fixture
async def api(settings: Settings, clock: ManualClock) -> AsyncIterator[DocsApi]:
    async with running(
        DOCS, settings, relay=False, consumers=False, projectors=False, clock=clock
    ) as svc:
        yield DocsApi(svc, settings, clock)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def schedule(api: DocsApi, project: UUID) -> dict[str, Any]:
    await api.settle()
    view: dict[str, Any] = await api.ok("GET", f"/v1/schedules/{project}", api.director)
    return view


def open_periods(view: dict[str, Any]) -> dict[str, tuple[str, datetime]]:
    return {p["kind"]: (p["period"], at(p["due_at"])) for p in view["open_periods"]}


async def weekly_report(api: DocsApi, project: UUID, period: str, month: str) -> dict[str, Any]:
    return await api.filed(
        api.specialist,
        name=f"{PROJECT_NAME}-{month}-周报",
        doc_type="weekly_report",
        period=period,
        project_id=project,
    )


async def test_report_overdue_at_the_due_time_not_a_microsecond_before_R4_3_R3_5(
    api: DocsApi,
) -> None:
    """R4.3, R3.5: a contract signed Monday 2026-11-23 opens week 2026-W48 (due Friday
    11-27), November (due day 5 of December, a Saturday, so Monday 12-07) and
    2026-Q4 (due 12-31), each at the end of the day in Shanghai. One microsecond
    before Friday's end nothing fires; at it, ReportOverdue is recorded once and
    week 2026-W49 opens; the schedule lists and counts it as overdue."""
    project = await api.project(signed_on=date(2026, 11, 23))
    view = await schedule(api, project)
    assert view["state"] == "open" and view["first_day"] == "2026-11-23"
    assert view["project_name"] == PROJECT_NAME and view["project_manager"] == PM
    assert open_periods(view) == {
        "weekly": ("2026-W48", end_of_day(2026, 11, 27)),
        "monthly": ("2026-11", end_of_day(2026, 12, 7)),
        "quarterly": ("2026-Q4", end_of_day(2026, 12, 31)),
    }

    assert await api.fire_at(end_of_day(2026, 11, 27) - MICROSECOND) == 0
    assert api.schedule_types(project) == OPENING
    assert await api.fire_at(end_of_day(2026, 11, 27)) == 1
    assert api.schedule_types(project) == [*OPENING, "ReportOverdue", "ReportPeriodOpened"]
    (overdue,) = api.schedule_payloads(project, "ReportOverdue")
    assert (overdue["kind"], overdue["period"], overdue["project_manager"]) == (
        "weekly",
        "2026-W48",
        PM,
    )
    assert at(overdue["due_at"]) == end_of_day(2026, 11, 27)
    assert await api.fire_at(end_of_day(2026, 11, 30)) == 0  # once only

    view = await schedule(api, project)
    assert open_periods(view)["weekly"] == ("2026-W49", end_of_day(2026, 12, 4))
    assert view["counts"]["weekly"] == {"open": 1, "filed": 0, "filed_late": 0, "overdue": 1}
    listed = await api.ok(
        "GET", f"/v1/schedules?project_id={project}&status=overdue", api.dept_head
    )
    assert [(p["kind"], p["period"], p["status"]) for p in listed["items"]] == [
        ("weekly", "2026-W48", "overdue")
    ]
    assert listed["items"][0]["overdue_event_id"] is not None
    assert listed["items"][0]["period_start"] == "2026-11-23"
    weekly = await api.ok("GET", f"/v1/schedules?project_id={project}&kind=weekly", api.auditor)
    assert [(p["period"], p["status"]) for p in weekly["items"]] == [
        ("2026-W48", "overdue"),
        ("2026-W49", "open"),
    ]


async def test_a_report_filed_by_its_due_time_is_on_time_R4_3(api: DocsApi) -> None:
    """R4.3: a weekly report filed a minute before Friday's end is ReportFiled; its
    clock stops, so the end of Friday records nothing; the next week opens."""
    project = await api.project(signed_on=date(2026, 11, 23))
    api.clock.set(end_of_day(2026, 11, 27) - timedelta(minutes=1))
    body = await weekly_report(api, project, "2026-W48", "2026年11月")
    assert body["filing"]["report"] == "filed"
    assert await api.fire_at(end_of_day(2026, 11, 27)) == 0
    assert api.schedule_types(project) == [*OPENING, "ReportFiled", "ReportPeriodOpened"]
    (filed,) = api.schedule_payloads(project, "ReportFiled")
    assert (filed["period"], filed["filed_by"], filed["document_id"]) == (
        "2026-W48",
        SPECIALIST,
        body["id"],
    )
    view = await schedule(api, project)
    assert view["counts"]["weekly"]["filed"] == 1
    assert open_periods(view)["weekly"][0] == "2026-W49"


async def test_filed_late_after_the_engine_fired_R4_3_R3_5(api: DocsApi) -> None:
    """R4.3, R3.5: the engine recorded week 2026-W48 overdue at Friday's end; the
    report filed on Saturday is ReportFiledLate (hours late), with no second
    ReportOverdue; the period counts as filed late, no longer as overdue."""
    project = await api.project(signed_on=date(2026, 11, 23))
    assert await api.fire_at(end_of_day(2026, 11, 27)) == 1
    api.clock.set(local(2026, 11, 28, 10))
    body = await weekly_report(api, project, "2026-W48", "2026年11月")
    assert body["filing"]["report"] == "filed_late"
    assert api.schedule_types(project) == [
        *OPENING,
        "ReportOverdue",
        "ReportPeriodOpened",
        "ReportFiledLate",
    ]
    (late,) = api.schedule_payloads(project, "ReportFiledLate")
    assert late["period"] == "2026-W48" and late["hours_late"] == 10.0
    assert await api.fire() == 0
    view = await schedule(api, project)
    assert view["counts"]["weekly"] == {"open": 1, "filed": 0, "filed_late": 1, "overdue": 0}
    overdue = await api.ok("GET", f"/v1/schedules?project_id={project}&status=overdue", api.pm)
    assert overdue["items"] == []


async def test_filed_late_before_the_engine_fired_R4_3_R3_5(api: DocsApi) -> None:
    """R4.3, R3.5: filed on Saturday while the engine had not yet run: the filing
    itself records ReportOverdue then ReportFiledLate; the engine, running later,
    records no second ReportOverdue."""
    project = await api.project(signed_on=date(2026, 11, 23))
    api.clock.set(local(2026, 11, 28, 10))
    body = await weekly_report(api, project, "2026-W48", "2026年11月")
    assert body["filing"]["report"] == "filed_late"
    assert api.schedule_types(project) == [
        *OPENING,
        "ReportOverdue",
        "ReportFiledLate",
        "ReportPeriodOpened",
    ]
    head = api.app.log_head()
    assert await api.fire() == 0
    assert api.app.log_head() == head
    assert api.schedule_types(project).count("ReportOverdue") == 1
    view = await schedule(api, project)
    assert view["counts"]["weekly"]["filed_late"] == 1
    # A new version of the late report changes nothing in the schedule.
    again = await api.filed(
        api.specialist,
        name=f"{PROJECT_NAME}-2026年11月-周报",
        doc_type="周报",
        period="2026-W48",
        project_id=project,
        content=b"v2",
    )
    assert again["filing"]["report"] is None
    assert api.schedule_types(project).count("ReportFiledLate") == 1


async def test_across_a_quarter_end_and_the_national_day_holiday_R4_3_R3_5(
    api: DocsApi,
) -> None:
    """R4.3, R3.5: a contract signed Monday 2026-09-07. Quarterly: 2026-Q3 is overdue
    at the end of 09-30, not before, and 2026-Q4 opens due 12-31. Weekly: 2026-W39
    (Friday 09-25 a holiday) is due Monday 09-28; 2026-W40's Friday 10-02 falls in
    the National Day holiday, so it is due Thursday 10-08: not overdue on 10-03
    nor a microsecond before 10-08 ends, overdue at its end. Monthly: September's
    day 5 (10-05) is a holiday too, so it is due 10-08; October's report is due
    on day 5, Thursday 11-05."""
    api.clock.set(local(2026, 9, 7, 9))
    project = await api.project(signed_on=date(2026, 9, 7))
    assert open_periods(await schedule(api, project)) == {
        "weekly": ("2026-W37", end_of_day(2026, 9, 11)),
        "monthly": ("2026-09", end_of_day(2026, 10, 8)),
        "quarterly": ("2026-Q3", end_of_day(2026, 9, 30)),
    }

    await api.fire_at(end_of_day(2026, 9, 30) - MICROSECOND)
    overdue = api.schedule_payloads(project, "ReportOverdue")
    assert [(p["kind"], p["period"], at(p["due_at"])) for p in overdue] == [
        ("weekly", "2026-W37", end_of_day(2026, 9, 11)),
        ("weekly", "2026-W38", end_of_day(2026, 9, 18)),
        ("weekly", "2026-W39", end_of_day(2026, 9, 28)),
    ]
    assert open_periods(await schedule(api, project))["quarterly"][0] == "2026-Q3"

    assert await api.fire_at(end_of_day(2026, 9, 30)) == 1
    quarterly = [
        p for p in api.schedule_payloads(project, "ReportOverdue") if p["kind"] != "weekly"
    ]
    assert [(p["kind"], p["period"]) for p in quarterly] == [("quarterly", "2026-Q3")]
    view = await schedule(api, project)
    assert open_periods(view) == {
        "weekly": ("2026-W40", end_of_day(2026, 10, 8)),
        "monthly": ("2026-09", end_of_day(2026, 10, 8)),
        "quarterly": ("2026-Q4", end_of_day(2026, 12, 31)),
    }
    assert view["counts"]["quarterly"] == {"open": 1, "filed": 0, "filed_late": 0, "overdue": 1}

    head = api.app.log_head()
    assert await api.fire_at(local(2026, 10, 3, 12)) == 0  # Saturday of the holiday
    assert await api.fire_at(end_of_day(2026, 10, 8) - MICROSECOND) == 0
    assert api.app.log_head() == head
    assert await api.fire_at(end_of_day(2026, 10, 8)) == 2
    latest = api.schedule_payloads(project, "ReportOverdue")[-2:]
    assert sorted((p["kind"], p["period"]) for p in latest) == [
        ("monthly", "2026-09"),
        ("weekly", "2026-W40"),
    ]
    assert open_periods(await schedule(api, project)) == {
        "weekly": ("2026-W41", end_of_day(2026, 10, 9)),
        "monthly": ("2026-10", end_of_day(2026, 11, 5)),
        "quarterly": ("2026-Q4", end_of_day(2026, 12, 31)),
    }
    listed = await api.ok(
        "GET", f"/v1/schedules?project_id={project}&status=overdue&kind=weekly", api.director
    )
    assert [p["period"] for p in listed["items"]] == [
        "2026-W37",
        "2026-W38",
        "2026-W39",
        "2026-W40",
    ]
    counts = (await schedule(api, project))["counts"]
    assert counts == {
        "weekly": {"open": 1, "filed": 0, "filed_late": 0, "overdue": 4},
        "monthly": {"open": 1, "filed": 0, "filed_late": 0, "overdue": 1},
        "quarterly": {"open": 1, "filed": 0, "filed_late": 0, "overdue": 1},
    }


async def test_monthly_reports_are_due_on_day_five_of_the_next_month_R4_3(api: DocsApi) -> None:
    """R4.3: October's monthly report is due on 2026-11-05 (a Thursday); filed on
    11-05 it is on time, filed on 11-06 it would be late."""
    api.clock.set(local(2026, 10, 12, 9))
    project = await api.project(signed_on=date(2026, 10, 12))
    assert open_periods(await schedule(api, project))["monthly"] == (
        "2026-10",
        end_of_day(2026, 11, 5),
    )
    api.clock.set(local(2026, 11, 5, 22))
    body = await api.filed(
        api.pm,
        name=f"{PROJECT_NAME}-2026年10月-月报",
        doc_type="monthly_report",
        period="2026-10",
        project_id=project,
    )
    assert body["filing"]["report"] == "filed"
    assert open_periods(await schedule(api, project))["monthly"] == (
        "2026-11",
        end_of_day(2026, 12, 7),
    )


async def test_closing_the_project_cancels_its_clocks_R4_3_R3_5(api: DocsApi) -> None:
    """R4.3, R3.5: when the partner service closes the project, its schedule closes
    and every open clock is cancelled: moving far ahead records nothing."""
    project = await api.project(signed_on=date(2026, 11, 23))
    await api.close(project)
    assert api.schedule_types(project)[-1] == "ReportScheduleClosed"
    (closed,) = api.schedule_payloads(project, "ReportScheduleClosed")
    assert "completed" in closed["reason"]
    head = api.app.log_head()
    assert await api.fire_at(local(2027, 6, 1, 9)) == 0
    assert api.app.log_head() == head
    view = await schedule(api, project)
    assert view["state"] == "closed" and at(view["closed_at"]) == local(2026, 11, 23, 9)
    clocks = await api.svc.runtime.pool.fetch(
        "SELECT status FROM deadlines WHERE aggregate_id = $1", schedule_id(project)
    )
    assert sorted(r["status"] for r in clocks) == ["cancelled"] * 3
    # A redelivered ProjectClosed closes nothing twice.
    await api.close(project)
    assert api.app.log_head() == head


async def test_a_redelivered_contract_signed_opens_nothing_twice_R4_3(api: DocsApi) -> None:
    """R4.3: ContractSigned delivered again (the same event, or a second one for the
    same project) opens no second schedule and no second clock."""
    project = await api.project()
    signed = api.contract_signed(project, date(2026, 11, 23))
    await api.deliver(signed)
    await api.settle()
    head = api.app.log_head()
    await api.deliver(signed)
    await api.sign(project, date(2026, 11, 23))
    assert api.app.log_head() == head
    assert api.schedule_types(project) == OPENING
    clocks = await api.svc.runtime.pool.fetchval(
        "SELECT count(*) FROM deadlines WHERE aggregate_id = $1", schedule_id(project)
    )
    assert clocks == 3


async def test_schedules_are_read_by_internal_roles_only(api: DocsApi) -> None:
    """R4.3 (access.py): report schedules are internal: a partner gets 403; a project
    without a signed contract has no schedule (404); no token is 401."""
    contracted = await api.project(signed_on=date(2026, 11, 23))
    planned = await api.project("未签约项目")
    await api.settle()
    for headers in (api.partner, api.other_partner):
        response = await api.client.get(f"/v1/schedules/{contracted}", headers=headers)
        assert response.status_code == 403
        response = await api.client.get("/v1/schedules", headers=headers)
        assert response.status_code == 403
    for headers in (api.specialist, api.finance, api.ceo):
        await api.ok("GET", f"/v1/schedules/{contracted}", headers)
    missing = await api.client.get(f"/v1/schedules/{planned}", headers=api.director)
    assert missing.status_code == 404
    assert (await api.client.get("/v1/schedules")).status_code == 401
