"""Staff evaluations over HTTP (R6.2, R2.2, R2.3, R3.5, R6.4), the kpi
service in process on a real PostgreSQL with a manual clock.

A department of a Director, two PMs and three specialists joins on
2026-10-01 (recorded on 2026-10-08). Then:

- every PM and specialist owes the 2026-10 self-assessment (due 2026-11-05,
  end of day in Shanghai) and their superior the 2026-Q4 assessment (due
  2027-01-10); the Director owes neither; a self-assessment is written from
  the month's first day, the quarter's assessment only after the quarter;
  a second one for a period is refused (409 R6.2), and so is another
  person's (403, on record as a denial);
- the deadline engine records SelfAssessmentOverdue / SuperiorAssessmentOverdue
  for each one missing at its due time, exactly once, and the next period's
  clock starts; a late submission is on record with on_time false, after its
  Overdue (recorded by the engine or by the submission itself); someone who
  leaves stops owing from the period they leave in;
- the quarter's assessment is written by the superior as of its last day: a
  specialist moved to another PM mid-quarter is assessed by the new PM, one
  moved after the quarter by the old one, and by the Director once that PM
  has left;
- a promotion citing one of the system's evaluations needs a written
  quarterly assessment of that person with a good rating (R2.3), and the
  evaluation lists the promotions that cite it;
- each evaluation is shown beside the person's KPI figures for its period
  (`services.kpi.figures.person_figures`, replaced here by a recording fake
  so the test checks the wiring, not the KPI formulas);
- the person, their superiors, the Director, the department head and
  auditors read; other roles and other colleagues are refused (403).

The deadline engine is driven by hand (`fire`), never by sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest

from services.kpi.api import evaluations as evaluations_api
from services.kpi.application import KpiApplication
from services.kpi.domain.evaluation import Period, evaluation_id
from services.kpi.service import SPEC as KPI
from shared.clock import ManualClock
from shared.deadlines import deadline_id
from shared.policy import Policy
from shared.settings import Settings
from tests.support.apps import RunningService, fire, running, settle
from tests.support.auth import auth

pytestmark = pytest.mark.integration

SHANGHAI = timedelta(hours=8)
MICROSECOND = timedelta(microseconds=1)
URL = "/v1/kpi/evaluations"

DIRECTOR = "director.zhang"
PM1 = "pm.wang"
PM2 = "pm.li"
S1 = "sp.zhao"
S2 = "sp.qian"
S3 = "sp.sun"
DEPARTMENT: dict[str, tuple[str, str | None]] = {
    DIRECTOR: ("director", None),
    PM1: ("project_manager", DIRECTOR),
    PM2: ("project_manager", DIRECTOR),
    S1: ("specialist", PM1),
    S2: ("specialist", PM1),
    S3: ("specialist", PM2),
}
EVALUATED = [PM1, PM2, S1, S2, S3]
JOINED = date(2026, 10, 1)


def local(year: int, month: int, day: int, hour: int = 0) -> datetime:
    """A wall-clock time in Asia/Shanghai, as UTC."""
    return datetime(year, month, day, hour, tzinfo=UTC) - SHANGHAI


def end_of_day(year: int, month: int, day: int) -> datetime:
    return local(year, month, day) + timedelta(days=1) - MICROSECOND


def assessment(rating: int = 4, **extra: Any) -> dict[str, Any]:
    return {
        "rating": rating,
        "strengths": "按时交付，文档规范",
        "improvements": "加强风险预判",
        **extra,
    }


class FakeFigures:
    """Stands in for services.kpi.figures.person_figures and records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, date, date, datetime | None]] = []

    async def __call__(
        self,
        conn: Any,
        user_id: str,
        period_start: date,
        period_end: date,
        as_of: datetime | None = None,
        *,
        policy: Policy,
        now: datetime,
    ) -> dict[str, object]:
        assert hasattr(conn, "fetch"), "person_figures gets an asyncpg connection"
        assert isinstance(policy, Policy) and now.tzinfo is not None
        self.calls.append((user_id, period_start, period_end, as_of))
        return {
            "task_completion_rate": 0.9,
            "incidents": 0,
            "sanctions": [],
            "period": [period_start, period_end],
        }


class EvalApi:
    def __init__(
        self, svc: RunningService, settings: Settings, clock: ManualClock, figures: FakeFigures
    ) -> None:
        self.svc = svc
        self.client: httpx.AsyncClient = svc.client
        self.settings = settings
        self.clock = clock
        self.figures = figures
        app = svc.runtime.application
        assert isinstance(app, KpiApplication)
        self.app = app
        self.director = self.as_(DIRECTOR)

    def as_(self, user: str, role: str | None = None) -> dict[str, str]:
        return auth(self.settings, user, role or DEPARTMENT.get(user, ("auditor",))[0])

    async def ok(
        self, method: str, url: str, headers: dict[str, str], body: Any = None, status: int = 200
    ) -> Any:
        kw: dict[str, Any] = {} if body is None else {"json": body}
        response = await self.client.request(method, url, headers=headers, **kw)
        assert response.status_code == status, f"{method} {url}: {response.text}"
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

    # -- the directory -----------------------------------------------------------------------

    async def build(self) -> None:
        for user, (role, superior) in DEPARTMENT.items():
            body = {
                "user_id": user,
                "name": f"员工 {user}",
                "role": role,
                "superior": superior,
                "joined_on": JOINED.isoformat(),
            }
            await self.ok("POST", "/v1/kpi/staff", self.director, body, 201)

    async def line(self, user: str, superior: str, on: date) -> None:
        body = {"superior": superior, "effective_on": on.isoformat(), "reason": "项目调整"}
        await self.ok("POST", f"/v1/kpi/staff/{user}/reporting-line", self.director, body)

    async def leave(self, user: str, on: date) -> None:
        body = {"left_on": on.isoformat(), "reason": "个人原因离职"}
        await self.ok("POST", f"/v1/kpi/staff/{user}/departure", self.director, body)

    # -- evaluations -------------------------------------------------------------------------

    async def self_assess(self, user: str, period: str, rating: int = 4) -> dict[str, Any]:
        view: dict[str, Any] = await self.ok(
            "POST",
            f"{URL}/self-assessments",
            self.as_(user),
            assessment(rating, period=period),
            201,
        )
        return view

    async def assess(self, by: str, user: str, period: str, rating: int = 4) -> dict[str, Any]:
        body = assessment(rating, user_id=user, period=period)
        view: dict[str, Any] = await self.ok(
            "POST", f"{URL}/superior-assessments", self.as_(by), body, 201
        )
        return view

    async def listing(self, headers: dict[str, str], query: str = "") -> list[dict[str, Any]]:
        page = await self.ok("GET", f"{URL}{query}", headers)
        items: list[dict[str, Any]] = page["items"]
        return items

    async def statuses(self, query: str = "") -> dict[tuple[str, str], str]:
        await self.settle()
        return {
            (e["user_id"], e["period"]): e["status"]
            for e in await self.listing(self.director, query)
        }

    def history(self, user: str, period: str) -> list[tuple[str, dict[str, Any]]]:
        envelopes = self.app.history(evaluation_id(user, Period.parse(period)))
        return [(e.event_type, e.payload) for e in envelopes]

    async def overdue_events(self, event_type: str) -> list[tuple[str, str, str | None]]:
        """(person, period, owed_by) of every Overdue of a type, from the store."""
        await self.settle()
        rows = await self.rows(
            "SELECT evaluation_id FROM evaluations"
            " WHERE overdue_event_id IS NOT NULL OR submitted_at IS NOT NULL"
        )
        found = []
        for row in rows:
            for envelope in self.app.history(UUID(str(row["evaluation_id"]))):
                if envelope.event_type == event_type:
                    p = envelope.payload
                    found.append((p["user_id"], p["period"], p["owed_by"]))
        return sorted(found)

    async def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        await self.settle()
        return [dict(r) for r in await self.svc.runtime.pool.fetch(sql, *args)]

    async def settle(self) -> None:
        await settle(self.svc)

    async def fire_at(self, moment: datetime) -> int:
        self.clock.set(moment)
        return await fire(self.svc)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(local(2026, 10, 8, 9))


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> FakeFigures:
    fake = FakeFigures()
    monkeypatch.setattr(evaluations_api, "person_figures", fake)
    return fake


@pytest.fixture
async def api(
    settings: Settings, clock: ManualClock, figures: FakeFigures
) -> AsyncIterator[EvalApi]:
    async with running(
        KPI, settings, relay=False, consumers=False, projectors=False, clock=clock
    ) as svc:
        yield EvalApi(svc, settings, clock, figures)


# -- writing them (R6.2) -----------------------------------------------------------------------


async def test_self_assessments_and_the_superiors_assessment_R6_2(api: EvalApi) -> None:
    """R6.2: the 2026-10 self-assessments and 2026-Q4 assessments are owed by
    the five PMs and specialists (not the Director); S1 writes October's on
    30 October, on time, shown beside their figures for October; a second
    one, a future month's and the Director's are refused; the quarter's
    assessment waits for the quarter's end; PM1 then assesses S1 and the
    Director PM1, both on time; the events name who, when and the due time."""
    await api.build()
    assert await api.statuses() == {
        **{(u, "2026-10"): "pending" for u in EVALUATED},
        **{(u, "2026-Q4"): "pending" for u in EVALUATED},
    }

    api.clock.set(local(2026, 10, 30, 10))
    view = await api.self_assess(S1, "2026-10", rating=4)
    assert (view["user_id"], view["kind"], view["period"], view["status"]) == (
        S1,
        "self",
        "2026-10",
        "on_time",
    )
    assert (view["rating"], view["rating_label"], view["on_time"]) == (4, "良好 (good)", True)
    assert (view["role"], view["superior"], view["assessor"]) == ("specialist", PM1, S1)
    assert view["due_at"] == end_of_day(2026, 11, 5).isoformat().replace("+00:00", "Z")
    assert view["figures"]["task_completion_rate"] == 0.9
    assert api.figures.calls[-1] == (S1, date(2026, 10, 1), date(2026, 10, 31), None)
    assert api.history(S1, "2026-10") == [
        (
            "EvaluationOpened",
            {
                "user_id": S1,
                "name": f"员工 {S1}",
                "role": "specialist",
                "superior": PM1,
                "kind": "self",
                "period": "2026-10",
                "period_start": "2026-10-01",
                "period_end": "2026-10-31",
                "due_at": "2026-11-05T15:59:59.999999Z",
            },
        ),
        (
            "SelfAssessmentSubmitted",
            {
                "user_id": S1,
                "period": "2026-10",
                "rating": 4,
                "strengths": "按时交付，文档规范",
                "improvements": "加强风险预判",
                "comment": None,
                "due_at": "2026-11-05T15:59:59.999999Z",
                "submitted_at": "2026-10-30T02:00:00Z",
                "on_time": True,
            },
        ),
    ]

    url = f"{URL}/self-assessments"
    problem = await api.refused("POST", url, api.as_(S1), assessment(period="2026-10"), 409)
    assert problem["rule"] == "R6.2" and "already" in problem["detail"]
    problem = await api.refused("POST", url, api.as_(S1), assessment(period="2026-12"), 409)
    assert problem["rule"] == "R6.2" and "2026-12-01" in problem["detail"]
    problem = await api.refused("POST", url, api.as_(S1), assessment(period="2026-09"), 409)
    assert problem["rule"] == "R6.2"  # before they joined
    await api.refused("POST", url, api.director, assessment(period="2026-10"), 403)
    await api.refused("POST", url, api.as_(S1), assessment(period="2026-Q4"), 422)
    await api.refused("POST", url, api.as_(S1), assessment(period="2026-10", rating=6), 422)

    sup = f"{URL}/superior-assessments"
    early = assessment(user_id=S1, period="2026-Q4")
    api.clock.set(local(2026, 12, 31, 18))
    problem = await api.refused("POST", sup, api.as_(PM1), early, 409)
    assert problem["rule"] == "R6.2" and "whole quarter" in problem["detail"]
    await api.refused("POST", sup, api.as_(S2), early, 403)  # a specialist assesses nobody
    await api.refused("POST", sup, api.as_(PM1), {**early, "period": "2026-10"}, 422)

    api.clock.set(local(2027, 1, 4, 10))
    view = await api.assess(PM1, S1, "2026-Q4", rating=5)
    assert (view["kind"], view["status"], view["assessor"], view["rating"]) == (
        "superior",
        "on_time",
        PM1,
        5,
    )
    assert api.figures.calls[-1] == (S1, date(2026, 10, 1), date(2026, 12, 31), None)
    await api.assess(DIRECTOR, PM1, "2026-Q4")
    problem = await api.refused("POST", sup, api.as_(PM1), {**early, "user_id": PM1}, 403)
    assert problem["rule"] == "R6.2"  # nobody assesses themself
    events = api.history(PM1, "2026-Q4")
    assert [t for t, _ in events] == ["EvaluationOpened", "SuperiorAssessmentSubmitted"]
    assert (events[1][1]["assessor"], events[1][1]["assessor_role"]) == (DIRECTOR, "director")
    statuses = await api.statuses()
    assert statuses[(S1, "2026-10")] == "on_time"
    assert statuses[(S1, "2026-Q4")] == statuses[(PM1, "2026-Q4")] == "on_time"
    assert statuses[(S1, "2026-11")] == "pending"  # the next month is on the clock


async def test_a_retried_submission_is_answered_from_its_record(api: EvalApi) -> None:
    """DESIGN.md section 6: the same Idempotency-Key answers the first
    attempt's evaluation again (replayed), storing nothing twice."""
    await api.build()
    api.clock.set(local(2026, 10, 30, 10))
    headers = {**api.as_(S2), "Idempotency-Key": "self-2026-10"}
    body = assessment(period="2026-10")
    first = await api.client.post(f"{URL}/self-assessments", headers=headers, json=body)
    assert first.status_code == 201, first.text
    head = api.app.log_head()
    again = await api.client.post(f"{URL}/self-assessments", headers=headers, json=body)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert first.headers["Location"] == f"{URL}/{S2}/2026-10"
    assert api.app.log_head() == head


# -- overdue (R6.2, R3.5) --------------------------------------------------------------------


async def test_missing_evaluations_become_overdue_once_and_late_ones_are_late_R6_2_R3_5(
    api: EvalApi,
) -> None:
    """R6.2, R3.5: S1 writes October in time; at the end of 2026-11-05 in
    Shanghai the engine records SelfAssessmentOverdue for the other four
    (not a microsecond earlier, and never twice); S2 writes October late
    (on_time false, no second Overdue). S3 leaves on 2026-11-20: nothing is
    owed for November or Q4. PM2 writes November a day late before the
    engine got to it: the submission records its Overdue first. On 6
    December the engine records the three other Novembers; by 2027-01-10
    the Decembers, the training years and the four Q4 assessments, each
    Overdue naming who owed it (the superior for Q4)."""
    await api.build()
    api.clock.set(local(2026, 10, 30, 10))
    await api.self_assess(S1, "2026-10")

    assert await api.fire_at(end_of_day(2026, 11, 5) - MICROSECOND) == 0
    assert await api.fire_at(end_of_day(2026, 11, 5)) == 4
    assert await api.overdue_events("SelfAssessmentOverdue") == [
        (u, "2026-10", u) for u in sorted([PM1, PM2, S2, S3])
    ]
    assert await api.fire_at(local(2026, 11, 6, 9)) == 0

    api.clock.set(local(2026, 11, 6, 10))
    late = await api.self_assess(S2, "2026-10")
    assert (late["status"], late["on_time"]) == ("late", False) and late["overdue_at"]
    assert [t for t, _ in api.history(S2, "2026-10")] == [
        "EvaluationOpened",
        "SelfAssessmentOverdue",
        "SelfAssessmentSubmitted",
    ]
    clocks = await api.rows(
        "SELECT ref, status, met_at IS NOT NULL AS done FROM deadlines"
        " WHERE kind = 'self_assessment' AND ref LIKE '2026-10#%' ORDER BY ref"
    )
    assert {r["ref"]: (r["status"], r["done"]) for r in clocks} == {
        f"2026-10#{S1}": ("met", True),
        f"2026-10#{S2}": ("overdue", True),
        f"2026-10#{PM1}": ("overdue", False),
        f"2026-10#{PM2}": ("overdue", False),
        f"2026-10#{S3}": ("overdue", False),
    }

    api.clock.set(local(2026, 11, 20, 17))
    await api.leave(S3, date(2026, 11, 20))
    statuses = await api.statuses("?status=cancelled")
    assert statuses == {(S3, "2026-11"): "cancelled", (S3, "2026-Q4"): "cancelled"}
    url = f"{URL}/self-assessments"
    api.clock.set(local(2026, 11, 25, 10))
    problem = await api.refused("POST", url, api.as_(S3), assessment(period="2026-11"), 409)
    assert problem["rule"] == "R6.2" and "left" in problem["detail"]

    api.clock.set(local(2026, 12, 6, 10))
    late = await api.self_assess(PM2, "2026-11")
    assert late["status"] == "late"
    events = api.history(PM2, "2026-11")
    assert [t for t, _ in events] == [
        "EvaluationOpened",
        "SelfAssessmentOverdue",
        "SelfAssessmentSubmitted",
    ]
    assert events[1][1]["deadline_id"] == str(
        deadline_id(
            "self_assessment",
            evaluation_id(PM2, Period.parse("2026-11")),
            f"2026-11#{PM2}",
        )
    )
    assert await api.fire_at(local(2026, 12, 6, 11)) == 3  # PM1, S1, S2; not S3, not PM2
    novembers = [e for e in await api.overdue_events("SelfAssessmentOverdue") if e[1] == "2026-11"]
    assert novembers == sorted([(u, "2026-11", u) for u in (PM1, PM2, S1, S2)])

    # 2026-12 self-assessments (4), 2026 training years (5: S3 left), 2026-Q4 (4).
    assert await api.fire_at(end_of_day(2027, 1, 10)) == 13
    owed_by = {PM1: DIRECTOR, PM2: DIRECTOR, S1: PM1, S2: PM1}
    assert await api.overdue_events("SuperiorAssessmentOverdue") == sorted(
        (u, "2026-Q4", superior) for u, superior in owed_by.items()
    )
    assert await api.fire_at(end_of_day(2027, 1, 10) + timedelta(hours=1)) == 0

    api.clock.set(local(2027, 1, 12, 10))
    view = await api.assess(PM1, S1, "2026-Q4", rating=3)
    assert (view["status"], view["on_time"], view["owed_by"]) == ("late", False, PM1)
    statuses = await api.statuses()
    assert statuses[(S1, "2026-Q4")] == "late"
    assert statuses[(S2, "2026-Q4")] == "overdue"
    assert statuses[(S1, "2027-01")] == "pending"
    assert (S3, "2026-12") not in statuses
    overdue_list = await api.listing(api.director, "?status=overdue&kind=superior")
    assert sorted(e["user_id"] for e in overdue_list) == sorted([PM1, PM2, S2])
    assert {e["owed_by"] for e in overdue_list} == {DIRECTOR, PM1}


async def test_promotion_to_director_stops_the_obligations_R6_2_R2_3(api: EvalApi) -> None:
    """R6.2, R2.3: PM1 becomes the Director on 2026-11-15 (S1 and S2 moved
    to PM2 first): PM1 owes October (it ended before) but no November or Q4,
    and writes no self-assessment any more; the outgoing Director owed none."""
    await api.build()
    assert await api.fire_at(end_of_day(2026, 11, 5)) == 5
    api.clock.set(local(2026, 11, 14, 10))
    await api.line(S1, PM2, date(2026, 11, 14))
    await api.line(S2, PM2, date(2026, 11, 14))
    api.clock.set(local(2026, 11, 15, 10))
    body = {
        "new_director": PM1,
        "effective_on": "2026-11-15",
        "reason": "换届",
        "evaluation_ref": "2026 年度述职",
    }
    await api.ok("POST", "/v1/kpi/staff/director-succession", api.director, body)
    statuses = await api.statuses("?person=" + PM1)
    assert statuses == {(PM1, "2026-10"): "overdue"}
    cancelled = await api.statuses(f"?person={PM1}&status=cancelled")
    assert cancelled == {(PM1, "2026-11"): "cancelled", (PM1, "2026-Q4"): "cancelled"}
    assert await api.fire_at(end_of_day(2026, 12, 5)) == 4  # S1, S2, PM2, S3
    url = f"{URL}/self-assessments"
    problem = await api.refused(
        "POST", url, api.as_(PM1, "project_manager"), assessment(period="2026-12"), 409
    )
    assert problem["rule"] == "R6.2" and "director" in problem["detail"]


# -- the reporting line (R2.2) -----------------------------------------------------------------


async def test_the_quarter_is_assessed_by_the_superior_at_its_end_R2_2_R6_2(
    api: EvalApi,
) -> None:
    """R2.2, R6.2: S1 moves from PM1 to PM2 on 2026-11-15: PM2 assesses S1's
    Q4 and PM1 is refused (403 R2.2, on record). S2 moves to PM2 on
    2027-01-02, after the quarter: PM1 still assesses S2's Q4 and PM2 may
    not; once PM1 has left the Director does, and PM1 may no longer."""
    await api.build()
    api.clock.set(local(2026, 11, 15, 10))
    await api.line(S1, PM2, date(2026, 11, 15))

    api.clock.set(local(2027, 1, 2, 10))
    await api.line(S2, PM2, date(2027, 1, 2))
    sup = f"{URL}/superior-assessments"
    problem = await api.refused(
        "POST", sup, api.as_(PM1), assessment(user_id=S1, period="2026-Q4"), 403
    )
    assert problem["rule"] == "R2.2" and PM2 in problem["detail"]
    denial = await api.rows(
        "SELECT user_id, status, path FROM access_denials ORDER BY id DESC LIMIT 1"
    )
    assert denial == [{"user_id": PM1, "status": 403, "path": sup}]
    view = await api.assess(PM2, S1, "2026-Q4")
    assert (view["assessor"], view["superior"]) == (PM2, PM2)

    problem = await api.refused(
        "POST", sup, api.as_(PM2), assessment(user_id=S2, period="2026-Q4"), 403
    )
    assert PM1 in problem["detail"]

    api.clock.set(local(2027, 1, 3, 10))
    await api.leave(PM1, date(2027, 1, 3))
    problem = await api.refused(
        "POST", sup, api.as_(PM1), assessment(user_id=S2, period="2026-Q4"), 403
    )
    assert DIRECTOR in problem["detail"]
    view = await api.assess(DIRECTOR, S2, "2026-Q4")
    assert (view["assessor"], view["superior"], view["status"]) == (DIRECTOR, PM1, "on_time")
    # PM1's own Q4 ended before they left: still owed, by the Director.
    statuses = await api.statuses(f"?person={PM1}")
    assert statuses[(PM1, "2026-Q4")] == "pending"
    cancelled = await api.statuses(f"?person={PM1}&status=cancelled")
    assert (PM1, "2027-01") in cancelled and (PM1, "2027-Q1") in cancelled


# -- promotions rest on evaluations (R2.3) -----------------------------------------------------


async def test_a_promotion_citing_an_evaluation_needs_a_good_written_one_R2_3(
    api: EvalApi,
) -> None:
    """R2.3: citing `2026-Q4` before it is written is refused (409 R2.3),
    so is citing a self-assessment (`2026-10`) or a Q4 rated 3 (below the
    policy's 4); S1's Q4 rated 5 carries the promotion, and S1's evaluation
    lists it; free text (an evaluation outside the system) stays accepted."""
    await api.build()
    promotion = {
        "change": "promotion",
        "to_role": "project_manager",
        "superior": DIRECTOR,
        "effective_on": "2027-02-01",
        "reason": "年度考评优秀",
        "evaluation_ref": "2026-Q4",
    }
    url = f"/v1/kpi/staff/{S1}/role"
    api.clock.set(local(2026, 10, 30, 10))
    await api.self_assess(S1, "2026-10")
    problem = await api.refused("POST", url, api.director, promotion, 409)
    assert problem["rule"] == "R2.3" and "no evaluation" in problem["detail"]
    problem = await api.refused(
        "POST", url, api.director, {**promotion, "evaluation_ref": "2026-10"}, 409
    )
    assert problem["rule"] == "R2.3" and "self-assessment" in problem["detail"]

    api.clock.set(local(2027, 1, 5, 10))
    await api.assess(PM1, S1, "2026-Q4", rating=5)
    await api.assess(PM1, S2, "2026-Q4", rating=3)
    problem = await api.refused("POST", f"/v1/kpi/staff/{S2}/role", api.director, promotion, 409)
    assert problem["rule"] == "R2.3" and "at least 4" in problem["detail"]
    await api.ok("POST", url, api.director, promotion)
    await api.ok(
        "POST",
        f"/v1/kpi/staff/{S2}/role",
        api.director,
        {**promotion, "evaluation_ref": "KP-2027-01 (HR system)"},
    )

    await api.settle()
    one = await api.ok("GET", f"{URL}/{S1}/2026-Q4", api.as_(S1, "project_manager"))
    assert [(c["change"], c["to_role"], c["effective_on"]) for c in one["cited_by"]] == [
        ("promotion", "project_manager", "2027-02-01")
    ]


# -- who reads (R6.2, DESIGN.md section 5) ----------------------------------------------------


async def test_who_reads_which_evaluations_R6_2(api: EvalApi) -> None:
    """R6.2: S1 reads their own, PM1 (their PM) and the Director theirs, the
    department head and auditors all; S2 (a colleague), PM2 (another PM),
    finance, the CEO and partners are refused (403, on record). Lists are
    scoped: PM1 sees PM1, S1 and S2; asking for someone else's is 403;
    filters by period, kind and status, and cursor pages, work; figures can
    be left out or read as of a moment."""
    await api.build()
    api.clock.set(local(2026, 10, 30, 10))
    await api.self_assess(S1, "2026-10")
    await api.settle()
    one = f"{URL}/{S1}/2026-10"
    for headers in (api.as_(S1), api.as_(PM1), api.director, api.as_("dh", "dept_head"),
                    api.as_("au", "auditor")):  # fmt: skip
        view = await api.ok("GET", one, headers)
        assert (view["status"], view["rating"]) == ("on_time", 4)
    pending = await api.ok("GET", f"{URL}/{S1}/2026-Q4", api.as_(PM1))
    assert (pending["status"], pending["rating"]) == ("pending", None)
    assert pending["figures"]["period"] == ["2026-10-01", "2026-12-31"]
    for headers in (api.as_(S2), api.as_(PM2), api.as_("fi", "finance"), api.as_("c", "ceo")):
        await api.refused("GET", one, headers, None, 403)
    partner = auth(api.settings, "vendor", "partner", "5f0c1c1e-6f8e-4d8a-9d55-0e7c6f0e2a11")
    await api.refused("GET", one, partner, None, 403)
    await api.refused("GET", one, {}, None, 401)
    denied = await api.rows("SELECT user_id FROM access_denials WHERE status = 403")
    assert {r["user_id"] for r in denied} >= {S2, PM2, "fi", "c", "vendor"}
    await api.refused("GET", f"{URL}/{S1}/2026-13", api.director, None, 422)
    await api.refused("GET", f"{URL}/nobody/2026-10", api.director, None, 404)

    mine = await api.listing(api.as_(PM1))
    assert {e["user_id"] for e in mine} == {PM1, S1, S2}
    assert {e["user_id"] for e in await api.listing(api.as_(S1))} == {S1}
    await api.refused("GET", f"{URL}?person={S2}", api.as_(S1), None, 403)
    assert {e["user_id"] for e in await api.listing(api.as_(PM1), f"?person={S2}")} == {S2}

    months = await api.listing(api.director, "?period=2026-10")
    assert sorted(e["user_id"] for e in months) == sorted(EVALUATED)
    assert {e["kind"] for e in await api.listing(api.director, "?kind=superior")} == {"superior"}
    done = await api.listing(api.director, "?status=on_time")
    assert [(e["user_id"], e["period"]) for e in done] == [(S1, "2026-10")]
    await api.refused("GET", f"{URL}?period=Q4", api.director, None, 422)

    calls = len(api.figures.calls)
    bare = await api.listing(api.director, "?figures=false")
    assert all(e["figures"] is None for e in bare) and len(api.figures.calls) == calls
    await api.listing(api.director, "?person=" + S1 + "&as_of=2026-11-01T00:00:00%2B08:00")
    assert api.figures.calls[-1][3] == datetime(2026, 10, 31, 16, tzinfo=UTC)

    collected: list[tuple[str, str]] = []
    cursor = None
    while True:
        query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = await api.ok("GET", f"{URL}{query}", api.as_("au", "auditor"))
        collected += [(e["user_id"], e["period"]) for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # S1's November is on the clock too (October was written).
    assert len(collected) == len(set(collected)) == 11
    ends = [Period.parse(p).end for _, p in collected]
    assert ends == sorted(ends)


@pytest.fixture
async def unfaked(settings: Settings, clock: ManualClock) -> AsyncIterator[EvalApi]:
    async with running(
        KPI, settings, relay=False, consumers=False, projectors=False, clock=clock
    ) as svc:
        yield EvalApi(svc, settings, clock, FakeFigures())


async def test_the_real_kpi_figures_are_shown_beside_the_evaluation_R6_2(
    unfaked: EvalApi,
) -> None:
    """R6.2, R6.1: with the KPI projections' own `person_figures` (no facts
    yet), an evaluation and a list show the figures for the period."""
    api = unfaked
    await api.build()
    api.clock.set(local(2026, 10, 30, 10))
    view = await api.self_assess(S1, "2026-10")
    assert isinstance(view["figures"], dict)
    assert (view["figures"]["period_start"], view["figures"]["period_end"]) == (
        "2026-10-01",
        "2026-10-31",
    )
    await api.settle()
    one = await api.ok("GET", f"{URL}/{S1}/2026-Q4", api.as_(PM1))
    assert one["figures"]["period_end"] == "2026-12-31"
    page = await api.listing(api.director, "?period=2026-10")
    assert all(isinstance(e["figures"], dict) for e in page) and len(page) == 5
    assert api.figures.calls == []
