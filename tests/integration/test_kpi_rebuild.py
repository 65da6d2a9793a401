"""Rebuild of all KPI projections from the event stores equals the live
projections, row for row (R6.1, R3.5; ADR 0010: the facts are a pure mapping
of the events, so a replay rebuilds them).

The four services run in this process on a real PostgreSQL and a real broker
with their relays, consumers and projectors on, one manual clock for all:

- kpi: the department (Director, PM, specialist) and a training (kpi.events);
- partner -> approval -> partner: a project asks for procurement approval
  over partner.events, department head and CEO sign, Finance returns it once
  for information, the PM resubmits; ProcurementApproved comes back;
- partner -> approval -> partner: a budget increase goes to the Director, who
  rejects it (the rejection closes the step the consumer finds open);
- partner: contract, kickoff (the docs service opens the report schedule and
  the kickoff meeting from partner.events), tasks, a milestone delivered,
  rejected and redelivered late, a complaint with its response, a survey, a
  cost, a quarterly review, a data leak reported late with its investigation
  and sanctions;
- docs: the weekly department meeting with resolutions assigned, one handed
  to another owner before its deadline (a cancelled obligation), one
  completed, its minutes filed, a document reviewed;
- approval: an emergency action explained late;
- the clock then passes every deadline of March and April; the deadline
  engines record what fell overdue (reports, minutes, resolutions).

Once every relay is drained and every consumer has applied everything
(tracked positions, never sleeps), the kpi consumer's live tables are read;
then every stored event of each service is read back the way the relay
reads it (shared/relay.py: notification -> domain event -> catalogue
envelope -> JSON), parsed the way the consumer parses it, and mapped with
`facts_of` + `store` into a freshly migrated kpi schema. `fact_events`,
`facts`, `projects`, `aggregate_projects` and every `kpi_<metric>` view are
equal, row for row, in any order.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.approval.service import SPEC as APPROVAL
from services.docs.service import SPEC as DOCS
from services.kpi.metrics import METRICS
from services.kpi.service import SPEC as KPI
from services.partner.application import PartnerApplication
from services.partner.service import SPEC as PARTNER
from shared.clock import ManualClock
from shared.db import connect, quote_ident
from shared.settings import Settings
from tests.support.apps import RunningService, fire, running
from tests.support.auth import auth
from tests.support.partner_flow import PM, SPECIALIST, Flow
from tests.support.replay import (
    SOURCES,
    TABLES,
    differences,
    rebuild_kpi,
    snapshot,
    stored_envelopes,
)
from tests.support.waiting import all_flows_quiet, wait_until

pytestmark = pytest.mark.integration

SHANGHAI = timedelta(hours=8)
DIRECTOR = "director.zhang"


def local(day: date, hour: int = 10, minute: int = 0) -> datetime:
    """A Shanghai wall-clock moment, as UTC."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) - SHANGHAI


@dataclass
class Stack:
    settings: Settings
    clock: ManualClock
    services: dict[str, RunningService]

    def headers(self, user: str, role: str) -> dict[str, str]:
        return auth(self.settings, user, role)

    async def ok(
        self, service: str, method: str, url: str, headers: dict[str, str], **kw: Any
    ) -> Any:
        response = await self.services[service].client.request(method, url, headers=headers, **kw)
        assert response.status_code in (200, 201), f"{method} {url}: {response.text}"
        return response.json()

    async def until(self, service: str, url: str, what: str, ready: Callable[[Any], bool]) -> Any:
        """Waits until GET `url` answers 200 with a body `ready` accepts
        (state the service derived from another's events)."""
        found: Any = None
        director = self.headers(DIRECTOR, "director")

        async def check() -> bool:
            nonlocal found
            response = await self.services[service].client.get(url, headers=director)
            if response.status_code != 200:
                return False
            found = response.json()
            return ready(found)

        await wait_until(check, within=90, what=what)
        return found

    def at(self, day: date, hour: int = 10, minute: int = 0) -> None:
        moment = local(day, hour, minute)
        assert moment >= self.clock.now(), "the clock never goes back"
        self.clock.set(moment)

    async def quiet(self) -> bool:
        """Every relay drained, every consumer at every producer's head."""
        status = {name: await svc.status() for name, svc in self.services.items()}
        return all_flows_quiet(status, self.settings)

    def flow(self) -> Flow:
        """The partner service's flow (a qualified partner, a planned project)."""
        partner_app = self.services["partner"].runtime.application
        assert isinstance(partner_app, PartnerApplication)
        return Flow(self.services["partner"].client, self.settings, partner_app)

    def heads(self) -> dict[str, int]:
        return {n: s.runtime.application.log_head() for n, s in self.services.items()}


@contextlib.asynccontextmanager
async def stack(settings: Settings, clock: ManualClock) -> AsyncIterator[Stack]:
    async with (
        running(PARTNER, settings, clock=clock) as partner,
        running(APPROVAL, settings, clock=clock) as approval,
        running(DOCS, settings, clock=clock) as docs,
        running(KPI, settings, clock=clock) as kpi,
    ):
        yield Stack(
            settings,
            clock,
            {"partner": partner, "approval": approval, "docs": docs, "kpi": kpi},
        )


# -- the scenario, through the services' APIs -----------------------------------------------------


async def department(s: Stack) -> None:
    director = s.headers(DIRECTOR, "director")
    for user, role, superior in (
        (DIRECTOR, "director", None),
        (PM, "project_manager", DIRECTOR),
        (SPECIALIST, "specialist", PM),
    ):
        await s.ok("kpi", "POST", "/v1/kpi/staff", director, json={
            "user_id": user, "name": user, "role": role, "superior": superior,
            "joined_on": "2026-03-02",
        })  # fmt: skip
    await s.ok("kpi", "POST", "/v1/kpi/trainings", director, json={
        "title": "ITIL 4", "held_on": "2026-03-02", "hours": 3.5, "attendees": [PM, SPECIALIST],
    })  # fmt: skip


async def procurement(s: Stack, flow: Flow) -> str:
    """R3.1 across partner and approval over Kafka; Finance returns it once."""
    partner_id = await flow.qualified_partner(1)
    project_id = await flow.planned_project(partner_id, date(2026, 3, 20))
    asked = await flow.ok(
        "POST",
        f"/v1/projects/{project_id}/procurement-approval-requests",
        flow.pm,
        json={"justification": "年度运维外包"},
    )
    request_id = asked["approval_request_id"]
    url = f"/v1/approvals/{request_id}"
    await s.until("approval", url, "the approval request to open", lambda _: True)

    async def decide(user: str, role: str, step: str, decision: str = "approve") -> None:
        body = {"decision": decision, "step": step, "reason": "请补充报价明细"}
        await s.ok("approval", "POST", f"{url}/decisions", s.headers(user, role), json=body)

    s.at(date(2026, 3, 2), 14)
    await decide("dh.li", "dept_head", "department_head")
    s.at(date(2026, 3, 3), 9)
    await decide("fin.zhao", "finance", "finance", "return")
    s.at(date(2026, 3, 3), 11)
    await s.ok("approval", "POST", f"{url}/resubmission", flow.pm, json={"response": "已补充"})
    s.at(date(2026, 3, 6), 16)  # past Finance's 72 working hours: the step is overdue
    await fire(s.services["approval"])
    await decide("fin.zhao", "finance", "finance")
    s.at(date(2026, 3, 9), 9)
    await decide("ceo.chen", "ceo", "ceo")
    await s.until(
        "partner",
        f"/v1/projects/{project_id}",
        "the partner service to apply ProcurementApproved",
        lambda p: p["status"] == "approved",
    )
    return project_id


async def project_life(s: Stack, flow: Flow, project_id: str) -> None:
    pm, specialist = flow.pm, flow.specialist
    base = f"/v1/projects/{project_id}"
    s.at(date(2026, 3, 9), 11)
    await flow.ok("POST", f"{base}/contract", pm, json=flow.contract_body(date(2026, 3, 9)))
    await s.until("docs", f"/v1/schedules/{project_id}", "the report schedule", lambda _: True)
    s.at(date(2026, 3, 11), 15)
    await flow.ok("POST", f"{base}/kickoff", pm, json=flow.kickoff_body(date(2026, 3, 11)))
    for task, due in (("T1", "2026-03-13"), ("T2", "2026-03-16")):
        await flow.ok("POST", f"{base}/tasks", pm, json={
            "task_id": task, "title": f"巡检{task}", "specialist": SPECIALIST, "due_on": due,
        })  # fmt: skip
    s.at(date(2026, 3, 11), 17, 30)
    await flow.ok("POST", f"{base}/tasks/T1/acknowledgement", specialist)
    s.at(date(2026, 3, 12), 9)
    await flow.ok("POST", f"{base}/tasks/T2/acknowledgement", specialist)
    await flow.ok("POST", f"{base}/tasks/T1/completion", specialist)
    s.at(date(2026, 3, 17), 10)
    await flow.ok("POST", f"{base}/tasks/T2/completion", specialist)  # a day late
    s.at(date(2026, 3, 19), 16)
    await flow.ok(
        "POST", f"{base}/milestones/M1/deliveries", pm, json={"delivered_on": "2026-03-19"}
    )
    s.at(date(2026, 3, 20), 10)
    await flow.ok("POST", f"{base}/milestones/M1/acceptance", pm, json={
        "accepted": False, "reasons": ["缺少运维手册"],
    })  # fmt: skip
    s.at(date(2026, 3, 23), 10)
    await flow.ok(
        "POST", f"{base}/milestones/M1/deliveries", pm, json={"delivered_on": "2026-03-23"}
    )
    await flow.ok("POST", f"{base}/milestones/M1/acceptance", pm, json={"accepted": True})
    s.at(date(2026, 3, 31), 23, 40)
    complaint = await flow.ok("POST", f"{base}/complaints", pm, json={
        "source": "业务部", "severity": "high", "summary": "夜间故障响应慢",
    })  # fmt: skip
    s.at(date(2026, 4, 1), 9, 10)
    (complaint_id,) = complaint["complaints"]
    await flow.ok(
        "POST", f"{base}/complaints/{complaint_id}/response", pm, json={"response": "已整改"}
    )
    await flow.ok("POST", f"{base}/satisfaction-surveys", pm, json={
        "score": 4, "respondent": "业务部王经理",
    })  # fmt: skip
    await flow.ok("POST", f"{base}/costs", pm, json={
        "amount": "120000.00", "category": "人力", "incurred_on": "2026-03-31",
    })  # fmt: skip
    await flow.ok("POST", f"{base}/reviews", pm, json={
        "held_on": "2026-03-30", "progress": "按计划", "risk_rating": "low",
    })  # fmt: skip
    # R5.2 -> R5.1: a budget increase above 10% goes to the Director, who rejects it.
    changed = await flow.ok("POST", f"{base}/budget", pm, json={
        "new_budget": "1500000.00", "reason": "扩容",
    })  # fmt: skip
    (pending,) = changed["pending_decisions"]
    decision = f"/v1/approvals/{pending['decision_id']}"
    await s.until("approval", decision, "the Director decision to open", lambda _: True)
    s.at(date(2026, 4, 1), 15)
    await s.ok("approval", "POST", f"{decision}/decisions", flow.director, json={
        "decision": "reject", "reason": "预算不足",
    })  # fmt: skip
    await s.until(
        "partner", base, "the partner service to apply the rejection",
        lambda p: not p["pending_decisions"],
    )  # fmt: skip
    s.at(date(2026, 4, 2), 12)
    incident = await flow.ok("POST", f"{base}/incidents", pm, json={
        "category": "data_leak", "severity": "high", "description": "日志含客户手机号",
        "occurred_at": local(date(2026, 4, 2), 8).isoformat(),
        "detected_at": local(date(2026, 4, 2), 9).isoformat(),
    })  # fmt: skip
    (investigation,) = incident["investigations"]
    s.at(date(2026, 4, 10), 10)
    await flow.ok("POST", f"{base}/investigations/{investigation}/conclusion", flow.director, json={
        "findings": "日志脱敏缺失",
        "sanctions": [{"subject": PM, "subject_kind": "staff", "level": "warning"}],
    })  # fmt: skip


async def project_under_way(s: Stack) -> str:
    """The department staffed, then a project procured and through its life;
    returns the project's id."""
    flow = s.flow()
    await department(s)
    project_id = await procurement(s, flow)
    await project_life(s, flow, project_id)
    return project_id


async def department_meeting(s: Stack) -> None:
    pm = s.headers(PM, "project_manager")
    specialist = s.headers(SPECIALIST, "specialist")
    s.at(date(2026, 4, 13), 9)
    held = local(date(2026, 4, 13), 8)
    meeting = await s.ok("docs", "POST", "/v1/meetings", pm, json={
        "kind": "weekly_department", "title": "部门周例会", "held_at": held.isoformat(),
        "attendees": [DIRECTOR, PM, SPECIALIST], "resolutions": ["推进备份演练", "更新值班表"],
    })  # fmt: skip
    mid = meeting["id"]
    for rid, deadline in (("R1", date(2026, 4, 17)), ("R2", date(2026, 4, 15))):
        await s.ok("docs", "POST", f"/v1/meetings/{mid}/resolutions/{rid}/assignment", pm, json={
            "owner": PM, "deadline": local(deadline, 18).isoformat(),
        })  # fmt: skip
    # R2 handed to the specialist before its deadline: the PM's assignment is cancelled.
    await s.ok("docs", "POST", f"/v1/meetings/{mid}/resolutions/R2/assignment", pm, json={
        "owner": SPECIALIST, "deadline": local(date(2026, 4, 15), 18).isoformat(),
    })  # fmt: skip
    s.at(date(2026, 4, 13), 20)
    response = await s.services["docs"].client.post(
        "/v1/documents",
        headers=specialist,
        data={
            "type": "minutes",
            "period": "2026-04-13",
            "name": "信息技术部-2026-04-13-会议纪要",
            "meeting_id": mid,
        },
        files={"file": ("minutes.pdf", b"%PDF-1.7 minutes", "application/pdf")},
    )
    assert response.status_code == 201, response.text
    document = response.json()
    director = s.headers(DIRECTOR, "director")  # a department document: the Director reviews
    await s.ok("docs", "POST", f"/v1/documents/{document['id']}/reviews", director, json={
        "outcome": "needs_correction", "reasons": ["缺少签到表"],
    })  # fmt: skip
    s.at(date(2026, 4, 16), 10)
    await s.ok("docs", "POST", f"/v1/meetings/{mid}/resolutions/R1/completion", pm, json={})


async def emergency(s: Stack, project_id: str) -> None:
    pm = s.headers(PM, "project_manager")
    s.at(date(2026, 4, 20), 3)
    action = await s.ok("approval", "POST", "/v1/emergencies", pm, json={
        "project_id": project_id, "what_happened": "数据库主机宕机",
        "action_taken": "切换备机并调配两名运维", "resources_changed": ["备机"],
        "acted_at": local(date(2026, 4, 20), 2).isoformat(),
    })  # fmt: skip
    s.at(date(2026, 4, 21), 9)  # past the 24 hours: filed late
    await s.ok("approval", "POST", f"/v1/emergencies/{action['id']}/explanation", pm, json={
        "explanation": "主机硬件故障，先行切换以恢复服务",
    })  # fmt: skip


# -- the rebuild ----------------------------------------------------------------------------------


async def settle_everything(s: Stack) -> None:
    """The deadline engines fire what the clock made due, then every event
    reaches every consumer; repeated until nothing moves."""
    for _ in range(10):
        fired = 0
        for svc in s.services.values():
            fired += await fire(svc)
        await wait_until(s.quiet, within=120, what="every relay drained and consumer caught up")
        if fired == 0:
            return
    raise AssertionError("the deadline engines kept firing")


async def rebuild(s: Stack, schema: str) -> dict[str, int]:
    """A fresh kpi schema filled from the four event stores; events per source."""
    envelopes = {
        source: await stored_envelopes(s.services[source].runtime.application) for source in SOURCES
    }
    return await rebuild_kpi(s.settings, envelopes, s.services["kpi"].runtime.policy, schema)


async def test_rebuilding_from_the_event_stores_equals_the_live_projections_R6_1_R3_5(
    settings: Settings,
) -> None:
    """R6.1, R3.5 (ADR 0010): after a scenario through the four real
    services, facts, fact_events, projects, aggregate_projects and every
    kpi_<metric> view rebuilt from the event stores equal the live ones."""
    clock = ManualClock(local(date(2026, 3, 2), 9))
    rebuilt_schema = f"{settings.schema_prefix}kpi_rebuilt"
    try:
        async with stack(settings, clock) as s:
            project_id = await project_under_way(s)
            await department_meeting(s)
            await emergency(s, project_id)
            s.at(date(2026, 5, 11), 9)  # every March and April deadline has passed
            await settle_everything(s)

            kpi = s.services["kpi"]
            assert (await kpi.status())["consumers"], "the kpi consumer runs"
            parked = await kpi.runtime.pool.fetchval(
                "SELECT count(*) FROM dead_letters WHERE redriven_at IS NULL"
            )
            assert parked == 0, "the kpi consumer parked events"
            for _ in range(5):
                heads = s.heads()
                async with kpi.runtime.pool.acquire() as conn:
                    live = await snapshot(conn, settings.schema_of("kpi"))
                if s.heads() == heads and await s.quiet():
                    break
                await wait_until(s.quiet, within=60, what="quiet again")
            else:
                raise AssertionError("the services kept recording events")
            counts = await rebuild(s, rebuilt_schema)
            conn = await connect(settings.postgres, application_name="kpi-rebuild-read")
            try:
                rebuilt = await snapshot(conn, rebuilt_schema)
            finally:
                await conn.close()

        # The scenario reached every source and every kind of fact it meant to.
        assert all(counts[source] > 0 for source in SOURCES), counts
        assert set(live.columns) == {*TABLES, *(f"kpi_{key}" for key in METRICS)}
        kinds = {kind for (kind,) in live.values("facts", "kind")}
        assert {
            "project", "planned_budget", "approved_budget", "milestone_due",
            "milestone_delivered", "milestone_rejected",
            "task_assigned", "task_due", "task_acknowledged", "task_completed",
            "complaint_received", "complaint_responded", "satisfaction", "cost",
            "contract_signed", "obligation_due", "obligation_met", "obligation_breached",
            "approval_requested", "approval_cycle", "meeting", "document_filed",
            "document_reviewed", "incident", "investigation_opened",
            "investigation_concluded", "sanction", "emergency_action", "training_attended",
            "obligation_cancelled",
        } <= kinds, kinds  # fmt: skip
        assert "budget" not in kinds  # only planned or approved budgets (R5.2)
        facts = live.values("facts", "kind", "label", "subject", "flag")
        breached = {label for kind, label, _, _ in facts if kind == "obligation_breached"}
        assert {"approval_step", "report", "resolution", "data_leak_report"} <= breached
        rejected = [
            subject.split(":")[1:]
            for kind, label, subject, flag in facts
            if (kind, label, flag) == ("obligation_met", "approval_step", None)
        ]
        assert rejected == [["director", "1"]], "the Director's rejection closed its step"
        levels = {label for (label,) in live.values("kpi_approval_cycle_hours", "label")}
        assert {"department_head", "finance", "ceo", "director"} <= levels, levels
        assert live.rows["kpi_compliance"] and live.rows["projects"]

        assert differences(live, rebuilt) == {}
        assert live.rows == rebuilt.rows
    finally:
        conn = await connect(settings.postgres, application_name="tests")
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(rebuilt_schema)} CASCADE")
        finally:
            await conn.close()
