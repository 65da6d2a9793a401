"""The procurement saga across the partner and approval processes, over HTTP
and real Kafka (issue 4 acceptance, R3.1, R5.1, R5.2):

project created -> procurement approval requested (while the approval service
is down) -> the approval service starts and catches up from `partner.events`
-> department head, Finance and CEO sign over HTTP -> `ProcurementApproved`
on `approval.events` moves the project to approved -> the contract can be
signed. Then a budget increase above the threshold goes to the Director
through the same path and comes back as the new budget.

Waits are on conditions read over HTTP (tracked state), never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from partnerledger.embedded import free_port
from shared.settings import Settings
from tests.support.auth import auth
from tests.support.infra import Infra, create_topics, drop_schemas
from tests.support.partner_flow import Flow
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

#: The processes run on the system clock: the contract is dated today (policy zone).
TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()
FIRST_DUE = TODAY + timedelta(days=120)


@contextlib.asynccontextmanager
async def services(
    infra: Infra, tmp_path: Path
) -> AsyncIterator[tuple[Settings, ServiceProcess, ServiceProcess]]:
    ports = {f"{n}_port": free_port() for n in ("partner", "approval", "docs", "kpi")}
    settings = infra.settings(**ports)  # type: ignore[arg-type]
    await create_topics(settings)
    env = infra.env(settings)
    operator = auth(settings, "operator", "director")
    partner, approval = (
        ServiceProcess(name, env, settings.port_of(name), tmp_path / "logs", headers=operator)
        for name in ("partner", "approval")
    )
    try:
        yield settings, partner, approval
    finally:
        partner.stop()
        approval.stop()
        await drop_schemas(settings)


async def awaiting_approval(flow: Flow, n: int) -> tuple[str, str]:
    """A project of a newly qualified partner whose PM asked for procurement
    approval: (project id, approval request id)."""
    partner_id = await flow.qualified_partner(n)
    project_id = await flow.planned_project(partner_id, FIRST_DUE)
    project = await flow.ok(
        "POST",
        f"/v1/projects/{project_id}/procurement-approval-requests",
        flow.pm,
        json={"justification": "年度运维外包"},
    )
    assert project["status"] == "awaiting_approval"
    request_id: str = project["approval_request_id"]
    return project_id, request_id


async def wait_opened(client: httpx.AsyncClient, request_id: str, headers: dict[str, str]) -> None:
    """Until the approval service has opened the request (read from partner.events)."""

    async def opened() -> bool:
        response = await client.get(f"/v1/approvals/{request_id}", headers=headers)
        return response.status_code == 200

    await wait_until(opened, within=90, what=f"approval request {request_id} to be opened")


async def get(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> Any:
    response = await client.get(url, headers=headers)
    response.raise_for_status()
    return response.json()


async def test_procurement_saga_with_the_approval_service_down_at_request_time(
    infra: Infra, tmp_path: Path
) -> None:
    """R3.1: three signatures over HTTP drive the partner service through
    Kafka; the approval service catches up with a request raised while it was down."""
    async with services(infra, tmp_path) as (settings, partner, approval):
        partner.start()
        await partner.wait_ready()
        async with (
            httpx.AsyncClient(base_url=partner.url, timeout=30) as pc,
            httpx.AsyncClient(base_url=approval.url, timeout=30) as ac,
        ):
            flow = Flow(pc, settings, app=None)  # type: ignore[arg-type]
            project_id, request_id = await awaiting_approval(flow, 1)

            # The approval service starts only now and reads what it missed.
            approval.start()
            await approval.wait_ready()
            dept_head = auth(settings, "dh.li", "dept_head")
            await wait_opened(ac, request_id, dept_head)
            request = await get(ac, f"/v1/approvals/{request_id}", dept_head)
            assert request["project_id"] == project_id
            assert request["requested_by"] == "pm.wang"
            assert request["source"] == "partner.events"
            assert request["amount"] == "1000000.00"

            signers = [
                ("dh.li", "dept_head", "department_head"),
                ("fin.zhao", "finance", "finance"),
                ("ceo.chen", "ceo", "ceo"),
            ]
            for user, role, step in signers:
                response = await ac.post(
                    f"/v1/approvals/{request_id}/decisions",
                    headers=auth(settings, user, role),
                    json={"decision": "approve", "step": step, "reason": "同意"},
                )
                assert response.status_code == 200, response.text
            request = await get(ac, f"/v1/approvals/{request_id}", dept_head)
            assert request["state"] == "approved"
            assert [h["decided_by"] for h in request["history"]] == [u for u, _, _ in signers]

            async def project_status() -> str:
                body = await get(pc, f"/v1/projects/{project_id}", flow.pm)
                status: str = body["status"]
                return status

            async def approved() -> bool:
                return await project_status() == "approved"

            await wait_until(approved, within=90, what="the partner service to apply approval")
            project = await get(pc, f"/v1/projects/{project_id}", flow.pm)
            assert project["approved_budget"] == "1000000.00"

            # R3.1: only now can the contract be signed.
            signed = await flow.ok(
                "POST",
                f"/v1/projects/{project_id}/contract",
                flow.pm,
                json=flow.contract_body(TODAY),
            )
            assert signed["status"] == "contracted"

            # R5.2 -> R5.1: a budget increase above the threshold goes to the
            # Director in the approval service and comes back approved.
            changed = await flow.ok(
                "POST",
                f"/v1/projects/{project_id}/budget",
                flow.pm,
                json={"new_budget": "1200000.00", "reason": "扩容"},
            )
            (pending,) = changed["pending_decisions"]
            director = auth(settings, "director.zhang", "director")

            async def decision_opened() -> bool:
                response = await ac.get(f"/v1/approvals/{pending['decision_id']}", headers=director)
                return response.status_code == 200

            await wait_until(decision_opened, within=90, what="the Director decision to open")
            inbox = await get(ac, "/v1/approvals/inbox", director)

            async def in_inbox() -> bool:
                nonlocal inbox
                inbox = await get(ac, "/v1/approvals/inbox", director)
                return any(i["id"] == pending["decision_id"] for i in inbox["items"])

            await wait_until(in_inbox, within=30, what="the decision in the Director's inbox")
            response = await ac.post(
                f"/v1/approvals/{pending['decision_id']}/decisions",
                headers=director,
                json={"decision": "approve", "reason": "同意扩容"},
            )
            assert response.status_code == 200, response.text

            async def budget_moved() -> bool:
                body = await get(pc, f"/v1/projects/{project_id}", flow.pm)
                return bool(body["budget"] == "1200000.00" and not body["pending_decisions"])

            await wait_until(budget_moved, within=90, what="the partner service to apply it")


async def test_a_rejection_reaches_the_project(infra: Infra, tmp_path: Path) -> None:
    """R3.1: a step rejecting (with its reason) ends the request, and the
    project learns it; signing a contract is then refused. The approval service
    killed after it has read, and restarted, catches up with what it missed."""
    async with services(infra, tmp_path) as (settings, partner, approval):
        partner.start()
        approval.start()
        await asyncio.gather(partner.wait_ready(), approval.wait_ready())
        async with (
            httpx.AsyncClient(base_url=partner.url, timeout=30) as pc,
            httpx.AsyncClient(base_url=approval.url, timeout=30) as ac,
        ):
            flow = Flow(pc, settings, app=None)  # type: ignore[arg-type]
            project_id, request_id = await awaiting_approval(flow, 2)
            finance = auth(settings, "fin.zhao", "finance")
            dept_head = auth(settings, "dh.li", "dept_head")
            await wait_opened(ac, request_id, dept_head)

            # Down again after it has read (and stored offsets): kill -9, a request
            # raised meanwhile, a restart: it resumes from its offsets and opens it.
            approval.kill()
            approval.stop()
            _, missed = await awaiting_approval(flow, 3)
            approval.start()
            await approval.wait_ready()
            await wait_opened(ac, missed, dept_head)
            for headers, decision in ((dept_head, "approve"), (finance, "reject")):
                response = await ac.post(
                    f"/v1/approvals/{request_id}/decisions",
                    headers=headers,
                    json={"decision": decision, "reason": "预算不足"},
                )
                assert response.status_code == 200, response.text

            async def rejected() -> bool:
                body = await get(pc, f"/v1/projects/{project_id}", flow.pm)
                return bool(body["status"] == "procurement_rejected")

            await wait_until(rejected, within=90, what="the project to learn the rejection")
            response = await pc.post(
                f"/v1/projects/{project_id}/contract",
                headers=flow.pm,
                json=flow.contract_body(TODAY),
            )
            assert response.status_code == 409
            assert response.json()["rule"] == "R3.1"
