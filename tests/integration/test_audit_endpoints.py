"""Audit endpoints (issue 7: point-in-time and trails, exports, the auditor),
on real PostgreSQL and a real broker, the four services in process:

- as-of reconstruction: a scenario drives every aggregate type of the four
  services through their APIs on a manual clock, capturing each aggregate's
  state (same serialiser, from the application's repository) at several
  moments; `GET /v1/audit/{type}/{id}?as_of=` answers each capture, also
  between two moments, and "did not exist yet" before the first;
- the cross-service trail: the relays publish, the kpi consumer keeps every
  event (its EVERY_EVENT handler); a project's trail is every event of the
  aggregates that belong to it in all services, a user's trail everything
  they did, both in recorded order, paged, cut by from/to; the export zip
  holds the same events as JSON Lines and CSV, and its manifest's counts
  and SHA-256 match the files;
- the auditor: every non-GET route of every service refuses an auditor
  (403, on record) and changes nothing; every audit route answers the
  auditor 200; other roles are refused and recorded.

Waits are on tracked positions (relay and consumer offsets), never on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import json
import re
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import AggregateNotFoundError

from services.approval.domain.delegation import delegations_id
from services.docs.domain.schedule import schedule_id
from services.kpi.application import KpiApplication
from services.kpi.domain.evaluation import Period, evaluation_id
from services.kpi.domain.staff import DEPARTMENT_ID
from services.kpi.domain.standing import standing_id
from shared.audit import OMITTED, aggregate_state
from shared.clock import ManualClock
from shared.domain import Actor, LedgerAggregate
from shared.envelope import EventEnvelope
from shared.eventstore import LedgerApplication
from shared.settings import Settings
from tests.support.apps import fire, four_services, table_counts
from tests.support.data import registration
from tests.support.docs_api import PROJECT_NAME, DocsApi
from tests.support.partner_flow import PM, SPECIALIST, scores
from tests.support.scenario import (
    FourServices,
    emergency_body,
    meeting_body,
    procurement_body,
    procurement_saga,
    staff_body,
)
from tests.support.waiting import consumer_caught_up, wait_until

pytestmark = pytest.mark.integration

SHANGHAI = timedelta(hours=8)
AUDITOR = "auditor.sun"
DIRECTOR = "director.zhang"
DH, DH_COLLEAGUE, DH_OTHER, FIN, CEO = "dh.li", "dh.zhou", "dh.wu", "fin.zhao", "ceo.chen"
KPI_SPECIALIST, NEWCOMER = "sp.qian", "sp.sun"
NAMES = ("partner", "approval", "docs", "kpi")


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A wall-clock time in Asia/Shanghai, as UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC) - SHANGHAI


@dataclass
class Services(FourServices):
    """The four services in process, sharing one manual clock."""

    clock: ManualClock

    def app(self, service: str) -> LedgerApplication:
        return self.running[service].runtime.application

    @property
    def auditor(self) -> dict[str, str]:
        return self.headers(AUDITOR, "auditor")

    def stored(self, service: str) -> list[EventEnvelope]:
        """Every event of a service's store, as published (notification order)."""
        app = self.app(service)
        out = []
        for n in app.recorder.select_notifications(start=1, limit=100_000):
            event = app.mapper.to_domain_event(n)
            assert isinstance(event, LedgerAggregate.Event)
            out.append(app.catalogue.to_envelope(event))
        return out

    async def caught_up(self) -> None:
        """Every relay drained, and the kpi consumer applied all it published."""
        group = f"{self.settings.consumer_group_of('kpi')}.projections"

        async def check() -> bool:
            kpi = await self.running["kpi"].status()
            for name in NAMES:
                if not consumer_caught_up(await self.running[name].status(), kpi, group):
                    return False
            return True

        await wait_until(check, what="the kpi consumer applied every topic")


@contextlib.asynccontextmanager
async def four(
    settings: Settings, clock: ManualClock, *, relay: bool, consumers: bool
) -> AsyncIterator[Services]:
    """Projectors (and so the kpi scoring loop) stay off: the tests settle
    and fire by hand, so no background work records anything unasked."""
    async with four_services(
        settings, relay=relay, consumers=consumers, projectors=False, clock=clock
    ) as running:
        yield Services(running, settings, clock)


# -- as of a moment ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tracked:
    service: str
    aggregate_type: str
    aggregate_id: UUID


def capture(svcs: Services, tracked: dict[str, Tracked]) -> dict[str, tuple[int, Any]]:
    """Each aggregate's (version, state) now, from its application's repository."""
    found: dict[str, tuple[int, Any]] = {}
    for key, t in tracked.items():
        try:
            aggregate = svcs.app(t.service).repository.get(t.aggregate_id)
        except AggregateNotFoundError:
            found[key] = (0, None)
            continue
        found[key] = (aggregate.version, aggregate_state(aggregate))
    return found


def strange_values(value: Any) -> list[str]:
    """Values the serialiser did not know (`<Type>`) or left out (`<omitted>`)."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in strange_values(v)]
    if isinstance(value, list):
        return [s for v in value for s in strange_values(v)]
    if isinstance(value, str) and (value == OMITTED or re.fullmatch(r"<[A-Za-z_]\w*>", value)):
        return [value]
    return []


async def test_as_of_reconstruction_equals_the_state_captured_then_for_every_aggregate_type(
    settings: Settings,
) -> None:
    """Twelve aggregates of all eleven types over three moments a month
    apart: `?as_of=` rebuilds each as it was captured then (and half an hour
    later), with its events up to then; before it existed it is version 0."""
    t1, t2, t3 = local(2026, 10, 8, 10), local(2026, 11, 6, 10), local(2026, 11, 9, 10)
    clock = ManualClock(t1)
    async with four(settings, clock, relay=False, consumers=False) as svcs:
        tracked, moments, seen = await as_of_scenario(svcs, t2, t3)

        everything = {cls.AGGREGATE_TYPE for name in NAMES for cls in svcs.app(name).AGGREGATES}
        assert {t.aggregate_type for t in tracked.values()} == everything
        final = moments[-1][1]
        assert all(version > 0 for version, _ in final.values())
        # Every aggregate changed between two captures, bar one event-sourced fact
        # written once (an evaluation submitted on time holds still afterwards).
        moved = {k for k in tracked if len({c[k][0] for _, c in moments}) > 1}
        assert moved >= set(tracked) - {"evaluation_on_time"}
        # The captures agree with what the services' own views said then.
        assert [views for _, views in seen] == [
            {"partner": "qualified", "approval": "pending", "emergency": "awaiting_explanation"},
            {"partner": "qualified", "approval": "pending", "emergency": "explained"},
            {"partner": "qualified", "approval": "pending", "emergency": "ratified"},
        ]
        for (_, captured), (_, views) in zip(moments, seen, strict=True):
            assert captured["partner"][1]["status"] == views["partner"]
            assert captured["approval"][1]["state"] == views["approval"]
            assert captured["emergency"][1]["state"] == views["emergency"]

        for moment, captured in moments:
            for key, t in tracked.items():
                for asked in (moment, moment + timedelta(minutes=30)):
                    response = await svcs.running[t.service].client.get(
                        f"/v1/audit/{t.aggregate_type}/{t.aggregate_id}",
                        params={"as_of": asked.isoformat()},
                        headers=svcs.auditor,
                    )
                    assert response.status_code == 200, response.text
                    body = response.json()
                    version, state = captured[key]
                    assert (body["version"], body["state"]) == (version, state), (key, asked)
                    assert [e["aggregate_version"] for e in body["events"]] == list(
                        range(1, version + 1)
                    )
                    assert datetime.fromisoformat(body["as_of"]) == asked
                    assert strange_values(state) == [], (key, strange_values(state))

        # Before anything existed, and the whole history without as_of.
        for key, t in tracked.items():
            url = f"/v1/audit/{t.aggregate_type}/{t.aggregate_id}"
            history = await svcs.ok(t.service, "GET", url, svcs.auditor)
            expected = svcs.app(t.service).history(t.aggregate_id)
            assert history["events"] == [e.model_dump(mode="json") for e in expected], key
            assert (history["version"], history["state"], history["as_of"]) == (
                len(expected),
                None,
                None,
            )
            response = await svcs.running[t.service].client.get(
                url, params={"as_of": (t1 - timedelta(days=1)).isoformat()}, headers=svcs.auditor
            )
            assert response.status_code == 200
            assert (response.json()["version"], response.json()["state"]) == (0, None)
            assert response.json()["events"] == []

        await paging_and_not_found(svcs, tracked)


Captures = list[tuple[datetime, dict[str, tuple[int, Any]]]]


async def views(svcs: Services, tracked: dict[str, Tracked]) -> tuple[datetime, dict[str, str]]:
    """What the services' own APIs show of a few aggregates now."""
    director = svcs.headers(DIRECTOR, "director")
    partner = await svcs.ok(
        "partner", "GET", f"/v1/partners/{tracked['partner'].aggregate_id}", director
    )
    request = await svcs.ok(
        "approval", "GET", f"/v1/approvals/{tracked['approval'].aggregate_id}", director
    )
    emergency = await svcs.ok(
        "approval", "GET", f"/v1/emergencies/{tracked['emergency'].aggregate_id}", director
    )
    return svcs.clock.now(), {
        "partner": partner["status"],
        "approval": request["state"],
        "emergency": emergency["state"],
    }


async def as_of_scenario(
    svcs: Services, t2: datetime, t3: datetime
) -> tuple[dict[str, Tracked], Captures, list[tuple[datetime, dict[str, str]]]]:
    """Three phases over a month on the manual clock; after each, every
    aggregate's state is captured, and a few of the services' views."""
    kpi_app = svcs.app("kpi")
    assert isinstance(kpi_app, KpiApplication)
    flow = svcs.flow()
    partner_app = flow.app
    docs = DocsApi(svcs.running["docs"], svcs.settings, svcs.clock)
    pm = svcs.headers(PM, "project_manager")
    dh = svcs.headers(DH, "dept_head")
    director = svcs.headers(DIRECTOR, "director")
    now = svcs.clock.now

    # -- phase 1 (t1) ------------------------------------------------------------------------
    partner_id = await flow.qualified_partner(1)
    project_id = await flow.planned_project(partner_id, date(2026, 12, 31))
    request = await svcs.ok("approval", "POST", "/v1/approvals", pm, procurement_body())
    emergency = await svcs.ok(
        "approval",
        "POST",
        "/v1/emergencies",
        pm,
        emergency_body(now() - timedelta(hours=1), project_id),
    )
    grant = {
        "delegate": DH_COLLEAGUE,
        "starts_at": now().isoformat(),
        "ends_at": (now() + timedelta(days=7)).isoformat(),
        "reason": "出差一周",
    }
    await svcs.ok("approval", "POST", "/v1/delegations", dh, grant)
    doc_project = await docs.project(signed_on=date(2026, 10, 8))
    report = {
        "name": f"{PROJECT_NAME}-2026年10月-周报",
        "doc_type": "weekly_report",
        "period": "2026-W41",
        "project_id": doc_project,
    }
    document = await docs.filed(docs.specialist, content=b"first version", **report)
    meeting = await svcs.ok(
        "docs",
        "POST",
        "/v1/meetings",
        director,
        meeting_body(now() - timedelta(hours=1), [PM, SPECIALIST]),
    )
    for user, role, superior in (
        (DIRECTOR, "director", None),
        (PM, "project_manager", DIRECTOR),
        (KPI_SPECIALIST, "specialist", PM),
    ):
        await svcs.ok("kpi", "POST", "/v1/kpi/staff", director, staff_body(user, role, superior))
    assessment = {"rating": 4, "strengths": "按时交付", "improvements": "加强风险预判"}
    await svcs.ok(
        "kpi",
        "POST",
        "/v1/kpi/evaluations/self-assessments",
        svcs.headers(KPI_SPECIALIST, "specialist"),
        {**assessment, "period": "2026-10"},
    )

    def standing(name: str, zh: str, overall: float) -> bool:
        return kpi_app.assess_standing(
            UUID(partner_id),
            standing=name,
            standing_zh=zh,
            overall=overall,
            formula_version=kpi_app.scorecard.active,
            period_kind="month",
            latest_period="2026-09-01",
        )

    assert await asyncio.to_thread(standing, "Good", "良好", 82.5)

    october = Period.parse("2026-10")
    tracked = {
        "partner": Tracked("partner", "Partner", UUID(partner_id)),
        "project": Tracked("partner", "Project", UUID(project_id)),
        "approval": Tracked("approval", "ApprovalRequest", UUID(request["id"])),
        "emergency": Tracked("approval", "EmergencyAction", UUID(emergency["id"])),
        "delegations": Tracked("approval", "Delegations", delegations_id(DH)),
        "document": Tracked("docs", "Document", UUID(document["id"])),
        "schedule": Tracked("docs", "ReportSchedule", schedule_id(doc_project)),
        "meeting": Tracked("docs", "Meeting", UUID(meeting["id"])),
        "department": Tracked("kpi", "Department", DEPARTMENT_ID),
        "evaluation_on_time": Tracked("kpi", "Evaluation", evaluation_id(KPI_SPECIALIST, october)),
        "evaluation_late": Tracked("kpi", "Evaluation", evaluation_id(PM, october)),
        "standing": Tracked("kpi", "PartnerStanding", standing_id(UUID(partner_id))),
    }
    moments = [(now(), capture(svcs, tracked))]
    seen = [await views(svcs, tracked)]

    # -- phase 2 (t2: after the October self-assessments were due) ------------------------
    svcs.clock.set(t2)
    await svcs.ok(
        "partner",
        "POST",
        f"/v1/partners/{partner_id}/evaluations",
        svcs.headers(SPECIALIST, "specialist"),
        {"scores": scores(5), "qualifications": [], "summary": "复评良好"},
    )
    procured = await svcs.ok(
        "partner",
        "POST",
        f"/v1/projects/{project_id}/procurement-approval-requests",
        pm,
        {"justification": "年度运维外包"},
    )
    await svcs.ok(
        "approval", "POST", f"/v1/approvals/{request['id']}/decisions", dh, {"decision": "approve"}
    )
    await svcs.explain(emergency["id"], pm)
    await svcs.ok(
        "approval",
        "POST",
        "/v1/delegations",
        dh,
        {
            **grant,
            "delegate": DH_OTHER,
            "starts_at": now().isoformat(),
            "ends_at": (now() + timedelta(days=3)).isoformat(),
        },
    )
    await docs.filed(docs.specialist, content=b"second version", **report)
    await svcs.ok(
        "docs",
        "POST",
        f"/v1/meetings/{meeting['id']}/resolutions/R1/assignment",
        director,
        {"owner": PM, "deadline": (now() + timedelta(days=14)).isoformat()},
    )
    await svcs.ok(
        "kpi",
        "POST",
        "/v1/kpi/staff",
        director,
        {
            "user_id": NEWCOMER,
            "name": "新同事",
            "role": "specialist",
            "superior": PM,
            "joined_on": "2026-11-06",
        },
    )
    assert await fire(svcs.running["kpi"]) >= 1  # PM's October self-assessment is overdue
    assert await asyncio.to_thread(standing, "Probation", "观察期", 31.7)
    moments.append((now(), capture(svcs, tracked)))
    seen.append(await views(svcs, tracked))

    # -- phase 3 (t3) ------------------------------------------------------------------------
    svcs.clock.set(t3)
    ctx = partner_app.context(Actor(CEO, "ceo"))
    assert partner_app.record_procurement_outcome(
        ctx,
        UUID(project_id),
        request_id=UUID(procured["approval_request_id"]),
        approved=True,
        decided_at=now(),
    )
    await svcs.ok(
        "partner",
        "POST",
        f"/v1/partners/{partner_id}/evaluations",
        svcs.headers(SPECIALIST, "specialist"),
        {"scores": scores(3), "qualifications": [], "summary": "有所下降"},
    )
    await svcs.ok(
        "approval",
        "POST",
        f"/v1/approvals/{request['id']}/decisions",
        svcs.headers(FIN, "finance"),
        {"decision": "approve", "step": "finance"},
    )
    await svcs.ok(
        "approval",
        "POST",
        f"/v1/emergencies/{emergency['id']}/decision",
        director,
        {"ratify": True},
    )
    await svcs.ok(
        "docs",
        "POST",
        f"/v1/documents/{document['id']}/reviews",
        director,
        {"version": 2, "outcome": "accepted"},
    )
    await docs.settle()
    await svcs.ok(
        "docs",
        "POST",
        f"/v1/meetings/{meeting['id']}/resolutions/R1/completion",
        pm,
        {"note": "已完成"},
    )
    await svcs.ok(
        "kpi",
        "POST",
        "/v1/kpi/evaluations/self-assessments",
        pm,
        {**assessment, "period": "2026-10"},
    )
    await svcs.ok(
        "kpi",
        "POST",
        f"/v1/kpi/staff/{NEWCOMER}/departure",
        director,
        {"left_on": "2026-11-09", "reason": "个人原因离职"},
    )
    assert await asyncio.to_thread(standing, "Watch", "关注", 65.0)
    # Delegations and the report schedule get their third change here.
    await svcs.ok(
        "approval",
        "POST",
        "/v1/delegations",
        dh,
        {
            **grant,
            "delegate": DH_OTHER,
            "starts_at": now().isoformat(),
            "ends_at": (now() + timedelta(days=2)).isoformat(),
        },
    )
    await docs.filed(
        docs.specialist,
        content=b"week 46",
        **{**report, "name": f"{PROJECT_NAME}-2026年11月-周报", "period": "2026-W46"},
    )
    moments.append((now(), capture(svcs, tracked)))
    seen.append(await views(svcs, tracked))
    return tracked, moments, seen


async def paging_and_not_found(svcs: Services, tracked: dict[str, Tracked]) -> None:
    """Pages of two follow the cursor to the whole history; an unknown type,
    an unknown id and an id of another type are 404; bad input is 422."""
    t = tracked["project"]
    url = f"/v1/audit/{t.aggregate_type}/{t.aggregate_id}"
    seen: list[int] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = (
            await svcs.running["partner"].client.get(url, params=params, headers=svcs.auditor)
        ).json()
        assert len(page["events"]) <= 2
        seen += [e["aggregate_version"] for e in page["events"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == list(range(1, len(svcs.app("partner").history(t.aggregate_id)) + 1))

    partner = tracked["partner"].aggregate_id
    for path in (
        f"/v1/audit/Project/{partner}",  # a partner's id is no project
        f"/v1/audit/Document/{partner}",  # a type of another service
        f"/v1/audit/Nothing/{partner}",
        f"/v1/audit/Partner/{tracked['document'].aggregate_id}",  # an id of another service
    ):
        response = await svcs.running["partner"].client.get(path, headers=svcs.auditor)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
    for query in ("as_of=2026-11-01T00:00:00", "cursor=bm9wZQ==", "limit=0"):
        response = await svcs.running["partner"].client.get(f"{url}?{query}", headers=svcs.auditor)
        assert response.status_code == 422, query  # a moment without offset, a bad cursor


# -- the cross-service trail ------------------------------------------------------------------


def belongs_to(
    project: UUID, events: list[tuple[str, EventEnvelope]]
) -> list[tuple[str, EventEnvelope]]:
    """The documented rule, from the stores: a Project's own events; events
    naming the project; later events of an aggregate whose first event named it."""
    owner: dict[UUID, str | None] = {}
    out = []
    for service, e in events:
        named = e.payload.get("project_id")
        if e.aggregate_version == 1:
            owner[e.aggregate_id] = named
        if (
            (e.aggregate_type == "Project" and e.aggregate_id == project)
            or named == str(project)
            or owner.get(e.aggregate_id) == str(project)
        ):
            out.append((service, e))
    return out


def in_order(events: list[tuple[str, EventEnvelope]]) -> list[str]:
    ordered = sorted(
        events,
        key=lambda se: (se[1].recorded_at, se[0], str(se[1].aggregate_id), se[1].aggregate_version),
    )
    return [str(e.event_id) for _, e in ordered]


async def trail(svcs: Services, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of a trail, following next_cursor."""
    items: list[dict[str, Any]] = []
    query = {k.rstrip("_"): v for k, v in params.items() if v is not None}
    while True:
        response = await svcs.running["kpi"].client.get(path, params=query, headers=svcs.auditor)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        if page["next_cursor"] is None:
            return items
        query["cursor"] = page["next_cursor"]


def unpack(body: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


def check_export(files: dict[str, bytes], items: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest matches the files, and both files hold `items` in order."""
    assert list(files) == ["events.jsonl", "events.csv", "manifest.json"]
    manifest: dict[str, Any] = json.loads(files["manifest.json"])
    for entry in manifest["files"]:
        data = files[entry["name"]]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["name"]
        assert len(data) == entry["bytes"]
        assert entry["records"] == len(items)
    assert manifest["events"] == len(items)
    lines = files["events.jsonl"].decode().splitlines()
    assert [json.loads(line) for line in lines] == items
    text = files["events.csv"].decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0][:3] == ["event_id", "service", "event_type"]
    assert [r[0] for r in rows[1:]] == [i["event_id"] for i in items]
    assert [json.loads(r[-1]) for r in rows[1:]] == [i["payload"] for i in items]
    assert [r[9] for r in rows[1:]] == [i["actor"]["user_id"] for i in items]
    return manifest


async def test_trails_across_the_services_and_their_exports(settings: Settings) -> None:
    """A project from registration to its first weekly report, through the
    real saga: partner -> approval (three signatures) -> partner -> docs;
    the kpi consumer keeps every event of every topic."""
    start = local(2026, 11, 23, 9)
    clock = ManualClock(start)
    async with four(settings, clock, relay=True, consumers=True) as svcs:
        pm = svcs.headers(PM, "project_manager")
        moments: list[datetime] = []

        def step() -> None:
            clock.advance(timedelta(hours=1))
            moments.append(clock.now())

        saga = await procurement_saga(
            svcs, clock, step, tick_before_request=True, tick_each_signature=False
        )
        project_id, document = saga.project_id, saga.document
        # An unrelated partner and its events: in no project's trail.
        await svcs.ok("partner", "POST", "/v1/partners", pm, registration(2))
        await svcs.caught_up()

        stored = [(name, e) for name in NAMES for e in svcs.stored(name)]
        kept = await svcs.running["kpi"].runtime.pool.fetchval("SELECT count(*) FROM audit_trail")
        assert kept == len(stored)  # every event of every topic, once

        # -- a project's trail -------------------------------------------------------------
        items = await trail(svcs, f"/v1/audit/trail/projects/{project_id}", limit=4)
        expected = belongs_to(UUID(project_id), stored)
        assert [i["event_id"] for i in items] == in_order(expected)
        assert {i["service"] for i in items} == {"partner", "approval", "docs"}
        types = [i["event_type"] for i in items]
        for event_type in (
            "ProjectCreated",
            "ProcurementApprovalRequested",
            "ApprovalRequested",
            "ApprovalStepApproved",  # names no project: resolved through its request
            "ProcurementApproved",
            "ContractSigned",
            "ReportScheduleOpened",
            "DocumentFiled",
            "ReportFiled",
        ):
            assert event_type in types, event_type
        assert {i["project_id"] for i in items} == {project_id}
        assert document["id"] in {i["aggregate_id"] for i in items}
        assert "PartnerRegistered" not in types
        by_id = {str(e.event_id): (s, e) for s, e in stored}
        for item in items:
            service, envelope = by_id[item["event_id"]]
            assert item["service"] == service
            assert {k: v for k, v in item.items() if k not in ("service", "project_id")} == (
                envelope.model_dump(mode="json")
            )
        # Cut by time: from is inclusive, to exclusive.
        cut = await trail(
            svcs,
            f"/v1/audit/trail/projects/{project_id}",
            from_=moments[1].isoformat(),
            to=moments[3].isoformat(),
        )
        assert cut and [i["event_id"] for i in cut] == [
            i["event_id"]
            for i in items
            if moments[1] <= datetime.fromisoformat(i["recorded_at"]) < moments[3]
        ]

        # -- a user's trail ----------------------------------------------------------------
        mine = await trail(svcs, f"/v1/audit/trail/users/{PM}", limit=3)
        assert [i["event_id"] for i in mine] == in_order(
            [(s, e) for s, e in stored if e.actor.user_id == PM]
        )
        # What the services did in reaction to the PM's commands is theirs too.
        assert {i["service"] for i in mine} == {"partner", "approval", "docs"}
        ceo = await trail(svcs, f"/v1/audit/trail/users/{CEO}")
        assert [(i["service"], i["event_type"]) for i in ceo] == [
            ("approval", "ApprovalStepApproved"),
            ("approval", "ProcurementApproved"),
            ("partner", "ProcurementApprovalGranted"),  # the partner service, in reaction
        ]
        assert await trail(svcs, "/v1/audit/trail/users/nobody") == []

        # -- exports -----------------------------------------------------------------------
        response = await svcs.running["kpi"].client.get(
            "/v1/audit/export", params={"kind": "project", "id": project_id}, headers=svcs.auditor
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/zip"
        assert response.headers["content-disposition"].startswith("attachment; filename=")
        manifest = check_export(unpack(response.content), items)
        assert manifest["query"] == {"kind": "project", "id": project_id, "from": None, "to": None}
        assert manifest["service"] == "kpi" and manifest["service_version"]
        assert manifest["generated_by"] == {"user_id": AUDITOR, "role": "auditor"}
        assert datetime.fromisoformat(manifest["generated_at"]) == clock.now()
        assert (
            manifest["first_recorded_at"]
            == datetime.fromisoformat(items[0]["recorded_at"]).isoformat()
        )

        window = {"from": moments[0].isoformat(), "to": moments[2].isoformat()}
        response = await svcs.running["kpi"].client.get(
            "/v1/audit/export", params={"kind": "user", "id": PM, **window}, headers=svcs.auditor
        )
        assert response.status_code == 200
        expected_window = [
            i for i in mine if moments[0] <= datetime.fromisoformat(i["recorded_at"]) < moments[2]
        ]
        assert expected_window
        manifest = check_export(unpack(response.content), expected_window)
        assert manifest["query"] == {"kind": "user", "id": PM, **window}

        empty = await svcs.running["kpi"].client.get(
            "/v1/audit/export", params={"kind": "user", "id": "nobody"}, headers=svcs.auditor
        )
        assert check_export(unpack(empty.content), [])["events"] == 0

        for params in (
            {"kind": "project", "id": "not-a-uuid"},
            {"kind": "team", "id": PM},
            {
                "kind": "user",
                "id": PM,
                "from": moments[2].isoformat(),
                "to": moments[0].isoformat(),
            },
        ):
            response = await svcs.running["kpi"].client.get(
                "/v1/audit/export", params=params, headers=svcs.auditor
            )
            assert response.status_code == 422, params


# -- the auditor ------------------------------------------------------------------------------

READS = {"GET", "HEAD"}
#: Values for the patterns that request schemas use.
PATTERNS = {"^[A-Z]{3}$": "CNY", "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$": "pm.wang"}


def path_values(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "M1"), path)


def example(schema: dict[str, Any], spec: dict[str, Any], now: datetime, full: bool) -> Any:
    """An instance of a request body schema, so that a route gets past
    validation to its authorisation: required fields only, or (`full`) every
    field with one item in each list (for rules across fields)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return example(spec["components"]["schemas"][name], spec, now, full)
    if "const" in schema or "enum" in schema:
        return schema.get("const", (schema.get("enum") or [None])[0])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"]
            return example(options[0], spec, now, full)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        names = properties if full else schema.get("required", [])
        return {k: example(properties[k], spec, now, full) for k in names}
    if kind == "array":
        count = max(schema.get("minItems", 0), 1 if full else 0)
        return [example(schema.get("items", {}), spec, now, full)] * count
    return scalar(schema, now)


def scalar(schema: dict[str, Any], now: datetime) -> Any:
    kind = schema.get("type")
    if kind in ("integer", "number"):
        return max(schema.get("minimum", 1), schema.get("exclusiveMinimum", 0) + 1)
    if kind == "boolean":
        return False
    formats = {
        "date-time": now.isoformat(),
        "date": now.date().isoformat(),
        "uuid": str(UUID(int=7)),
        "email": "someone@example.com",
    }
    if schema.get("format") in formats:
        return formats[schema["format"]]
    if "pattern" in schema:
        return PATTERNS[schema["pattern"]]
    return "x" * max(schema.get("minLength", 1), 1)


def json_bodies(operation: dict[str, Any], spec: dict[str, Any], now: datetime) -> list[Any]:
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return [None]
    schema = content["application/json"]["schema"]
    return [example(schema, spec, now, full) for full in (False, True)]


async def resources(svcs: Services) -> dict[str, str]:
    """One of each resource the routes name, so that every route gets as far
    as deciding who may use it."""
    flow = svcs.flow()
    pm = svcs.headers(PM, "project_manager")
    director = svcs.headers(DIRECTOR, "director")
    partner_id = await flow.qualified_partner(1)
    project_id = await flow.planned_project(partner_id, date(2026, 12, 31))
    request = await svcs.ok("approval", "POST", "/v1/approvals", pm, procurement_body())
    emergency = await svcs.ok(
        "approval",
        "POST",
        "/v1/emergencies",
        pm,
        emergency_body(svcs.clock.now(), project_id, resources_changed=[]),
    )
    granted = await svcs.ok(
        "approval",
        "POST",
        "/v1/delegations",
        svcs.headers(DH, "dept_head"),
        {
            "delegate": DH_COLLEAGUE,
            "starts_at": svcs.clock.now().isoformat(),
            "ends_at": (svcs.clock.now() + timedelta(days=7)).isoformat(),
            "reason": "出差一周",
        },
    )
    docs = DocsApi(svcs.running["docs"], svcs.settings, svcs.clock)
    doc_project = await docs.project(signed_on=svcs.clock.now().date())
    document = await docs.filed(
        docs.specialist,
        name=f"{PROJECT_NAME}-2026年11月-周报",
        doc_type="weekly_report",
        period="2026-W48",
        project_id=doc_project,
    )
    meeting = await svcs.ok(
        "docs",
        "POST",
        "/v1/meetings",
        director,
        meeting_body(svcs.clock.now() - timedelta(hours=1), [PM]),
    )
    await svcs.ok(
        "kpi",
        "POST",
        "/v1/kpi/staff",
        director,
        {
            "user_id": DIRECTOR,
            "name": "张主任",
            "role": "director",
            "superior": None,
            "joined_on": "2026-10-01",
        },
    )
    return {
        "partner_id": partner_id,
        "project_id": project_id,
        "request_id": request["id"],
        "action_id": emergency["id"],
        "grant_id": granted["delegations"][0]["grant_id"],
        "document_id": document["id"],
        "meeting_id": meeting["id"],
        "resolution_id": "R1",
        "user_id": PM,
        "subscription_id": str(UUID(int=7)),
    }


async def test_the_auditor_reads_every_audit_route_and_changes_nothing(settings: Settings) -> None:
    """Every route but GET refuses an auditor with 403, on record, and no
    table of any service changes; every audit route answers the auditor (and
    the Director) and refuses a project manager, on record."""
    clock = ManualClock(local(2026, 11, 23, 9))
    async with four(settings, clock, relay=False, consumers=False) as svcs:
        ids = await resources(svcs)
        pm = svcs.headers(PM, "project_manager")
        director = svcs.headers(DIRECTOR, "director")
        audited = {
            "partner": ("Project", ids["project_id"]),
            "approval": ("EmergencyAction", ids["action_id"]),
            "docs": ("Document", ids["document_id"]),
            "kpi": ("Department", str(DEPARTMENT_ID)),
        }
        for name in NAMES:
            svc = svcs.running[name]
            spec = svc.app.openapi()
            paths: dict[str, dict[str, Any]] = spec["paths"]
            head = svc.runtime.application.log_head()
            before = await table_counts(svc)
            first_denial = await svc.runtime.pool.fetchval(
                "SELECT coalesce(max(id), 0) FROM access_denials"
            )
            kind, aggregate = audited[name]
            values = {**ids, "aggregate_type": kind, "aggregate_id": aggregate}
            refused, audit_routes = 0, 0
            for path, operations in sorted(paths.items()):
                url = path_values(path, values)
                for method, operation in operations.items():
                    if method.upper() in READS:
                        continue
                    for body in json_bodies(operation, spec, clock.now()):
                        response = await svc.client.request(
                            method.upper(), url, headers=svcs.auditor, json=body
                        )
                        if response.status_code != 422:
                            break
                    assert response.status_code == 403, (name, method, path, response.text)
                    refused += 1
                if path.startswith("/v1/audit") and "get" in operations:
                    params = {"kind": "user", "id": PM} if path.endswith("/export") else None
                    for reader in (svcs.auditor, director):
                        response = await svc.client.get(url, params=params, headers=reader)
                        assert response.status_code == 200, (name, path, response.text)
                    other = await svc.client.get(url, params=params, headers=pm)
                    assert other.status_code == 403, (name, path)
                    assert "may not read audit histories" in other.json()["detail"]
                    audit_routes += 1
            assert refused > 0, name
            assert audit_routes == (5 if name == "kpi" else 2), name
            assert svc.runtime.application.log_head() == head, f"{name}: an event was stored"
            assert await table_counts(svc) == before, f"{name}: a table changed"
            rows = await svc.runtime.pool.fetch(
                "SELECT user_id, role, status FROM access_denials WHERE id > $1",
                first_denial,
            )
            assert sorted((r["user_id"], r["role"], r["status"]) for r in rows) == sorted(
                [(AUDITOR, "auditor", 403)] * refused
                + [(PM, "project_manager", 403)] * audit_routes
            )
