"""The worked examples of docs/kpi.md hold (R3.5, R5.4, R6.1, R6.3): the kpi
service in process on a real PostgreSQL, the example's events fed through its
consumer handlers, read over its API.

Compliance: first activity Monday 2026-03-02; the kickoff on time; weekly
reports due Fridays 6, 13, 20, 27 March, the one of the 20th filed late;
weekly department meetings in three of the four full weeks ending in March,
each with minutes within 24 h: (1 + 3 + 3 + 3) / (1 + 4 + 4 + 3) = 10/12; the
project's own 4/5, the department's 6/7; the breaches are the late report
and the missed week.

Cost control: approved budget 100,000 (the procurement approval: the
planned budget of ProjectCreated is not an approval), costs 94,000,
completed: saving 6%, eligible for the PM's bonus (R6.3); costs 95,100:
4.9%, not; 90,000 but failed: not. Before the approval there is no rate.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import pytest

from services.kpi.service import SPEC as KPI
from shared.clock import ManualClock
from shared.settings import Settings
from tests.support.apps import RunningService, running
from tests.support.auth import auth
from tests.support.kpi_facts import FactFeed, local

pytestmark = pytest.mark.integration

FRIDAYS = [date(2026, 3, 6), date(2026, 3, 13), date(2026, 3, 20), date(2026, 3, 27)]
#: Mondays of the full weeks ending in March; the department met in three.
MET_WEEKS = [date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 23)]


@pytest.fixture
async def kpi(settings: Settings) -> AsyncIterator[RunningService]:
    clock = ManualClock(local(date(2026, 4, 2)))
    async with running(
        KPI, settings, relay=False, consumers=False, projectors=False, clock=clock
    ) as svc:
        yield svc


def _project(partner: uuid.UUID, budget: str = "100000") -> dict[str, Any]:
    return {
        "partner_id": str(partner),
        "title": "核心系统运维项目",
        "project_manager": "pm.wang",
        "budget": budget,
        "currency": "CNY",
        "scope": "运维",
        "specialists": [],
        "milestones": [],
    }


async def test_the_compliance_example(kpi: RunningService, settings: Settings) -> None:
    """R3.5, R5.4: docs/kpi.md's compliance example, figure by figure."""
    feed = FactFeed(kpi)
    partner, project, schedule = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    start = local(date(2026, 3, 2), 9)
    await feed.emit("partner", "ProjectCreated", project, _project(partner), at=start)
    await feed.emit(
        "partner",
        "ContractSigned",
        project,
        {
            "partner_id": str(partner),
            "contract_number": "HT-2026-009",
            "value": "100000",
            "currency": "CNY",
            "signed_on": "2026-03-02",
            "starts_on": "2026-03-02",
            "ends_on": "2026-12-31",
            "sla_terms": [],
            "third_party_acceptor": "福建省软件测评中心",
            "kickoff_due_at": (local(date(2026, 3, 10), 0) - timedelta(microseconds=1)).isoformat(),
        },
        at=start,
    )
    await feed.emit(
        "partner",
        "KickoffHeld",
        project,
        {
            "held_on": "2026-03-05",
            "goals": ["上线"],
            "timetable": "三月",
            "responsibilities": [{"person": "pm.wang", "duty": "统筹"}],
            "due_at": (local(date(2026, 3, 10), 0) - timedelta(microseconds=1)).isoformat(),
            "late": False,
        },
        at=local(date(2026, 3, 5)),
    )
    for n, friday in enumerate(FRIDAYS, start=10):
        due = local(friday + timedelta(days=1), 0) - timedelta(microseconds=1)
        period = f"2026-W{n}"
        common = {"project_id": str(project), "kind": "weekly", "period": period}
        await feed.emit(
            "docs",
            "ReportPeriodOpened",
            schedule,
            {
                **common,
                "period_start": (friday - timedelta(days=4)).isoformat(),
                "period_end": (friday + timedelta(days=2)).isoformat(),
                "due_at": due.isoformat(),
                "project_manager": "pm.wang",
            },
            at=local(friday - timedelta(days=4), 0),
            aggregate_type="ReportSchedule",
        )
        late = friday == date(2026, 3, 20)
        filed = local(friday + timedelta(days=1), 10) if late else local(friday, 16)
        body = {
            **common,
            "due_at": due.isoformat(),
            "document_id": str(uuid.uuid4()),
            "filed_by": "spec.li",
            "filed_at": filed.isoformat(),
        }
        if late:
            body["hours_late"] = 10.0
        await feed.emit(
            "docs",
            "ReportFiledLate" if late else "ReportFiled",
            schedule,
            body,
            at=filed,
            aggregate_type="ReportSchedule",
        )
    for monday in MET_WEEKS:
        meeting = uuid.uuid4()
        held = local(monday + timedelta(days=1), 10)
        due = held + timedelta(hours=24)
        await feed.emit(
            "docs",
            "MeetingHeld",
            meeting,
            {
                "kind": "weekly_department",
                "title": "部门周例会",
                "project_id": None,
                "held_at": held.isoformat(),
                "chaired_by": "director.zhang",
                "attendees": ["pm.wang", "spec.li"],
                "source": "api",
                "minutes_due_at": due.isoformat(),
                "owners_due_at": due.isoformat(),
            },
            at=held,
            aggregate_type="Meeting",
        )
        await feed.emit(
            "docs",
            "MinutesFiled",
            meeting,
            {
                "kind": "weekly_department",
                "project_id": None,
                "document_id": str(uuid.uuid4()),
                "document_name": f"信息技术部-{monday:%Y-%m-%d}-周例会纪要",
                "filed_by": "spec.li",
                "filed_at": (held + timedelta(hours=3)).isoformat(),
                "due_at": due.isoformat(),
                "on_time": True,
            },
            at=held + timedelta(hours=3),
            aggregate_type="Meeting",
        )

    auditor = auth(settings, "audit.qian", "auditor")
    url = "/v1/kpi/metrics/compliance"
    march = {"period": "month", "from": "2026-03", "to": "2026-03"}
    whole = (await kpi.client.get(url, params=march, headers=auditor)).json()["rows"]
    assert [(r["numerator"], r["denominator"], r["value"]) for r in whole] == [(10, 12, 0.833333)]

    by_project = await kpi.client.get(
        url, params={**march, "group_by": "project_id"}, headers=auditor
    )
    assert {
        r["group"]["project_id"]: (r["numerator"], r["denominator"])
        for r in by_project.json()["rows"]
    } == {str(project): (4, 5), None: (6, 7)}

    by_label = await kpi.client.get(url, params={**march, "group_by": "label"}, headers=auditor)
    assert {
        r["group"]["label"]: (r["numerator"], r["denominator"]) for r in by_label.json()["rows"]
    } == {
        "kickoff": (1, 1),
        "report": (3, 4),
        "weekly_department_meeting": (3, 4),
        "minutes": (3, 3),
    }

    missed = await kpi.client.get(
        f"{url}/explain",
        params={"period_start": "2026-03", "missed": "true"},
        headers=auditor,
    )
    items = missed.json()["items"]
    # Oldest first: the late report, then the week of 16-22 March without a meeting.
    assert [(i["label"], i["day"]) for i in items] == [
        ("report", "2026-03-20"),
        ("weekly_department_meeting", "2026-03-22"),
    ]
    late = next(i for i in items if i["label"] == "report")
    types = {e["event_id"]: e["event_type"] for e in missed.json()["events"]}
    # The period opened owes it (R4.3); the late filing meets it late.
    assert sorted(types[e] for e in late["event_ids"]) == ["ReportFiledLate", "ReportPeriodOpened"]
    skipped = next(i for i in items if i["label"] == "weekly_department_meeting")
    assert skipped["event_ids"] == []  # nothing happened: the week itself is the breach


@pytest.mark.parametrize(
    ("costs", "outcome", "eligible"),
    [("94000", "completed", True), ("95100", "completed", False), ("90000", "failed", False)],
)
async def test_the_cost_control_example(
    kpi: RunningService, settings: Settings, costs: str, outcome: str, eligible: bool
) -> None:
    """R6.1, R6.3: rate, saving and the bonus flag of docs/kpi.md."""
    feed = FactFeed(kpi)
    partner, project = uuid.uuid4(), uuid.uuid4()
    await feed.emit(
        "partner", "ProjectCreated", project, _project(partner), at=local(date(2026, 1, 5))
    )
    approved = local(date(2026, 1, 20))
    await feed.emit(
        "partner",
        "ProcurementApprovalGranted",
        project,
        {
            "request_id": str(uuid.uuid4()),
            "approved_at": approved.isoformat(),
            "approved_amount": "100000",
        },
        at=approved,
    )
    await feed.emit(
        "partner",
        "CostRecorded",
        project,
        {
            "cost_id": "c1",
            "amount": costs,
            "currency": "CNY",
            "category": "人力",
            "incurred_on": "2026-02-10",
            "note": "",
        },
        at=local(date(2026, 2, 10)),
    )
    await feed.emit(
        "partner",
        "ProjectClosed",
        project,
        {"outcome": outcome, "reason": "验收", "budget": "100000", "costs_total": costs},
        at=local(date(2026, 3, 20)),
    )
    auditor = auth(settings, "audit.qian", "auditor")
    body = (
        await kpi.client.get(
            "/v1/kpi/cost-control", params={"project_id": str(project)}, headers=auditor
        )
    ).json()
    (row,) = body["items"]
    assert row["rate"] == pytest.approx(float(costs) / 100000)
    assert row["saving"] == pytest.approx(1 - float(costs) / 100000)
    assert (row["outcome"], row["bonus_eligible"]) == (outcome, eligible)
    assert body["bonus_threshold_percent"] == 5.0
    # As of February the project was open: no outcome, no flag yet.
    feb = (
        await kpi.client.get(
            "/v1/kpi/cost-control",
            params={"project_id": str(project), "as_of": local(date(2026, 2, 28)).isoformat()},
            headers=auditor,
        )
    ).json()["items"][0]
    assert (feb["outcome"], feb["bonus_eligible"], feb["actual"]) == (None, False, float(costs))
    # Before the procurement approval the project had no approved budget (R5.2):
    # its planned budget of 100,000 is no denominator.
    jan = (
        await kpi.client.get(
            "/v1/kpi/cost-control",
            params={"project_id": str(project), "as_of": local(date(2026, 1, 10)).isoformat()},
            headers=auditor,
        )
    ).json()["items"][0]
    assert (jan["budget"], jan["rate"], jan["saving"]) == (None, None, None)
