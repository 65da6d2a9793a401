"""The four services in process, driven through their APIs: a small client
over the running services, the request bodies the scenarios share, and the
procurement saga from a qualified partner to a project's first weekly report
(partner -> approval, three signatures -> partner -> docs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from services.partner.application import PartnerApplication
from shared.clock import ManualClock
from shared.settings import Settings
from tests.support.apps import RunningService
from tests.support.auth import auth
from tests.support.docs_api import PROJECT_NAME, DocsApi
from tests.support.partner_flow import PM, SPECIALIST, Flow
from tests.support.waiting import consumer_caught_up, wait_until

#: The three signatures of a procurement request: (user, role, step).
SIGNATURES = (
    ("dh.li", "dept_head", "department_head"),
    ("fin.zhao", "finance", "finance"),
    ("ceo.chen", "ceo", "ceo"),
)


@dataclass
class FourServices:
    """The four services in process, by name, called as a client would."""

    running: dict[str, RunningService]
    settings: Settings

    def headers(self, user: str, role: str) -> dict[str, str]:
        return auth(self.settings, user, role)

    async def call(
        self, service: str, method: str, url: str, headers: dict[str, str], body: Any = None
    ) -> Any:
        kw: dict[str, Any] = {} if body is None else {"json": body}
        return await self.running[service].client.request(method, url, headers=headers, **kw)

    async def ok(
        self, service: str, method: str, url: str, headers: dict[str, str], body: Any = None
    ) -> Any:
        response = await self.call(service, method, url, headers, body)
        assert response.status_code in (200, 201), f"{service} {method} {url}: {response.text}"
        return response.json()

    async def consumed(self, producer: str, consumer: str, name: str) -> None:
        group = f"{self.settings.consumer_group_of(consumer)}.{name}"

        async def check() -> bool:
            return consumer_caught_up(
                await self.running[producer].status(),
                await self.running[consumer].status(),
                group,
            )

        await wait_until(check, what=f"{group} applied {producer}.events")

    async def explain(self, emergency_id: str, headers: dict[str, str]) -> Any:
        """The explanation of an emergency action (R5.3)."""
        return await self.ok(
            "approval",
            "POST",
            f"/v1/emergencies/{emergency_id}/explanation",
            headers,
            {"explanation": "硬盘故障"},
        )

    def flow(self) -> Flow:
        """The partner service's flow (a qualified partner, a planned project)."""
        partner_app = self.running["partner"].runtime.application
        assert isinstance(partner_app, PartnerApplication)
        return Flow(self.running["partner"].client, self.settings, partner_app)


# -- request bodies -------------------------------------------------------------------------------


def procurement_body(project_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "procurement",
        "title": "核心系统运维外包",
        "amount": "250000.00",
        "currency": "CNY",
        "justification": "7x24 运维，现有人手不足",
    }
    if project_id is not None:
        body["project_id"] = project_id
    return body


def emergency_body(
    acted_at: datetime,
    project_id: str | None = None,
    resources_changed: list[str] | None = None,
) -> dict[str, Any]:
    """An emergency action (R5.3), of a project when one is named."""
    body: dict[str, Any] = {} if project_id is None else {"project_id": project_id}
    return {
        **body,
        "what_happened": "生产数据库服务器宕机",
        "action_taken": "临时调配两名工程师抢修",
        "resources_changed": ["工程师 x2"] if resources_changed is None else resources_changed,
        "acted_at": acted_at.isoformat(),
    }


def meeting_body(held_at: datetime, attendees: list[str]) -> dict[str, Any]:
    """A weekly department meeting with one resolution (R5.5)."""
    return {
        "kind": "weekly_department",
        "title": "部门周例会",
        "held_at": held_at.isoformat(),
        "attendees": attendees,
        "resolutions": ["完成供应商季度评审"],
    }


def staff_body(
    user: str, role: str, superior: str | None, joined_on: str = "2026-10-01"
) -> dict[str, Any]:
    """A member of staff (R2.3), named after the user."""
    return {
        "user_id": user,
        "name": f"员工 {user}",
        "role": role,
        "superior": superior,
        "joined_on": joined_on,
    }


# -- the procurement saga -------------------------------------------------------------------------


@dataclass(frozen=True)
class Saga:
    partner_id: str
    project_id: str
    document: dict[str, Any]


async def procurement_saga(
    svcs: FourServices,
    clock: ManualClock,
    tick: Callable[[], object],
    *,
    tick_before_request: bool,
    tick_each_signature: bool,
) -> Saga:
    """A qualified partner's project from planning to its first weekly report,
    through the real saga: partner -> approval (three signatures) -> partner
    (contract) -> docs (report schedule, weekly report filed). `tick` moves
    the clock on: before the procurement request when `tick_before_request`,
    before each signature (or once before them all), before the contract and
    before the report."""
    flow = svcs.flow()
    pm = svcs.headers(PM, "project_manager")
    partner_id = await flow.qualified_partner(1)
    project_id = await flow.planned_project(partner_id, date(2026, 12, 31))
    if tick_before_request:
        tick()
    project = await svcs.ok(
        "partner",
        "POST",
        f"/v1/projects/{project_id}/procurement-approval-requests",
        pm,
        {"justification": "年度运维外包"},
    )
    await svcs.consumed("partner", "approval", "requests")
    rid = project["approval_request_id"]
    if not tick_each_signature:
        tick()
    for user, role, step in SIGNATURES:
        if tick_each_signature:
            tick()
        await svcs.ok(
            "approval",
            "POST",
            f"/v1/approvals/{rid}/decisions",
            svcs.headers(user, role),
            {"decision": "approve", "step": step},
        )
    await svcs.consumed("approval", "partner", "approvals")
    tick()
    await svcs.ok(
        "partner",
        "POST",
        f"/v1/projects/{project_id}/contract",
        pm,
        flow.contract_body(date(2026, 11, 23)),
    )
    await svcs.consumed("partner", "docs", "projects")
    tick()
    docs = DocsApi(svcs.running["docs"], svcs.settings, clock)
    document = await docs.filed(
        svcs.headers(SPECIALIST, "specialist"),
        name=f"{PROJECT_NAME}-2026年11月-周报",
        doc_type="weekly_report",
        period="2026-W48",
        project_id=UUID(project_id),
    )
    return Saga(partner_id, project_id, document)
