"""The deadline engine (R3.5) with a moved clock, never a sleep:

- R3.2: the kickoff clock starts at contract signing and ends at the end of
  the 7th day (Asia/Shanghai); passing it records `KickoffOverdue` exactly
  once, with two engine replicas firing together, after a restart, and after
  a crash between the event and the deadline row;
- R3.3: every quarter after the signing quarter needs a review by its last day;
  a review meets it and starts the next quarter's clock;
- R2.1: a qualification runs out at the end of its day; the partner then needs
  re-evaluation and cannot be chosen until the Director qualifies it again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from services.partner.application import PartnerApplication
from services.partner.service import SPEC as PARTNER
from shared.clock import ManualClock
from shared.deadlines import Deadline, DeadlineEngine
from shared.runtime import projector
from shared.settings import Settings
from tests.support.apps import RunningService, running
from tests.support.partner_flow import Flow, scores
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SHANGHAI = timedelta(hours=8)
FRIDAY = date(2026, 11, 27)


def local(day: date, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC) - SHANGHAI


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(local(FRIDAY, 9))


@pytest.fixture
async def service(settings: Settings, clock: ManualClock) -> AsyncIterator[RunningService]:
    # Projectors on (they record the deadlines); the engine is driven by hand:
    # its background loop would otherwise fire on the moved clock within a second.
    async with running(
        PARTNER, settings, relay=False, consumers=False, projectors=True, clock=clock
    ) as svc:
        await stop_task(svc, f"{PARTNER.name}-deadlines")
        yield svc


async def stop_task(service: RunningService, name: str) -> None:
    (task,) = [t for t in service.runtime.tasks if t.get_name() == name]
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    service.runtime.tasks.remove(task)


@pytest.fixture
def flow(service: RunningService, settings: Settings) -> Flow:
    app = service.runtime.application
    assert isinstance(app, PartnerApplication)
    flow = Flow(service.client, settings, app)
    flow.pool = service.runtime.pool
    return flow


def engine(service: RunningService, clock: ManualClock) -> DeadlineEngine:
    """A replica of the engine: its own object, same database and clock."""
    rt = service.runtime
    return DeadlineEngine(rt.application, rt.pool, clock, rt.spec.overdue)


async def projected(flow: Flow) -> None:
    async def caught_up() -> bool:
        position = await flow.pool.fetchval(
            "SELECT position FROM projector_positions WHERE name = 'deadlines'"
        )
        return bool(position == flow.app.log_head())

    await wait_until(caught_up, what="the deadlines projector")


async def deadline_rows(flow: Flow, aggregate: str) -> list[dict[str, Any]]:
    rows = await flow.pool.fetch(
        "SELECT kind, ref, due_at, status, met_at FROM deadlines WHERE aggregate_id = $1"
        " ORDER BY due_at",
        UUID(aggregate),
    )
    return [dict(r) for r in rows]


def event_types(flow: Flow, aggregate: str) -> list[str]:
    return [e.event_type for e in flow.app.history(UUID(aggregate))]


async def test_kickoff_overdue_once_with_two_replicas_and_a_restart(
    flow: Flow, service: RunningService, clock: ManualClock
) -> None:
    partner = await flow.qualified_partner(1)
    project = await flow.contracted_project(partner, FRIDAY)
    await projected(flow)
    kickoff = [r for r in await deadline_rows(flow, project) if r["kind"] == "kickoff"]
    assert len(kickoff) == 1
    assert kickoff[0]["due_at"] == local(date(2026, 12, 4), 23, 59, 59) + timedelta(
        microseconds=999_999
    )  # R3.2: the end of the 7th day after signing, Asia/Shanghai

    first, second = engine(service, clock), engine(service, clock)
    clock.set(local(date(2026, 12, 4), 23, 59))
    assert await first.fire_due() == 0  # not yet
    clock.set(local(date(2026, 12, 5), 0, 0, 1))
    fired = await asyncio.gather(first.fire_due(), second.fire_due())
    assert sum(fired) == 1
    assert event_types(flow, project).count("KickoffOverdue") == 1

    restarted = engine(service, clock)  # a new process after a restart
    clock.advance(timedelta(days=3))
    assert await restarted.fire_due() == 0
    assert event_types(flow, project).count("KickoffOverdue") == 1

    # Held late after all: recorded as late, and the clock learns when.
    held = await flow.ok(
        "POST",
        f"/v1/projects/{project}/kickoff",
        flow.pm,
        json=flow.kickoff_body(date(2026, 12, 7)),
    )
    assert held["status"] == "in_progress"
    kickoff_event = flow.app.history(UUID(project))[-1]
    assert kickoff_event.event_type == "KickoffHeld" and kickoff_event.payload["late"] is True
    await projected(flow)
    (row,) = [r for r in await deadline_rows(flow, project) if r["kind"] == "kickoff"]
    assert row["status"] == "overdue" and row["met_at"] is not None


async def test_a_crash_between_event_and_row_fires_nothing_twice(
    flow: Flow, service: RunningService, clock: ManualClock
) -> None:
    partner = await flow.qualified_partner(2)
    project = await flow.contracted_project(partner, FRIDAY)
    await projected(flow)
    row = await flow.pool.fetchrow(
        "SELECT id, kind, aggregate_id, ref, due_at, started_by FROM deadlines"
        " WHERE aggregate_id = $1 AND kind = 'kickoff'",
        UUID(project),
    )
    clock.set(local(date(2026, 12, 6)))
    # The engine recorded the event, then died before closing the row; the
    # projector is held back, else it could close the row from the event first.
    await stop_task(service, "deadlines")
    recorded = flow.app.kickoff_overdue(Deadline(**dict(row)))
    assert recorded is not None
    assert await engine(service, clock).fire_due() == 1  # closes the row ...
    assert event_types(flow, project).count("KickoffOverdue") == 1  # ... with no new event
    closed_by = "SELECT overdue_event_id FROM deadlines WHERE id = $1"
    assert await flow.pool.fetchval(closed_by, row["id"]) == recorded
    # The projector, back, reads the same event and agrees with the engine.
    rt = service.runtime
    rt.tasks.append(asyncio.create_task(projector(rt, "deadlines").run(rt.stop)))
    await projected(flow)
    assert await flow.pool.fetchval(closed_by, row["id"]) == recorded


async def test_kickoff_in_time_meets_the_clock(
    flow: Flow, service: RunningService, clock: ManualClock
) -> None:
    partner = await flow.qualified_partner(3)
    project = await flow.project_in_progress(partner, FRIDAY)
    await projected(flow)
    clock.set(local(date(2026, 12, 10)))
    assert await engine(service, clock).fire_due() == 0
    assert "KickoffOverdue" not in event_types(flow, project)
    held = flow.app.history(UUID(project))[-1]
    assert held.payload["late"] is False
    (row,) = [r for r in await deadline_rows(flow, project) if r["kind"] == "kickoff"]
    assert row["status"] == "met"


async def test_quarterly_reviews_after_the_signing_quarter(
    flow: Flow, service: RunningService, clock: ManualClock
) -> None:
    partner = await flow.qualified_partner(4)
    project = await flow.project_in_progress(partner, FRIDAY)  # signed in 2026-Q4: exempt
    await projected(flow)
    reviews = [r for r in await deadline_rows(flow, project) if r["kind"] == "quarterly_review"]
    assert [(r["ref"], r["status"]) for r in reviews] == [("2027-Q1", "pending")]
    assert reviews[0]["due_at"] == local(date(2027, 4, 1)) - timedelta(microseconds=1)

    clock.set(local(date(2027, 2, 10), 10))
    await flow.ok(
        "POST",
        f"/v1/projects/{project}/reviews",
        flow.pm,
        json={"held_on": "2027-02-10", "progress": "按计划", "risk_rating": "low"},
    )
    await projected(flow)
    reviews = [r for r in await deadline_rows(flow, project) if r["kind"] == "quarterly_review"]
    assert [(r["ref"], r["status"]) for r in reviews] == [
        ("2027-Q1", "met"),
        ("2027-Q2", "pending"),
    ]

    replicas = [engine(service, clock), engine(service, clock)]
    clock.set(local(date(2027, 6, 30), 23, 59))
    assert sum(await asyncio.gather(*(e.fire_due() for e in replicas))) == 0
    clock.set(local(date(2027, 7, 1), 0, 0, 1))  # Q2 ended without a review
    assert sum(await asyncio.gather(*(e.fire_due() for e in replicas))) == 1
    overdue = [
        e for e in flow.app.history(UUID(project)) if e.event_type == "QuarterlyReviewOverdue"
    ]
    assert [e.payload["quarter"] for e in overdue] == ["2027-Q2"]
    await projected(flow)
    reviews = [r for r in await deadline_rows(flow, project) if r["kind"] == "quarterly_review"]
    assert [(r["ref"], r["status"]) for r in reviews] == [
        ("2027-Q1", "met"),
        ("2027-Q2", "overdue"),
        ("2027-Q3", "pending"),
    ]


async def test_a_closed_project_has_no_clocks(
    flow: Flow, service: RunningService, clock: ManualClock
) -> None:
    partner = await flow.qualified_partner(5)
    project = await flow.contracted_project(partner, FRIDAY)
    await flow.ok(
        "POST",
        f"/v1/projects/{project}/closure",
        flow.director,
        json={"outcome": "terminated", "reason": "取消"},
    )
    await projected(flow)
    assert {r["status"] for r in await deadline_rows(flow, project)} == {"cancelled"}
    clock.set(local(date(2028, 1, 1)))
    await engine(service, clock).fire_due()  # (the partner's qualification runs out, though)
    assert not [t for t in event_types(flow, project) if t.endswith("Overdue")]


async def test_a_lapsed_qualification_needs_requalification_R2_1(
    flow: Flow, service: RunningService, clock: ManualClock
) -> None:
    partner = await flow.qualified_partner(6, expires_on=date(2026, 12, 31))
    view = await flow.ok("GET", f"/v1/partners/{partner}", flow.pm)
    assert view["valid_until"] == "2026-12-31" and view["selectable"] is True
    await projected(flow)
    clock.set(local(date(2026, 12, 31), 23, 0))
    assert await engine(service, clock).fire_due() == 0
    clock.set(local(date(2027, 1, 1), 0, 0, 1))
    assert await engine(service, clock).fire_due() == 1
    assert event_types(flow, partner).count("RequalificationOverdue") == 1
    view = await flow.ok("GET", f"/v1/partners/{partner}", flow.pm)
    assert view["requalification_required"] is True and view["selectable"] is False
    refused = await flow.client.post(
        "/v1/projects", headers=flow.pm, json=flow.project_body(partner, date(2027, 3, 1))
    )
    assert refused.status_code == 409 and refused.json()["rule"] == "R2.1"

    # Re-evaluated and qualified again: selectable, with a new clock.
    certificate = {"name": "ISO/IEC 27001", "certificate_no": "N", "expires_on": "2029-12-31"}
    await flow.ok(
        "POST",
        f"/v1/partners/{partner}/evaluations",
        flow.specialist,
        json={"scores": scores(), "qualifications": [certificate], "summary": "复审"},
    )
    await flow.ok(
        "POST", f"/v1/partners/{partner}/qualification", flow.director, json={"reason": "复审通过"}
    )
    view = await flow.ok("GET", f"/v1/partners/{partner}", flow.pm)
    assert view["selectable"] is True
    await projected(flow)
    rows = await deadline_rows(flow, partner)
    assert [(r["ref"].split("@")[0], r["status"]) for r in rows] == [
        ("2026-12-31", "overdue"),
        ("2028-01-01", "pending"),
    ]  # requalified on 2027-01-01: the policy's 365 days end before the certificate
