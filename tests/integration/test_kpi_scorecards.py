"""Partner scorecards (R6.1, R1.2) on a real PostgreSQL: the kpi service in
process, events fed through its consumer handlers, scores by hand.

March 2026, clock at 2026-04-10 (Shanghai):
- Both partners' projects are under contract (ContractSigned 03-01, kickoff
  due 04-30: not yet an obligation) with a procurement approval of 100,000:
  only such projects count for delivery and cost (R6.1, R5.2).
- Partner A: milestones due 03-10 and 03-20, both delivered early; approved
  budget 100,000, no cost. A second project of A, approved but never
  contracted, spent 500,000: it is not A's cost control. 2026.1 criteria
  scored: delivery 100 (w25), complaints 100 (w10; 0 complaints / 2
  deliveries), cost 100 (w15; 0 / 100,000), security 100 (w10; no incident)
  -> 100.00, Excellent.
- Partner B: milestone due 03-05 never delivered, one due 03-15 delivered
  03-20 (late), a complaint on 03-21; cost 120,000 of a 100,000 budget.
  delivery 0 (w25), complaints 100 - 200 * 1/1 -> 0 (w10), cost
  100 - 200 * 0.2 = 60 (w15), security 100 (w10) -> 1900 / 60 = 31.67, Probation.
  Version 2026.2 side by side: (20*0 + 10*0 + 10*60 + 10*100) / 50 = 32.00.
- Months without activity (January, February, April) are not scored.
- The first scoring publishes PartnerStandingChanged for both; scoring again
  publishes nothing; a project created for B afterwards is warned about once
  (ProbationProjectWarned); a project created before the standing is not.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

import pytest

from services.kpi.application import KpiApplication
from services.kpi.domain.standing import standing_id
from services.kpi.service import SPEC as KPI
from shared.clock import ManualClock
from shared.settings import Settings
from tests.support.apps import RunningService, running
from tests.support.auth import auth
from tests.support.data import registration
from tests.support.kpi_facts import FactFeed, local
from tests.support.notifications import DIRECTOR_BOX, outbox, queue, with_notifications

pytestmark = pytest.mark.integration


def _project(partner: uuid.UUID, title: str, milestones: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "partner_id": str(partner),
        "title": title,
        "project_manager": "pm.wang",
        "budget": "100000",
        "currency": "CNY",
        "scope": "运维外包",
        "specialists": ["spec.li"],
        "milestones": [
            {"milestone_id": m, "name": m, "deliverable": "交付物", "due_on": due}
            for m, due in milestones
        ],
    }


def _contract(partner: uuid.UUID, number: str) -> dict[str, Any]:
    return {
        "contract_number": number,
        "partner_id": str(partner),
        "value": "100000",
        "currency": "CNY",
        "signed_on": "2026-03-01",
        "starts_on": "2026-03-01",
        "ends_on": "2026-12-31",
        "sla_terms": [],
        "third_party_acceptor": "福建省软件测评中心",
        "kickoff_due_at": local(date(2026, 5, 1), 0).isoformat(),
    }


def _granted(at: datetime, amount: str = "100000") -> dict[str, Any]:
    return {
        "request_id": str(uuid.uuid4()),
        "approved_at": at.isoformat(),
        "approved_amount": amount,
    }


def _delivered(milestone: str, on: str, due: str) -> dict[str, Any]:
    return {
        "milestone_id": milestone,
        "delivered_on": on,
        "due_on": due,
        "on_time": on <= due,
        "note": "",
    }


@pytest.fixture
async def kpi(settings: Settings) -> AsyncIterator[RunningService]:
    clock = ManualClock(local(date(2026, 4, 10)))
    # Queued, never sent: the dispatcher does not run here (projectors off).
    settings = with_notifications(settings, 2525)
    async with running(
        KPI, settings, relay=False, consumers=False, projectors=False, clock=clock
    ) as svc:
        yield svc


async def _march(feed: FactFeed) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    a, b = uuid.uuid4(), uuid.uuid4()
    for n, partner in ((1, a), (2, b)):
        body = registration(n)
        await feed.emit(
            "partner",
            "PartnerRegistered",
            partner,
            {**body, "service_categories": body["service_categories"]},
            at=local(date(2026, 2, 1)),
            aggregate_type="Partner",
        )
    pa, pb = uuid.uuid4(), uuid.uuid4()
    day = local(date(2026, 3, 1))
    await feed.emit(
        "partner",
        "ProjectCreated",
        pa,
        _project(a, "甲项目", [("m1", "2026-03-10"), ("m2", "2026-03-20")]),
        at=day,
    )
    await feed.emit(
        "partner",
        "ProjectCreated",
        pb,
        _project(b, "乙项目", [("n1", "2026-03-05"), ("n2", "2026-03-15")]),
        at=day,
    )
    for n, (partner, project) in enumerate(((a, pa), (b, pb)), start=1):
        await feed.emit(
            "partner", "ContractSigned", project, _contract(partner, f"HT-2026-00{n}"), at=day
        )
        await feed.emit("partner", "ProcurementApprovalGranted", project, _granted(day), at=day)
    # Approved, never contracted: its cost is not A's (R6.1).
    loose = uuid.uuid4()
    await feed.emit("partner", "ProjectCreated", loose, _project(a, "甲二期", []), at=day)
    await feed.emit("partner", "ProcurementApprovalGranted", loose, _granted(day), at=day)
    await feed.emit(
        "partner",
        "CostRecorded",
        loose,
        {
            "cost_id": "k9",
            "amount": "500000",
            "category": "设备",
            "currency": "CNY",
            "incurred_on": "2026-03-25",
            "note": "",
        },
        at=local(date(2026, 3, 25)),
    )
    await feed.emit(
        "partner",
        "MilestoneDelivered",
        pa,
        _delivered("m1", "2026-03-09", "2026-03-10"),
        at=local(date(2026, 3, 9)),
    )
    await feed.emit(
        "partner",
        "MilestoneDelivered",
        pa,
        _delivered("m2", "2026-03-19", "2026-03-20"),
        at=local(date(2026, 3, 19)),
    )
    await feed.emit(
        "partner",
        "MilestoneDelivered",
        pb,
        _delivered("n2", "2026-03-20", "2026-03-15"),
        at=local(date(2026, 3, 20)),
    )
    await feed.emit(
        "partner",
        "ComplaintReceived",
        pb,
        {
            "complaint_id": "c1",
            "received_at": local(date(2026, 3, 21)).isoformat(),
            "severity": "high",
            "source": "客户",
            "summary": "延期",
        },
        at=local(date(2026, 3, 21)),
    )
    await feed.emit(
        "partner",
        "CostRecorded",
        pb,
        {
            "cost_id": "k1",
            "amount": "120000",
            "category": "人力",
            "currency": "CNY",
            "incurred_on": "2026-03-25",
            "note": "",
        },
        at=local(date(2026, 3, 25)),
    )
    return a, b, pb


async def test_scores_standings_and_probation_warning(
    kpi: RunningService, settings: Settings
) -> None:
    """R6.1, R1.2: period scores by hand, versions side by side, no score for
    an idle month, standing changes published once, Probation warned about
    (only for a project created after the standing: B's own project of March
    is not); R6.1, R5.2 (regression, fix 5): cost control reads the approved
    budgets of the partner's contracted projects only (A's uncontracted
    500,000 spend counted before and dragged A to 75)."""
    feed = FactFeed(kpi)
    a, b, _ = await _march(feed)
    director = auth(settings, "director.zhang", "director")
    auditor = auth(settings, "audit.qian", "auditor")

    run = await kpi.client.post("/v1/kpi/scorecards/rescore", headers=director)
    assert run.status_code == 200, run.text
    # Two partners x (March, Q1) x two versions; pb predates B's Probation: no warning.
    assert run.json() == {"scores": 8, "standings_changed": 2, "warnings": 0}

    board = (await kpi.client.get("/v1/kpi/scorecards", headers=auditor)).json()
    assert board["active_version"] == "2026.1"
    assert [(i["partner_id"], i["overall"], i["standing"]) for i in board["items"]] == [
        (str(a), 100.0, "Excellent"),
        (str(b), 31.67, "Probation"),
    ]
    by_partner = {i["partner_id"]: i for i in board["items"]}
    assert by_partner[str(b)]["by_version"] == {"2026.1": 31.67, "2026.2": 32.0}
    assert by_partner[str(b)]["standing_zh"] == "试用察看"
    # Only March had activity: January, February and April are not scored as zero.
    assert by_partner[str(b)]["periods"] == [{"period_start": "2026-03-01", "score": 31.67}]

    side = (
        await kpi.client.get("/v1/kpi/scorecards", params={"version": "2026.2"}, headers=auditor)
    ).json()
    assert [(i["partner_id"], i["overall"]) for i in side["items"]] == [
        (str(a), 100.0),
        (str(b), 32.0),
    ]

    detail = (await kpi.client.get(f"/v1/kpi/scorecards/{b}", headers=auditor)).json()
    march = detail["versions"][0]["periods"][0]
    assert march["variables"]["on_time_delivery"] == 0.0
    assert march["variables"]["complaint_rate"] == 1.0
    assert march["variables"]["cost_control"] == pytest.approx(1.2)
    assert march["criteria"]["cost"]["value"] == pytest.approx(60.0)
    assert march["criteria"]["satisfaction"]["skipped"].startswith("no data")
    a_march = (await kpi.client.get(f"/v1/kpi/scorecards/{a}", headers=auditor)).json()
    assert a_march["versions"][0]["periods"][0]["variables"]["cost_control"] == 0.0
    assert [e["event_type"] for e in detail["history"]] == [
        "PartnerStandingOpened",
        "PartnerStandingChanged",
    ]
    assert detail["history"][1]["payload"]["to_standing"] == "Probation"

    # The headline gauges follow each run (R6.1): scores and standings; April
    # has nothing due yet, so its on-time delivery is no figure (NaN), not 0.
    metrics = (await kpi.client.get("/metrics")).text
    assert f'pl_partner_overall_score{{partner_id="{a}"}} 100.0' in metrics
    assert 'pl_partners_by_standing{standing="Probation"} 1.0' in metrics
    assert 'pl_kpi_value{metric="on_time_delivery",period="month"} NaN' in metrics
    assert 'pl_kpi_value{metric="on_time_delivery",period="quarter"} NaN' in metrics

    # Scoring again changes nothing, publishes nothing.
    again = (await kpi.client.post("/v1/kpi/scorecards/rescore", headers=director)).json()
    assert again == {"scores": 8, "standings_changed": 0, "warnings": 0}

    # A project created for B now is warned about, once.
    clock = kpi.runtime.clock
    assert isinstance(clock, ManualClock)
    clock.set(local(date(2026, 4, 11)))
    p2 = uuid.uuid4()
    await feed.emit(
        "partner",
        "ProjectCreated",
        p2,
        _project(b, "乙二期", [("x", "2026-06-30")]),
        at=local(date(2026, 4, 11)),
    )
    warned = (await kpi.client.post("/v1/kpi/scorecards/rescore", headers=director)).json()
    assert warned["warnings"] == 1
    assert (await kpi.client.post("/v1/kpi/scorecards/rescore", headers=director)).json()[
        "warnings"
    ] == 0
    app = kpi.runtime.application
    assert isinstance(app, KpiApplication)
    events = app.history(standing_id(b))
    assert [e.event_type for e in events][-1] == "ProbationProjectWarned"
    assert events[-1].payload["project_id"] == str(p2)
    assert events[-1].payload["overall"] == 31.67

    # The Director hears of both standings and of the warning; the PM of the warning.
    await queue(kpi)
    notices = [(n["recipient"], n["subject"]) for n in await outbox(kpi)]
    assert sorted(s for r, s in notices if r == DIRECTOR_BOX and "standing" in s) == [
        "Partner standing: not yet scored -> Excellent (优秀)",
        "Partner standing: not yet scored -> Probation (试用察看)",
    ]
    warning = [r for r, s in notices if s.startswith("Project for a partner in Probation")]
    assert sorted(warning) == sorted(["pm.wang@corp.example", DIRECTOR_BOX])


async def test_scorecard_access_and_errors(kpi: RunningService, settings: Settings) -> None:
    """R6.1: the department reads scorecards, only the Director rescores, a
    partner reads nothing; unknown version or partner is 404."""
    director = auth(settings, "director.zhang", "director")
    specialist = auth(settings, "spec.li", "specialist")
    partner = auth(settings, "p.user", "partner", partner_id=str(uuid.uuid4()))
    assert (await kpi.client.get("/v1/kpi/scorecards", headers=specialist)).status_code == 200
    assert (
        await kpi.client.post("/v1/kpi/scorecards/rescore", headers=specialist)
    ).status_code == 403
    assert (await kpi.client.get("/v1/kpi/scorecards", headers=partner)).status_code == 403
    assert (await kpi.client.get("/v1/kpi/scorecards")).status_code == 401
    missing = await kpi.client.get(
        "/v1/kpi/scorecards", params={"version": "1999.1"}, headers=director
    )
    assert missing.status_code == 404
    assert (
        await kpi.client.get(f"/v1/kpi/scorecards/{uuid.uuid4()}", headers=director)
    ).status_code == 404
