"""The department's staff directory over HTTP (R2.2, R2.3, R3.5), the kpi
service in process on a real PostgreSQL with a manual clock.

- A department of a Director, two PMs and three specialists is built along the
  reporting line Specialist -> PM -> Director; each person's superior chain
  leads to the Director (R2.2); head count is compared with the policy's plan
  of 3 PMs and 6 specialists (R2.3).
- A promotion needs its evaluation (409 R2.3 without); a specialist may rotate
  to PM; a PM with reports cannot leave (409 R2.2) until they report to
  another PM (R2.2, R2.3).
- Only the Director keeps the directory; the department, its head, finance,
  the CEO and auditors read it; a partner may not (403), nobody without a
  token (401).
- Trainings count per person and year; at the end of 2026-12-31 in Shanghai
  the deadline engine records TrainingYearClosed for everyone still in the
  department, met or not against the prorated target of 4 (R2.3, R3.5); a
  year met closes its clock as met, a year missed as overdue; firing again
  records nothing; the 2027 clocks start; someone who left in 2026 gets none.

The deadline engine is driven by hand (`fire`), never by sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.kpi.application import KpiApplication
from services.kpi.domain.staff import DEPARTMENT_ID
from services.kpi.service import SPEC as KPI
from shared.clock import ManualClock
from shared.deadlines import deadline_id
from shared.settings import Settings
from tests.support.apps import RunningService, fire, running, settle
from tests.support.auth import auth

pytestmark = pytest.mark.integration

SHANGHAI = timedelta(hours=8)
MICROSECOND = timedelta(microseconds=1)

DIRECTOR = "director.zhang"
PM1 = "pm.wang"
PM2 = "pm.li"
S1 = "sp.zhao"
S2 = "sp.qian"
S3 = "sp.sun"
S4 = "sp.zhou"
#: The department of `build`, with each person's role, superior and joining day.
DEPARTMENT: dict[str, tuple[str, str | None, date]] = {
    DIRECTOR: ("director", None, date(2026, 1, 1)),
    PM1: ("project_manager", DIRECTOR, date(2026, 1, 1)),
    PM2: ("project_manager", DIRECTOR, date(2026, 1, 1)),
    S1: ("specialist", PM1, date(2026, 1, 1)),
    S2: ("specialist", PM1, date(2026, 1, 15)),  # 11 whole months in 2026: target 3
    S3: ("specialist", PM2, date(2026, 7, 1)),  # 6 whole months: target 2
}
READERS = ("director", "project_manager", "specialist", "dept_head", "finance", "ceo", "auditor")


def local(year: int, month: int, day: int, hour: int = 0) -> datetime:
    """A wall-clock time in Asia/Shanghai, as UTC."""
    return datetime(year, month, day, hour, tzinfo=UTC) - SHANGHAI


def end_of_day(year: int, month: int, day: int) -> datetime:
    """The last instant of a day in Asia/Shanghai (R3.5 deadlines), as UTC."""
    return local(year, month, day) + timedelta(days=1) - MICROSECOND


class StaffApi:
    """The kpi service's staff directory as its clients see it."""

    def __init__(self, svc: RunningService, settings: Settings, clock: ManualClock) -> None:
        self.svc = svc
        self.client: httpx.AsyncClient = svc.client
        self.settings = settings
        self.clock = clock
        app = svc.runtime.application
        assert isinstance(app, KpiApplication)
        self.app = app
        self.director = auth(settings, DIRECTOR, "director")
        self.pm = auth(settings, PM1, "project_manager")
        self.partner = auth(
            settings, "vendor.liu", "partner", "5f0c1c1e-6f8e-4d8a-9d55-0e7c6f0e2a11"
        )

    def as_(self, role: str, user: str | None = None) -> dict[str, str]:
        return auth(self.settings, user or f"{role}.user", role)

    # -- HTTP -----------------------------------------------------------------------------

    async def ok(self, method: str, url: str, headers: dict[str, str], body: Any = None) -> Any:
        kw: dict[str, Any] = {} if body is None else {"json": body}
        response = await self.client.request(method, url, headers=headers, **kw)
        assert response.status_code in (200, 201), f"{method} {url}: {response.text}"
        return response.json()

    async def refused(
        self, method: str, url: str, headers: dict[str, str], body: Any, status: int
    ) -> dict[str, Any]:
        """Refused with `status` as problem+json, storing nothing."""
        before = self.app.log_head()
        kw: dict[str, Any] = {} if body is None else {"json": body}
        response = await self.client.request(method, url, headers=headers, **kw)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert self.app.log_head() == before, "a refused command stored an event"
        problem: dict[str, Any] = response.json()
        return problem

    async def join(
        self, user: str, role: str, superior: str | None, joined_on: date
    ) -> dict[str, Any]:
        body = {
            "user_id": user,
            "name": f"员工 {user}",
            "role": role,
            "superior": superior,
            "joined_on": joined_on.isoformat(),
        }
        view: dict[str, Any] = await self.ok("POST", "/v1/kpi/staff", self.director, body)
        return view

    async def build(self) -> None:
        for user, (role, superior, joined_on) in DEPARTMENT.items():
            await self.join(user, role, superior, joined_on)

    async def train(self, held_on: date, attendees: list[str], title: str = "ITIL 4") -> None:
        body = {"title": title, "held_on": held_on.isoformat(), "hours": 3, "attendees": attendees}
        await self.ok("POST", "/v1/kpi/trainings", self.director, body)

    async def line(self, user: str, superior: str) -> None:
        body = {"superior": superior, "effective_on": "2026-06-01", "reason": "项目调整"}
        await self.ok("POST", f"/v1/kpi/staff/{user}/reporting-line", self.director, body)

    async def leave(self, user: str, left_on: date) -> dict[str, Any]:
        body = {"left_on": left_on.isoformat(), "reason": "个人原因离职"}
        view: dict[str, Any] = await self.ok(
            "POST", f"/v1/kpi/staff/{user}/departure", self.director, body
        )
        return view

    async def staff(self, query: str = "") -> dict[str, dict[str, Any]]:
        people = await self.ok("GET", f"/v1/kpi/staff{query}", self.pm)
        return {p["user_id"]: p for p in people}

    # -- events, projections, time ------------------------------------------------------------

    def types(self) -> list[str]:
        return [e.event_type for e in self.app.history(DEPARTMENT_ID)]

    def payloads(self, event_type: str) -> list[dict[str, Any]]:
        return [e.payload for e in self.app.history(DEPARTMENT_ID) if e.event_type == event_type]

    async def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        await self.settle()
        return [dict(r) for r in await self.svc.runtime.pool.fetch(sql, *args)]

    async def settle(self) -> None:
        await settle(self.svc)

    async def fire(self) -> int:
        """Records what the clock made overdue; returns how many training
        years it closed (the staff evaluations' clocks fire beside them,
        R6.2: tests/integration/test_kpi_evaluations.py counts those)."""
        closed = "SELECT count(*) FROM deadlines WHERE kind = 'training_year'"
        closed += " AND status IN ('met', 'overdue')"
        before: int = await self.svc.runtime.pool.fetchval(closed)
        await fire(self.svc)
        after: int = await self.svc.runtime.pool.fetchval(closed)
        return after - before

    async def fire_at(self, moment: datetime) -> int:
        """Moves the clock to `moment` and records what it made overdue."""
        self.clock.set(moment)
        return await self.fire()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(local(2026, 1, 5, 9))  # Monday 09:00 Shanghai


@pytest.fixture
async def api(settings: Settings, clock: ManualClock) -> AsyncIterator[StaffApi]:
    async with running(
        KPI, settings, relay=False, consumers=False, projectors=False, clock=clock
    ) as svc:
        yield StaffApi(svc, settings, clock)


# -- the directory and the reporting line (R2.2) -------------------------------------------


async def test_the_department_is_built_along_the_reporting_line_R2_2(api: StaffApi) -> None:
    """R2.2: before anyone joins the directory is empty; then a Director, two
    PMs under the Director and three specialists under the PMs; each one's
    superior chain leads to the Director; the events are on the department's
    stream and the `staff` view agrees."""
    assert await api.staff() == {}
    problem = await api.refused("GET", f"/v1/kpi/staff/{S1}", api.pm, None, 404)
    assert problem["type"].endswith("/not-found")
    await api.build()

    people = await api.staff()
    assert {u: (p["role"], p["superior"], p["joined_on"]) for u, p in people.items()} == {
        u: (role, superior, joined_on.isoformat())
        for u, (role, superior, joined_on) in DEPARTMENT.items()
    }
    assert (people[DIRECTOR]["reports"], people[PM1]["reports"], people[PM2]["reports"]) == (
        sorted([PM1, PM2]),
        sorted([S1, S2]),
        [S3],
    )
    assert people[S1]["superior_role"] == "project_manager"
    assert people[PM1]["superior_role"] == "director"
    assert people[DIRECTOR]["superior_role"] is None
    specialists = await api.staff("?role=specialist")
    assert sorted(specialists) == sorted([S1, S2, S3])

    one = await api.ok("GET", f"/v1/kpi/staff/{S3}", api.as_("auditor"))
    assert (one["role"], one["superior"], one["left_on"]) == ("specialist", PM2, None)
    await api.refused("GET", "/v1/kpi/staff/nobody", api.pm, None, 404)

    chain = await api.ok("GET", f"/v1/kpi/staff/{S1}/superior", api.as_("specialist", S1))
    assert chain == {
        "user_id": S1,
        "role": "specialist",
        "superior": PM1,
        "superior_role": "project_manager",
        "chain": [PM1, DIRECTOR],
    }
    pm_chain = await api.ok("GET", f"/v1/kpi/staff/{PM2}/superior", api.pm)
    assert (pm_chain["superior"], pm_chain["superior_role"], pm_chain["chain"]) == (
        DIRECTOR,
        "director",
        [DIRECTOR],
    )
    top = await api.ok("GET", f"/v1/kpi/staff/{DIRECTOR}/superior", api.pm)
    assert (top["superior"], top["superior_role"], top["chain"]) == (None, None, [])

    # R2.2: off the line is refused, naming the rule; nothing is stored.
    for user, role, superior in [
        ("sp.x", "specialist", DIRECTOR),
        ("sp.x", "specialist", None),
        ("pm.x", "project_manager", S1),
        ("sp.x", "specialist", "ghost"),
        ("sp.x", "specialist", "sp.x"),
    ]:
        body = {"user_id": user, "name": "x", "role": role, "superior": superior}
        body["joined_on"] = "2026-02-01"
        problem = await api.refused("POST", "/v1/kpi/staff", api.director, body, 409)
        assert problem["rule"] == "R2.2", problem
    body = {"user_id": "dir.x", "name": "x", "role": "director", "joined_on": "2026-02-01"}
    problem = await api.refused("POST", "/v1/kpi/staff", api.director, body, 409)
    assert problem["rule"] == "R2.3"  # one Director

    assert api.types() == ["DepartmentOpened"] + ["StaffJoined"] * 6
    assert [(p["user_id"], p["role"], p["superior"]) for p in api.payloads("StaffJoined")] == [
        (u, role, superior) for u, (role, superior, _) in DEPARTMENT.items()
    ]
    view = await api.rows("SELECT user_id, role, superior, left_on FROM staff ORDER BY user_id")
    assert view == [
        {"user_id": u, "role": role, "superior": superior, "left_on": None}
        for u, (role, superior, _) in sorted(DEPARTMENT.items())
    ]


async def test_staffing_against_the_policys_plan_R2_3(api: StaffApi) -> None:
    """R2.3: the plan of config/policy.toml is 1 Director, 3 PMs and 6
    specialists; with 2 PMs and 3 specialists the gaps are 1 and 3."""
    empty = await api.ok("GET", "/v1/kpi/staff/staffing", api.as_("dept_head"))
    assert [(r["role"], r["planned"], r["actual"]) for r in empty] == [
        ("director", 1, 0),
        ("project_manager", 3, 0),
        ("specialist", 6, 0),
    ]
    await api.build()
    rows = await api.ok("GET", "/v1/kpi/staff/staffing", api.as_("ceo"))
    assert rows == [
        {"role": "director", "planned": 1, "actual": 1, "gap": 0},
        {"role": "project_manager", "planned": 3, "actual": 2, "gap": 1},
        {"role": "specialist", "planned": 6, "actual": 3, "gap": 3},
    ]


# -- promotions, rotations, departures (R2.2, R2.3) ----------------------------------------


async def test_a_promotion_needs_its_evaluation_a_rotation_does_not_R2_3(api: StaffApi) -> None:
    """R2.3: promoting a specialist to PM without an evaluation is refused
    (409 R2.3); with one it is StaffRoleChanged (promotion); another
    specialist rotates to PM without one; a promotion down the line is
    refused; head count follows."""
    await api.build()
    url = f"/v1/kpi/staff/{S1}/role"
    promotion = {
        "change": "promotion",
        "to_role": "project_manager",
        "superior": DIRECTOR,
        "effective_on": "2026-07-01",
        "reason": "年度考评优秀",
    }
    problem = await api.refused("POST", url, api.director, promotion, 409)
    assert problem["rule"] == "R2.3" and "evaluation" in problem["detail"]
    down = {**promotion, "to_role": "specialist", "superior": PM1, "evaluation_ref": "KP-1"}
    problem = await api.refused("POST", f"/v1/kpi/staff/{PM2}/role", api.director, down, 409)
    assert problem["rule"] == "R2.3"  # down the line is no promotion

    promoted = await api.ok(
        "POST", url, api.director, {**promotion, "evaluation_ref": "KP-2026-07"}
    )
    people = {p["user_id"]: p for p in promoted["people"]}
    assert (people[S1]["role"], people[S1]["superior"]) == ("project_manager", DIRECTOR)
    assert S1 in people[DIRECTOR]["reports"] and S1 not in people[PM1]["reports"]

    rotation = {
        "change": "rotation",
        "to_role": "project_manager",
        "superior": DIRECTOR,
        "effective_on": "2026-08-01",
        "reason": "轮岗",
    }
    rotated = await api.ok("POST", f"/v1/kpi/staff/{S3}/role", api.director, rotation)
    assert {p["user_id"]: p["role"] for p in rotated["people"]}[S3] == "project_manager"

    assert api.types()[-2:] == ["StaffRoleChanged", "StaffRoleChanged"]
    changes = [
        (p["user_id"], p["change"], p["from_role"], p["to_role"], p["evaluation_ref"])
        for p in api.payloads("StaffRoleChanged")
    ]
    assert changes == [
        (S1, "promotion", "specialist", "project_manager", "KP-2026-07"),
        (S3, "rotation", "specialist", "project_manager", None),
    ]
    view = await api.rows(
        "SELECT user_id, change, evaluation_ref FROM staff_changes"
        " WHERE change IN ('promotion', 'rotation') ORDER BY effective_on"
    )
    assert view == [
        {"user_id": S1, "change": "promotion", "evaluation_ref": "KP-2026-07"},
        {"user_id": S3, "change": "rotation", "evaluation_ref": None},
    ]
    staffing = await api.ok("GET", "/v1/kpi/staff/staffing", api.as_("finance"))
    assert [(r["role"], r["actual"], r["gap"]) for r in staffing] == [
        ("director", 1, 0),
        ("project_manager", 4, -1),
        ("specialist", 1, 5),
    ]


async def test_a_pm_with_reports_leaves_only_after_they_are_reassigned_R2_2(
    api: StaffApi,
) -> None:
    """R2.2: PM1 leaving while S1 and S2 report to them is refused (409
    R2.2, naming them); once both report to PM2 the departure is recorded;
    PM1 is out of the directory (listed with include_left) and has no
    superior chain any more; nobody may report to them."""
    await api.build()
    departure = {"left_on": "2026-06-30", "reason": "个人原因离职"}
    url = f"/v1/kpi/staff/{PM1}/departure"
    problem = await api.refused("POST", url, api.director, departure, 409)
    assert problem["rule"] == "R2.2"
    assert S1 in problem["detail"] and S2 in problem["detail"]
    await api.line(S1, PM2)
    problem = await api.refused("POST", url, api.director, departure, 409)
    assert problem["rule"] == "R2.2" and S2 in problem["detail"]
    await api.line(S2, PM2)
    view = await api.ok("POST", url, api.director, departure)
    people = {p["user_id"]: p for p in view["people"]}
    assert people[PM1]["left_on"] == "2026-06-30"
    assert people[PM2]["reports"] == sorted([S1, S2, S3])

    assert PM1 not in await api.staff()
    assert (await api.staff("?include_left=true"))[PM1]["left_on"] == "2026-06-30"
    await api.refused("GET", f"/v1/kpi/staff/{PM1}/superior", api.pm, None, 404)
    back = {"superior": PM1, "effective_on": "2026-07-01", "reason": "x"}
    problem = await api.refused(
        "POST", f"/v1/kpi/staff/{S1}/reporting-line", api.director, back, 409
    )
    assert problem["rule"] == "R2.2"
    problem = await api.refused("POST", url, api.director, departure, 409)
    assert problem["rule"] == "R2.3"  # left already

    assert api.types()[-3:] == [
        "StaffReportingLineChanged",
        "StaffReportingLineChanged",
        "StaffLeft",
    ]
    (left,) = api.payloads("StaffLeft")
    assert (left["user_id"], left["role"], left["left_on"]) == (
        PM1,
        "project_manager",
        "2026-06-30",
    )
    rows = await api.rows(
        "SELECT user_id, change, from_superior, superior FROM staff_changes"
        " WHERE change IN ('reporting_line', 'left') ORDER BY effective_on, user_id"
    )
    assert [(r["user_id"], r["change"], r["from_superior"], r["superior"]) for r in rows] == [
        *sorted([(S1, "reporting_line", PM1, PM2), (S2, "reporting_line", PM1, PM2)]),
        (PM1, "left", None, None),
    ]
    staff_view = await api.rows("SELECT superior FROM staff WHERE user_id = ANY($1)", [S1, S2])
    assert {r["superior"] for r in staff_view} == {PM2}


# -- who may (DESIGN.md section 5) ---------------------------------------------------------


async def test_only_the_director_keeps_the_directory_R2_2_R2_3(api: StaffApi) -> None:
    """R2.2, R2.3: every write is the Director's (403 for every other role,
    401 without a token); the department, its head, finance, the CEO and
    auditors read; a partner reads nothing (403)."""
    await api.build()
    writes: list[tuple[str, dict[str, Any]]] = [
        (
            "/v1/kpi/staff",
            {"user_id": "sp.x", "name": "x", "role": "specialist", "superior": PM1,
             "joined_on": "2026-02-01"},
        ),
        (
            f"/v1/kpi/staff/{S1}/role",
            {"change": "rotation", "to_role": "project_manager", "superior": DIRECTOR,
             "effective_on": "2026-02-01", "reason": "轮岗"},
        ),
        (
            f"/v1/kpi/staff/{S1}/reporting-line",
            {"superior": PM2, "effective_on": "2026-02-01", "reason": "调整"},
        ),
        (f"/v1/kpi/staff/{S1}/departure", {"left_on": "2026-02-01", "reason": "离职"}),
        (
            "/v1/kpi/trainings",
            {"title": "ITIL", "held_on": "2026-02-01", "hours": 2, "attendees": [S1]},
        ),
    ]  # fmt: skip
    others = [r for r in READERS if r != "director"] + ["partner"]
    for url, body in writes:
        for role in others:
            headers = api.partner if role == "partner" else api.as_(role)
            problem = await api.refused("POST", url, headers, body, 403)
            assert problem["type"].endswith("/forbidden"), (url, role)
        await api.refused("POST", url, {}, body, 401)

    reads = [
        "/v1/kpi/staff",
        "/v1/kpi/staff/staffing",
        "/v1/kpi/staff/trainings?year=2026",
        f"/v1/kpi/staff/{S1}",
        f"/v1/kpi/staff/{S1}/superior",
    ]
    for url in reads:
        for role in READERS:
            await api.ok("GET", url, api.as_(role))
        await api.refused("GET", url, api.partner, None, 403)
        await api.refused("GET", url, {}, None, 401)
    assert api.types() == ["DepartmentOpened"] + ["StaffJoined"] * 6


# -- trainings and the training year (R2.3, R3.5) ------------------------------------------


async def test_training_years_close_at_the_end_of_december_in_shanghai_R2_3_R3_5(
    api: StaffApi,
) -> None:
    """R2.3, R3.5: two trainings in 2026 for everyone (S3, joined in July, at
    one of them), PM1 at four. A microsecond before 2026-12-31 ends in
    Shanghai nothing fires; at it, TrainingYearClosed for the six still in
    the department: PM1 met (4 of 4), the others not (2 of 4, S2 2 of 3, S3 1
    of 2); S4, who left in October, gets none (their clock was cancelled).
    Met closes its clock as met, missed as overdue; firing again records
    nothing; every one of the six has a pending 2027 clock; the yearly
    list shows met once the year is closed."""
    await api.build()
    await api.join(S4, "specialist", PM2, date(2026, 1, 1))
    api.clock.set(local(2026, 3, 10, 17))
    await api.train(date(2026, 3, 10), [DIRECTOR, PM1, PM2, S1, S2, S4], "ITIL 4 基础")
    api.clock.set(local(2026, 5, 20, 17))
    await api.train(date(2026, 5, 20), [PM1], "项目管理")
    api.clock.set(local(2026, 9, 10, 17))
    await api.train(date(2026, 9, 10), [DIRECTOR, PM1, PM2, S1, S2, S3], "信息安全")
    # R2.3: an attendee not yet in the department that day, or named twice, is refused.
    for attendees in ([S3], [S1, S1]):
        body = {"title": "x", "held_on": "2026-03-11", "hours": 1, "attendees": attendees}
        problem = await api.refused("POST", "/v1/kpi/trainings", api.director, body, 409)
        assert problem["rule"] == "R2.3"
    api.clock.set(local(2026, 10, 31, 17))
    await api.leave(S4, date(2026, 10, 31))
    api.clock.set(local(2026, 11, 20, 17))
    await api.train(date(2026, 11, 20), [PM1], "ITSM")
    assert api.types().count("TrainingHeld") == 4

    before = await api.ok("GET", "/v1/kpi/staff/trainings?year=2026", api.as_("auditor"))
    expected = {
        DIRECTOR: ("director", 2, 4),
        PM1: ("project_manager", 4, 4),
        PM2: ("project_manager", 2, 4),
        S1: ("specialist", 2, 4),
        S2: ("specialist", 2, 3),
        S3: ("specialist", 1, 2),
        # S4 left during the year: not held to its target, not listed.
    }
    assert {r["user_id"]: (r["role"], r["attended"], r["target"]) for r in before} == expected
    assert all(r["met"] is None and r["year"] == 2026 for r in before)
    below = await api.ok(
        "GET", "/v1/kpi/staff/trainings?year=2026&below_target=true", api.as_("dept_head")
    )
    assert sorted(r["user_id"] for r in below) == sorted([DIRECTOR, PM2, S1, S2, S3])
    clocks = await api.rows(
        "SELECT ref, status, due_at FROM deadlines WHERE kind = 'training_year' ORDER BY ref"
    )
    assert [(r["ref"], r["status"]) for r in clocks] == sorted(
        [(f"2026#{u}", "pending") for u in DEPARTMENT] + [(f"2026#{S4}", "cancelled")]
    )
    assert {r["due_at"] for r in clocks} == {end_of_day(2026, 12, 31)}

    head = len(api.types())
    assert await api.fire_at(end_of_day(2026, 12, 31) - MICROSECOND) == 0
    assert len(api.types()) == head
    assert await api.fire_at(end_of_day(2026, 12, 31)) == 6
    assert api.types()[head:] == ["TrainingYearClosed"] * 6
    closed = {p["user_id"]: p for p in api.payloads("TrainingYearClosed")}
    assert {u: (p["role"], p["attended"], p["target"]) for u, p in closed.items()} == {
        u: v for u, v in expected.items() if u != S4
    }
    assert {u: p["met"] for u, p in closed.items()} == {u: u == PM1 for u in DEPARTMENT}
    assert all(p["year"] == 2026 for p in closed.values())
    assert {u: p["deadline_id"] for u, p in closed.items()} == {
        u: str(deadline_id("training_year", DEPARTMENT_ID, f"2026#{u}")) for u in DEPARTMENT
    }
    assert S4 not in closed

    # Firing again, later, records nothing.
    assert await api.fire_at(local(2027, 1, 2, 9)) == 0
    assert len(api.types()) == head + 6

    clocks = await api.rows(
        "SELECT ref, status, due_at FROM deadlines WHERE kind = 'training_year' ORDER BY ref"
    )
    statuses = {r["ref"]: r["status"] for r in clocks}
    assert statuses == {
        **{f"2026#{u}": "overdue" for u in DEPARTMENT if u != PM1},
        f"2026#{PM1}": "met",
        f"2026#{S4}": "cancelled",
        **{f"2027#{u}": "pending" for u in DEPARTMENT},
    }
    assert {r["due_at"] for r in clocks if r["ref"].startswith("2027#")} == {
        end_of_day(2027, 12, 31)
    }

    after = await api.ok("GET", "/v1/kpi/staff/trainings?year=2026", api.as_("ceo"))
    assert {r["user_id"]: r["met"] for r in after} == {
        **{u: u == PM1 for u in DEPARTMENT},
    }
    years = await api.rows(
        "SELECT user_id, attended, target, met FROM training_years WHERE year = 2026"
    )
    assert {r["user_id"]: (r["attended"], r["target"], r["met"]) for r in years} == {
        **{u: (a, t, u == PM1) for u, (_, a, t) in expected.items() if u != S4},
        S4: (1, None, None),
    }
    trainings = await api.rows("SELECT title, held_on, attendees FROM trainings ORDER BY held_on")
    assert [(r["title"], r["held_on"], len(r["attendees"])) for r in trainings] == [
        ("ITIL 4 基础", date(2026, 3, 10), 6),
        ("项目管理", date(2026, 5, 20), 1),
        ("信息安全", date(2026, 9, 10), 6),
        ("ITSM", date(2026, 11, 20), 1),
    ]


async def test_a_departure_after_the_year_ended_still_closes_that_year_R2_3_R3_5(
    api: StaffApi,
) -> None:
    """R2.3, R3.5: S1 worked all of 2026 and leaves on 2027-01-04, recorded
    before the engine got to the 2026 clocks (it was down over new year): the
    departure cancels nothing of 2026, so S1's 2026 is closed (missed, 0 of
    4) like everyone else's; no 2027 clock is left pending for S1."""
    await api.build()
    api.clock.set(local(2027, 1, 4, 9))
    await api.leave(S1, date(2027, 1, 4))
    assert await api.fire() == 6
    closed = {p["user_id"]: p for p in api.payloads("TrainingYearClosed")}
    assert set(closed) == set(DEPARTMENT)
    assert (closed[S1]["year"], closed[S1]["attended"], closed[S1]["met"]) == (2026, 0, False)
    clocks = await api.rows(
        "SELECT ref, status FROM deadlines WHERE kind = 'training_year' AND ref LIKE $1",
        f"%#{S1}",
    )
    assert {r["ref"]: r["status"] for r in clocks} == {
        f"2026#{S1}": "overdue",
        f"2027#{S1}": "cancelled",
    }
    assert await api.fire_at(end_of_day(2027, 12, 31)) == 5  # S1's 2027: nothing
    assert await api.fire() == 0


async def test_racing_commands_are_decided_one_after_the_other_R2_3(api: StaffApi) -> None:
    """R2.3: two Directors joining at once into an empty directory: the one
    stream is opened once, one is accepted and the other refused (409 R2.3);
    five specialists joining at once are all recorded, one version each."""
    bodies = [
        {"user_id": u, "name": u, "role": "director", "joined_on": "2026-01-01"}
        for u in (DIRECTOR, "director.wu")
    ]
    answers = await asyncio.gather(
        *(api.client.post("/v1/kpi/staff", headers=api.director, json=b) for b in bodies)
    )
    assert sorted(r.status_code for r in answers) == [201, 409]
    (refused,) = [r.json() for r in answers if r.status_code == 409]
    assert refused["rule"] == "R2.3"
    assert api.types() == ["DepartmentOpened", "StaffJoined"]
    (director,) = [p["user_id"] for p in api.payloads("StaffJoined")]

    await api.join(PM1, "project_manager", director, date(2026, 1, 1))
    specialists = [f"sp.{n}" for n in range(5)]
    answers = await asyncio.gather(
        *(
            api.client.post(
                "/v1/kpi/staff",
                headers=api.director,
                json={"user_id": u, "name": u, "role": "specialist", "superior": PM1,
                      "joined_on": "2026-02-01"},
            )
            for u in specialists
        )
    )  # fmt: skip
    assert [r.status_code for r in answers] == [201] * 5, [r.text for r in answers]
    versions = sorted(r.json()["aggregate_version"] for r in answers)
    assert versions == list(range(4, 9))
    assert sorted(await api.staff("?role=specialist")) == specialists


async def test_the_director_hands_over_to_a_promoted_pm_R2_2_R2_3(api: StaffApi) -> None:
    """R2.2, R2.3: over HTTP, the Director's succession promotes a PM on an
    evaluation, moves every PM under the new Director and records the old
    Director's departure in one change; only the Director may do it."""
    await api.build()
    body = {
        "new_director": PM1,
        "effective_on": "2026-09-01",
        "reason": "换届",
        "evaluation_ref": "2026-Q2 考核",
    }
    forbidden = await api.client.post(
        "/v1/kpi/staff/director-succession", headers=api.pm, json=body
    )
    assert forbidden.status_code == 403
    # PM1's own specialists need another PM first (R2.2).
    refused = await api.client.post(
        "/v1/kpi/staff/director-succession", headers=api.director, json=body
    )
    assert refused.status_code == 409 and refused.json()["rule"] == "R2.2"
    for user, (role, superior, _) in DEPARTMENT.items():
        if role == "specialist" and superior == PM1:
            await api.line(user, PM2)
    view = await api.ok("POST", "/v1/kpi/staff/director-succession", api.director, body)
    people = {p["user_id"]: p for p in view["people"]}
    assert people[PM1]["role"] == "director" and people[PM1]["superior"] is None
    assert people[DIRECTOR]["left_on"] == "2026-09-01"
    chain = await api.ok("GET", f"/v1/kpi/staff/{PM2}/superior", api.pm)
    assert (chain["superior"], chain["chain"]) == (PM1, [PM1])
    assert api.types()[-3:] == ["StaffRoleChanged", "StaffReportingLineChanged", "StaffLeft"]
