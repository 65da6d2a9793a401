"""The KPI figures equal a plain recomputation from the same events (R6.1,
R3.5): hypothesis draws a project's life (milestones delivered, rejected and
redelivered; tasks assigned, moved and completed; complaints at any minute of
the day; report obligations opened, filed on time, late, overdue or never),
the project under contract or not, closed on some day or never (R3.5, R6.1:
only contracted milestones count; what falls due after the closing is not
owed unless met or breached), the events go through the kpi service's
consumer handlers into its
PostgreSQL, and every monthly and to-date figure of on_time_delivery,
complaint_rate, task_completion (also per specialist) and compliance
(label=report) read over HTTP equals what a few loops over the events compute.

One service for all examples (a manual clock at 2026-07-01 10:00 Shanghai;
events up to 2026-06-30, due days up to 2026-08-28, so some have not fallen
due); each example has a project of its own and reads filter by it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from services.kpi.service import SPEC as KPI
from shared.clock import ManualClock
from shared.settings import Settings
from tests.support.apps import RunningService, running
from tests.support.auth import auth
from tests.support.event_schemas import assert_fits, schema_of
from tests.support.kpi_facts import FactFeed

pytestmark = pytest.mark.integration

SHANGHAI = timedelta(hours=8)
DAY0 = date(2026, 1, 1)
LAST_EVENT_DAY = 180  # 2026-06-30
LAST_DUE_DAY = 239  # 2026-08-28
NOW = datetime(2026, 7, 1, 2, tzinfo=UTC)  # 2026-07-01 10:00 Shanghai
SPECIALISTS = ("sp.zhao", "sp.qian", "sp.sun")


def day(offset: int) -> date:
    return DAY0 + timedelta(days=offset)


def local(offset: int, minutes: int) -> datetime:
    """Day `offset` at `minutes` after midnight in Shanghai, as UTC."""
    return (
        datetime.combine(day(offset), time(0), tzinfo=UTC) + timedelta(minutes=minutes) - SHANGHAI
    )


def eod(on: date) -> datetime:
    return (
        datetime.combine(on + timedelta(days=1), time(0), tzinfo=UTC)
        - SHANGHAI
        - timedelta(microseconds=1)
    )


def local_day(moment: datetime) -> date:
    return (moment + SHANGHAI).date()


def month_of(on: date) -> str:
    return on.replace(day=1).isoformat()


# -- payloads held against the published schemas ----------------------------------------------


# -- a project's life, drawn ------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    at: datetime
    source: str
    event_type: str
    aggregate: UUID
    payload: dict[str, Any]


#: Day offsets at month ends and starts (2026-01-31, 02-01, ...): where a
#: figure moves to another period if a day is taken wrongly.
EDGES = (0, 30, 31, 58, 59, 89, 90, 119, 120, 150, 151, 180)
event_days = st.sampled_from(EDGES) | st.integers(0, LAST_EVENT_DAY)
due_days = st.sampled_from((*EDGES, 181, 211, 212, LAST_DUE_DAY)) | st.integers(0, LAST_DUE_DAY)
#: Days relative to a due day: on it, a day either side, or anywhere.
near = st.integers(-2, 2) | st.integers(-60, 60)

milestones = st.lists(
    # due day; deliver, reject, deliver, ... on these days relative to it
    st.tuples(due_days, st.sets(near, max_size=4).map(sorted)),
    max_size=5,
)
tasks = st.lists(
    st.tuples(
        # assignments: to whom, due day (the last one counts)
        st.lists(st.tuples(st.sampled_from(SPECIALISTS), due_days), min_size=1, max_size=2),
        st.sets(event_days, min_size=2, max_size=2).map(sorted),  # assigned on
        st.none() | near,  # completed this many days from the due day (not before assigned)
    ),
    max_size=5,
)
#: Minutes of a Shanghai day; the edges of the local and the UTC day are likelier.
minutes = st.sampled_from([0, 10, 479, 480, 481, 1410, 1439]) | st.integers(0, 1439)
complaints = st.lists(st.tuples(event_days, minutes), max_size=5)
reports = st.lists(
    st.tuples(
        # due days after the clock (07-01 .. 07-06) half the time: filed early or not due yet
        st.integers(181, 186) | due_days.filter(lambda d: d >= 7),
        st.sampled_from(["none", "on_time", "on_time", "late", "overdue", "overdue_then_late"]),
        st.integers(0, 6),  # days before (on time) or after (late) the due day
    ),
    max_size=5,
)


#: Whether the project is under contract (only then do its milestones count,
#: R6.1), and the day it closed, if it did (what fell due after is not owed).
closing = st.tuples(st.booleans(), st.none() | event_days)


def life(
    project: UUID,
    schedule: UUID,
    drawn_milestones: list[tuple[int, list[int]]],
    drawn_tasks: list[tuple[list[tuple[str, int]], list[int], int | None]],
    drawn_complaints: list[tuple[int, int]],
    drawn_reports: list[tuple[int, str, int]],
    drawn_closing: tuple[bool, int | None] = (True, None),
) -> list[Event]:
    """The events of the drawn life in time order, none after the clock."""
    out: list[Event] = []

    def add(at: datetime, source: str, event_type: str, payload: dict[str, Any], *,
            aggregate: UUID = project) -> None:  # fmt: skip
        assert_fits(source, event_type, payload)
        if at < NOW:
            out.append(Event(at, source, event_type, aggregate, payload))

    add(local(-1, 12 * 60), "partner", "ProjectCreated", {
        "partner_id": str(uuid.uuid4()), "title": f"项目{str(project)[:8]}", "scope": "运维",
        "budget": "100000", "currency": "CNY", "project_manager": "pm.wang",
        "specialists": list(SPECIALISTS),
        "milestones": [
            {"milestone_id": f"m{n}", "name": f"m{n}", "deliverable": "交付物",
             "due_on": day(due).isoformat()}
            for n, (due, _) in enumerate(drawn_milestones)
        ],
    })  # fmt: skip
    signed, closed_day = drawn_closing
    if signed:
        add(local(-1, 13 * 60), "partner", "ContractSigned", {
            "contract_number": f"HT-{str(project)[:8]}", "partner_id": str(uuid.uuid4()),
            "value": "100000", "currency": "CNY", "signed_on": day(-1).isoformat(),
            "starts_on": day(-1).isoformat(), "ends_on": day(365).isoformat(), "sla_terms": [],
            "third_party_acceptor": "福建省软件测评中心", "kickoff_due_at": eod(day(6)).isoformat(),
        })  # fmt: skip
    if closed_day is not None:
        closed = local(closed_day, 15 * 60)
        add(closed, "partner", "ProjectClosed", {
            "outcome": "completed", "reason": "结项", "budget": "100000", "costs_total": "0",
        })  # fmt: skip
        add(closed + timedelta(minutes=1), "docs", "ReportScheduleClosed", {
            "project_id": str(project), "reason": "项目关闭",
            "closed_at": (closed + timedelta(minutes=1)).isoformat(),
        }, aggregate=schedule)  # fmt: skip
    for n, (due, offsets) in enumerate(drawn_milestones):
        steps = [due + o for o in offsets if 0 <= due + o <= LAST_EVENT_DAY]
        for k, step in enumerate(steps):
            if k % 2 == 0:
                add(local(step, 12 * 60), "partner", "MilestoneDelivered", {
                    "milestone_id": f"m{n}", "delivered_on": day(step).isoformat(),
                    "due_on": day(due).isoformat(), "on_time": step <= due, "note": "",
                })  # fmt: skip
            else:
                body = {"milestone_id": f"m{n}", "reasons": ["不合格"]}
                add(local(step, 12 * 60), "partner", "MilestoneRejected", body)
    for n, (assignments, days, done_near) in enumerate(drawn_tasks):
        for (who, due), on in zip(assignments, days, strict=False):
            add(local(on, 9 * 60), "partner", "TaskAssigned", {
                "task_id": f"t{n}", "title": "任务", "specialist": who,
                "due_on": day(due).isoformat(),
            })  # fmt: skip
        if done_near is not None:
            who, due = assignments[-1]
            on = max(days[len(assignments) - 1], due + done_near)
            add(local(on, 18 * 60), "partner", "TaskCompleted", {
                "task_id": f"t{n}", "specialist": who, "completed_on": day(on).isoformat(),
                "due_on": day(due).isoformat(), "on_time": on <= due,
            })  # fmt: skip
    for n, (on, minute) in enumerate(drawn_complaints):
        received = local(on, minute)
        add(received, "partner", "ComplaintReceived", {
            "complaint_id": f"c{n}", "received_at": received.isoformat(), "severity": "medium",
            "source": "客户", "summary": "投诉",
        })  # fmt: skip
    for n, (due_day, outcome, shift) in enumerate(drawn_reports):
        due = eod(day(due_day))
        period = f"2026-W{n + 1:02d}"
        common = {"project_id": str(project), "kind": "weekly", "period": period}
        add(local(due_day - 7, 9 * 60), "docs", "ReportPeriodOpened", {
            **common, "period_start": day(due_day - 4).isoformat(),
            "period_end": day(due_day + 2).isoformat(), "due_at": due.isoformat(),
            "project_manager": "pm.wang",
        }, aggregate=schedule)  # fmt: skip
        if outcome in ("overdue", "overdue_then_late"):
            add(due + timedelta(seconds=1), "docs", "ReportOverdue", {
                **common, "deadline_id": str(uuid.uuid4()), "due_at": due.isoformat(),
                "project_manager": "pm.wang",
            }, aggregate=schedule)  # fmt: skip
        if outcome == "none" or outcome == "overdue":
            continue
        filed = local(due_day + (-shift if outcome == "on_time" else shift + 1), 10 * 60)
        body = {
            **common, "document_id": str(uuid.uuid4()), "due_at": due.isoformat(),
            "filed_at": filed.isoformat(), "filed_by": "pm.wang",
        }  # fmt: skip
        if filed <= due:
            add(filed, "docs", "ReportFiled", body, aggregate=schedule)
        else:
            hours = round((filed - due).total_seconds() / 3600, 2)
            add(filed, "docs", "ReportFiledLate", {**body, "hours_late": hours}, aggregate=schedule)
    return sorted(out, key=lambda e: e.at)


# -- the reference: loops over the events -----------------------------------------------------

Figure = tuple[float | None, float | None, int, float | None]
Key = tuple[str | None, ...]


def _ratio(items: list[tuple[Key, int, int]]) -> dict[Key, Figure]:
    """Sums per key: (numerator, denominator, items, value); no denominator, no value."""
    sums: dict[Key, list[int]] = defaultdict(lambda: [0, 0, 0])
    for key, num, den in items:
        sums[key][0] += num
        sums[key][1] += den
        sums[key][2] += 1
    out: dict[Key, Figure] = {}
    for key, (num, den, count) in sums.items():
        value = None
        if den:
            exact = Decimal(num) / Decimal(den)
            value = float(exact.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP))
        out[key] = (float(num), float(den), count, value)
    return out


def reference(events: list[Event]) -> dict[str, list[tuple[Key, int, int]]]:
    """Per metric, its items: (month, person) key, numerator, denominator."""
    due_of: dict[str, date] = {}
    last_step: dict[str, tuple[str, date | None]] = {}
    first_delivery: dict[str, date] = {}
    complaint_days: list[date] = []
    task_due: dict[str, tuple[str, date]] = {}
    task_done: dict[str, date] = {}
    report_due: dict[str, datetime] = {}
    report_met: dict[str, bool] = {}
    report_breached: set[str] = set()
    signed = False
    closed_at: datetime | None = None
    for e in events:
        p = e.payload
        if e.event_type == "ContractSigned":
            signed = True
        elif e.event_type == "ProjectClosed":
            closed_at = e.at
        elif e.event_type == "ProjectCreated":
            for m in p["milestones"]:
                due_of[m["milestone_id"]] = date.fromisoformat(m["due_on"])
        elif e.event_type == "MilestoneDelivered":
            on = date.fromisoformat(p["delivered_on"])
            last_step[p["milestone_id"]] = ("delivered", on)
            first_delivery.setdefault(p["milestone_id"], on)
        elif e.event_type == "MilestoneRejected":
            last_step[p["milestone_id"]] = ("rejected", None)
        elif e.event_type == "ComplaintReceived":
            complaint_days.append(local_day(datetime.fromisoformat(p["received_at"])))
        elif e.event_type == "TaskAssigned":
            task_due[p["task_id"]] = (p["specialist"], date.fromisoformat(p["due_on"]))
        elif e.event_type == "TaskCompleted":
            task_done[p["task_id"]] = date.fromisoformat(p["completed_on"])
        elif e.event_type == "ReportPeriodOpened":
            report_due[p["period"]] = datetime.fromisoformat(p["due_at"])
        elif e.event_type in ("ReportFiled", "ReportFiledLate"):
            # A filing states the period's due moment too (opened or not).
            report_due[p["period"]] = datetime.fromisoformat(p["due_at"])
            report_met.setdefault(p["period"], e.event_type == "ReportFiled")
        elif e.event_type == "ReportOverdue":
            report_due[p["period"]] = datetime.fromisoformat(p["due_at"])
            report_breached.add(p["period"])

    on_time = []
    closed_on = local_day(closed_at) if closed_at is not None else None
    for mid, due in due_of.items():
        if eod(due) <= NOW and signed:
            kind, on = last_step.get(mid, ("none", None))
            if closed_on is not None and closed_on < due and kind != "delivered":
                continue  # fell due after the project closed, undelivered: not owed
            hit = kind == "delivered" and on is not None and on <= due
            on_time.append(((month_of(due),), int(hit), 1))
    complaint = [((month_of(d),), 1, 0) for d in complaint_days]
    complaint += [((month_of(d),), 0, 1) for d in first_delivery.values()]
    completion = []
    for tid, (who, due) in task_due.items():
        if eod(due) <= NOW:
            done = task_done.get(tid)
            completion.append(((month_of(due), who), int(done is not None and done <= due), 1))
    compliance = []
    for period, due_at in report_due.items():
        settled = period in report_met or period in report_breached
        if not settled and closed_at is not None and closed_at < due_at:
            continue  # falls due after the project (and its schedule) closed: not owed
        if due_at <= NOW or settled:
            met = period not in report_breached and report_met.get(period, False)
            compliance.append(((month_of(local_day(due_at)),), int(met), 1))
    return {
        "on_time_delivery": on_time,
        "complaint_rate": complaint,
        "task_completion": completion,
        "compliance": compliance,
    }


def by_month(items: list[tuple[Key, int, int]]) -> dict[Key, Figure]:
    return _ratio([(key[:1], num, den) for key, num, den in items])


def to_date(items: list[tuple[Key, int, int]]) -> dict[Key, Figure]:
    return _ratio([((None,), num, den) for _, num, den in items])


# -- the property -----------------------------------------------------------------------------


class Readings:
    def __init__(self, svc: RunningService, settings: Settings) -> None:
        self.svc = svc
        self.headers = auth(settings, "audit.qian", "auditor")

    async def figures(self, key: str, **params: Any) -> dict[Key, Figure]:
        response = await self.svc.client.get(
            f"/v1/kpi/metrics/{key}", params=params, headers=self.headers
        )
        assert response.status_code == 200, response.text
        return {
            (r["period_start"], *r["group"].values()): (
                r["numerator"],
                r["denominator"],
                r["items"],
                r["value"],
            )
            for r in response.json()["rows"]
        }


async def check_life(feed: FactFeed, read: Readings, events: list[Event], project: UUID) -> None:
    for e in events:
        await feed.emit(
            e.source,
            e.event_type,
            e.aggregate,
            e.payload,
            at=e.at,
            aggregate_type=schema_of(e.source, e.event_type)["x-aggregate-type"],
        )
    expected = reference(events)
    mine = {"project_id": str(project)}
    for key, extra in (
        ("on_time_delivery", {}),
        ("complaint_rate", {}),
        ("task_completion", {}),
        ("compliance", {"label": "report"}),
    ):
        items = expected[key]
        assert await read.figures(key, **mine, **extra) == by_month(items), key
        assert await read.figures(key, period="all", **mine, **extra) == to_date(items), key
    per_person = await read.figures("task_completion", group_by="person", **mine)
    assert per_person == _ratio(expected["task_completion"]), "task_completion by person"


async def test_figures_equal_a_recomputation_from_the_events_R6_1_R3_5(
    settings: Settings,
) -> None:
    """R6.1, R3.5: for random lives of a project, on-time delivery, complaint
    rate, task completion (per specialist too) and report compliance by month
    and to date equal the plain recomputation from the same events."""
    loop = asyncio.get_running_loop()
    clock = ManualClock(NOW)
    async with running(
        KPI, settings, relay=False, consumers=False, projectors=False, clock=clock
    ) as svc:
        feed = FactFeed(svc)
        read = Readings(svc, settings)
        examples = 0

        @hsettings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(milestones, tasks, complaints, reports, closing)
        def prop(
            drawn_milestones: list[tuple[int, list[int]]],
            drawn_tasks: list[tuple[list[tuple[str, int]], list[int], int | None]],
            drawn_complaints: list[tuple[int, int]],
            drawn_reports: list[tuple[int, str, int]],
            drawn_closing: tuple[bool, int | None],
        ) -> None:
            nonlocal examples
            examples += 1
            project, schedule = uuid.uuid4(), uuid.uuid4()
            events = life(
                project,
                schedule,
                drawn_milestones,
                drawn_tasks,
                drawn_complaints,
                drawn_reports,
                drawn_closing,
            )
            run: Callable[[], Any] = asyncio.run_coroutine_threadsafe(
                check_life(feed, read, events, project), loop
            ).result
            run(timeout=60)

        await asyncio.to_thread(prop)
        assert examples >= 25
