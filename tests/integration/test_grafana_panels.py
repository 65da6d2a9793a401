"""Every panel of the Grafana dashboards (deploy/grafana/dashboards/*.json) runs
against the real kpi schema (R6.1, R3.5, R6.4, R2.3): no Grafana server can be
installed here, so this test does what Grafana would do with a panel's SQL.

- The kpi service runs in process on a real PostgreSQL; a scenario of two
  partners' projects in September and October 2026 (deliveries, complaints,
  surveys, tasks, document reviews, costs, approvals, kickoffs, reviews,
  reports, meetings, incidents, an investigation and its sanctions) is fed
  through the service's real consumer handlers (tests/support/kpi_facts.py),
  every payload checked against its published schema in docs/events/; the
  department's staff and trainings go through the HTTP API.
- For every panel and several choices of the dashboard's variables (All,
  quarters, one partner, several partners, one person, categories), the SQL is
  expanded the way Grafana expands it: template variables first (multi-value
  ones quoted and comma-separated, the custom All value inserted as is, the
  query variables' options from their own SQL), then the PostgreSQL macros
  ($__timeFilter(x) -> x BETWEEN '<from>' AND '<to>', $__timeFrom(),
  $__timeTo()); it runs on the service's pool and must return the panel's
  columns (time series: time, metric, value, in time order).
- Key panels are held to figures computed by hand from the scenario.

The time range is the Shanghai months of September and October 2026.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.kpi.service import SPEC as KPI
from shared.clock import ManualClock
from shared.policy import Policy
from shared.settings import Settings
from tests.support.apps import RunningService, running, settle
from tests.support.auth import auth
from tests.support.infra import Infra, create_topics, drop_schemas
from tests.support.kpi_facts import FactFeed, local

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
EVENTS = ROOT / "docs" / "events"
BOARDS: dict[str, dict[str, Any]] = {
    p.stem: json.loads(p.read_text("utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))
}
PANELS = [(name, panel) for name, board in BOARDS.items() for panel in board["panels"]]

#: The time range: 2026-09-01 00:00 to 2026-10-31 23:59:59 in Shanghai.
FROM = datetime(2026, 8, 31, 16, tzinfo=UTC)
TO = datetime(2026, 10, 31, 15, 59, 59, tzinfo=UTC)
SEP = datetime(2026, 8, 31, 16, tzinfo=UTC)  # 2026-09-01 00:00 Shanghai
OCT = datetime(2026, 9, 30, 16, tzinfo=UTC)  # 2026-10-01 00:00 Shanghai


def en(panel: dict[str, Any]) -> str:
    """A panel's English title (titles are `中文 / English`)."""
    title: str = panel["title"]
    return title.split(" / ", 1)[1]


# -- what Grafana does with a panel's SQL -----------------------------------------------------

VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
#: Grafana's SQL macro syntax: the arguments end at the first ')'.
MACRO = re.compile(r"\$(__\w+)\(([^)]*)\)")


def moment(value: datetime) -> str:
    """A time as Grafana's PostgreSQL macros write it."""
    return "'" + value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + "'"


def macros(sql: str, start: datetime, end: datetime) -> str:
    def expand(m: re.Match[str]) -> str:
        name, args = m.group(1), m.group(2).strip()
        if name == "__timeFilter":
            return f"{args} BETWEEN {moment(start)} AND {moment(end)}"
        if name == "__timeFrom":
            return moment(start)
        if name == "__timeTo":
            return moment(end)
        raise AssertionError(f"macro ${name} is not expanded by this test (nor known here)")

    return MACRO.sub(expand, sql)


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Choice:
    """The variables as a user sets them: values by `__text` or `__value`; a
    variable not named is All (or its first option when it has no All)."""

    name: str
    values: Mapping[str, Sequence[str]] = field(default_factory=dict)
    start: datetime = FROM
    end: datetime = TO


ALL = Choice("all")
QUARTERS = Choice("quarters", {"period": ["quarter"]})
ONE = Choice(
    "one",
    {
        "partner": ["华信科技"],
        "project_manager": ["pm.wang"],
        "person": ["sp.zhao"],
        "category": ["data_leak"],
    },
)
SEVERAL = Choice(
    "several",
    {
        "partner": ["华信科技", "云桥软件"],
        "person": ["sp.zhao", "sp.qian"],
        "category": ["availability", "quality"],
    },
)
CHOICES = (ALL, QUARTERS, ONE, SEVERAL)


async def run(svc: RunningService, sql: str) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and rows of a query, as Grafana would get them."""
    async with svc.runtime.pool.acquire() as conn:
        statement = await conn.prepare(sql)
        columns = [a.name for a in statement.get_attributes()]
        rows = [dict(r) for r in await statement.fetch()]
    return columns, rows


class Grafana:
    """Expands a dashboard's queries for one choice of its variables."""

    def __init__(self, svc: RunningService, schema: str) -> None:
        self.svc = svc
        self.schema = schema

    async def resolve(self, board: dict[str, Any], choice: Choice) -> dict[str, str]:
        """Variable -> the text Grafana puts in the SQL, in dashboard order
        (a query variable's options come from its SQL, which may use the
        variables before it)."""
        out: dict[str, str] = {}
        for variable in board["templating"]["list"]:
            name = variable["name"]
            if variable["type"] == "constant":
                # The test's schema, as `partnerledger grafana --schema` would set it.
                out[name] = self.schema if name == "schema" else variable["query"]
                continue
            if variable["type"] == "query":
                sql = macros(self.variables(variable["query"], out), choice.start, choice.end)
                columns, rows = await run(self.svc, sql)
                assert columns == ["__value", "__text"], f"{name}: {columns}"
                options = [(str(r["__text"]), str(r["__value"])) for r in rows]
            else:
                options = [
                    (o["text"], o["value"]) for o in variable["options"] if o["value"] != "$__all"
                ]
            wanted = choice.values.get(name)
            if wanted is None and variable.get("includeAll"):
                out[name] = variable["allValue"]  # a custom All value: not formatted
                continue
            if wanted is None:
                picked = [options[0][1]]
            else:
                by_text = {text: value for text, value in options}
                values = {value for _, value in options}
                picked = [by_text.get(w, w) for w in wanted]
                assert set(picked) <= values, f"{name}: {wanted} not among {options}"
            if variable.get("multi") or variable.get("includeAll"):
                out[name] = ",".join(quote(v) for v in picked)
            else:
                out[name] = picked[0]
        return out

    @staticmethod
    def variables(sql: str, values: Mapping[str, str]) -> str:
        def expand(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(2)
            return values[name] if name in values else m.group(0)

        return VARIABLE.sub(expand, sql)

    async def query(
        self, board: dict[str, Any], panel: dict[str, Any], choice: Choice = ALL
    ) -> tuple[list[str], list[dict[str, Any]]]:
        values = await self.resolve(board, choice)
        sql = macros(
            self.variables(panel["targets"][0]["rawSql"], values), choice.start, choice.end
        )
        assert "$" not in sql, f"not expanded: {sql}"
        return await run(self.svc, sql)

    async def panel(self, board: str, title: str, choice: Choice = ALL) -> list[dict[str, Any]]:
        found = [p for p in BOARDS[board]["panels"] if en(p) == title]
        assert len(found) == 1, f"{board}: no panel {title!r}"
        _, rows = await self.query(BOARDS[board], found[0], choice)
        return rows


# -- published schemas: the scenario's payloads are what producers send --------------------------


def _conforms(value: Any, schema: Mapping[str, Any], defs: Mapping[str, Any], at: str) -> None:
    if "$ref" in schema:
        _conforms(value, defs[schema["$ref"].rsplit("/", 1)[1]], defs, at)
        return
    if "anyOf" in schema:
        problems = []
        for option in schema["anyOf"]:
            try:
                _conforms(value, option, defs, at)
                return
            except AssertionError as exc:
                problems.append(str(exc))
        raise AssertionError(f"{at}: none of anyOf fits {value!r}: {problems}")
    if "enum" in schema:
        assert value in schema["enum"], f"{at}: {value!r} not in {schema['enum']}"
    kind = schema.get("type")
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    if kind is not None:
        assert checks[kind](value), f"{at}: {value!r} is not {kind}"
    fmt = schema.get("format")
    if fmt == "uuid":
        uuid.UUID(value)
    elif fmt == "date":
        date.fromisoformat(value)
    elif fmt == "date-time":
        assert datetime.fromisoformat(value).tzinfo is not None, f"{at}: {value} has no zone"
    if kind == "array":
        for n, item in enumerate(value):
            _conforms(item, schema.get("items", {}), defs, f"{at}[{n}]")
    if kind == "object" and "properties" in schema:
        missing = set(schema.get("required", [])) - set(value)
        unknown = set(value) - set(schema["properties"])
        assert not missing, f"{at}: missing {sorted(missing)}"
        assert not unknown, f"{at}: not in the schema {sorted(unknown)}"
        for key, item in value.items():
            _conforms(item, schema["properties"][key], defs, f"{at}.{key}")
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            _conforms(item, schema["additionalProperties"], defs, f"{at}.{key}")


def conforms(source: str, event_type: str, payload: dict[str, Any]) -> None:
    schema = json.loads((EVENTS / source / f"{event_type}.v1.json").read_text("utf-8"))
    _conforms(payload, schema, schema.get("$defs", {}), f"{source}/{event_type}")


# -- the scenario ----------------------------------------------------------------------------------


def at(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A moment of 2026 in Shanghai."""
    return local(date(2026, month, day), hour, minute)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def end_of(month: int, day: int) -> datetime:
    """The last instant of a day of 2026 in Shanghai (R3.5 deadlines)."""
    return local(date(2026, month, day), 0) + timedelta(days=1, microseconds=-1)


@dataclass
class World:
    svc: RunningService
    settings: Settings
    feed: FactFeed
    grafana: Grafana
    p1: uuid.UUID = field(default_factory=uuid.uuid4)
    p2: uuid.UUID = field(default_factory=uuid.uuid4)
    p3: uuid.UUID = field(default_factory=uuid.uuid4)
    a: uuid.UUID = field(default_factory=uuid.uuid4)
    b: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def policy(self) -> Policy:
        return self.svc.runtime.policy

    async def emit(
        self,
        source: str,
        event_type: str,
        aggregate: uuid.UUID,
        payload: dict[str, Any],
        when: datetime,
        aggregate_type: str,
    ) -> None:
        conforms(source, event_type, payload)
        await self.feed.emit(
            source, event_type, aggregate, payload, at=when, aggregate_type=aggregate_type
        )

    async def partner(self, source_id: uuid.UUID, name: str, code: str, **k: Any) -> None:
        """Partner events: registered, then qualified and active (unless a candidate)."""
        p = "partner"
        await self.emit(
            p,
            "PartnerRegistered",
            source_id,
            {
                "name": name,
                "unified_social_credit_code": code,
                "contact": {"name": "联系人", "email": "contact@example.com", "phone": "021-1"},
                "service_categories": ["software"],
            },
            at(8, 1),
            "Partner",
        )
        if k.get("project") is None:
            return
        await self.emit(
            p,
            "PartnerQualified",
            source_id,
            {
                "evaluation_id": str(uuid.uuid4()),
                "reason": "资质审核通过",
                "status": "qualified",
                "valid_until": "2027-08-31",
            },
            at(8, 10),
            "Partner",
        )
        await self.emit(
            p,
            "PartnerActivated",
            source_id,
            {"contract_number": k["contract"], "project_id": str(k["project"]), "status": "active"},
            at(9, 7),
            "Partner",
        )

    async def project(self, event_type: str, project: uuid.UUID, when: datetime, **p: Any) -> None:
        await self.emit("partner", event_type, project, p, when, "Project")


async def build(w: World) -> None:
    """The scenario (figures by hand in the tests below)."""
    await w.partner(w.p1, "华信科技", "91310000MA1K000001", project=w.a, contract="HT-A")
    await w.partner(w.p2, "云桥软件", "91310000MA1K000002", project=w.b, contract="HT-B")
    await w.partner(w.p3, "北辰数据", "91310000MA1K000003")  # a candidate, no projects

    def milestone(mid: str, due: str) -> dict[str, str]:
        return {"milestone_id": mid, "name": mid, "deliverable": f"{mid} 交付物", "due_on": due}

    await w.project(
        "ProjectCreated", w.a, at(9, 1, 8),
        partner_id=str(w.p1), title="核心系统改造", scope="核心系统", project_manager="pm.wang",
        budget="1000000", currency="CNY", specialists=["sp.zhao"],
        milestones=[
            milestone("A-M1", "2026-09-15"),
            milestone("A-M2", "2026-09-30"),
            milestone("A-M3", "2026-10-20"),
        ],
    )  # fmt: skip
    await w.project(
        "ProjectCreated", w.b, at(9, 2, 8),
        partner_id=str(w.p2), title="数据平台建设", scope="数据平台", project_manager="pm.li",
        budget="500000", currency="CNY", specialists=["sp.qian"],
        milestones=[milestone("B-M1", "2026-09-20"), milestone("B-M2", "2026-10-10")],
    )  # fmt: skip
    # R5.2: the approved budgets (the procurement approvals), what cost control reads.
    for project, amount, when in ((w.a, "1000000", at(9, 7, 8)), (w.b, "500000", at(9, 8, 8))):
        await w.project(
            "ProcurementApprovalGranted", project, when,
            request_id=str(uuid.uuid4()), approved_at=iso(when), approved_amount=amount,
        )  # fmt: skip

    # R3.1: the procurement of project A: three steps, the finance step late.
    ar = uuid.uuid4()
    await w.emit(
        "approval",
        "ApprovalRequested",
        ar,
        {
            "kind": "procurement",
            "project_id": str(w.a),
            "partner_id": str(w.p1),
            "title": "核心系统改造采购",
            "amount": "1000000",
            "currency": "CNY",
            "justification": "系统老化",
            "requested_by": "pm.wang",
            "source": "partner.events",
            "steps": ["department_head", "finance", "ceo"],
            "approvers": {"department_head": "head.zhou", "finance": "fin.qian", "ceo": "ceo.sun"},
            "new_budget": None,
            "new_scope": None,
            "new_end_date": None,
            "new_value": None,
        },
        at(9, 1, 9),
        "ApprovalRequest",
    )
    steps = (
        # step, assignee, role, opened, due, decided, on time
        ("department_head", "head.zhou", "dept_head", at(9, 1, 9), at(9, 3, 9), at(9, 2, 9), True),
        ("finance", "fin.qian", "finance", at(9, 2, 9), at(9, 5, 9), at(9, 6, 9), False),
        ("ceo", "ceo.sun", "ceo", at(9, 6, 9), at(9, 9, 9), at(9, 7, 9), True),
    )
    for step, who, role, opened, due, decided, on_time in steps:
        opened_payload = {
            "step": step, "round": 1, "assignee": who, "assignee_role": role,
            "opened_at": iso(opened), "due_at": iso(due),
        }  # fmt: skip
        await w.emit(
            "approval", "ApprovalStepOpened", ar, opened_payload, opened, "ApprovalRequest"
        )
        if not on_time:
            overdue = {
                "step": step, "round": 1, "assignee": who, "assignee_role": role,
                "deadline_id": str(uuid.uuid4()), "due_at": iso(due),
            }  # fmt: skip
            await w.emit("approval", "ApprovalStepOverdue", ar, overdue, due, "ApprovalRequest")
        approved = {
            "step": step, "round": 1, "approver": who, "approver_role": role, "comment": "同意",
            "opened_at": iso(opened), "decided_at": iso(decided), "delegate_of": None,
            "on_time": on_time,
        }  # fmt: skip
        await w.emit("approval", "ApprovalStepApproved", ar, approved, decided, "ApprovalRequest")

    # R3.2: contracts and kickoffs: A's kickoff late, B's on time.
    for project, partner, signed, held, late in (
        (w.a, w.p1, 7, 16, True),
        (w.b, w.p2, 8, 10, False),
    ):
        due = end_of(9, signed + 7)
        await w.project(
            "ContractSigned", project, at(9, signed),
            contract_number=f"HT-{signed}", partner_id=str(partner), value="800000",
            currency="CNY", signed_on=f"2026-09-{signed:02d}", starts_on=f"2026-09-{signed:02d}",
            ends_on="2027-06-30", sla_terms=["99.9% 可用性"], third_party_acceptor="第三方测评中心",
            kickoff_due_at=iso(due),
        )  # fmt: skip
        await w.project(
            "KickoffHeld", project, at(9, held),
            held_on=f"2026-09-{held:02d}", late=late, due_at=iso(due), goals=["按期交付"],
            timetable="每周例会", responsibilities=[{"person": "pm.wang", "duty": "总体负责"}],
        )  # fmt: skip

    # R6.1: deliveries: A-M2 late, B-M2 never delivered.
    for project, mid, delivered, due, on_time in (
        (w.a, "A-M1", "2026-09-14", "2026-09-15", True),
        (w.b, "B-M1", "2026-09-20", "2026-09-20", True),
        (w.a, "A-M2", "2026-10-03", "2026-09-30", False),
        (w.a, "A-M3", "2026-10-18", "2026-10-20", True),
    ):
        day = date.fromisoformat(delivered)
        await w.project(
            "MilestoneDelivered", project, local(day, 18),
            milestone_id=mid, delivered_on=delivered, due_on=due, on_time=on_time, note="",
        )  # fmt: skip

    # Complaints and their first responses.
    for project, cid, received, responded, severity in (
        (w.b, "C-B1", at(9, 25), at(9, 26), "medium"),
        (w.a, "C-A1", at(10, 5), at(10, 5, 16), "high"),
    ):
        await w.project(
            "ComplaintReceived", project, received,
            complaint_id=cid, received_at=iso(received), severity=severity, source="customer",
            summary="交付质量问题",
        )  # fmt: skip
        await w.project(
            "ComplaintResponded", project, responded, complaint_id=cid, response="已处理"
        )

    for project, survey, when, score in (
        (w.a, "S-A1", at(9, 30), 4),
        (w.b, "S-B1", at(10, 12), 3),
        (w.a, "S-A2", at(10, 25), 5),
    ):
        await w.project(
            "SatisfactionRecorded", project, when,
            survey_id=survey, score=score, respondent="客户代表", comment="",
        )  # fmt: skip

    # Tasks: T2 completed late.
    for project, task, who, assigned, due, acked, completed, on_time in (
        (w.a, "T1", "sp.zhao", at(9, 1, 9), "2026-09-10", at(9, 1, 11), "2026-09-09", True),
        (w.a, "T2", "sp.zhao", at(9, 5, 9), "2026-09-20", at(9, 5, 13), "2026-09-22", False),
        (w.b, "T3", "sp.qian", at(9, 10), "2026-10-05", at(9, 11), "2026-10-01", True),
    ):
        await w.project(
            "TaskAssigned", project, assigned,
            task_id=task, specialist=who, title=f"任务 {task}", due_on=due,
        )  # fmt: skip
        await w.project("TaskAcknowledged", project, acked, task_id=task, specialist=who)
        await w.project(
            "TaskCompleted", project, local(date.fromisoformat(completed), 17),
            task_id=task, specialist=who, completed_on=completed, due_on=due, on_time=on_time,
        )  # fmt: skip

    # Documents reviewed: sp.zhao's d2 needed correction at its first review.
    d1, d2, d3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for document, project, filer, version, outcome, when in (
        (d1, w.a, "sp.zhao", 1, "accepted", at(9, 12)),
        (d2, w.a, "sp.zhao", 1, "needs_correction", at(9, 18)),
        (d2, w.a, "sp.zhao", 2, "accepted", at(9, 20)),
        (d3, w.b, "sp.qian", 1, "accepted", at(10, 8)),
    ):
        reviewed = {
            "doc_type": "weekly_report", "project_id": str(project), "filed_by": filer,
            "outcome": outcome, "reasons": [] if outcome == "accepted" else ["格式错误"],
            "reviewed_at": iso(when), "reviewer": "pm.wang", "version": version,
        }  # fmt: skip
        await w.emit("docs", "DocumentReviewed", document, reviewed, when, "Document")

    # Costs; B closes terminated with its totals.
    for project, cost, amount, category, day in (
        (w.a, "CA1", "300000", "labour", "2026-09-10"),
        (w.b, "CB1", "200000", "labour", "2026-09-15"),
        (w.a, "CA2", "50000", "hardware", "2026-10-10"),
        (w.b, "CB2", "120000", "labour", "2026-10-15"),
    ):
        await w.project(
            "CostRecorded", project, local(date.fromisoformat(day), 12),
            cost_id=cost, amount=amount, category=category, currency="CNY", incurred_on=day,
            note="",
        )  # fmt: skip

    # R3.3: A's Q3 review on time.
    await w.project(
        "ReviewHeld", w.a, at(9, 25),
        quarter="2026-Q3", held_on="2026-09-25", progress="按计划", risk_rating="low", issues=[],
    )  # fmt: skip

    # R4.3: A's weekly report filed late, B's monthly report overdue.
    rs_a, rs_b = uuid.uuid4(), uuid.uuid4()
    weekly_due = end_of(10, 2)
    await w.emit(
        "docs",
        "ReportPeriodOpened",
        rs_a,
        {
            "project_id": str(w.a), "kind": "weekly", "period": "2026-W40",
            "period_start": "2026-09-28", "period_end": "2026-10-04",
            "due_at": iso(weekly_due), "project_manager": "pm.wang",
        },
        at(9, 28, 0),
        "ReportSchedule",
    )  # fmt: skip
    await w.emit(
        "docs",
        "ReportFiledLate",
        rs_a,
        {
            "document_id": str(uuid.uuid4()), "project_id": str(w.a), "kind": "weekly",
            "period": "2026-W40", "due_at": iso(weekly_due), "filed_at": iso(at(10, 3)),
            "filed_by": "pm.wang", "hours_late": 10.0,
        },
        at(10, 3),
        "ReportSchedule",
    )  # fmt: skip
    monthly_due = end_of(10, 5)
    await w.emit(
        "docs",
        "ReportPeriodOpened",
        rs_b,
        {
            "project_id": str(w.b), "kind": "monthly", "period": "2026-09",
            "period_start": "2026-09-01", "period_end": "2026-09-30",
            "due_at": iso(monthly_due), "project_manager": "pm.li",
        },
        at(10, 1, 0),
        "ReportSchedule",
    )  # fmt: skip
    await w.emit(
        "docs",
        "ReportOverdue",
        rs_b,
        {
            "deadline_id": str(uuid.uuid4()), "project_id": str(w.b), "kind": "monthly",
            "period": "2026-09", "due_at": iso(monthly_due), "project_manager": "pm.li",
        },
        monthly_due,
        "ReportSchedule",
    )  # fmt: skip

    # R4.2, R5.4: A's mid-term meeting and a department meeting, minutes on time.
    for project, kind, chair, held, filed in (
        (w.a, "midterm_review", "pm.wang", at(10, 12, 10), at(10, 12, 18)),
        (None, "weekly_department", "director.zhang", at(10, 12, 9), at(10, 12, 17)),
    ):
        meeting = uuid.uuid4()
        due = held + timedelta(hours=24)
        pid = str(project) if project else None
        held_payload = {
            "kind": kind, "project_id": pid, "title": f"{kind} 会议", "chaired_by": chair,
            "attendees": [chair], "held_at": iso(held), "minutes_due_at": iso(due),
            "owners_due_at": iso(due), "source": "api",
        }  # fmt: skip
        await w.emit("docs", "MeetingHeld", meeting, held_payload, held, "Meeting")
        filed_payload = {
            "document_id": str(uuid.uuid4()), "document_name": f"{kind}-2026年10月-会议纪要",
            "due_at": iso(due), "filed_at": iso(filed), "filed_by": chair, "kind": kind,
            "on_time": True, "project_id": pid,
        }  # fmt: skip
        await w.emit("docs", "MinutesFiled", meeting, filed_payload, filed, "Meeting")

    # R6.4: incidents; the data leak reported in time, investigated, sanctioned.
    for project, incident, category, severity, detected, reported, due in (
        (w.b, "I-3", "quality", "low", at(9, 28), at(9, 29), None),
        (w.a, "I-1", "availability", "medium", at(10, 8, 9), at(10, 8, 12), None),
        (w.a, "I-2", "data_leak", "high", at(10, 20, 8), at(10, 20, 10), at(10, 20, 12)),
    ):
        await w.project(
            "IncidentReported", project, reported,
            incident_id=incident, category=category, severity=severity, description="事件",
            detected_at=iso(detected), incident_occurred_at=iso(detected - timedelta(hours=1)),
            late=False, report_due_at=iso(due) if due else None,
        )  # fmt: skip
    await w.project(
        "InvestigationOpened", w.b, at(9, 30), investigation_id="INV-2", incident_id="I-3"
    )
    await w.project(
        "InvestigationOpened", w.a, at(10, 21), investigation_id="INV-1", incident_id="I-2"
    )
    await w.project(
        "InvestigationConcluded", w.a, at(10, 27),
        investigation_id="INV-1", findings="权限配置错误",
        sanctions=[
            {"subject": "sp.zhao", "subject_kind": "staff", "level": "warning"},
            {"subject": str(w.p1), "subject_kind": "partner", "level": "serious_warning"},
        ],
    )  # fmt: skip
    await w.project(
        "ProjectClosed", w.b, at(10, 28),
        outcome="terminated", budget="500000", costs_total="320000", reason="无法按期交付",
    )  # fmt: skip

    # R2.2, R2.3: the department and its trainings, through the HTTP API.
    director = auth(w.settings, "director.zhang", "director")
    client: httpx.AsyncClient = w.svc.client
    for user, name, role, superior in (
        ("director.zhang", "张总监", "director", None),
        ("pm.wang", "王经理", "project_manager", "director.zhang"),
        ("pm.li", "李经理", "project_manager", "director.zhang"),
        ("sp.zhao", "赵专员", "specialist", "pm.wang"),
        ("sp.qian", "钱专员", "specialist", "pm.li"),
        ("sp.sun", "孙专员", "specialist", "pm.li"),
    ):
        body = {
            "user_id": user, "name": name, "role": role, "superior": superior,
            "joined_on": "2026-01-01",
        }  # fmt: skip
        response = await client.post("/v1/kpi/staff", json=body, headers=director)
        assert response.status_code == 201, response.text
    for held_on, attendees in (
        ("2026-03-10", ["sp.zhao", "sp.qian", "pm.wang"]),
        ("2026-09-15", ["sp.zhao"]),
        ("2026-10-20", ["sp.zhao", "sp.sun"]),
    ):
        body = {"title": f"培训 {held_on}", "held_on": held_on, "hours": 3, "attendees": attendees}
        response = await client.post("/v1/kpi/trainings", json=body, headers=director)
        assert response.status_code == 201, response.text
    await settle(w.svc)


@pytest.fixture(scope="module")
async def world(infra: Infra) -> AsyncIterator[World]:
    settings = infra.settings()
    await create_topics(settings)
    clock = ManualClock(at(11, 27, 9))
    try:
        async with running(
            KPI, settings, relay=False, consumers=False, projectors=False, clock=clock
        ) as svc:
            w = World(svc, settings, FactFeed(svc), Grafana(svc, settings.schema_of("kpi")))
            await build(w)
            yield w
    finally:
        await drop_schemas(settings)


# -- every panel runs, with its columns ------------------------------------------------------------


def cols(names: str) -> list[str]:
    return names.split()


SERIES = ["time", "metric", "value"]
VALUE = ["value"]
#: (dashboard, English title) -> the columns the panel shows.
COLUMNS: dict[tuple[str, str], list[str]] = {
    ("partner-scorecards", "Active partners"): VALUE,
    ("partner-scorecards", "Partners by status"): ["status", "partners"],
    ("partner-scorecards", "On-time delivery rate (selected range)"): VALUE,
    ("partner-scorecards", "Complaint rate (selected range)"): VALUE,
    ("partner-scorecards", "Partner scorecard (selected range)"): cols(
        "partner status on_time_delivery complaint_rate satisfaction failure_rate compliance"
        " incidents"
    ),
    ("partner-scorecards", "On-time delivery rate by partner"): SERIES,
    ("partner-scorecards", "Complaint rate by partner"): SERIES,
    ("partner-scorecards", "Customer satisfaction by partner"): SERIES,
    ("partner-scorecards", "Process compliance by partner"): SERIES,
    ("project-delivery", "On-time delivery rate (selected range)"): VALUE,
    ("project-delivery", "Complaint rate (selected range)"): VALUE,
    ("project-delivery", "Project failure rate (selected range)"): VALUE,
    ("project-delivery", "Actual cost (selected range)"): VALUE,
    ("project-delivery", "On-time delivery rate by project"): SERIES,
    ("project-delivery", "Actual cost by category"): SERIES,
    ("project-delivery", "Delivery by project (selected range)"): cols(
        "project partner project_manager milestones_due delivered_on_time on_time_delivery"
        " milestones_delivered complaints complaint_rate satisfaction"
    ),
    ("project-delivery", "Cost control (to date)"): cols(
        "project partner project_manager budget actual cost_control_rate outcome"
    ),
    ("project-delivery", "Response speed (complaints) (median)"): cols(
        "period_start project severity responses median_hours"
    ),
    ("process-compliance", "Process compliance (selected range)"): VALUE,
    ("process-compliance", "Obligations missed"): VALUE,
    ("process-compliance", "Obligations due"): VALUE,
    ("process-compliance", "Approval cycle time (selected range)"): VALUE,
    ("process-compliance", "Process compliance by obligation type"): SERIES,
    ("process-compliance", "Approval cycle time by approval level"): SERIES,
    ("process-compliance", "Compliance by obligation type"): cols(
        "obligation due met missed compliance"
    ),
    ("process-compliance", "Compliance by person"): cols("person due met missed compliance"),
    ("process-compliance", "Deadlines missed"): cols(
        "time obligation detail person project partner"
    ),
    ("staff-kpis", "Head count"): VALUE,
    ("staff-kpis", "Staff by role"): ["role", "staff"],
    ("staff-kpis", "Task completion rate (selected range)"): VALUE,
    ("staff-kpis", "Document accuracy (selected range)"): VALUE,
    ("staff-kpis", "Task completion rate by specialist"): SERIES,
    ("staff-kpis", "Document accuracy by filer"): SERIES,
    ("staff-kpis", "Specialist KPIs (selected range)"): cols(
        "person name role tasks_due task_completion documents_reviewed document_accuracy"
    ),
    ("staff-kpis", "Response speed (tasks) (median)"): cols(
        "period_start person project tasks median_hours"
    ),
    ("staff-kpis", "Trainings this year"): cols("person name role attended target met"),
    ("staff-kpis", "Trainings held"): cols("held_on title hours attendees"),
    ("incidents", "Incidents (selected range)"): VALUE,
    ("incidents", "Data leaks (selected range)"): VALUE,
    ("incidents", "Investigations open"): VALUE,
    ("incidents", "Data leaks reported on time"): VALUE,
    ("incidents", "Incidents by category"): SERIES,
    ("incidents", "Time to report an incident by severity"): SERIES,
    ("incidents", "Incident list"): cols(
        "time partner project category severity hours_to_report reported_late"
    ),
    ("incidents", "Sanctions (selected range)"): cols("level subject_kind sanctions"),
}


def test_every_panel_has_its_columns_listed_here() -> None:
    assert sorted(COLUMNS) == sorted((name, en(panel)) for name, panel in PANELS)


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=[f"{n}:{en(p)}" for n, p in PANELS])
async def test_every_panel_runs_with_its_columns(
    world: World, name: str, panel: dict[str, Any]
) -> None:
    expected = COLUMNS[(name, en(panel))]
    for choice in CHOICES:
        columns, rows = await world.grafana.query(BOARDS[name], panel, choice)
        assert columns == expected, f"{choice.name}: {columns}"
        if panel["type"] == "stat":
            assert len(rows) == 1, f"{choice.name}: a stat reads one row"
        if panel["type"] == "timeseries":
            times = [r["time"] for r in rows]
            assert times == sorted(times), f"{choice.name}: not in time order"
            assert all(isinstance(t, datetime) and t.tzinfo for t in times)
            assert all(isinstance(r["metric"], str) for r in rows)
    # The scenario gives every panel something to show with every variable at All.
    _, rows = await world.grafana.query(BOARDS[name], panel, ALL)
    assert rows, f"{en(panel)}: no rows for the scenario"
    if panel["type"] == "stat":
        assert rows[0]["value"] is not None, f"{en(panel)}: no value for the scenario"


async def test_the_query_variables_list_the_schema(world: World) -> None:
    g = world.grafana
    board = BOARDS["project-delivery"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    sql = Grafana.variables(variables["partner"]["query"], {"schema": g.schema})
    _, rows = await run(world.svc, sql)
    assert {(r["__text"], r["__value"]) for r in rows} == {
        ("华信科技", str(world.p1)),
        ("云桥软件", str(world.p2)),
        ("北辰数据", str(world.p3)),
    }
    # The project managers follow the partners chosen.
    values = await g.resolve(board, ONE)
    assert values["partner"] == f"'{world.p1}'"
    assert values["project_manager"] == "'pm.wang'"
    assert values["period"] == "month"
    values = await g.resolve(board, ALL)
    assert values["partner"] == values["project_manager"] == "'__all'"
    sql = Grafana.variables(
        variables["project_manager"]["query"], {"schema": g.schema, "partner": "'__all'"}
    )
    _, rows = await run(world.svc, sql)
    assert [r["__value"] for r in rows] == ["pm.li", "pm.wang"]
    people = {v["name"]: v for v in BOARDS["staff-kpis"]["templating"]["list"]}["person"]
    _, rows = await run(world.svc, Grafana.variables(people["query"], {"schema": g.schema}))
    assert {r["__value"]: r["__text"] for r in rows} == {
        "director.zhang": "张总监 (director.zhang)",
        "pm.wang": "王经理 (pm.wang)",
        "pm.li": "李经理 (pm.li)",
        "sp.zhao": "赵专员 (sp.zhao)",
        "sp.qian": "钱专员 (sp.qian)",
        "sp.sun": "孙专员 (sp.sun)",
    }


# -- the figures, by hand --------------------------------------------------------------------------


def D(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _key(row: tuple[Any, ...]) -> tuple[tuple[bool, Any], ...]:
    """Rows in their natural order whatever the database's collation (None first)."""
    return tuple((v is not None, v) for v in row)


def by(rows: list[dict[str, Any]], *keys: str) -> list[tuple[Any, ...]]:
    return sorted((tuple(r[k] for k in keys) for r in rows), key=_key)


def ordered(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(rows, key=_key)


async def test_partner_scorecard(world: World) -> None:
    """On-time: 华信 A-M1 yes, A-M2 late, A-M3 yes = 2/3; 云桥 B-M1 yes, B-M2 never = 1/2.
    Complaints / deliveries: 华信 1/3, 云桥 1/1. Satisfaction: 华信 (4+5)/2, 云桥 3.
    Failures: 云桥's B terminated 1/1. Compliance: 华信 approvals 2/3, kickoff 0/1, Q3
    review 1/1, weekly report 0/1, minutes 1/1, data-leak report 1/1 = 5/8; 云桥 kickoff
    1/1, monthly report 0/1 = 1/2. Incidents: 华信 2, 云桥 1. 北辰 has nothing."""
    g = world.grafana
    expected = [
        ("云桥软件", "active", D("0.5000"), D("1.0000"), D("3.00"), D("1.0000"), D("0.5000"), 1),
        ("北辰数据", "candidate", None, None, None, None, None, 0),
        ("华信科技", "active", D("0.6667"), D("0.3333"), D("4.50"), None, D("0.6250"), 2),
    ]
    columns = COLUMNS[("partner-scorecards", "Partner scorecard (selected range)")]
    for choice in (ALL, QUARTERS):
        rows = await g.panel("partner-scorecards", "Partner scorecard (selected range)", choice)
        assert by(rows, *columns) == ordered(expected), choice.name
    rows = await g.panel("partner-scorecards", "Partner scorecard (selected range)", ONE)
    assert by(rows, *columns) == [expected[2]]

    assert await g.panel("partner-scorecards", "Active partners") == [{"value": 2}]
    assert await g.panel("partner-scorecards", "Partners by status") == [
        {"status": "active", "partners": 2},
        {"status": "candidate", "partners": 1},
    ]
    rows = await g.panel("partner-scorecards", "On-time delivery rate by partner")
    assert by(rows, "time", "metric", "value") == ordered(
        [
            (SEP, "华信科技", D("0.5000")),
            (SEP, "云桥软件", D("1.0000")),
            (OCT, "华信科技", D("1.0000")),
            (OCT, "云桥软件", D("0.0000")),
        ],
    )
    rows = await g.panel("partner-scorecards", "Complaint rate by partner", SEVERAL)
    assert by(rows, "time", "metric", "value") == ordered(
        [
            (SEP, "华信科技", D("0.0000")),
            (SEP, "云桥软件", D("1.0000")),
            (OCT, "华信科技", D("0.5000")),
        ],
    )


async def test_project_delivery(world: World) -> None:
    """All: on time 3/5, complaints 2/4, failures 1/1, costs 300k+50k+200k+120k; for
    华信 and pm.wang: 2/3, 1/3, no closure, 350k. Cost control to date: A 350k of its
    approved 1m, B closed terminated at its totals 320k of its approved 500k."""
    g = world.grafana
    figures = {
        "On-time delivery rate (selected range)": (D("0.6000"), D("0.6667")),
        "Complaint rate (selected range)": (D("0.5000"), D("0.3333")),
        "Project failure rate (selected range)": (D("1.0000"), None),
        "Actual cost (selected range)": (D("670000"), D("350000")),
    }
    for title, (everyone, one) in figures.items():
        assert await g.panel("project-delivery", title) == [{"value": everyone}], title
        assert await g.panel("project-delivery", title, ONE) == [{"value": one}], title
    rows = await g.panel("project-delivery", "Cost control (to date)")
    assert by(rows, "project", "partner", "budget", "actual", "cost_control_rate", "outcome") == [
        ("数据平台建设", "云桥软件", D("500000"), D("320000"), D("0.6400"), "terminated"),
        ("核心系统改造", "华信科技", D("1000000"), D("350000"), D("0.3500"), None),
    ]
    rows = await g.panel("project-delivery", "Delivery by project (selected range)")
    assert by(
        rows, "project", "project_manager", "milestones_due", "delivered_on_time",
        "on_time_delivery", "milestones_delivered", "complaints", "complaint_rate",
        "satisfaction",
    ) == [
        ("数据平台建设", "pm.li", D("2"), D("1"), D("0.5000"), D("1"), D("1"), D("1.0000"),
         D("3.00")),
        ("核心系统改造", "pm.wang", D("3"), D("2"), D("0.6667"), D("3"), D("1"), D("0.3333"),
         D("4.50")),
    ]  # fmt: skip
    rows = await g.panel("project-delivery", "Response speed (complaints) (median)")
    assert by(rows, "period_start", "project", "severity", "responses", "median_hours") == [
        (date(2026, 9, 1), "数据平台建设", "medium", 1, D("24.0000")),
        (date(2026, 10, 1), "核心系统改造", "high", 1, D("6.0000")),
    ]
    rows = await g.panel("project-delivery", "Actual cost by category")
    assert by(rows, "time", "metric", "value") == ordered(
        [(SEP, "labour", D("500000")), (OCT, "hardware", D("50000")), (OCT, "labour", D("120000"))],
    )


async def test_process_compliance(world: World) -> None:
    """All (September and October): approval steps 2 of 3 (finance late), kickoffs 1 of
    2, the Q3 review, reports 0 of 2, minutes 2 of 2, the data-leak report, and the
    weekly department meetings since the first fact (weeks ending 13 Sep to 25 Oct: 7,
    the one of 12 Oct held): 8 of 18. Approval cycle: (24 + 96 + 24) / 3 hours. By
    person (R3.5, fix 8): kickoffs, the Q3 review, the data-leak report and the reports
    are the projects' PMs' (pm.wang 3 of 5 with his minutes, pm.li 1 of 2); only the
    department's weekly meetings are unassigned."""
    g = world.grafana
    b = "process-compliance"
    assert await g.panel(b, "Process compliance (selected range)") == [{"value": D("0.4444")}]
    assert await g.panel(b, "Obligations due") == [{"value": D("18")}]
    assert await g.panel(b, "Obligations missed") == [{"value": D("10")}]
    assert await g.panel(b, "Approval cycle time (selected range)") == [{"value": D("48.00")}]
    assert await g.panel(b, "Process compliance (selected range)", ONE) == [{"value": D("0.6250")}]
    rows = await g.panel(b, "Compliance by obligation type")
    assert by(rows, "obligation", "due", "met", "missed", "compliance") == ordered(
        [
            ("approval_step", D("3"), D("2"), D("1"), D("0.6667")),
            ("data_leak_report", D("1"), D("1"), D("0"), D("1.0000")),
            ("kickoff", D("2"), D("1"), D("1"), D("0.5000")),
            ("minutes", D("2"), D("2"), D("0"), D("1.0000")),
            ("quarterly_review", D("1"), D("1"), D("0"), D("1.0000")),
            ("report", D("2"), D("0"), D("2"), D("0.0000")),
            ("weekly_department_meeting", D("7"), D("1"), D("6"), D("0.1429")),
        ],
    )
    rows = await g.panel(b, "Compliance by person")
    assert by(rows, "person", "due", "met") == ordered(
        [
            ("(unassigned)", D("7"), D("1")),
            ("ceo.sun", D("1"), D("1")),
            ("director.zhang", D("1"), D("1")),
            ("fin.qian", D("1"), D("0")),
            ("head.zhou", D("1"), D("1")),
            ("pm.li", D("2"), D("1")),
            ("pm.wang", D("5"), D("3")),
        ],
    )
    rows = await g.panel(b, "Deadlines missed")
    assert [(r["obligation"], r["detail"], r["partner"]) for r in rows] == [
        ("approval_step", "finance", "华信科技"),
        ("report", "monthly", "云桥软件"),
    ]
    assert rows[0]["time"] == at(9, 5, 9)
    rows = await g.panel(b, "Deadlines missed", ONE)
    assert [r["detail"] for r in rows] == ["finance"]
    rows = await g.panel(b, "Approval cycle time by approval level")
    assert by(rows, "time", "metric", "value") == ordered(
        [
            (SEP, "ceo", D("24.00")),
            (SEP, "department_head", D("24.00")),
            (SEP, "finance", D("96.00")),
        ],
    )


async def test_staff_kpis(world: World) -> None:
    """Tasks: sp.zhao T1 on time, T2 late (September), sp.qian T3 on time (October).
    Documents accepted at their first review (per document, fix 9): sp.zhao 1 of 2
    (d2's first review asked for a correction), sp.qian 1 of 1. Acknowledgement: sp.zhao
    2 h and 4 h (median 3), sp.qian 24 h. Trainings in 2026: sp.zhao 3, the others at
    most 1; September and October held two."""
    g = world.grafana
    b = "staff-kpis"
    assert await g.panel(b, "Head count") == [{"value": 6}]
    assert await g.panel(b, "Head count", ONE) == [{"value": 1}]
    assert await g.panel(b, "Staff by role") == [
        {"role": "director", "staff": 1},
        {"role": "project_manager", "staff": 2},
        {"role": "specialist", "staff": 3},
    ]
    assert await g.panel(b, "Task completion rate (selected range)") == [{"value": D("0.6667")}]
    assert await g.panel(b, "Task completion rate (selected range)", ONE) == [
        {"value": D("0.5000")}
    ]
    rows = await g.panel(b, "Specialist KPIs (selected range)")
    assert by(
        rows, "person", "name", "tasks_due", "task_completion", "documents_reviewed",
        "document_accuracy",
    ) == [
        ("sp.qian", "钱专员", D("1"), D("1.0000"), D("1"), D("1.0000")),
        ("sp.zhao", "赵专员", D("2"), D("0.5000"), D("2"), D("0.5000")),
    ]  # fmt: skip
    rows = await g.panel(b, "Response speed (tasks) (median)")
    assert by(rows, "period_start", "person", "project", "tasks", "median_hours") == [
        (date(2026, 9, 1), "sp.qian", "数据平台建设", 1, D("24.0000")),
        (date(2026, 9, 1), "sp.zhao", "核心系统改造", 2, D("3.0000")),
    ]
    rows = await g.panel(b, "Trainings this year")
    assert by(rows, "person", "attended", "target", "met") == [
        ("director.zhang", 0, None, None),
        ("pm.li", 0, None, None),
        ("pm.wang", 1, None, None),
        ("sp.qian", 1, None, None),
        ("sp.sun", 1, None, None),
        ("sp.zhao", 3, None, None),
    ]
    rows = await g.panel(b, "Trainings held")
    assert [(r["held_on"], r["attendees"]) for r in rows] == [
        (date(2026, 9, 15), 1),
        (date(2026, 10, 20), 2),
    ]
    assert len(await g.panel(b, "Trainings held", ONE)) == 2
    only_qian = Choice("qian", {"person": ["sp.qian"]})
    assert await g.panel(b, "Trainings held", only_qian) == []
    rows = await g.panel(b, "Task completion rate by specialist")
    assert by(rows, "time", "metric", "value") == ordered(
        [(SEP, "sp.zhao", D("0.5000")), (OCT, "sp.qian", D("1.0000"))]
    )


async def test_incidents(world: World) -> None:
    """Three incidents (quality on B in September; availability and a data leak on A in
    October), 24 h, 3 h and 2 h to report; the leak reported in time; B's investigation
    still open; A's concluded with a warning to sp.zhao and a serious warning to 华信."""
    g = world.grafana
    b = "incidents"
    assert await g.panel(b, "Incidents (selected range)") == [{"value": D("3")}]
    assert await g.panel(b, "Incidents (selected range)", ONE) == [{"value": D("1")}]
    assert await g.panel(b, "Incidents (selected range)", SEVERAL) == [{"value": D("2")}]
    assert await g.panel(b, "Data leaks (selected range)") == [{"value": D("1")}]
    assert await g.panel(b, "Investigations open") == [{"value": D("1")}]
    assert await g.panel(b, "Investigations open", ONE) == [{"value": D("0")}]
    assert await g.panel(b, "Data leaks reported on time") == [{"value": D("1.0000")}]
    rows = await g.panel(b, "Incident list")
    assert [
        (r["time"], r["partner"], r["category"], r["severity"], r["hours_to_report"]) for r in rows
    ] == [
        (at(10, 20, 8), "华信科技", "data_leak", "high", D("2.0")),
        (at(10, 8, 9), "华信科技", "availability", "medium", D("3.0")),
        (at(9, 28), "云桥软件", "quality", "low", D("24.0")),
    ]
    rows = await g.panel(b, "Sanctions (selected range)")
    assert by(rows, "level", "subject_kind", "sanctions") == [
        ("serious_warning", "partner", D("1")),
        ("warning", "staff", D("1")),
    ]
    rows = await g.panel(b, "Time to report an incident by severity")
    assert by(rows, "time", "metric", "value") == ordered(
        [(SEP, "low", D("24.00")), (OCT, "high", D("2.00")), (OCT, "medium", D("3.00"))],
    )
    rows = await g.panel(b, "Incidents by category", SEVERAL)
    assert by(rows, "time", "metric", "value") == ordered(
        [(SEP, "quality", D("1")), (OCT, "availability", D("1"))]
    )
