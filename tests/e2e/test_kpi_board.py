"""The KPI board in a real browser (issue 6): the kpi service on a real HTTP
port, facts fed through its real consumer handlers, and Debian's headless
Chromium (no browser download) opening `/#token=...` in English and Chinese.

The story (Shanghai time, service clock at 2026-03-28 12:00; hand-computed):

- Partner C's operations project runs from April 2025 to January 2026: a
  milestone due on the 15th of each month (delivered late in June and October
  2025), a task due on the 20th (late in August 2025), a satisfaction survey
  on the 25th, complaints in June and October, incidents in May and September,
  40,000 of cost a month. The department holds its weekly meeting (minutes
  filed the same day) every week except the week of 2026-03-09, and its
  quarterly strategy meeting in Q2 and Q3 2025 but not in Q4.
- Every project is under contract (only then do its milestones count, R6.1)
  and has its procurement approved at its planned budget (cost control reads
  the approved budget only, R5.2): PH signed 2025-04-01, kickoff 04-03; PC
  signed 2026-02-02, kickoff 02-05 (both on time); PA and PB below.
- February 2026: A's project PA delivers m1 on time; a task on time; surveys
  4 (PA) and 5 (PC); a security incident; B's pilot PD closes *failed*; PA's
  kickoff is held in time, PB's goes overdue.
- March 2026: due m2 (on time), m3 (late), n1 (never delivered), n2 and c1
  (on time): 3/5; first deliveries m2, m3, n2, c1 and one complaint: 1/4;
  tasks 2/3; PC closes *completed* at 90,000 of 100,000 (R6.3 bonus); one
  incident; February's monthly report filed by PA, overdue for PB.

Compliance (R3.5): January 9/9 (4 weekly meetings, 5 minutes), February
10/11 (4 meetings, 4 minutes, kickoffs 2/3), March 6/8 (meetings 3/4,
minutes 2/2, reports 1/2) -> March 75.0%, Q1 25/28 = 89.3%; the breaches,
newest first (the board asks for missed=true&order=desc):
the weekly meeting due 03-15, PB's report (03-05), PB's kickoff (02-11), Q4's
strategy meeting (2025-12-31). Satisfaction has no survey in March: its tile
shows "—", never 0.

Pages opened: English by `?lang=en`, Chinese by the browser's Accept-Language
(`--lang=zh-CN`), a drill-down deep link (`#...&explain=KEY:month:2026-03`),
a refused token (401) and a partner's token (403). Screenshots go to the
test's temporary directory; with PL_UPDATE_SCREENSHOTS=1 they replace
docs/img/kpi-board-en.png, kpi-board-zh.png and kpi-board-drill-en.png (a test
run leaves the working tree as it found it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from fastapi import FastAPI

from partnerledger.embedded import free_port
from services.kpi.service import SPEC as KPI
from shared.clock import ManualClock
from shared.settings import Settings
from tests.support.apps import RunningService, running
from tests.support.auth import auth, token_for
from tests.support.data import registration
from tests.support.kpi_facts import FactFeed, local
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "docs" / "events"
IMG = ROOT / "docs" / "img"
UPDATE_SCREENSHOTS = os.environ.get("PL_UPDATE_SCREENSHOTS") == "1"
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's `chromium` is not installed (make browser, or apt-get install chromium):"
    " the board cannot be opened in a browser",
)

TODAY = date(2026, 3, 28)
WINDOW = "1400,1340"
KEYS = (
    "on_time_delivery",
    "complaint_rate",
    "satisfaction",
    "compliance",
    "task_completion",
    "failure_rate",
    "incidents",
)
#: (month, quarter) as the tiles must show them, from the story above.
EXPECTED: dict[str, tuple[str, str]] = {
    "on_time_delivery": ("60.0%", "71.4%"),
    "complaint_rate": ("25.0%", "16.7%"),
    "satisfaction": ("—", "4.3"),
    "compliance": ("75.0%", "89.3%"),
    "task_completion": ("66.7%", "80.0%"),
    "failure_rate": ("0.0%", "50.0%"),
    "incidents": ("1", "2"),
}
#: The same figures as the API gives them.
API_VALUES: dict[str, tuple[float | None, float | None]] = {
    "on_time_delivery": (0.6, 5 / 7),
    "complaint_rate": (0.25, 1 / 6),
    "satisfaction": (None, 13 / 3),
    "compliance": (0.75, 25 / 28),
    "task_completion": (2 / 3, 0.8),
    "failure_rate": (0.0, 0.5),
    "incidents": (1.0, 2.0),
}
LABELS = {
    "en": {
        "on_time_delivery": "On-time delivery",
        "complaint_rate": "Complaint rate",
        "satisfaction": "Satisfaction",
        "compliance": "Process compliance",
        "task_completion": "Task completion",
        "failure_rate": "Project failure rate",
        "incidents": "Incidents",
    },
    "zh": {
        "on_time_delivery": "按时交付率",
        "complaint_rate": "投诉率",
        "satisfaction": "客户满意度",
        "compliance": "流程合规率",
        "task_completion": "任务完成率",
        "failure_rate": "项目失败率",
        "incidents": "安全事件",
    },
}
PARTNERS = {
    "A": "福州云栈信息技术有限公司",
    "B": "厦门海联软件有限公司",
    "C": "泉州数智科技有限公司",
}


# -- payloads held against the published schemas ------------------------------------


def _schema_errors(value: Any, schema: dict[str, Any], root: dict[str, Any], at: str) -> list[str]:
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in schema:
        options = [_schema_errors(value, s, root, at) for s in schema["anyOf"]]
        return [] if any(not o for o in options) else [f"{at}: matches no option"]
    errors: list[str] = []
    kind = schema.get("type")
    checks = {
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
        "null": lambda v: v is None,
    }
    if kind is not None and not checks[kind](value):
        return [f"{at}: {value!r} is not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{at}: {value!r} not in {schema['enum']}")
    parse: dict[str, Callable[[str], object]] = {
        "uuid": uuid.UUID,
        "date": date.fromisoformat,
        "date-time": datetime.fromisoformat,
    }
    if isinstance(value, str) and schema.get("format") in parse:
        try:
            parse[schema["format"]](value)
        except ValueError:
            errors.append(f"{at}: {value!r} is not a {schema['format']}")
    if kind == "array":
        for n, item in enumerate(value):
            errors += _schema_errors(item, schema.get("items", {}), root, f"{at}[{n}]")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        errors += [f"{at}.{k}: missing" for k in schema.get("required", []) if k not in value]
        errors += [f"{at}.{k}: not in the schema" for k in value if k not in props]
        for k, v in value.items():
            if k in props:
                errors += _schema_errors(v, props[k], root, f"{at}.{k}")
    return errors


def check_payload(source: str, event_type: str, payload: dict[str, Any]) -> None:
    schema = json.loads((EVENTS / source / f"{event_type}.v1.json").read_text())
    errors = _schema_errors(payload, schema, schema, event_type)
    assert not errors, errors


# -- the story ------------------------------------------------------------------------


@dataclass
class Story:
    feed: FactFeed
    partners: dict[str, uuid.UUID] = field(default_factory=dict)
    projects: dict[str, uuid.UUID] = field(default_factory=dict)

    async def emit(
        self,
        source: str,
        event_type: str,
        aggregate_id: uuid.UUID,
        payload: dict[str, Any],
        at: datetime,
        aggregate_type: str = "Project",
    ) -> None:
        check_payload(source, event_type, payload)
        await self.feed.emit(
            source, event_type, aggregate_id, payload, at=at, aggregate_type=aggregate_type
        )

    async def partner(self, key: str, n: int) -> None:
        pid = self.partners[key] = uuid.uuid4()
        body = registration(n, name=PARTNERS[key])
        await self.emit(
            "partner", "PartnerRegistered", pid, body, local(date(2025, 3, 20)), "Partner"
        )

    async def project(
        self,
        key: str,
        partner: str,
        title: str,
        pm: str,
        budget: int,
        created: date,
        milestones: list[tuple[str, date]],
    ) -> uuid.UUID:
        pid = self.projects[key] = uuid.uuid4()
        payload = {
            "partner_id": str(self.partners[partner]),
            "title": title,
            "project_manager": pm,
            "budget": str(budget),
            "currency": "CNY",
            "scope": "运维外包",
            "specialists": ["spec.li", "spec.zhou"],
            "milestones": [
                {"milestone_id": m, "name": f"里程碑{m}", "deliverable": "交付物", "due_on": str(d)}
                for m, d in milestones
            ],
        }
        await self.emit("partner", "ProjectCreated", pid, payload, local(created))
        approved = local(created, 15)
        granted = {
            "request_id": str(uuid.uuid4()),
            "approved_at": approved.isoformat(),
            "approved_amount": str(budget),
        }
        await self.emit("partner", "ProcurementApprovalGranted", pid, granted, approved)
        return pid

    async def kickoff(self, project: str, held: date, due: datetime) -> None:
        payload = {
            "held_on": str(held),
            "goals": ["按期交付"],
            "timetable": "按合同",
            "responsibilities": [{"person": "pm.wang", "duty": "总体协调"}],
            "due_at": due.isoformat(),
            "late": False,
        }
        await self.emit("partner", "KickoffHeld", self.projects[project], payload, local(held))

    async def deliver(self, project: str, milestone: str, due: date, on: date) -> None:
        payload = {
            "milestone_id": milestone,
            "delivered_on": str(on),
            "due_on": str(due),
            "on_time": on <= due,
            "note": "",
        }
        await self.emit("partner", "MilestoneDelivered", self.projects[project], payload, local(on))

    async def task(
        self, project: str, task: str, who: str, assigned: date, due: date, done: date
    ) -> None:
        pid = self.projects[project]
        assign = {"task_id": task, "title": f"任务{task}", "specialist": who, "due_on": str(due)}
        await self.emit("partner", "TaskAssigned", pid, assign, local(assigned))
        complete = {
            "task_id": task,
            "specialist": who,
            "completed_on": str(done),
            "due_on": str(due),
            "on_time": done <= due,
        }
        await self.emit("partner", "TaskCompleted", pid, complete, local(done, 17))

    async def survey(self, project: str, survey: str, score: int, on: date) -> None:
        payload = {"survey_id": survey, "score": score, "respondent": "客户代表", "comment": ""}
        await self.emit(
            "partner", "SatisfactionRecorded", self.projects[project], payload, local(on)
        )

    async def complaint(self, project: str, complaint: str, on: date) -> None:
        payload = {
            "complaint_id": complaint,
            "source": "客户",
            "severity": "medium",
            "summary": "交付延期",
            "received_at": local(on).isoformat(),
        }
        await self.emit("partner", "ComplaintReceived", self.projects[project], payload, local(on))

    async def incident(self, project: str, incident: str, category: str, on: date) -> None:
        payload = {
            "incident_id": incident,
            "category": category,
            "severity": "medium",
            "incident_occurred_at": local(on, 9).isoformat(),
            "detected_at": local(on, 9, 30).isoformat(),
            "description": "服务中断两小时",
            "report_due_at": None,
            "late": False,
        }
        pid = self.projects[project]
        await self.emit("partner", "IncidentReported", pid, payload, local(on, 11))

    async def cost(self, project: str, cost: str, amount: int, on: date) -> None:
        payload = {
            "cost_id": cost,
            "amount": str(amount),
            "currency": "CNY",
            "category": "人力",
            "incurred_on": str(on),
            "note": "",
        }
        await self.emit("partner", "CostRecorded", self.projects[project], payload, local(on))

    async def close(self, project: str, outcome: str, budget: int, costs: int, on: date) -> None:
        payload = {
            "outcome": outcome,
            "reason": "项目结项",
            "budget": str(budget),
            "costs_total": str(costs),
        }
        await self.emit("partner", "ProjectClosed", self.projects[project], payload, local(on))

    async def contract(self, project: str, partner: str, signed: date) -> datetime:
        due = local(signed + timedelta(days=7))
        payload = {
            "partner_id": str(self.partners[partner]),
            "contract_number": f"HT-{signed:%Y%m%d}-{project}",
            "value": "100000",
            "currency": "CNY",
            "signed_on": str(signed),
            "starts_on": str(signed),
            "ends_on": str(signed + timedelta(days=365)),
            "sla_terms": ["7x24 响应"],
            "third_party_acceptor": "福建省软件测评中心",
            "kickoff_due_at": due.isoformat(),
        }
        await self.emit("partner", "ContractSigned", self.projects[project], payload, local(signed))
        return due

    async def meeting(self, held: date, kind: str = "weekly_department") -> None:
        meeting = uuid.uuid4()
        title = {"weekly_department": "部门周例会", "quarterly_strategy": "季度战略会议"}[kind]
        at = local(held, 10)
        minutes_due = at + timedelta(hours=24)
        held_payload = {
            "kind": kind,
            "title": f"{title} {held}",
            "project_id": None,
            "held_at": at.isoformat(),
            "chaired_by": "director.zhang",
            "attendees": ["director.zhang", "pm.wang", "pm.zhao"],
            "source": "api",
            "minutes_due_at": minutes_due.isoformat(),
            "owners_due_at": minutes_due.isoformat(),
        }
        await self.emit("docs", "MeetingHeld", meeting, held_payload, at, "Meeting")
        filed = local(held, 17)
        minutes = {
            "kind": kind,
            "project_id": None,
            "document_id": str(uuid.uuid4()),
            "document_name": f"{title}-{held.year}年{held.month}月{held.day}日-会议纪要",
            "filed_by": "director.zhang",
            "filed_at": filed.isoformat(),
            "due_at": minutes_due.isoformat(),
            "on_time": True,
        }
        await self.emit("docs", "MinutesFiled", meeting, minutes, filed, "Meeting")

    async def monthly_report(self, project: str, pm: str, filed: date | None) -> None:
        schedule = uuid.uuid4()
        due = local(date(2026, 3, 5), 18)
        common = {"project_id": str(self.projects[project]), "kind": "monthly", "period": "2026-02"}
        opened = {
            **common,
            "period_start": "2026-02-01",
            "period_end": "2026-02-28",
            "due_at": due.isoformat(),
            "project_manager": pm,
        }
        start = local(date(2026, 2, 1), 0)
        await self.emit("docs", "ReportPeriodOpened", schedule, opened, start, "ReportSchedule")
        if filed is not None:
            payload = {
                **common,
                "due_at": due.isoformat(),
                "document_id": str(uuid.uuid4()),
                "filed_by": pm,
                "filed_at": local(filed).isoformat(),
            }
            await self.emit(
                "docs", "ReportFiled", schedule, payload, local(filed), "ReportSchedule"
            )
        else:
            payload = {
                **common,
                "due_at": due.isoformat(),
                "deadline_id": str(uuid.uuid4()),
                "project_manager": pm,
            }
            await self.emit("docs", "ReportOverdue", schedule, payload, due, "ReportSchedule")


def _month(n: int) -> date:
    """The first day of the n-th month from April 2025."""
    return date(2025 + (3 + n) // 12, (3 + n) % 12 + 1, 1)


async def load_story(feed: FactFeed) -> Story:
    s = Story(feed)
    for key, n in (("A", 1), ("B", 2), ("C", 3)):
        await s.partner(key, n)

    # Partner C: ten months of operations, April 2025 to January 2026.
    history = [_month(n) for n in range(10)]
    await s.project(
        "PH",
        "C",
        "核心系统运维项目",
        "pm.wang",
        600_000,
        date(2025, 4, 1),
        [(f"h{n}", m.replace(day=15)) for n, m in enumerate(history)],
    )
    await s.kickoff("PH", date(2025, 4, 3), await s.contract("PH", "C", date(2025, 4, 1)))
    scores = [4, 4, 3, 4, 5, 4, 4, 5, 4, 4]
    for n, m in enumerate(history):
        late = n in (2, 6)
        await s.deliver("PH", f"h{n}", m.replace(day=15), m.replace(day=18 if late else 14))
        done = m.replace(day=23 if n == 4 else 19)
        await s.task("PH", f"t{n}", "spec.li", m, m.replace(day=20), done)
        await s.survey("PH", f"s{n}", scores[n], m.replace(day=25))
        await s.cost("PH", f"k{n}", 40_000, m.replace(day=26))
        if late:
            await s.complaint("PH", f"c{n}", m.replace(day=20))
        if n in (1, 5):
            await s.incident(
                "PH", f"i{n}", "availability" if n == 1 else "quality", m.replace(day=10)
            )

    # The department meets every week but one (R5.4), minutes the same day
    # (R4.2); the quarterly strategy meeting is held in Q2 and Q3 2025, not Q4.
    week = date(2025, 4, 7)
    while week <= date(2026, 3, 16):
        if week != date(2026, 3, 9):
            await s.meeting(week + timedelta(days=2))
        week += timedelta(days=7)
    for held in (date(2025, 6, 18), date(2025, 9, 17)):
        await s.meeting(held, "quarterly_strategy")

    # February and March 2026.
    d = date
    await s.project(
        "PA", "A", "数据中心迁移项目", "pm.wang", 200_000, d(2026, 2, 2),
        [("m1", d(2026, 2, 20)), ("m2", d(2026, 3, 10)), ("m3", d(2026, 3, 20))],
    )  # fmt: skip
    await s.project(
        "PB", "B", "客服系统开发项目", "pm.zhao", 150_000, d(2026, 2, 2),
        [("n1", d(2026, 3, 5)), ("n2", d(2026, 3, 16))],
    )  # fmt: skip
    await s.project(
        "PC", "A", "网络安全加固项目", "pm.wang", 100_000, d(2026, 2, 2), [("c1", d(2026, 3, 12))]
    )
    await s.project("PD", "B", "移动办公试点项目", "pm.zhao", 80_000, d(2026, 2, 2), [])
    await s.kickoff("PC", d(2026, 2, 5), await s.contract("PC", "A", d(2026, 2, 2)))

    kickoff_due = await s.contract("PA", "A", d(2026, 2, 3))
    kickoff = {
        "held_on": "2026-02-06",
        "goals": ["完成迁移方案"],
        "timetable": "2026年2月至3月",
        "responsibilities": [{"person": "pm.wang", "duty": "总体协调"}],
        "due_at": kickoff_due.isoformat(),
        "late": False,
    }
    await s.emit("partner", "KickoffHeld", s.projects["PA"], kickoff, local(d(2026, 2, 6)))
    kickoff_due = await s.contract("PB", "B", d(2026, 2, 4))
    overdue = {"deadline_id": str(uuid.uuid4()), "due_at": kickoff_due.isoformat()}
    await s.emit("partner", "KickoffOverdue", s.projects["PB"], overdue, kickoff_due)

    await s.deliver("PA", "m1", d(2026, 2, 20), d(2026, 2, 19))
    await s.task("PA", "t-feb", "spec.li", d(2026, 2, 3), d(2026, 2, 20), d(2026, 2, 19))
    await s.survey("PA", "s-pa", 4, d(2026, 2, 25))
    await s.survey("PC", "s-pc", 5, d(2026, 2, 25))
    await s.incident("PA", "i-feb", "security", d(2026, 2, 14))
    await s.cost("PD", "k-pd", 30_000, d(2026, 2, 20))
    await s.close("PD", "failed", 80_000, 30_000, d(2026, 2, 26))

    await s.deliver("PA", "m2", d(2026, 3, 10), d(2026, 3, 9))
    await s.deliver("PC", "c1", d(2026, 3, 12), d(2026, 3, 11))
    await s.deliver("PB", "n2", d(2026, 3, 16), d(2026, 3, 13))
    await s.deliver("PA", "m3", d(2026, 3, 20), d(2026, 3, 23))
    await s.complaint("PB", "c-mar", d(2026, 3, 17))
    await s.task("PA", "t1", "spec.li", d(2026, 3, 2), d(2026, 3, 10), d(2026, 3, 9))
    await s.task("PB", "t2", "spec.zhou", d(2026, 3, 2), d(2026, 3, 12), d(2026, 3, 16))
    await s.task("PC", "t3", "spec.li", d(2026, 3, 2), d(2026, 3, 20), d(2026, 3, 18))
    await s.incident("PB", "i-mar", "availability", d(2026, 3, 12))
    await s.cost("PA", "k-pa", 50_000, d(2026, 3, 15))
    await s.cost("PB", "k-pb", 160_000, d(2026, 3, 20))
    await s.cost("PC", "k-pc", 90_000, d(2026, 3, 24))
    await s.close("PC", "completed", 100_000, 90_000, d(2026, 3, 25))
    await s.monthly_report("PA", "pm.wang", d(2026, 3, 4))
    await s.monthly_report("PB", "pm.zhao", None)
    return s


# -- the service on a real port, and the browser --------------------------------------


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """The running app (its lifespan already entered) on a real HTTP port."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()
        return server.started

    await wait_until(started, within=30, what="the board's HTTP server")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Page:
    dom: str
    #: Every URL the page asked for: the document and what it initiated.
    requests: list[str]


def page_requests(netlog: Path, origin: str) -> list[str]:
    """From Chromium's net log, the requests made for the page: the main
    frame and every request whose initiator is the page's origin. (The
    browser's own service calls, initiator "not an origin", cannot leave the
    machine: the host resolver maps every name to nothing.)"""
    text = netlog.read_text(errors="replace")
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a log cut short: close its event list
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if event["type"] != start or "url" not in params:
            continue
        if params.get("request_type") == "main frame" or params.get("initiator") == origin:
            urls.append(params["url"])
    return urls


#: Browsers at once: enough to overlap their waits, few enough for a small machine.
_SLOTS = asyncio.Semaphore(3)


async def chromium(tmp: Path, url: str, *mode: str, lang: str = "en-US") -> Page:
    """Runs Debian's Chromium headless once; returns what it printed and the
    URLs the page asked for (from its net log)."""
    async with _SLOTS:
        return await _chromium(tmp, url, *mode, lang=lang)


async def _chromium(tmp: Path, url: str, *mode: str, lang: str) -> Page:
    assert CHROMIUM is not None
    name = uuid.uuid4().hex[:8]
    netlog = tmp / f"net-{name}.json"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--disable-features=NetworkTimeServiceQuerying,AutofillServerCommunication,"
        "OptimizationHints,OptimizationGuideModelDownloading,MediaRouter,Translate",
        "--mute-audio",
        "--force-device-scale-factor=1",
        f"--lang={lang}",
        f"--accept-lang={lang}",
        f"--user-data-dir={tmp / f'profile-{name}'}",
        f"--log-net-log={netlog}",
        f"--window-size={WINDOW}",
        "--virtual-time-budget=15000",
        *mode,
        url,
    ]
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group: a hung browser goes whole
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    parts = urlsplit(url)
    return Page(out.decode(), page_requests(netlog, f"{parts.scheme}://{parts.netloc}"))


class _Dom(HTMLParser):
    """Text by element id, attributes by id, and every element's attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: dict[str, str] = {}
        self.attrs: dict[str, dict[str, str | None]] = {}
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self._open: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.elements.append((tag, found))
        ident = found.get("id")
        if ident:
            self.attrs[ident] = found
            self.text.setdefault(ident, "")
        if tag not in ("meta", "link", "br", "input", "img", "circle", "line", "rect"):
            self._open.append((tag, ident))

    def handle_endtag(self, tag: str) -> None:
        for n in range(len(self._open) - 1, -1, -1):
            if self._open[n][0] == tag:
                del self._open[n:]
                break

    def handle_data(self, data: str) -> None:
        for _, ident in self._open:
            if ident:
                self.text[ident] += data


def parse(dom: str) -> _Dom:
    parser = _Dom()
    parser.feed(dom)
    return parser


def squash(text: str) -> str:
    return " ".join(text.split())


def assert_local_only(page: Page, base: str) -> None:
    """No request of the page left 127.0.0.1, and the page names no other origin."""
    assert any(url.startswith(f"{base}/board/assets/board.js") for url in page.requests)
    for url in page.requests:
        assert url.startswith(f"{base}/"), url
    for url in re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+[^\s\"'<>)]*", page.dom):
        assert url.startswith(base) or url == "//", f"the page names {url}"


# -- the test ---------------------------------------------------------------------------


@pytest.fixture
async def kpi(settings: Settings) -> AsyncIterator[RunningService]:
    clock = ManualClock(local(TODAY, 12))
    async with running(
        KPI, settings, relay=False, consumers=False, projectors=False, clock=clock
    ) as svc:
        yield svc


def _by_class(dom: _Dom, tag: str, cls: str) -> list[dict[str, str | None]]:
    return [a for t, a in dom.elements if t == tag and a.get("class") == cls]


def _state(dom: _Dom) -> str | None:
    return next(a for t, a in dom.elements if t == "body").get("data-state")


def check_board(
    page: Page, lang: str, names: dict[str, str], scorecards: list[Any], shots: Path
) -> None:
    """The board as the story makes it, in `lang`."""
    dom = parse(page.dom)
    assert _state(dom) == "ready", (lang, squash(dom.text.get("message", "")))
    html = next(a for t, a in dom.elements if t == "html")
    assert html.get("lang") == ("zh-CN" if lang == "zh" else "en")
    for key in KEYS:
        month, quarter = EXPECTED[key]
        assert squash(dom.text[f"tile-{key}-label"]) == LABELS[lang][key]
        assert squash(dom.text[f"tile-{key}-month"]).split(" / ")[0] == month, (lang, key)
        assert squash(dom.text[f"tile-{key}-quarter"]) == quarter, (lang, key)
        # The trend: a point, a drill-down link, for each month with data.
        points = [
            a["data-period"]
            for a in _by_class(dom, "a", "point")
            if (a["href"] or "").startswith(f"#explain={key}:month:")
        ]
        if key == "satisfaction":  # surveys from April 2025 to February 2026, none in March
            assert points == [f"{_month(n):%Y-%m}" for n in range(10)] + ["2026-02"]
        else:
            assert points[-1] == "2026-03", (key, points)

    # Compliance breaches, newest first, each with its explain link.
    breaches = [(a["data-day"], a["data-label"]) for a in _by_class(dom, "li", "breach")]
    assert breaches == [
        ("2026-03-15", "weekly_department_meeting"),
        ("2026-03-05", "report"),
        ("2026-02-11", "kickoff"),
        ("2025-12-31", "quarterly_strategy_meeting"),
    ]
    assert [a["href"] for a in _by_class(dom, "a", "breach-link")] == [
        "#explain=compliance:month:2026-03:missed",
        "#explain=compliance:month:2026-03:missed",
        "#explain=compliance:month:2026-02:missed",
        "#explain=compliance:month:2025-12:missed",
    ]
    # Cost control: PC closed completed 10% under budget, the one R6.3 bonus.
    cost = squash(dom.text["cost-table"])
    assert "网络安全加固项目" in cost and "90.0%" in cost and "106.7%" in cost
    bonus = [a.get("data-bonus") or "" for _, a in dom.elements if a.get("data-bonus")]
    assert sorted(bonus) == ["no", "no", "no", "no", "yes"]
    # Scorecards: partner names and standings in the page's language.
    table = squash(dom.text.get("scorecards-table", ""))
    for item in scorecards:
        assert names[item["partner_id"]] in table
        assert (item["standing_zh"] if lang == "zh" else item["standing"]) in table
    assert (shots / f"kpi-board-{lang}.png").stat().st_size > 20_000


def check_drill(page: Page) -> None:
    """The deep link opened the five milestones due in March and their events."""
    dom = parse(page.dom)
    assert dom.attrs["drill"].get("data-state") == "ready"
    assert "hidden" not in dom.attrs["drill"]
    assert squash(dom.text["drill-title"]) == "On-time delivery · Mar 2026"
    assert squash(dom.text["drill-figure"]) == "60.0% · 5 items (3 / 5)"
    items = [a for t, a in dom.elements if t == "tr" and a.get("data-item")]
    assert [a["data-item"] for a in items] == [
        "2026-03-05",
        "2026-03-10",
        "2026-03-12",
        "2026-03-16",
        "2026-03-20",
    ]
    assert [a.get("class") for a in items].count("against") == 2  # n1 never, m3 late
    events = squash(dom.text["drill-events"])
    assert "ProjectCreated" in events and "MilestoneDelivered" in events
    assert squash(dom.text["drill-api"]) == (
        "GET /v1/kpi/metrics/on_time_delivery/explain?period=month&period_start=2026-03"
    )


def check_refused(page: Page, status: str) -> None:
    """A clear message and the sign-in box, no figures."""
    dom = parse(page.dom)
    assert _state(dom) == "denied"
    assert status in dom.text["message"], dom.text["message"]
    assert "hidden" not in dom.attrs["signin"]
    assert "hidden" in dom.attrs["board"]


@needs_chromium
async def test_board_in_headless_chromium(
    kpi: RunningService, settings: Settings, tmp_path: Path
) -> None:
    """Issue 6: tiles, trends, scorecards, breaches, cost control and the
    drill-down in both languages, from events, all from 127.0.0.1."""
    story = await load_story(FactFeed(kpi))
    auditor = auth(settings, "audit.qian", "auditor")
    # The hand-computed figures are the API's (the board only formats them).
    for key, (month, quarter) in API_VALUES.items():
        for period, start, expected in (
            ("month", "2026-03", month),
            ("quarter", "2026-Q1", quarter),
        ):
            params = {"period": period, "from": start, "to": start}
            r = await kpi.client.get(f"/v1/kpi/metrics/{key}", params=params, headers=auditor)
            assert r.status_code == 200, r.text
            value = r.json()["rows"][0]["value"]
            assert value == (None if expected is None else pytest.approx(expected, abs=1e-4)), key
    director = auth(settings, "director.zhang", "director")
    rescore = await kpi.client.post("/v1/kpi/scorecards/rescore", headers=director)
    assert rescore.status_code in (200, 404), rescore.text  # 404: no scorecards yet
    scorecards: list[Any] = []
    if rescore.status_code == 200:
        scorecards = (await kpi.client.get("/v1/kpi/scorecards", headers=auditor)).json()["items"]
        assert len(scorecards) == 3
    names = {str(pid): PARTNERS[key] for key, pid in story.partners.items()}

    token = token_for(settings, "audit.qian", "auditor")
    vendor = token_for(settings, "vendor.lin", "partner", str(story.partners["A"]))
    drill = "explain=on_time_delivery:month:2026-03"
    shots = IMG if UPDATE_SCREENSHOTS else tmp_path / "img"
    shots.mkdir(exist_ok=True)
    async with serving(kpi.app) as base:
        pages = await asyncio.gather(
            chromium(tmp_path, f"{base}/?lang=en#token={token}", "--dump-dom"),
            chromium(tmp_path, f"{base}/#token={token}", "--dump-dom", lang="zh-CN"),
            chromium(tmp_path, f"{base}/?lang=en#token={token}&{drill}", "--dump-dom"),
            chromium(tmp_path, f"{base}/?lang=en#token=not-a-token", "--dump-dom"),
            chromium(tmp_path, f"{base}/?lang=en#token={vendor}", "--dump-dom"),
            chromium(
                tmp_path, f"{base}/?lang=en#token={token}", f"--screenshot={shots}/kpi-board-en.png"
            ),
            chromium(
                tmp_path,
                f"{base}/#token={token}",
                f"--screenshot={shots}/kpi-board-zh.png",
                lang="zh-CN",
            ),
            chromium(
                tmp_path,
                f"{base}/?lang=en#token={token}&{drill}",
                f"--screenshot={shots}/kpi-board-drill-en.png",
            ),
        )
    en, zh, drilled, invalid, partner = pages[:5]

    # Accept-Language decided the Chinese page (zh-CN browser, no ?lang=).
    check_board(en, "en", names, scorecards, shots)
    check_board(zh, "zh", names, scorecards, shots)
    assert squash(parse(en.dom).text["period-label"]) == "This month Mar 2026 · Quarter Q1 2026"
    assert squash(parse(zh.dom).text["period-label"]) == "本月 2026年3月 · 本季度 2026年第1季度"
    check_drill(drilled)
    check_refused(invalid, "401")
    check_refused(partner, "403")

    # Every request of every page went to 127.0.0.1, the API calls included;
    # the token is in no page (it left the address bar for sessionStorage).
    for page in pages:
        assert_local_only(page, base)
        assert token not in page.dom
    # The breaches newest first, filtered before the limit (R3.5).
    breaches = "/v1/kpi/metrics/compliance/explain?period=all&missed=true&order=desc&limit=2000"
    assert f"{base}{breaches}" in en.requests


@needs_chromium
async def test_empty_board_shows_no_figure_not_zero(
    kpi: RunningService, settings: Settings, tmp_path: Path
) -> None:
    """Nothing recorded yet: every rate is "—" (no denominator is no figure,
    never 0%), incidents count 0, and the sections say why they are empty."""
    token = token_for(settings, "director.zhang", "director")
    async with serving(kpi.app) as base:
        page = await chromium(tmp_path, f"{base}/?lang=en#token={token}", "--dump-dom")
    dom = parse(page.dom)
    assert _state(dom) == "ready", squash(dom.text.get("message", ""))
    for key in KEYS:
        expected = "0" if key == "incidents" else "—"
        assert squash(dom.text[f"tile-{key}-month"]) == expected, key
        assert squash(dom.text[f"tile-{key}-quarter"]) == expected, key
    assert [a for a in _by_class(dom, "a", "point") if "incidents" not in (a["href"] or "")] == []
    assert "breaches-empty" in dom.text
    assert "scorecards-empty" in dom.text
    assert "No projects yet." in squash(dom.text["cost"])
    assert_local_only(page, base)
