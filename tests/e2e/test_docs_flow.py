"""The docs service in the pipeline, as real processes over HTTP and Kafka
(issue 5 acceptance, R4.3, R4.2, R4.4, R4.1; issue 6: R3.5 counted by kpi):

a project is created, approved in three steps and its contract signed in the
partner service -> the docs service reads `partner.events`: the project's
registered name, the report schedule from the contract's start, the kickoff
meeting with its minutes clock -> a monthly report and the kickoff minutes
are uploaded over HTTP under their R4.4 names and counted on time -> the
contract is archived and only the Director reads it -> the facts are on
`docs.events` for every other system -> the kpi process counts the
obligations met, and explains the figure with the events of all three.

Waits are on conditions read over HTTP or from the topic, never fixed sleeps.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from partnerledger.embedded import free_port
from tests.support.auth import auth
from tests.support.events import read_topic
from tests.support.infra import Infra, create_topics, drop_schemas
from tests.support.partner_flow import SPECIALIST, Flow
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

NOW = datetime.now(ZoneInfo("Asia/Shanghai"))
TODAY = NOW.date()
NAME = "核心系统运维项目"


async def get(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> Any:
    response = await client.get(url, headers=headers)
    response.raise_for_status()
    return response.json()


async def test_contracted_project_owes_reports_and_minutes_across_services(
    infra: Infra, tmp_path: Path
) -> None:
    """R4.3, R4.2, R4.4, R4.1: the docs service learns projects, contracts and
    kickoffs from Kafka and files what they make due over HTTP."""
    ports = {f"{n}_port": free_port() for n in ("partner", "approval", "docs", "kpi")}
    settings = infra.settings(**ports)  # type: ignore[arg-type]
    await create_topics(settings)
    env = infra.env(settings)
    operator = auth(settings, "operator", "director")
    procs = {
        name: ServiceProcess(name, env, settings.port_of(name), tmp_path / "logs", headers=operator)
        for name in ("partner", "approval", "docs", "kpi")
    }
    try:
        for proc in procs.values():
            proc.start()
        for proc in procs.values():
            await proc.wait_ready()
        async with (
            httpx.AsyncClient(base_url=procs["partner"].url, timeout=30) as pc,
            httpx.AsyncClient(base_url=procs["approval"].url, timeout=30) as ac,
            httpx.AsyncClient(base_url=procs["docs"].url, timeout=30) as dc,
            httpx.AsyncClient(base_url=procs["kpi"].url, timeout=30) as kc,
        ):
            flow = Flow(pc, settings, app=None)  # type: ignore[arg-type]
            partner_id = await flow.qualified_partner(1)
            project_id = await flow.planned_project(partner_id, TODAY + timedelta(days=120))
            asked = await flow.ok(
                "POST",
                f"/v1/projects/{project_id}/procurement-approval-requests",
                flow.pm,
                json={"justification": "年度运维外包"},
            )
            request_id = asked["approval_request_id"]
            dept_head = auth(settings, "dh.li", "dept_head")

            async def opened() -> bool:
                r = await ac.get(f"/v1/approvals/{request_id}", headers=dept_head)
                return r.status_code == 200

            await wait_until(opened, within=90, what="the approval request to open")
            for user, role, step in (
                ("dh.li", "dept_head", "department_head"),
                ("fin.zhao", "finance", "finance"),
                ("ceo.chen", "ceo", "ceo"),
            ):
                r = await ac.post(
                    f"/v1/approvals/{request_id}/decisions",
                    headers=auth(settings, user, role),
                    json={"decision": "approve", "step": step, "reason": "同意"},
                )
                assert r.status_code == 200, r.text

            async def approved() -> bool:
                body = await get(pc, f"/v1/projects/{project_id}", flow.pm)
                return bool(body["status"] == "approved")

            await wait_until(approved, within=90, what="the project to be approved")
            await flow.ok(
                "POST",
                f"/v1/projects/{project_id}/contract",
                flow.pm,
                json=flow.contract_body(TODAY),
            )
            await flow.ok(
                "POST", f"/v1/projects/{project_id}/kickoff", flow.pm, json=flow.kickoff_body(TODAY)
            )

            director = auth(settings, "director.zhang", "director")
            pm = flow.pm
            specialist = auth(settings, SPECIALIST, "specialist")

            async def scheduled() -> bool:
                r = await dc.get(f"/v1/schedules/{project_id}", headers=director)
                return r.status_code == 200

            await wait_until(scheduled, within=90, what="the docs service to open the schedule")
            schedule = await get(dc, f"/v1/schedules/{project_id}", director)
            assert schedule["project_name"] == NAME and schedule["state"] == "open"
            monthly = next(p for p in schedule["open_periods"] if p["kind"] == "monthly")
            assert monthly["period"] == f"{TODAY:%Y-%m}"

            # R4.3, R4.4: the month's report, named in the policy's own form.
            name = f"{NAME}-{TODAY.year}年{TODAY.month}月-月报"
            r = await dc.post(
                "/v1/documents",
                headers=specialist,
                data={
                    "type": "monthly_report",
                    "period": f"{TODAY:%Y-%m}",
                    "project_id": project_id,
                },
                files={"file": (f"{name}.docx", "本月运维情况".encode(), "application/msword")},
            )
            assert r.status_code == 201, r.text
            assert r.json()["filing"]["report"] == "filed"

            # R4.2: the kickoff recorded in the partner service is a meeting here.
            async def kickoff_meeting() -> list[Any]:
                page = await get(dc, f"/v1/meetings?project_id={project_id}", director)
                items: list[Any] = page["items"]
                return items

            await wait_until(kickoff_meeting, within=90, what="the kickoff meeting in docs")
            (meeting,) = await kickoff_meeting()
            assert meeting["kind"] == "kickoff" and meeting["minutes_status"] == "due"
            minutes_name = f"{NAME}-{TODAY:%Y-%m-%d}-启动会纪要"
            r = await dc.post(
                "/v1/documents",
                headers=specialist,
                data={
                    "type": "kickoff_minutes",
                    "period": TODAY.isoformat(),
                    "project_id": project_id,
                    "meeting_id": meeting["id"],
                    "name": minutes_name,
                },
                files={"file": ("minutes.pdf", b"%PDF-1.7 kickoff", "application/pdf")},
            )
            assert r.status_code == 201, r.text
            assert r.json()["filing"]["minutes_of"] == meeting["id"]

            # R4.1: the contract is archived; the PM sees that it exists, not its text.
            contract_text = "甲方：某银行 乙方：某外包公司 保密条款".encode() * 50
            r = await dc.post(
                "/v1/documents",
                headers=pm,
                data={
                    "type": "合同",
                    "period": TODAY.isoformat(),
                    "project_id": project_id,
                    "name": f"{NAME}-{TODAY:%Y-%m-%d}-合同",
                },
                files={"file": ("contract.pdf", contract_text, "application/pdf")},
            )
            assert r.status_code == 201, r.text
            contract = r.json()
            assert contract["contract_number"] == "HT-2026-001"
            assert (
                await dc.get(f"/v1/documents/{contract['id']}/content", headers=pm)
            ).status_code == 403
            read = await dc.get(f"/v1/documents/{contract['id']}/content", headers=director)
            assert read.status_code == 200 and read.content == contract_text

            # Every fact is on docs.events for the other systems (KPI, audit).
            wanted = {
                "ReportScheduleOpened",
                "ReportFiled",
                "MeetingHeld",
                "MinutesFiled",
                "ContractAccessDenied",
                "ContractDocumentRead",
            }

            async def published() -> bool:
                records = await read_topic(settings, settings.topic_of("docs"))
                types = {json.loads(r.value)["event_type"] for r in records}
                return wanted <= types

            await wait_until(published, within=90, what="the docs events on Kafka")
            records = await read_topic(settings, settings.topic_of("docs"))
            for record in records:
                assert contract_text[:60] not in record.value, "contract text on Kafka"

            # R3.5, R6.1: the kpi process counts the obligations the three
            # services recorded, from their topics: three approval steps, the
            # kickoff, the monthly report and the kickoff minutes, all met
            # (the weekly and quarterly reports are not due yet: not counted).
            auditor = auth(settings, "audit.qian", "auditor")
            compliance = f"/v1/kpi/metrics/compliance?period=all&project_id={project_id}"

            async def counted() -> bool:
                body = await get(kc, compliance + "&group_by=label", auditor)
                return sum(row["denominator"] for row in body["rows"]) >= 6

            await wait_until(counted, within=90, what="the kpi service to count the obligations")
            by_label = await get(kc, compliance + "&group_by=label", auditor)
            assert {
                r["group"]["label"]: (r["numerator"], r["denominator"]) for r in by_label["rows"]
            } == {
                "approval_step": (3, 3),
                "kickoff": (1, 1),
                "report": (1, 1),
                "minutes": (1, 1),
            }
            assert (await get(kc, compliance, auditor))["rows"][0]["value"] == 1.0
            why = await get(
                kc,
                f"/v1/kpi/metrics/compliance/explain?period=all&project_id={project_id}",
                auditor,
            )
            assert {e["source"] for e in why["events"]} == {"partner", "approval", "docs"}
            assert {e["event_type"] for e in why["events"]} >= {
                "ApprovalStepApproved",
                "KickoffHeld",
                "ReportFiled",
                "MinutesFiled",
            }
    finally:
        for proc in procs.values():
            proc.stop()
        await drop_schemas(settings)
