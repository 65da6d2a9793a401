"""Every KPI over HTTP with hand-computed figures (R6.1, R3.5, R1.2, R5.4,
R6.3, R6.4): the kpi service in process on a real PostgreSQL, a manual clock
at 2026-07-10 10:00 Shanghai, events fed through its consumer handlers
(tests/support/kpi_facts.py) with payloads held against the published schemas.

One department's first half of 2026 (all times Shanghai):

- P1 (partner X, pm.wang) milestones a due 01-31 delivered 02-01 (late across
  the month end: January's miss), b due 01-20 delivered on time, c due 03-10
  delivered 03-09, rejected 03-11, redelivered late 03-12, d due 03-31
  delivered 03-20, rejected, redelivered on time 03-30, e due 08-31 (not due).
  P2 (partner Y, pm.li): f due 03-15 delivered 03-14 then rejected, never
  redelivered; g due 04-01 delivered 03-31. P1, P2 and P8 are under contract;
  P7's h (due 04-15, no contract) and P8's i (due 06-30, after P8 was
  terminated on 06-25), both undelivered, are not counted.
  On-time delivery: Jan 1/2, Feb none (null), Mar 1/3, Apr 1/1; Q1 2/5, Q2 1/1.
- Complaints on P1 at 2026-03-31T23:30+08:00 (March) and 2026-04-01T00:10+08:00
  (April, though March 31 in UTC); first deliveries Jan 1, Feb 1, Mar 4, Apr 0.
  Complaint rate: Jan 0, Feb 0, Mar 1/4, Apr 1/0 = null (no denominator).
- Tasks: sp.zhao t7, t1 on time, t2 late; sp.qian t3 never done, t5 (moved
  from sp.zhao) on time; April t4 on time; t6 due in August. Task completion:
  Mar 3/5 (zhao 2/3, qian 1/2), Apr 1/1. Acknowledgements after 1, 2, 24, 0.5 h
  in March (median 1.5; zhao 2, qian 0.5), 3 h in April.
- Surveys 4 and 5 in March (4.5), 2 in May; documents reviewed in March: 1 of
  2 accepted at its first review (D1 needed a correction at version 1: zhao
  0/1; D2 accepted: qian 1/1).
- Approved budgets: 100,000 granted for P2, P4, P5, P6, P8 and 200,000 for P7
  (raised by its PM to 210,000 on 04-05, not an approval; to 250,000 by a
  Director decision on 04-10); P1's procurement was rejected: no budget.
- Closures in June: P4 completed (95,000 of 100,000: saving 5% -> bonus), P5
  completed (95,100: 4.9% -> no bonus), P6 failed (50%, no bonus: failed), P8
  terminated. Failure rate June 2/4. Costs Mar 50,000, Apr 145,000, May 145,100.
- Obligations (R3.5) in March: approval steps 3/4, kickoff 0/1, reviews 1/2,
  minutes 2/4, resolution owners 2/3 and resolutions 2/3 (M1's R1 and R2, M4's
  R1: handed from pm.li to sp.qian before its deadline, pm.li's assignment is
  cancelled), weekly department meetings 3/5 (Sundays 03-01 .. 03-29; a
  meeting at 2026-03-15T23:30 and one at 2026-03-16T00:10 fall in different
  weeks), Q1 strategy meeting 0/1: 13/23. April: weekly meetings 0/4, M1's R2
  handed to pm.wang after pm.li's breach, done on time: 1/5. May: reports 2/4,
  emergency explanations 1/2, minutes 1/1, data-leak reports 1/1, weekly
  meetings 0/5: 5/13. June: P4's weekly report due 06-12 is not owed (P4 closed
  06-10). July: reports W27 open, W28 filed early, W29 filed early without its
  period ever opened: 2/3. January and February: P2's and P8's kickoffs, and
  sp.zhao's self-assessment, all on time.
- Incidents in May: availability 2 h, data leaks 0.5 h and 1.5 h (the second
  reported late); investigations: one concluded with two sanctions, one open.

Readings "as of" a past moment are compared with the figure read live at that
moment while the events were being fed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from services.kpi.metrics import METRICS
from services.kpi.service import SPEC as KPI
from shared.clock import ManualClock
from shared.settings import Settings
from tests.support.apps import RunningService, running
from tests.support.auth import auth
from tests.support.event_schemas import assert_fits, schema_of
from tests.support.infra import Infra, create_topics, drop_schemas
from tests.support.kpi_facts import FactFeed

pytestmark = pytest.mark.integration

SHANGHAI = timedelta(hours=8)
MICRO = timedelta(microseconds=1)


def L(month: int, day: int, hour: int = 10, minute: int = 0, year: int = 2026) -> datetime:
    """A Shanghai wall-clock moment, as UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC) - SHANGHAI


def eod(month: int, day: int) -> datetime:
    """The end of a Shanghai day (R3.5 deadlines), as UTC."""
    return L(month, day, 0) + timedelta(days=1) - MICRO


def iso(moment: datetime) -> str:
    return moment.isoformat()


NOW = L(7, 10)  # Friday 2026-07-10 10:00 Shanghai

X = UUID("0a000000-0000-4000-8000-00000000000a")  # partner X
Y = UUID("0b000000-0000-4000-8000-00000000000b")  # partner Y
P1, P2, P4, P5, P6, P7, P8 = (UUID(f"00000000-0000-4000-8000-00000000000{n}") for n in "1245678")
A1 = UUID("a1000000-0000-4000-8000-0000000000a1")  # procurement approval of P1
E1, E2 = UUID("e1000000-0000-4000-8000-0000000000e1"), UUID("e2000000-0000-4000-8000-0000000000e2")
M1, M2, M3, M4, M5 = (UUID(f"0c000000-0000-4000-8000-00000000000{n}") for n in "12345")
S1 = UUID("5c000000-0000-4000-8000-0000000000c1")  # P1's report schedule
D1, D2 = UUID("d1000000-0000-4000-8000-0000000000d1"), UUID("d2000000-0000-4000-8000-0000000000d2")
S4 = UUID("5c000000-0000-4000-8000-0000000000c4")  # P4's report schedule
EV1 = UUID("e7000000-0000-4000-8000-0000000000e7")  # sp.zhao's self-assessment for 2025-12
DECISION = UUID("dec00000-0000-4000-8000-000000000dec")  # the Director's decision on P7
CP_P7_RAISED = L(4, 8)  # P7's budget raised by its PM (04-05), not yet by a decision (04-10)

#: Moments at which the figures were read live while the events were fed.
CP_C_DUE = L(3, 11, 0)  # c fell due (end of 03-10), delivered on time, not yet rejected
CP_C_REJECTED = L(3, 11, 12)  # after the rejection of 03-11 10:00
CP_Q1_OPEN = L(3, 31, 12)  # Q1 not over yet
CP_Q1_OVER = L(4, 1, 0, 30)
CP_P4_CLOSED = L(6, 11, 0)  # P4 closed 06-10, P5 not yet
CP_INVESTIGATING = L(6, 10, 12)  # both investigations open


# -- payloads held against the published schemas ----------------------------------------------


# -- the department's half year ---------------------------------------------------------------


@dataclass
class Planned:
    at: datetime
    source: str
    event_type: str
    aggregate: UUID
    payload: dict[str, Any]
    name: str | None


@dataclass
class World:
    """The kpi service, the events fed to it, and what was read live."""

    svc: RunningService
    settings: Settings
    clock: ManualClock
    plan: list[Planned] = field(default_factory=list)
    ids: dict[str, UUID] = field(default_factory=dict)
    live: dict[tuple[str, datetime], Any] = field(default_factory=dict)

    @property
    def director(self) -> dict[str, str]:
        return auth(self.settings, "director.zhang", "director")

    def add(
        self,
        at: datetime,
        source: str,
        event_type: str,
        aggregate: UUID,
        payload: dict[str, Any],
        name: str | None = None,
    ) -> None:
        assert_fits(source, event_type, payload)
        self.plan.append(Planned(at, source, event_type, aggregate, payload, name))

    async def get(self, url: str, **params: Any) -> Any:
        response = await self.svc.client.get(url, params=params, headers=self.director)
        assert response.status_code == 200, f"{url} {params}: {response.text}"
        return response.json()

    async def figures(self, key: str, **params: Any) -> Any:
        return await self.get(f"/v1/kpi/metrics/{key}", **params)

    async def rows(self, key: str, **params: Any) -> list[tuple[Any, ...]]:
        """(period start, numerator, denominator, items, value) per row; the
        group's values come after the period when grouped."""
        body = await self.figures(key, **params)
        return [
            (
                r["period_start"],
                *r["group"].values(),
                r["numerator"],
                r["denominator"],
                r["items"],
                r["value"],
            )
            for r in body["rows"]
        ]

    async def play(self, checkpoints: dict[datetime, list[tuple[str, dict[str, Any]]]]) -> None:
        """Feeds the plan in time order, the clock following; at each
        checkpoint reads the given figures live (no as_of)."""
        feed = FactFeed(self.svc)
        pending = sorted(checkpoints)
        for planned in sorted(self.plan, key=lambda p: p.at):
            while pending and pending[0] < planned.at:
                await self._read_live(pending.pop(0), checkpoints)
            self.clock.set(planned.at)
            event = await feed.emit(
                planned.source,
                planned.event_type,
                planned.aggregate,
                planned.payload,
                at=planned.at,
                aggregate_type=schema_of(planned.source, planned.event_type)["x-aggregate-type"],
            )
            if planned.name is not None:
                assert planned.name not in self.ids, planned.name
                self.ids[planned.name] = event.event_id
        for moment in pending:
            await self._read_live(moment, checkpoints)
        self.clock.set(NOW)

    async def _read_live(
        self, moment: datetime, checkpoints: dict[datetime, list[tuple[str, dict[str, Any]]]]
    ) -> None:
        self.clock.set(moment)
        for url, params in checkpoints[moment]:
            body = await self.get(url, **params)
            self.live[(url, moment)] = body["rows" if "metrics" in url else "items"]

    def ev(self, *names: str) -> set[str]:
        return {str(self.ids[n]) for n in names}


def _milestone(mid: str, due: str) -> dict[str, Any]:
    return {"milestone_id": mid, "name": f"里程碑{mid}", "deliverable": "交付物", "due_on": due}


def _project(
    partner: UUID, title: str, pm: str, budget: str, *milestones: tuple[str, str]
) -> dict[str, Any]:
    return {
        "partner_id": str(partner),
        "title": title,
        "scope": "运维外包",
        "budget": budget,
        "currency": "CNY",
        "project_manager": pm,
        "specialists": ["sp.zhao", "sp.qian"],
        "milestones": [_milestone(m, due) for m, due in milestones],
    }


def _delivered(mid: str, on: str, due: str) -> dict[str, Any]:
    return {
        "milestone_id": mid,
        "delivered_on": on,
        "due_on": due,
        "on_time": on <= due,
        "note": "",
    }


def _projects(w: World) -> None:
    w.add(L(1, 1), "partner", "ProjectCreated", P1, _project(
        X, "甲项目", "pm.wang", "100000.00",
        ("a", "2026-01-31"), ("b", "2026-01-20"), ("c", "2026-03-10"), ("d", "2026-03-31"),
        ("e", "2026-08-31"),
    ), "P1")  # fmt: skip
    w.add(L(1, 2), "partner", "ProjectCreated", P2, _project(
        Y, "乙项目", "pm.li", "100000.00", ("f", "2026-03-15"), ("g", "2026-04-01")
    ), "P2")  # fmt: skip
    for pid, partner, title, pm, budget, milestones in (
        (P4, X, "丙项目", "pm.wang", "100000.00", ()),
        (P5, Y, "丁项目", "pm.li", "100000.00", ()),
        (P6, Y, "戊项目", "pm.li", "100000.00", ()),
        # h falls due, undelivered, but P7 never signed a contract: not counted.
        (P7, X, "己项目", "pm.wang", "200000.00", (("h", "2026-04-15"),)),
        # i falls due after P8 was terminated (06-25), undelivered: not owed.
        (P8, X, "庚项目", "pm.wang", "100000.00", (("i", "2026-06-30"),)),
    ):
        body = _project(partner, title, pm, budget, *milestones)
        w.add(L(2, 1), "partner", "ProjectCreated", pid, body, f"P{str(pid)[-1]}")
    # Approved budgets (R5.2): P1's procurement was rejected, so it has none.
    for at, pid in ((L(1, 3), P2), *((L(2, 5), pid) for pid in (P4, P5, P6, P8))):
        w.add(at, "partner", "ProcurementApprovalGranted", pid, {
            "request_id": str(uuid.uuid4()), "approved_at": iso(at),
            "approved_amount": "100000.00",
        }, f"granted-{pid}")  # fmt: skip
    w.add(L(2, 5), "partner", "ProcurementApprovalGranted", P7, {
        "request_id": str(uuid.uuid4()), "approved_at": iso(L(2, 5)),
        "approved_amount": "200000.00",
    }, f"granted-{P7}")  # fmt: skip


def _deliveries(w: World) -> None:
    p = "partner"
    w.add(
        L(1, 20, 16), p, "MilestoneDelivered", P1, _delivered("b", "2026-01-20", "2026-01-20"), "b"
    )
    w.add(L(2, 1), p, "MilestoneDelivered", P1, _delivered("a", "2026-02-01", "2026-01-31"), "a")
    w.add(
        L(3, 9, 15), p, "MilestoneDelivered", P1, _delivered("c", "2026-03-09", "2026-03-10"), "c"
    )
    w.add(
        L(3, 11), p, "MilestoneRejected", P1, {"milestone_id": "c", "reasons": ["缺少文档"]}, "c-"
    )
    w.add(L(3, 12), p, "MilestoneDelivered", P1, _delivered("c", "2026-03-12", "2026-03-10"), "c2")
    w.add(L(3, 14), p, "MilestoneDelivered", P2, _delivered("f", "2026-03-14", "2026-03-15"), "f")
    w.add(L(3, 16), p, "MilestoneRejected", P2, {"milestone_id": "f", "reasons": ["不合格"]}, "f-")
    w.add(L(3, 20), p, "MilestoneDelivered", P1, _delivered("d", "2026-03-20", "2026-03-31"), "d")
    w.add(L(3, 25), p, "MilestoneRejected", P1, {"milestone_id": "d", "reasons": ["缺陷"]}, "d-")
    w.add(L(3, 30), p, "MilestoneDelivered", P1, _delivered("d", "2026-03-30", "2026-03-31"), "d2")
    w.add(L(3, 31), p, "MilestoneDelivered", P2, _delivered("g", "2026-03-31", "2026-04-01"), "g")


def _complaints_and_surveys(w: World) -> None:
    p = "partner"
    for cid, received, severity in (
        ("c1", "2026-03-31T23:30:00+08:00", "high"),
        ("c2", "2026-04-01T00:10:00+08:00", "low"),
    ):
        w.add(datetime.fromisoformat(received), p, "ComplaintReceived", P1, {
            "complaint_id": cid, "received_at": received, "severity": severity,
            "source": "客户", "summary": "响应慢",
        }, f"complaint-{cid}")  # fmt: skip
    w.add(L(4, 1, 9, 30), p, "ComplaintResponded", P1, {"complaint_id": "c1", "response": "已处理"})
    w.add(L(4, 1, 2, 10), p, "ComplaintResponded", P1, {"complaint_id": "c2", "response": "已处理"})
    for at, pid, sid, score in (
        (L(3, 5), P1, "s1", 4),
        (L(3, 6), P1, "s2", 5),
        (L(5, 6), P2, "s3", 2),
    ):
        w.add(at, p, "SatisfactionRecorded", pid, {
            "survey_id": sid, "score": score, "respondent": "客户张三", "comment": "",
        })  # fmt: skip


def _tasks(w: World) -> None:
    p = "partner"

    def assign(at: datetime, tid: str, who: str, due: str) -> None:
        body = {"task_id": tid, "title": f"任务{tid}", "specialist": who, "due_on": due}
        w.add(at, p, "TaskAssigned", P1, body)

    def ack(at: datetime, tid: str, who: str) -> None:
        w.add(at, p, "TaskAcknowledged", P1, {"task_id": tid, "specialist": who})

    def done(tid: str, who: str, on: str, due: str) -> None:
        moment = L(int(on[5:7]), int(on[8:]), 18)
        w.add(moment, p, "TaskCompleted", P1, {
            "task_id": tid, "specialist": who, "completed_on": on, "due_on": due,
            "on_time": on <= due,
        })  # fmt: skip

    assign(L(3, 1, 9), "t7", "sp.zhao", "2026-03-05")
    ack(L(3, 1, 10), "t7", "sp.zhao")  # 1 h
    done("t7", "sp.zhao", "2026-03-04", "2026-03-05")
    assign(L(3, 1, 10), "t1", "sp.zhao", "2026-03-10")
    ack(L(3, 1, 12), "t1", "sp.zhao")  # 2 h
    done("t1", "sp.zhao", "2026-03-10", "2026-03-10")
    assign(L(3, 1, 10), "t2", "sp.zhao", "2026-03-20")
    ack(L(3, 2, 10), "t2", "sp.zhao")  # 24 h
    done("t2", "sp.zhao", "2026-03-21", "2026-03-20")
    assign(L(3, 2, 9), "t3", "sp.qian", "2026-03-25")
    ack(L(3, 2, 9, 30), "t3", "sp.qian")  # 0.5 h, never completed
    assign(L(3, 2, 10), "t5", "sp.zhao", "2026-03-31")
    assign(L(3, 10, 10), "t5", "sp.qian", "2026-03-31")  # moved to sp.qian
    done("t5", "sp.qian", "2026-03-31", "2026-03-31")
    assign(L(4, 1, 10), "t4", "sp.qian", "2026-04-30")
    ack(L(4, 1, 13), "t4", "sp.qian")  # 3 h
    done("t4", "sp.qian", "2026-04-29", "2026-04-30")
    assign(L(6, 1), "t6", "sp.zhao", "2026-08-15")  # not due by the clock


def _documents(w: World) -> None:
    def review(at: datetime, doc: UUID, doc_type: str, who: str, version: int, ok: bool) -> None:
        w.add(at, "docs", "DocumentReviewed", doc, {
            "doc_type": doc_type, "project_id": str(P1 if doc == D1 else P2), "version": version,
            "filed_by": who, "reviewer": "pm.wang",
            "outcome": "accepted" if ok else "needs_correction",
            "reasons": [] if ok else ["格式"], "reviewed_at": iso(at),
        })  # fmt: skip

    review(L(3, 5, 15), D1, "周报", "sp.zhao", 1, False)
    review(L(3, 5, 16), D1, "周报", "sp.zhao", 1, True)  # a second review of version 1: not counted
    review(L(3, 6), D1, "周报", "sp.zhao", 2, True)
    review(L(3, 7), D2, "月报", "sp.qian", 1, True)


def _costs_and_closures(w: World) -> None:
    p = "partner"
    for at, pid, cid, amount, category, on in (
        (L(3, 15, 18), P4, "k1", "30000.00", "人力", "2026-03-15"),
        (L(3, 31, 18), P4, "k2", "20000.00", "设备", "2026-03-31"),
        (L(4, 1, 18), P4, "k3", "45000.00", "人力", "2026-04-01"),
        (L(4, 20, 18), P7, "k6", "100000.00", "设备", "2026-04-20"),
        (L(5, 15, 18), P5, "k4", "95100.00", "人力", "2026-05-15"),
        (L(5, 20, 18), P6, "k5", "50000.00", "人力", "2026-05-20"),
    ):
        w.add(at, p, "CostRecorded", pid, {
            "cost_id": cid, "amount": amount, "category": category, "currency": "CNY",
            "incurred_on": on, "note": "",
        }, cid)  # fmt: skip
    # The PM's raise within the threshold is not an approval; the Director's decision is.
    w.add(L(4, 5), p, "BudgetChanged", P7, {
        "old_budget": "200000.00", "new_budget": "210000.00", "reason": "扩容", "decision_id": None,
    }, "P7-raise")  # fmt: skip
    w.add(L(4, 10), p, "BudgetChanged", P7, {
        "old_budget": "210000.00", "new_budget": "250000.00", "reason": "扩容",
        "decision_id": str(DECISION),
    }, "P7-budget")  # fmt: skip
    for at, pid, outcome, costs in (
        (L(6, 10), P4, "completed", "95000.00"),
        (L(6, 12), P5, "completed", "95100.00"),
        (L(6, 15), P6, "failed", "50000.00"),
        (L(6, 25), P8, "terminated", "0"),
    ):
        w.add(at, p, "ProjectClosed", pid, {
            "outcome": outcome, "reason": "结项", "budget": "100000.00", "costs_total": costs,
        }, f"closed-{pid}")  # fmt: skip


def _contract(number: str, partner: UUID, signed_on: str, kickoff_due: datetime) -> dict[str, Any]:
    return {
        "contract_number": number, "partner_id": str(partner), "value": "98000.00",
        "currency": "CNY", "signed_on": signed_on, "starts_on": signed_on,
        "ends_on": "2027-02-28", "sla_terms": ["可用性 99.9%"],
        "third_party_acceptor": "福建省软件测评中心", "kickoff_due_at": iso(kickoff_due),
    }  # fmt: skip


def _kickoff(held_on: str, due: datetime, late: bool) -> dict[str, Any]:
    return {
        "held_on": held_on, "goals": ["稳定运行"], "timetable": "启动",
        "responsibilities": [{"person": "pm.li", "duty": "总体负责"}], "late": late,
        "due_at": iso(due),
    }  # fmt: skip


def _kickoff_and_reviews(w: World) -> None:
    p = "partner"
    # P2 and P8 are under contract (their milestones count, R6.1), each kicked off in time.
    w.add(
        L(1, 2, 12), p, "ContractSigned", P2, _contract("HT-2026-002", Y, "2026-01-02", eod(1, 9))
    )
    w.add(L(1, 8, 18), p, "KickoffHeld", P2, _kickoff("2026-01-08", eod(1, 9), False))
    w.add(L(2, 2), p, "ContractSigned", P8, _contract("HT-2026-008", X, "2026-02-02", eod(2, 9)))
    w.add(L(2, 6, 18), p, "KickoffHeld", P8, _kickoff("2026-02-06", eod(2, 9), False))
    w.add(L(3, 1), p, "ContractSigned", P1, {
        "contract_number": "HT-2026-001", "partner_id": str(X), "value": "98000.00",
        "currency": "CNY", "signed_on": "2026-03-01", "starts_on": "2026-03-01",
        "ends_on": "2027-02-28", "sla_terms": ["可用性 99.9%"],
        "third_party_acceptor": "福建省软件测评中心", "kickoff_due_at": iso(eod(3, 8)),
    }, "contract-p1")  # fmt: skip
    w.add(L(3, 9, 18), p, "KickoffHeld", P1, {
        "held_on": "2026-03-09", "goals": ["稳定运行"], "timetable": "三月启动",
        "responsibilities": [{"person": "pm.wang", "duty": "总体负责"}], "late": True,
        "due_at": iso(eod(3, 8)),
    }, "kickoff")  # fmt: skip
    w.add(L(3, 25, 18), p, "ReviewHeld", P1, {
        "quarter": "2026-Q1", "held_on": "2026-03-25", "progress": "正常", "risk_rating": "low",
        "issues": [],
    })  # fmt: skip
    w.add(L(4, 1, 0), p, "QuarterlyReviewOverdue", P2, {
        "deadline_id": str(uuid.uuid4()), "quarter": "2026-Q1", "due_at": iso(eod(3, 31)),
    })  # fmt: skip


def _approval(w: World) -> None:
    a = "approval"
    w.add(L(3, 2, 9), a, "ApprovalRequested", A1, {
        "kind": "procurement", "source": "partner.events", "project_id": str(P1),
        "partner_id": str(X), "title": "甲项目采购", "amount": "100000.00", "currency": "CNY",
        "justification": "年度运维", "requested_by": "pm.wang",
        "steps": ["department_head", "finance", "ceo"], "approvers": {}, "new_budget": None,
        "new_scope": None, "new_end_date": None, "new_value": None,
    })  # fmt: skip

    def opened(at: datetime, step: str, rnd: int, due: datetime, who: str, role: str) -> None:
        w.add(at, a, "ApprovalStepOpened", A1, {
            "step": step, "round": rnd, "assignee_role": role, "assignee": who,
            "opened_at": iso(at), "due_at": iso(due),
        }, f"open-{step}-{rnd}")  # fmt: skip

    def approved(at: datetime, step: str, who: str, role: str, since: datetime, ok: bool) -> None:
        w.add(at, a, "ApprovalStepApproved", A1, {
            "step": step, "round": 1, "approver": who, "approver_role": role,
            "delegate_of": None, "comment": "同意", "opened_at": iso(since),
            "decided_at": iso(at), "on_time": ok,
        }, f"approved-{step}")  # fmt: skip

    opened(L(3, 2, 9), "department_head", 1, L(3, 4, 9), "dh.li", "dept_head")
    approved(L(3, 3, 15), "department_head", "dh.li", "dept_head", L(3, 2, 9), True)  # 30 h
    opened(L(3, 3, 15), "finance", 1, L(3, 6, 15), "fin.zhao", "finance")
    w.add(L(3, 6, 15), a, "ApprovalStepOverdue", A1, {
        "deadline_id": str(uuid.uuid4()), "step": "finance", "round": 1,
        "assignee_role": "finance", "assignee": "fin.zhao", "due_at": iso(L(3, 6, 15)),
    }, "overdue-finance")  # fmt: skip
    approved(L(3, 9, 15), "finance", "fin.zhao", "finance", L(3, 3, 15), False)  # 144 h
    opened(L(3, 9, 15), "ceo", 1, L(3, 12, 15), "ceo.chen", "ceo")
    w.add(L(3, 10, 15), a, "ApprovalReturned", A1, {
        "step": "ceo", "round": 1, "requested_by": "pm.wang", "returned_by": "ceo.chen",
        "returned_by_role": "ceo", "delegate_of": None, "reason": "补充材料",
        "opened_at": iso(L(3, 9, 15)), "returned_at": iso(L(3, 10, 15)), "on_time": True,
    }, "returned")  # 24 h  # fmt: skip
    opened(L(3, 11, 9), "ceo", 2, L(3, 14, 9), "ceo.chen", "ceo")
    w.add(L(3, 12, 9), a, "ProcurementRejected", A1, {
        "request_id": str(A1), "project_id": str(P1), "step": "ceo", "reason": "预算不足",
        "rejected_by": "ceo.chen", "delegate_of": None, "rejected_at": iso(L(3, 12, 9)),
    }, "rejected")  # 24 h after the step reopened  # fmt: skip
    for action, acted, filed in ((E1, L(5, 5, 21), True), (E2, L(5, 20, 21), False)):
        due = acted + timedelta(hours=24)
        w.add(acted + timedelta(hours=1), a, "EmergencyActionRecorded", action, {
            "project_id": str(P1), "what_happened": "服务器故障", "action_taken": "调配资源",
            "resources_changed": ["服务器"], "acted_at": iso(acted), "recorded_by": "pm.wang",
            "explanation_due_at": iso(due),
        })  # fmt: skip
        if filed:
            w.add(due - timedelta(hours=1), a, "EmergencyExplanationFiled", action, {
                "explanation": "书面说明", "filed_by": "pm.wang",
                "filed_at": iso(due - timedelta(hours=1)), "due_at": iso(due), "on_time": True,
            })  # fmt: skip
        else:
            w.add(due, a, "EmergencyExplanationOverdue", action, {
                "deadline_id": str(uuid.uuid4()), "project_id": str(P1),
                "recorded_by": "pm.wang", "due_at": iso(due),
            })  # fmt: skip


def _meetings(w: World) -> None:
    d = "docs"

    def held(meeting: UUID, kind: str, at: datetime) -> None:
        w.add(at, d, "MeetingHeld", meeting, {
            "kind": kind, "title": "部门周例会" if kind == "weekly_department" else "季度战略会",
            "project_id": None, "held_at": iso(at), "chaired_by": "director.zhang",
            "attendees": ["director.zhang", "pm.wang", "pm.li"],
            "minutes_due_at": iso(at + timedelta(hours=24)),
            "owners_due_at": iso(at + timedelta(hours=24)), "source": "api",
        }, f"held-{meeting}")  # fmt: skip

    def minutes(meeting: UUID, kind: str, held_at: datetime, at: datetime) -> None:
        w.add(at, d, "MinutesFiled", meeting, {
            "kind": kind, "project_id": None, "document_id": str(uuid.uuid4()),
            "document_name": "信息技术部-会议纪要", "filed_by": "director.zhang",
            "filed_at": iso(at), "due_at": iso(held_at + timedelta(hours=24)), "on_time": True,
        })  # fmt: skip

    weekly = "weekly_department"
    held(M1, weekly, L(3, 2, 9))
    minutes(M1, weekly, L(3, 2, 9), L(3, 2, 17))
    held(M2, weekly, L(3, 9, 9))
    w.add(L(3, 10, 9), d, "MinutesOverdue", M2, {
        "deadline_id": str(uuid.uuid4()), "kind": weekly, "project_id": None,
        "chaired_by": "director.zhang", "due_at": iso(L(3, 10, 9)),
    })  # fmt: skip
    held(M3, weekly, datetime.fromisoformat("2026-03-15T23:30:00+08:00"))  # minutes never filed
    held(M4, weekly, datetime.fromisoformat("2026-03-16T00:10:00+08:00"))
    minutes(M4, weekly, L(3, 16, 0, 10), L(3, 16, 12))
    held(M5, "quarterly_strategy", L(5, 20, 14))
    minutes(M5, "quarterly_strategy", L(5, 20, 14), L(5, 20, 18))

    def recorded(meeting: UUID, at: datetime, rid: str, owners_due: datetime) -> None:
        w.add(at, d, "ResolutionRecorded", meeting, {
            "resolution_id": rid, "project_id": None, "text": "落实整改",
            "owner_due_at": iso(owners_due),
        })  # fmt: skip

    def assigned(meeting: UUID, at: datetime, rid: str, n: int, owner: str, deadline: datetime,
                 on_time: bool, owners_due: datetime) -> None:  # fmt: skip
        w.add(at, d, "ResolutionAssigned", meeting, {
            "resolution_id": rid, "project_id": None, "assignment": n,
            "owner": owner, "assigned_at": iso(at), "deadline": iso(deadline),
            "on_time": on_time, "owner_due_at": iso(owners_due),
        }, f"assigned-{meeting}-{rid}-{n}")  # fmt: skip

    def completed(meeting: UUID, at: datetime, rid: str, n: int, owner: str,
                  deadline: datetime) -> None:  # fmt: skip
        w.add(at, d, "ResolutionCompleted", meeting, {
            "resolution_id": rid, "project_id": None, "assignment": n, "owner": owner,
            "note": "", "completed_at": iso(at), "deadline": iso(deadline),
            "on_time": at <= deadline,
        }, f"completed-{meeting}-{rid}-{n}")  # fmt: skip

    # A department meeting's resolutions are the department's (no project), as in
    # docs; ids are numbered per meeting: M1 and M4 each have an R1.
    m1_owners = L(3, 3, 9)
    recorded(M1, L(3, 2, 10), "R1", m1_owners)
    recorded(M1, L(3, 2, 10), "R2", m1_owners)
    assigned(M1, L(3, 2, 11), "R1", 1, "pm.wang", eod(3, 20), True, m1_owners)
    completed(M1, L(3, 19), "R1", 1, "pm.wang", eod(3, 20))
    w.add(L(3, 3, 9), d, "ResolutionOwnerOverdue", M1, {
        "deadline_id": str(uuid.uuid4()), "resolution_id": "R2", "project_id": None,
        "chaired_by": "director.zhang", "due_at": iso(m1_owners),
    })  # fmt: skip
    assigned(M1, L(3, 4), "R2", 1, "pm.li", eod(3, 25), False, m1_owners)
    w.add(L(3, 26, 0), d, "ResolutionOverdue", M1, {
        "deadline_id": str(uuid.uuid4()), "resolution_id": "R2", "project_id": None,
        "assignment": 1, "owner": "pm.li", "deadline": iso(eod(3, 25)),
    }, "overdue-R2")  # fmt: skip
    # Handed over after its deadline: pm.li's breach stays, pm.wang owes anew (April).
    assigned(M1, L(3, 27), "R2", 2, "pm.wang", eod(4, 10), False, m1_owners)
    completed(M1, L(4, 8), "R2", 2, "pm.wang", eod(4, 10))
    # Handed over before its deadline: pm.li owes nothing more, sp.qian does.
    m4_owners = L(3, 17, 0, 10)
    recorded(M4, L(3, 16, 1), "R1", m4_owners)
    assigned(M4, L(3, 16, 9), "R1", 1, "pm.li", eod(3, 27), True, m4_owners)
    assigned(M4, L(3, 20), "R1", 2, "sp.qian", eod(3, 27), True, m4_owners)
    completed(M4, L(3, 26), "R1", 2, "sp.qian", eod(3, 27))


def _reports(w: World) -> None:
    d = "docs"

    def opened(at: datetime, kind: str, period: str, start: str, end: str, due: datetime) -> None:
        w.add(at, d, "ReportPeriodOpened", S1, {
            "project_id": str(P1), "kind": kind, "period": period, "period_start": start,
            "period_end": end, "due_at": iso(due), "project_manager": "pm.wang",
        })  # fmt: skip

    def filed(at: datetime, kind: str, period: str, due: datetime) -> None:
        body = {
            "project_id": str(P1), "kind": kind, "period": period,
            "document_id": str(uuid.uuid4()), "due_at": iso(due), "filed_at": iso(at),
            "filed_by": "pm.wang",
        }  # fmt: skip
        if at <= due:
            w.add(at, d, "ReportFiled", S1, body)
        else:
            hours = round((at - due).total_seconds() / 3600, 2)
            w.add(at, d, "ReportFiledLate", S1, {**body, "hours_late": hours})

    opened(L(5, 1, 0), "monthly", "2026-04", "2026-04-01", "2026-04-30", eod(5, 7))
    filed(L(5, 6, 15), "monthly", "2026-04", eod(5, 7))
    opened(L(5, 4, 0), "weekly", "2026-W19", "2026-05-04", "2026-05-10", eod(5, 8))
    filed(L(5, 9), "weekly", "2026-W19", eod(5, 8))
    opened(L(5, 11, 0), "weekly", "2026-W20", "2026-05-11", "2026-05-17", eod(5, 15))
    w.add(L(5, 16, 0), d, "ReportOverdue", S1, {
        "deadline_id": str(uuid.uuid4()), "project_id": str(P1), "kind": "weekly",
        "period": "2026-W20", "due_at": iso(eod(5, 15)), "project_manager": "pm.wang",
    })  # fmt: skip
    opened(L(5, 18, 0), "weekly", "2026-W21", "2026-05-18", "2026-05-24", eod(5, 22))
    filed(L(5, 20), "weekly", "2026-W21", eod(5, 22))
    opened(L(6, 29, 0), "weekly", "2026-W27", "2026-06-29", "2026-07-05", eod(7, 3))  # never filed
    opened(L(7, 6, 0), "weekly", "2026-W28", "2026-07-06", "2026-07-12", eod(7, 10))
    filed(L(7, 9), "weekly", "2026-W28", eod(7, 10))  # filed before it falls due
    filed(L(7, 10, 9), "weekly", "2026-W29", eod(7, 17))  # filed early, its period never opened
    # P4's period opened ahead (due 06-12) and never filed: P4 closed 06-10, so not owed.
    w.add(L(6, 8, 0), d, "ReportPeriodOpened", S4, {
        "project_id": str(P4), "kind": "weekly", "period": "2026-W24",
        "period_start": "2026-06-08", "period_end": "2026-06-14", "due_at": iso(eod(6, 12)),
        "project_manager": "pm.wang",
    })  # fmt: skip
    w.add(L(6, 10, 11), d, "ReportScheduleClosed", S4, {
        "project_id": str(P4), "reason": "项目关闭", "closed_at": iso(L(6, 10, 11)),
    })  # fmt: skip


def _evaluations(w: World) -> None:
    """sp.zhao's self-assessment for December 2025, on time (R6.2)."""
    w.add(L(1, 1, 9), "kpi", "EvaluationOpened", EV1, {
        "user_id": "sp.zhao", "name": "赵专员", "role": "specialist", "superior": "pm.wang",
        "kind": "self", "period": "2025-12", "period_start": "2025-12-01",
        "period_end": "2025-12-31", "due_at": iso(eod(1, 7)),
    }, "evaluation-opened")  # fmt: skip
    w.add(L(1, 5), "kpi", "SelfAssessmentSubmitted", EV1, {
        "user_id": "sp.zhao", "period": "2025-12", "rating": 2, "strengths": "细心",
        "improvements": "沟通太少", "comment": "只给上级看", "due_at": iso(eod(1, 7)),
        "submitted_at": iso(L(1, 5)), "on_time": True,
    }, "self-assessment")  # fmt: skip


def _incidents(w: World) -> None:
    p = "partner"
    for iid, category, severity, detected, reported, late in (
        ("i1", "availability", "high", L(5, 3, 10), L(5, 3, 12), False),
        ("i2", "data_leak", "critical", L(5, 10, 9), L(5, 10, 9, 30), False),
        ("i3", "data_leak", "high", L(5, 31, 23, 30), L(6, 1, 1), True),
    ):
        w.add(reported, p, "IncidentReported", P1, {
            "incident_id": iid, "category": category, "severity": severity,
            "description": "事件", "incident_occurred_at": iso(detected - timedelta(hours=1)),
            "detected_at": iso(detected), "late": late,
            "report_due_at": iso(detected + timedelta(hours=1)) if category == "data_leak"
            else None,
        })  # fmt: skip
    w.add(L(5, 11), p, "InvestigationOpened", P1, {"investigation_id": "v1", "incident_id": "i2"})
    w.add(L(6, 2), p, "InvestigationOpened", P1, {"investigation_id": "v2", "incident_id": "i3"})
    w.add(L(6, 20), p, "InvestigationConcluded", P1, {
        "investigation_id": "v1", "findings": "权限配置错误",
        "sanctions": [
            {"subject": "pm.wang", "subject_kind": "staff", "level": "warning"},
            {"subject": str(X), "subject_kind": "partner", "level": "serious_warning"},
        ],
    })  # fmt: skip


ON_TIME_MARCH = ("/v1/kpi/metrics/on_time_delivery", {"from": "2026-03", "to": "2026-03"})
STRATEGY = (
    "/v1/kpi/metrics/compliance",
    {
        "period": "quarter",
        "from": "2026-Q1",
        "to": "2026-Q1",
        "label": "quarterly_strategy_meeting",
    },
)
INVESTIGATIONS = ("/v1/kpi/metrics/investigations_open", {"from": "2026-05", "to": "2026-06"})
COST_CONTROL = ("/v1/kpi/cost-control", {})
CHECKPOINTS: dict[datetime, list[tuple[str, dict[str, Any]]]] = {
    CP_C_DUE: [ON_TIME_MARCH],
    CP_C_REJECTED: [ON_TIME_MARCH],
    CP_Q1_OPEN: [STRATEGY],
    CP_Q1_OVER: [STRATEGY],
    CP_INVESTIGATING: [INVESTIGATIONS],
    CP_P4_CLOSED: [COST_CONTROL],
    CP_P7_RAISED: [COST_CONTROL],
}


@pytest.fixture(scope="module")
async def world(infra: Infra) -> AsyncIterator[World]:
    settings = infra.settings()
    await create_topics(settings)
    clock = ManualClock(L(1, 1, 0))
    try:
        async with running(
            KPI, settings, relay=False, consumers=False, projectors=False, clock=clock
        ) as svc:
            w = World(svc, settings, clock)
            for part in (
                _projects,
                _deliveries,
                _complaints_and_surveys,
                _tasks,
                _documents,
                _costs_and_closures,
                _kickoff_and_reviews,
                _approval,
                _meetings,
                _reports,
                _incidents,
                _evaluations,
            ):
                part(w)
            await w.play(CHECKPOINTS)
            yield w
    finally:
        await drop_schemas(settings)


def month(n: int) -> str:
    return f"2026-{n:02d}-01"


# -- R6.1: the PM's and the specialist's KPIs ---------------------------------------------------


async def test_on_time_delivery_by_month_quarter_and_to_date_R6_1(world: World) -> None:
    """R6.1: on-time delivery = milestones delivered by their due day / milestones
    fallen due: a delivery a day late across the month end counts against
    January, a rejected delivery counts only once redelivered (late: a miss, on
    time: a hit), a rejection never redelivered is a miss, a milestone not yet
    due is not counted, and February (nothing due) has no figure (null)."""
    assert await world.rows("on_time_delivery", **{"from": "2026-01", "to": "2026-04"}) == [
        (month(1), 1.0, 2.0, 2, 0.5),
        (month(2), None, None, 0, None),
        (month(3), 1.0, 3.0, 3, 0.333333),
        (month(4), 1.0, 1.0, 1, 1.0),
    ]
    quarters = {"period": "quarter", "from": "2026-Q1", "to": "2026-Q3"}
    assert await world.rows("on_time_delivery", **quarters) == [
        ("2026-01-01", 2.0, 5.0, 5, 0.4),
        ("2026-04-01", 1.0, 1.0, 1, 1.0),
        ("2026-07-01", None, None, 0, None),  # e (due 08-31) has not fallen due
    ]
    assert await world.rows("on_time_delivery", period="all") == [(None, 3.0, 6.0, 6, 0.5)]


async def test_on_time_delivery_grouped_and_filtered_R6_1(world: World) -> None:
    """R6.1: per project, per partner and per PM (quarters), and for one
    partner only: Y's March figure is 0 (0 of 1), its January null."""
    by_project = await world.rows(
        "on_time_delivery", period="quarter", **{"from": "2026-Q1", "to": "2026-Q2"},
        group_by="project_id",
    )  # fmt: skip
    assert sorted(by_project) == sorted(
        [
            ("2026-01-01", str(P1), 2.0, 4.0, 4, 0.5),
            ("2026-01-01", str(P2), 0.0, 1.0, 1, 0.0),
            ("2026-04-01", str(P2), 1.0, 1.0, 1, 1.0),
        ]
    )
    by_pm = await world.rows(
        "on_time_delivery", period="quarter", **{"from": "2026-Q1", "to": "2026-Q1"},
        group_by=["partner_id", "project_manager"],
    )  # fmt: skip
    assert sorted(by_pm) == sorted(
        [
            ("2026-01-01", str(X), "pm.wang", 2.0, 4.0, 4, 0.5),
            ("2026-01-01", str(Y), "pm.li", 0.0, 1.0, 1, 0.0),
        ]
    )
    only_y = await world.rows(
        "on_time_delivery", partner_id=str(Y), **{"from": "2026-01", "to": "2026-04"}
    )
    assert only_y == [
        (month(1), None, None, 0, None),
        (month(2), None, None, 0, None),
        (month(3), 0.0, 1.0, 1, 0.0),
        (month(4), 1.0, 1.0, 1, 1.0),
    ]
    body = await world.figures("on_time_delivery", partner_id=str(Y), period="all")
    assert body["filters"] == {"partner_id": str(Y)}


async def test_complaint_rate_with_time_zone_edges_R6_1(world: World) -> None:
    """R6.1: complaints / milestones first delivered in the month (a
    redelivery is not a second delivery); 2026-03-31T23:30+08:00 (15:30Z)
    counts in March, 2026-04-01T00:10+08:00 (still March 31 in UTC) in April,
    where nothing was delivered: no denominator, no figure (null, not 100%)."""
    assert await world.rows("complaint_rate", **{"from": "2026-01", "to": "2026-05"}) == [
        (month(1), 0.0, 1.0, 1, 0.0),
        (month(2), 0.0, 1.0, 1, 0.0),
        (month(3), 1.0, 4.0, 5, 0.25),
        (month(4), 1.0, 0.0, 1, None),
        (month(5), None, None, 0, None),
    ]
    by_partner = await world.rows(
        "complaint_rate", group_by="partner_id", **{"from": "2026-03", "to": "2026-04"}
    )
    assert sorted(by_partner) == sorted(
        [
            (month(3), str(X), 1.0, 2.0, 3, 0.5),
            (month(3), str(Y), 0.0, 2.0, 2, 0.0),
            (month(4), str(X), 1.0, 0.0, 1, None),
        ]
    )


async def test_satisfaction_mean_R6_1(world: World) -> None:
    """R6.1: the mean score of the surveys of the month; a month without one
    has no figure."""
    assert await world.rows("satisfaction", **{"from": "2026-03", "to": "2026-05"}) == [
        (month(3), None, None, 2, 4.5),
        (month(4), None, None, 0, None),
        (month(5), None, None, 1, 2.0),
    ]
    by_partner = await world.rows("satisfaction", period="all", group_by="partner_id")
    assert sorted(by_partner) == sorted(
        [(None, str(X), None, None, 2, 4.5), (None, str(Y), None, None, 1, 2.0)]
    )


async def test_task_completion_per_specialist_R6_1(world: World) -> None:
    """R6.1: tasks completed by their due day / tasks fallen due, per
    specialist (a moved task counts for its latest assignee); a task due in
    August is not counted yet."""
    assert await world.rows("task_completion", **{"from": "2026-03", "to": "2026-08"}) == [
        (month(3), 3.0, 5.0, 5, 0.6),
        (month(4), 1.0, 1.0, 1, 1.0),
        (month(5), None, None, 0, None),
        (month(6), None, None, 0, None),
        (month(7), None, None, 0, None),
        (month(8), None, None, 0, None),
    ]
    by_person = await world.rows(
        "task_completion", group_by="person", **{"from": "2026-03", "to": "2026-04"}
    )
    assert by_person == [
        (month(3), "sp.qian", 1.0, 2.0, 2, 0.5),
        (month(3), "sp.zhao", 2.0, 3.0, 3, 0.666667),
        (month(4), "sp.qian", 1.0, 1.0, 1, 1.0),
    ]
    zhao = await world.rows("task_completion", person="sp.zhao", period="all")
    assert zhao == [(None, 2.0, 3.0, 3, 0.666667)]


async def test_task_response_hours_median_R6_1(world: World) -> None:
    """R6.1 response speed: the median of hours from assignment to
    acknowledgement, on the day acknowledged: March 0.5, 1, 2, 24 -> 1.5."""
    assert await world.rows("task_response_hours", **{"from": "2026-03", "to": "2026-04"}) == [
        (month(3), None, None, 4, 1.5),
        (month(4), None, None, 1, 3.0),
    ]
    by_person = await world.rows(
        "task_response_hours", group_by="person", **{"from": "2026-03", "to": "2026-03"}
    )
    assert by_person == [
        (month(3), "sp.qian", None, None, 1, 0.5),
        (month(3), "sp.zhao", None, None, 3, 2.0),
    ]


async def test_complaint_response_hours_R6_1(world: World) -> None:
    """R6.1 response speed (complaints): 10 h for the high one received
    03-31 23:30 and answered 04-01 09:30, 2 h for the low one; both on the
    day of the response, April: median 6."""
    assert await world.rows("complaint_response_hours", **{"from": "2026-03", "to": "2026-04"}) == [
        (month(3), None, None, 0, None),
        (month(4), None, None, 2, 6.0),
    ]
    by_severity = await world.rows("complaint_response_hours", period="all", group_by="label")
    assert by_severity == [(None, "high", None, None, 1, 10.0), (None, "low", None, None, 1, 2.0)]


async def test_document_accuracy_R6_1(world: World) -> None:
    """R6.1 (regression, fix 9): documents accepted at their first review /
    documents reviewed, per filer and type: D1's first review (version 1)
    asked for a correction, so D1 is a miss even though version 2 was
    accepted at once; it was counted per version (2/3) before."""
    assert await world.rows("document_accuracy", **{"from": "2026-03", "to": "2026-03"}) == [
        (month(3), 1.0, 2.0, 2, 0.5)
    ]
    by_person = await world.rows("document_accuracy", period="all", group_by=["person", "label"])
    assert by_person == [
        (None, "sp.qian", "月报", 1.0, 1.0, 1, 1.0),
        (None, "sp.zhao", "周报", 0.0, 1.0, 1, 0.0),
    ]


async def test_failure_rate_and_cost_spent_R1_2_R6_1(world: World) -> None:
    """R1.2: projects closed failed or terminated / projects closed (June
    2/4); R6.1: costs summed by the day incurred (an empty month sums to 0)."""
    assert await world.rows("failure_rate", **{"from": "2026-05", "to": "2026-06"}) == [
        (month(5), None, None, 0, None),
        (month(6), 2.0, 4.0, 4, 0.5),
    ]
    by_outcome = await world.rows("failure_rate", period="all", group_by="label")
    assert by_outcome == [
        (None, "completed", 0.0, 2.0, 2, 0.0),
        (None, "failed", 1.0, 1.0, 1, 1.0),
        (None, "terminated", 1.0, 1.0, 1, 1.0),
    ]
    assert await world.rows("cost_spent", **{"from": "2026-02", "to": "2026-06"}) == [
        (month(2), None, None, 0, 0.0),
        (month(3), 50000.0, None, 2, 50000.0),
        (month(4), 145000.0, None, 2, 145000.0),
        (month(5), 145100.0, None, 2, 145100.0),
        (month(6), None, None, 0, 0.0),
    ]
    p4 = await world.rows("cost_spent", project_id=str(P4), group_by="label", period="all")
    assert p4 == [
        (None, "人力", 75000.0, None, 2, 75000.0),
        (None, "设备", 20000.0, None, 1, 20000.0),
    ]


# -- R6.1, R6.3: cost control and the bonus flag ----------------------------------------------


async def test_cost_control_and_the_bonus_flag_R6_3(world: World) -> None:
    """R6.1 cost control rate = actual / approved budget (the procurement
    approval, or the latest Director decision: P7's 250,000, not its PM's
    raise); a project never approved (P1) has no budget and no rate (R5.5
    regression, fix 5); R6.3: a saving of 5% on a completed project earns the
    bonus flag, 4.9% does not, nor does a failed project however cheap, nor
    an open one."""
    body = await world.get("/v1/kpi/cost-control")
    assert body["bonus_threshold_percent"] == 5.0
    got = {
        UUID(r["project_id"]): (
            r["budget"], r["actual"], r["rate"], r["saving"], r["outcome"], r["closed_on"],
            r["bonus_eligible"],
        )
        for r in body["items"]
    }  # fmt: skip
    assert got == {
        P1: (None, 0.0, None, None, None, None, False),
        P2: (100000.0, 0.0, 0.0, 1.0, None, None, False),
        P4: (100000.0, 95000.0, 0.95, 0.05, "completed", "2026-06-10", True),
        P5: (100000.0, 95100.0, 0.951, 0.049, "completed", "2026-06-12", False),
        P6: (100000.0, 50000.0, 0.5, 0.5, "failed", "2026-06-15", False),
        P7: (250000.0, 100000.0, 0.4, 0.6, None, None, False),
        P8: (100000.0, 0.0, 0.0, 1.0, "terminated", "2026-06-25", False),
    }
    p4 = next(r for r in body["items"] if r["project_id"] == str(P4))
    # The events behind it: its creation, its approval, its closure (totals), its costs by day.
    assert p4["event_ids"] == [
        str(world.ids[n]) for n in ("P4", f"granted-{P4}", f"closed-{P4}", "k1", "k2", "k3")
    ]
    p7 = next(r for r in body["items"] if r["project_id"] == str(P7))
    assert str(world.ids["P7-budget"]) in p7["event_ids"]
    assert str(world.ids["P7-raise"]) not in p7["event_ids"]
    assert p4["partner_id"] == str(X) and p4["project_manager"] == "pm.wang"
    li = await world.get("/v1/kpi/cost-control", project_manager="pm.li")
    assert {r["project_id"] for r in li["items"]} == {str(P2), str(P5), str(P6)}
    only_y = await world.get("/v1/kpi/cost-control", partner_id=str(Y))
    assert {r["project_id"] for r in only_y["items"]} == {str(P2), str(P5), str(P6)}


async def test_cost_control_as_of_a_past_moment_R6_3(world: World) -> None:
    """R6.3, R6.1: as of 2026-06-11 00:00 P4 had closed (bonus), P5 had not:
    the reading equals the one taken live then, and differs from now."""
    past = await world.get("/v1/kpi/cost-control", as_of=iso(CP_P4_CLOSED))
    assert past["items"] == world.live[(COST_CONTROL[0], CP_P4_CLOSED)]
    then = {UUID(r["project_id"]): r for r in past["items"]}
    assert (then[P4]["outcome"], then[P4]["bonus_eligible"]) == ("completed", True)
    assert (then[P5]["actual"], then[P5]["outcome"], then[P5]["bonus_eligible"]) == (
        95100.0,
        None,
        False,
    )
    assert then[P8]["outcome"] is None
    now = {UUID(r["project_id"]): r for r in (await world.get("/v1/kpi/cost-control"))["items"]}
    assert now[P5]["outcome"] == "completed" and now[P8]["outcome"] == "terminated"
    before = await world.get("/v1/kpi/cost-control", as_of=iso(L(3, 31, 23)))
    early = {UUID(r["project_id"]): r for r in before["items"]}
    assert (early[P4]["actual"], early[P4]["rate"]) == (50000.0, 0.5)  # k3 incurred 04-01
    assert early[P7]["budget"] == 200000.0  # raised on 04-10
    assert (early[P1]["budget"], early[P1]["rate"]) == (None, None)  # never approved


async def test_a_pm_raise_is_not_an_approved_budget_R5_5(world: World) -> None:
    """R5.5, R6.1 (regression, fix 5): as of 2026-04-08 P7's PM had raised its
    budget to 210,000 without a Director decision: the approved budget is
    still the 200,000 granted (it read 210,000 before); no cost yet (k6 is
    incurred 04-20); equal to the live reading then."""
    past = await world.get("/v1/kpi/cost-control", as_of=iso(CP_P7_RAISED))
    assert past["items"] == world.live[(COST_CONTROL[0], CP_P7_RAISED)]
    p7 = next(r for r in past["items"] if r["project_id"] == str(P7))
    assert (p7["budget"], p7["actual"], p7["rate"]) == (200000.0, 0.0, 0.0)


# -- R3.5: compliance ------------------------------------------------------------------------


async def test_compliance_by_obligation_type_R3_5(world: World) -> None:
    """R3.5: obligations met on time / obligations fallen due, each missed
    node counted (breached, met late, or still open after its due moment);
    one met before it falls due counts once met."""
    march = await world.rows("compliance", group_by="label", **{"from": "2026-03", "to": "2026-03"})
    assert march == [
        (month(3), "approval_step", 3.0, 4.0, 4, 0.75),
        (month(3), "kickoff", 0.0, 1.0, 1, 0.0),
        (month(3), "minutes", 2.0, 4.0, 4, 0.5),
        (month(3), "quarterly_review", 1.0, 2.0, 2, 0.5),
        (month(3), "quarterly_strategy_meeting", 0.0, 1.0, 1, 0.0),
        (month(3), "resolution", 2.0, 3.0, 3, 0.666667),
        (month(3), "resolution_owner", 2.0, 3.0, 3, 0.666667),
        (month(3), "weekly_department_meeting", 3.0, 5.0, 5, 0.6),
    ]
    assert await world.rows("compliance", **{"from": "2026-03", "to": "2026-07"}) == [
        (month(3), 13.0, 23.0, 23, 0.565217),
        (month(4), 1.0, 5.0, 5, 0.2),
        (month(5), 5.0, 13.0, 13, 0.384615),
        (month(6), 1.0, 6.0, 6, 0.166667),
        (month(7), 2.0, 4.0, 4, 0.5),
    ]
    reports = await world.rows("compliance", label="report", **{"from": "2026-05", "to": "2026-07"})
    assert reports == [
        (month(5), 2.0, 4.0, 4, 0.5),
        (month(6), None, None, 0, None),  # P4's W24 fell due after P4 closed
        # W27 open after its due day, W28 filed early, W29 filed early unopened
        (month(7), 2.0, 3.0, 3, 0.666667),
    ]
    by_kind = await world.rows("compliance", label="report", period="all", group_by="detail")
    assert by_kind == [(None, "monthly", 1.0, 1.0, 1, 1.0), (None, "weekly", 3.0, 6.0, 6, 0.5)]
    may = await world.rows("compliance", group_by="label", **{"from": "2026-05", "to": "2026-06"})
    assert may == [
        (month(5), "data_leak_report", 1.0, 1.0, 1, 1.0),
        (month(5), "emergency_explanation", 1.0, 2.0, 2, 0.5),
        (month(5), "minutes", 1.0, 1.0, 1, 1.0),
        (month(5), "report", 2.0, 4.0, 4, 0.5),
        (month(5), "weekly_department_meeting", 0.0, 5.0, 5, 0.0),
        (month(6), "data_leak_report", 0.0, 1.0, 1, 0.0),
        (month(6), "quarterly_strategy_meeting", 1.0, 1.0, 1, 1.0),
        (month(6), "weekly_department_meeting", 0.0, 4.0, 4, 0.0),
    ]
    steps = await world.rows(
        "compliance", label="approval_step", period="all", group_by=["person", "detail"]
    )
    assert steps == [
        (None, "ceo.chen", "ceo", 2.0, 2.0, 2, 1.0),
        (None, "dh.li", "department_head", 1.0, 1.0, 1, 1.0),
        (None, "fin.zhao", "finance", 0.0, 1.0, 1, 0.0),
    ]


async def test_weekly_and_quarterly_meetings_are_calendar_obligations_R5_4(world: World) -> None:
    """R5.4: every full week (Monday to Sunday, Shanghai) since the first fact
    (2026-01-01) owes a department meeting, counted on its Sunday; a meeting on
    Sunday 2026-03-15 23:30 and one on Monday 2026-03-16 00:10 serve two weeks,
    two in one week serve one; every full quarter owes a strategy meeting (Q1
    none: missed; Q2 on 05-20: met; Q3 not over)."""
    weekly = await world.rows(
        "compliance", label="weekly_department_meeting", **{"from": "2026-01", "to": "2026-07"}
    )
    assert weekly == [
        (month(1), 0.0, 3.0, 3, 0.0),
        (month(2), 0.0, 4.0, 4, 0.0),
        (month(3), 3.0, 5.0, 5, 0.6),
        (month(4), 0.0, 4.0, 4, 0.0),
        (month(5), 0.0, 5.0, 5, 0.0),
        (month(6), 0.0, 4.0, 4, 0.0),
        (month(7), 0.0, 1.0, 1, 0.0),
    ]
    strategy = await world.rows(
        "compliance", label="quarterly_strategy_meeting", period="quarter",
        **{"from": "2026-Q1", "to": "2026-Q3"},
    )  # fmt: skip
    assert strategy == [
        ("2026-01-01", 0.0, 1.0, 1, 0.0),
        ("2026-04-01", 1.0, 1.0, 1, 1.0),
        ("2026-07-01", None, None, 0, None),
    ]
    march = await world.get(
        "/v1/kpi/metrics/compliance/explain",
        period_start="2026-03",
        label="weekly_department_meeting",
    )
    assert [(i["day"], i["numerator"], i["event_ids"]) for i in march["items"]] == [
        ("2026-03-01", 0.0, []),
        ("2026-03-08", 1.0, [str(world.ids[f"held-{M1}"])]),
        ("2026-03-15", 1.0, [str(world.ids[f"held-{M2}"])]),
        ("2026-03-22", 1.0, [str(world.ids[f"held-{M4}"])]),
        ("2026-03-29", 0.0, []),
    ]
    assert {e["event_id"] for e in march["events"]} == world.ev(
        f"held-{M1}", f"held-{M2}", f"held-{M4}"
    )
    missed = await world.get(
        "/v1/kpi/metrics/compliance/explain",
        period_start="2026-03",
        label="weekly_department_meeting",
        missed="true",
    )
    assert [i["day"] for i in missed["items"]] == ["2026-03-01", "2026-03-29"]
    assert missed["events"] == []


async def test_strategy_meeting_as_of_before_and_after_the_quarter_ends_R5_4(
    world: World,
) -> None:
    """R5.4, R3.5: as of 2026-03-31 12:00 Q1 had not ended (no obligation, no
    figure); as of 2026-04-01 00:30 it had, missed; each equals the reading
    taken live at that moment."""
    url, params = STRATEGY
    before = await world.get(url, **params, as_of=iso(CP_Q1_OPEN))
    after = await world.get(url, **params, as_of=iso(CP_Q1_OVER))
    assert before["rows"] == world.live[(url, CP_Q1_OPEN)]
    assert after["rows"] == world.live[(url, CP_Q1_OVER)]
    assert [(r["items"], r["value"]) for r in before["rows"]] == [(0, None)]
    assert [(r["items"], r["value"]) for r in after["rows"]] == [(1, 0.0)]
    assert before["as_of"] == before["cut"] == iso(CP_Q1_OPEN).replace("+00:00", "Z")


# -- R3.1, R6.4 -------------------------------------------------------------------------------


async def test_approval_cycle_hours_R3_1(world: World) -> None:
    """R3.1: the mean hours from a step's opening to its decision (approved,
    returned or rejected), by level and approver, on the day decided: 30 h,
    144 h, a return after 24 h and a rejection 24 h after the step reopened
    (regression: rejections were left out)."""
    assert await world.rows("approval_cycle_hours", **{"from": "2026-03", "to": "2026-03"}) == [
        (month(3), None, None, 4, 55.5)
    ]
    by_level = await world.rows("approval_cycle_hours", period="all", group_by=["label", "person"])
    assert by_level == [
        (None, "ceo", "ceo.chen", None, None, 2, 24.0),
        (None, "department_head", "dh.li", None, None, 1, 30.0),
        (None, "finance", "fin.zhao", None, None, 1, 144.0),
    ]
    p1 = await world.rows("approval_cycle_hours", period="all", project_id=str(P1))
    assert p1 == [(None, None, None, 4, 55.5)]
    body = await world.get(
        "/v1/kpi/metrics/approval_cycle_hours/explain", period_start="2026-03", label="ceo"
    )
    assert [(i["day"], i["sample"], set(i["event_ids"])) for i in body["items"]] == [
        ("2026-03-10", 24.0, world.ev("returned")),
        ("2026-03-12", 24.0, world.ev("open-ceo-2", "rejected")),
    ]


async def test_incidents_data_leaks_and_report_hours_R6_4(world: World) -> None:
    """R6.4: incidents counted on the day detected (a count of an empty
    month is 0), data leaks by severity, hours from detection to report."""
    assert await world.rows("incidents", **{"from": "2026-05", "to": "2026-06"}) == [
        (month(5), 3.0, None, 3, 3.0),
        (month(6), None, None, 0, 0.0),
    ]
    assert await world.rows("incidents", period="all", group_by="label") == [
        (None, "availability", 1.0, None, 1, 1.0),
        (None, "data_leak", 2.0, None, 2, 2.0),
    ]
    assert await world.rows("data_leaks", period="all", group_by="detail") == [
        (None, "critical", 1.0, None, 1, 1.0),
        (None, "high", 1.0, None, 1, 1.0),
    ]
    assert await world.rows("incident_report_hours", **{"from": "2026-05", "to": "2026-05"}) == [
        (month(5), None, None, 3, 1.3333)
    ]
    leaks = await world.rows("incident_report_hours", period="all", label="data_leak")
    assert leaks == [(None, None, None, 2, 1.0)]


async def test_investigations_and_sanctions_R6_4(world: World) -> None:
    """R6.4: investigations open by the day opened (v1 concluded 06-20, v2
    open), as of 2026-06-10 both open (equal to the live reading then);
    sanctions by level and the staff member sanctioned."""
    url, params = INVESTIGATIONS
    now = await world.get(url, **params)
    assert [(r["period_start"], r["value"]) for r in now["rows"]] == [
        (month(5), 0.0),
        (month(6), 1.0),
    ]
    then = await world.get(url, **params, as_of=iso(CP_INVESTIGATING))
    assert then["rows"] == world.live[(url, CP_INVESTIGATING)]
    assert [(r["period_start"], r["value"]) for r in then["rows"]] == [
        (month(5), 1.0),
        (month(6), 1.0),
    ]
    assert await world.rows("sanctions", period="all", group_by=["label", "person"]) == [
        (None, "serious_warning", None, 1.0, None, 1, 1.0),
        (None, "warning", "pm.wang", 1.0, None, 1, 1.0),
    ]


async def test_every_kpi_is_listed_with_its_requirement_R6_1(world: World) -> None:
    """R6.1, R3.5: GET /v1/kpi/metrics lists every KPI with its formula; each
    was read above with hand-computed figures."""
    listed = await world.get("/v1/kpi/metrics")
    assert [m["key"] for m in listed] == list(METRICS)
    assert {m["key"]: m["requirement"] for m in listed}["compliance"] == "R3.5"
    assert set(METRICS) == {
        "on_time_delivery", "complaint_rate", "satisfaction", "task_completion",
        "document_accuracy", "task_response_hours", "complaint_response_hours",
        "failure_rate", "cost_spent", "compliance", "approval_cycle_hours", "incidents",
        "data_leaks", "incident_report_hours", "investigations_open", "sanctions",
    }  # fmt: skip


# -- as of, drill-down -------------------------------------------------------------------------


async def test_a_figure_as_of_a_past_moment_is_what_was_known_then_R6_1(world: World) -> None:
    """R6.1 (auditors' replay): March on-time delivery as of 2026-03-11 00:00
    (c fell due, delivered on time) is 1/1; as of 12:00 that day (c rejected)
    0/1; now 1/3. Each equals the figure read live at that moment."""
    url, params = ON_TIME_MARCH
    readings = []
    for moment in (CP_C_DUE, CP_C_REJECTED):
        body = await world.get(url, **params, as_of=iso(moment))
        assert body["rows"] == world.live[(url, moment)]
        readings.append([(r["numerator"], r["denominator"], r["value"]) for r in body["rows"]])
    now = await world.get(url, **params)
    assert readings == [[(1.0, 1.0, 1.0)], [(0.0, 1.0, 0.0)]]
    assert [(r["numerator"], r["denominator"], r["value"]) for r in now["rows"]] == [
        (1.0, 3.0, 0.333333)
    ]
    # An as_of later than the clock reads what has fallen due by now, not by then.
    future = await world.get(url, **params, as_of=iso(NOW + timedelta(days=30)))
    assert future["rows"] == now["rows"]


async def test_explain_names_exactly_the_events_behind_a_figure_R6_1(world: World) -> None:
    """R6.1: January's on-time figure (1/2) rests on P1's creation (both due
    dates) and the two deliveries; missed=true keeps the late one only."""
    body = await world.get("/v1/kpi/metrics/on_time_delivery/explain", period_start="2026-01")
    assert body["figure"]["value"] == 0.5
    assert [(i["day"], i["numerator"], i["denominator"]) for i in body["items"]] == [
        ("2026-01-20", 1.0, 1.0),
        ("2026-01-31", 0.0, 1.0),
    ]
    assert [set(i["event_ids"]) for i in body["items"]] == [
        world.ev("P1", "b"),
        world.ev("P1", "a"),
    ]
    assert {e["event_id"] for e in body["events"]} == world.ev("P1", "a", "b")
    delivered = next(e for e in body["events"] if e["event_id"] == str(world.ids["a"]))
    assert delivered["event_type"] == "MilestoneDelivered"
    assert delivered["payload"]["delivered_on"] == "2026-02-01"
    missed = await world.get(
        "/v1/kpi/metrics/on_time_delivery/explain", period_start="2026-01", missed="true"
    )
    assert [i["day"] for i in missed["items"]] == ["2026-01-31"]
    assert {e["event_id"] for e in missed["events"]} == world.ev("P1", "a")


async def test_explain_missed_for_lower_is_better_lists_the_hits_R6_1_R1_2(world: World) -> None:
    """R6.1, R1.2: where lower is better, what counts against the figure is a
    hit: March's complaint rate (1/4) lists its one complaint, not the four
    deliveries; the failure rate of June (2/4) its failed and terminated projects."""
    complaints = await world.get(
        "/v1/kpi/metrics/complaint_rate/explain", period_start="2026-03", missed="true"
    )
    assert [(i["numerator"], i["denominator"]) for i in complaints["items"]] == [(1.0, 0.0)]
    assert [e["event_type"] for e in complaints["events"]] == ["ComplaintReceived"]
    failures = await world.get(
        "/v1/kpi/metrics/failure_rate/explain", period_start="2026-06", missed="true"
    )
    assert sorted(i["label"] for i in failures["items"]) == ["failed", "terminated"]


async def test_explain_missed_lists_just_the_breaches_for_compliance_R3_5(world: World) -> None:
    """R3.5: P1's March obligations are a late kickoff, three approval steps
    on time (one returned, one rejected), one (finance) overdue and signed
    late, and a review on time; missed=true lists the kickoff and the finance
    step with exactly their events."""
    params = {"period_start": "2026-03", "project_id": str(P1)}
    every = await world.get("/v1/kpi/metrics/compliance/explain", **params)
    assert sorted((i["label"], i["day"], i["numerator"]) for i in every["items"]) == [
        ("approval_step", "2026-03-04", 1.0),
        ("approval_step", "2026-03-06", 0.0),
        ("approval_step", "2026-03-12", 1.0),
        ("approval_step", "2026-03-14", 1.0),
        ("kickoff", "2026-03-08", 0.0),
        ("quarterly_review", "2026-03-31", 1.0),
    ]
    assert every["figure"]["numerator"] == 4.0 and every["figure"]["denominator"] == 6.0
    missed = await world.get("/v1/kpi/metrics/compliance/explain", **params, missed="true")
    assert [(i["label"], i["day"]) for i in missed["items"]] == [
        ("approval_step", "2026-03-06"),
        ("kickoff", "2026-03-08"),
    ]
    # The kickoff is owed from the contract (R3.2) and was held late.
    assert {e["event_id"] for e in missed["events"]} == world.ev(
        "contract-p1", "kickoff", "open-finance-1", "overdue-finance", "approved-finance"
    )
    assert missed["figure"] == every["figure"]  # the figure is the whole one


# -- refusals ----------------------------------------------------------------------------------


async def test_refusals_name_the_problem(world: World) -> None:
    """R6.1, R3.5 (reading the figures): 404 for an unknown KPI; 422 for a
    bad `from`, a reversed range, a dimension the KPI lacks (group_by or
    filter), an explain without its period; problem+json throughout."""
    client, director = world.svc.client, world.director

    async def problem(url: str, status: int, **params: Any) -> dict[str, Any]:
        response = await client.get(url, params=params, headers=director)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        body: dict[str, Any] = response.json()
        return body

    assert "no KPI 'nope'" in (await problem("/v1/kpi/metrics/nope", 404))["detail"]
    await problem("/v1/kpi/metrics/nope/explain", 404, period="all")
    for bad in ("2026-13", "March", "2026-3"):
        body = await problem("/v1/kpi/metrics/on_time_delivery", 422, **{"from": bad})
        assert body["errors"][0]["field"] == "query.from"
    body = await problem(
        "/v1/kpi/metrics/on_time_delivery", 422, **{"from": "2026-05", "to": "2026-01"}
    )
    assert body["errors"][0]["field"] == "query.from"
    body = await problem("/v1/kpi/metrics/on_time_delivery", 422, group_by="person")
    assert body["errors"][0]["field"] == "query.group_by"
    assert "not 'person'" in body["detail"]
    body = await problem("/v1/kpi/metrics/satisfaction", 422, label="x")
    assert body["errors"][0]["field"] == "query.label"
    body = await problem("/v1/kpi/metrics/compliance/explain", 422)
    assert body["errors"][0]["field"] == "query.period_start"
    body = await problem(
        "/v1/kpi/metrics/compliance/explain", 422, period="quarter", period_start="2026-02"
    )
    assert body["errors"][0]["field"] == "query.period_start"


@pytest.mark.parametrize(
    "url",
    [
        "/v1/kpi/metrics",
        "/v1/kpi/metrics/on_time_delivery",
        "/v1/kpi/metrics/on_time_delivery/explain?period=all",
        "/v1/kpi/cost-control",
    ],
)
async def test_a_partner_may_not_read_kpis_and_nobody_without_a_token(
    world: World, url: str
) -> None:
    """R6.1 (access): a partner's token is refused (403), no token 401; the
    auditor and finance read."""
    client, settings = world.svc.client, world.settings
    partner = auth(settings, "vendor.liu", "partner", str(X))
    response = await client.get(url, headers=partner)
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get(url)).status_code == 401
    for role in ("auditor", "finance", "specialist"):
        assert (await client.get(url, headers=auth(settings, f"{role}.x", role))).status_code == 200


async def test_a_range_starting_inside_a_period_reads_that_whole_period_R6_1(
    world: World,
) -> None:
    """R6.1: `from` names the period it falls in (a day for months, a month
    for quarters): that period's row carries its figure, never an empty one
    (regression: the rows listed the period, the SQL skipped its items)."""
    assert await world.rows(
        "on_time_delivery", period="quarter", **{"from": "2026-02", "to": "2026-06"}
    ) == [("2026-01-01", 2.0, 5.0, 5, 0.4), ("2026-04-01", 1.0, 1.0, 1, 1.0)]
    assert await world.rows("on_time_delivery", **{"from": "2026-03-15", "to": "2026-04"}) == [
        (month(3), 1.0, 3.0, 3, 0.333333),
        (month(4), 1.0, 1.0, 1, 1.0),
    ]


# -- regressions of the review of issue 6 -----------------------------------------------------


async def test_only_contracted_milestones_due_before_closing_count_R6_1(world: World) -> None:
    """R6.1 (regression, fix 4): on-time delivery counts the milestones of
    projects under contract only (P7's h, due 04-15 and never delivered, has
    no contract), and not an undelivered milestone due after its project
    closed (P8's i, due 06-30, P8 terminated 06-25); both counted before."""
    for pid in (P7, P8):
        assert await world.rows("on_time_delivery", project_id=str(pid), period="all") == []
    assert await world.rows("on_time_delivery", **{"from": "2026-04", "to": "2026-06"}) == [
        (month(4), 1.0, 1.0, 1, 1.0),
        (month(5), None, None, 0, None),
        (month(6), None, None, 0, None),
    ]


async def test_resolutions_are_per_meeting_and_per_assignment_R4_2(world: World) -> None:
    """R4.2, R3.5 (regression, fix 1): M1's R1 and M4's R1 are two
    obligations; M4's R1 handed from pm.li to sp.qian before its deadline
    leaves pm.li nothing owed (cancelled) and sp.qian's on-time completion
    counts; M1's R2 handed to pm.wang after pm.li's breach keeps the breach
    and adds pm.wang's own obligation (April)."""
    body = await world.get("/v1/kpi/metrics/compliance/explain", period="all", label="resolution")
    assert [(i["day"], i["person"], i["numerator"]) for i in body["items"]] == [
        ("2026-03-20", "pm.wang", 1.0),  # M1 R1
        ("2026-03-25", "pm.li", 0.0),  # M1 R2, first owner: breached
        ("2026-03-27", "sp.qian", 1.0),  # M4 R1, second owner
        ("2026-04-10", "pm.wang", 1.0),  # M1 R2, second owner
    ]
    assert [set(i["event_ids"]) for i in body["items"]][2] == world.ev(
        f"assigned-{M4}-R1-2", f"completed-{M4}-R1-2"
    )
    owners = await world.get(
        "/v1/kpi/metrics/compliance/explain", period="all", label="resolution_owner"
    )
    assert sorted((i["day"], i["numerator"]) for i in owners["items"]) == [
        ("2026-03-03", 0.0),  # M1 R2
        ("2026-03-03", 1.0),  # M1 R1
        ("2026-03-17", 1.0),  # M4 R1
    ]
    by_person = await world.rows("compliance", label="resolution", period="all", group_by="person")
    assert by_person == [
        (None, "pm.li", 0.0, 1.0, 1, 0.0),
        (None, "pm.wang", 2.0, 2.0, 2, 1.0),
        (None, "sp.qian", 1.0, 1.0, 1, 1.0),
    ]


async def test_project_obligations_are_charged_to_the_pm_R3_5(world: World) -> None:
    """R3.5, R6.4 (regression, fix 8): kickoffs, quarterly reviews and
    data-leak reports are owed by the project's PM (they were charged to
    nobody): P1's late kickoff and two leak reports to pm.wang, P2's missed
    Q1 review to pm.li; reports to the PM who owes them."""
    rows = await world.rows("compliance", period="all", group_by=["label", "person"])
    owed = [r for r in rows if r[1] in {"kickoff", "quarterly_review", "data_leak_report"}]
    assert owed == [
        (None, "data_leak_report", "pm.wang", 1.0, 2.0, 2, 0.5),
        (None, "kickoff", "pm.li", 1.0, 1.0, 1, 1.0),
        (None, "kickoff", "pm.wang", 1.0, 2.0, 2, 0.5),
        (None, "quarterly_review", "pm.li", 0.0, 1.0, 1, 0.0),
        (None, "quarterly_review", "pm.wang", 1.0, 1.0, 1, 1.0),
    ]
    reports = await world.rows("compliance", label="report", period="all", group_by="person")
    assert reports == [(None, "pm.wang", 4.0, 7.0, 7, 0.571429)]


async def test_closed_projects_owe_no_reports_falling_due_after_R3_5(world: World) -> None:
    """R3.5, R4.3 (regression, fix 3): P4's weekly report period opened ahead
    (due 06-12) was never filed; P4 closed on 06-10 and its schedule was
    closed: nothing is owed (before, June read 0/1)."""
    p4 = await world.rows("compliance", project_id=str(P4), period="all")
    assert p4 == []
    missed = await world.get(
        "/v1/kpi/metrics/compliance/explain", period_start="2026-06", label="report"
    )
    assert missed["items"] == []


async def test_a_report_filed_early_without_its_period_counts_R4_3(world: World) -> None:
    """R4.3, R3.5 (regression, fix 10): W29 was filed on 07-10, before its
    period was ever opened (due 07-17): the filing states the due moment, so
    it counts as met (before, it was not counted at all)."""
    body = await world.get(
        "/v1/kpi/metrics/compliance/explain", period_start="2026-07", label="report"
    )
    assert [(i["day"], i["numerator"]) for i in body["items"]] == [
        ("2026-07-03", 0.0),
        ("2026-07-10", 1.0),
        ("2026-07-17", 1.0),
    ]


async def test_explain_shows_no_private_assessment_or_findings_R6_2(world: World) -> None:
    """R6.2, R6.4 (regression, fix 2): a specialist reading the drill-down of
    compliance (evaluations) sees the self-assessment event, without its
    rating, strengths, improvements or comment; the sanctions' drill-down
    shows the investigation's sanctions, not its findings."""
    specialist = auth(world.settings, "sp.qian", "specialist")
    response = await world.svc.client.get(
        "/v1/kpi/metrics/compliance/explain",
        params={"period_start": "2026-01", "label": "evaluation"},
        headers=specialist,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(i["person"], i["numerator"]) for i in body["items"]] == [("sp.zhao", 1.0)]
    (submitted,) = [e for e in body["events"] if e["event_type"] == "SelfAssessmentSubmitted"]
    assert submitted["event_id"] == str(world.ids["self-assessment"])
    assert submitted["payload"] == {
        "user_id": "sp.zhao",
        "period": "2025-12",
        "due_at": iso(eod(1, 7)),
        "submitted_at": iso(L(1, 5)),
        "on_time": True,
    }
    sanctions = await world.get("/v1/kpi/metrics/sanctions/explain", period="all")
    (concluded,) = [e for e in sanctions["events"] if e["event_type"] == "InvestigationConcluded"]
    assert "findings" not in concluded["payload"]
    assert len(concluded["payload"]["sanctions"]) == 2


async def test_explain_missed_filters_before_the_limit_newest_first_R3_5(world: World) -> None:
    """R3.5 (regression, fix 7): missed=true filters before `limit` (the
    limit cut the whole list first, then filtered: [W19] only) and
    order=desc lists the newest first: the reports missed are W19 (late,
    due 05-08), W20 (overdue, 05-15) and W27 (open, 07-03)."""
    url = "/v1/kpi/metrics/compliance/explain"
    newest = await world.get(url, period="all", label="report", missed="true", order="desc",
                             limit=2)  # fmt: skip
    assert [(i["day"], i["numerator"]) for i in newest["items"]] == [
        ("2026-07-03", 0.0),
        ("2026-05-15", 0.0),
    ]
    assert newest["truncated"] is True
    oldest = await world.get(url, period="all", label="report", missed="true", limit=2)
    assert [i["day"] for i in oldest["items"]] == ["2026-05-08", "2026-05-15"]
    every = await world.get(url, period="all", label="report", order="desc")
    days = [i["day"] for i in every["items"]]
    assert days == sorted(days, reverse=True) and len(days) == 7
    response = await world.svc.client.get(
        url, params={"period": "all", "order": "sideways"}, headers=world.director
    )
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "1999-12"}, "query.from"),
        ({"from": "2026-01", "to": "2101-01"}, "query.to"),
        ({"from": "0001-Q1"}, "query.from"),
        ({"from": "9999-12-31"}, "query.from"),
        ({"as_of": "1900-01-01T00:00:00Z"}, "query.as_of"),
        ({"as_of": "2100-01-01T00:00:00Z"}, "query.as_of"),
        ({"as_of": "9999-12-31T23:59:59+00:00"}, "query.as_of"),
    ],
)
async def test_odd_years_are_refused_not_a_server_error_R6_1(
    world: World, params: dict[str, str], field: str
) -> None:
    """R6.1 (regression, fix 6): a `from`/`to` year outside 2000-2100 or an
    `as_of` outside 2000-2099 is a 422 naming the field (it was a 500)."""
    response = await world.svc.client.get(
        "/v1/kpi/metrics/on_time_delivery", params=params, headers=world.director
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field
    explain = await world.svc.client.get(
        "/v1/kpi/metrics/compliance/explain",
        params={"period_start": "1999-01"},
        headers=world.director,
    )
    assert explain.status_code == 422, explain.text
    assert explain.json()["errors"][0]["field"] == "query.period_start"
