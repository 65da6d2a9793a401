"""Drives the partner service over HTTP to a given point of a project's life,
the way a client would (tokens per role, the real API)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx

from services.partner.application import PartnerApplication
from shared.clock import ManualClock
from shared.domain import Actor
from shared.settings import Settings
from tests.support.auth import auth
from tests.support.data import registration

PM = "pm.wang"
SPECIALIST = "spec.li"
THIRD_PARTY = "福建省软件测评中心"


def scores(value: int = 4) -> dict[str, int]:
    return {
        c: value
        for c in (
            "technical_capability",
            "qualifications",
            "financial_health",
            "information_security",
            "references",
        )
    }


def project_body(partner_id: str, first_due: date, *, acceptance: bool = True) -> dict[str, Any]:
    """A project of the partner's, with its go-live milestone M1 due on
    `first_due` and (with `acceptance`) its acceptance M2 sixty days later."""
    milestones = [
        {
            "milestone_id": "M1",
            "name": "上线",
            "deliverable": "系统上线",
            "due_on": str(first_due),
        },
        {
            "milestone_id": "M2",
            "name": "验收",
            "deliverable": "运维报告",
            "due_on": str(first_due + timedelta(days=60)),
        },
    ]
    return {
        "partner_id": partner_id,
        "title": "核心系统运维项目",
        "scope": "核心业务系统7x24运维",
        "budget": "1000000.00",
        "currency": "CNY",
        "project_manager": PM,
        "specialists": [SPECIALIST],
        "milestones": milestones if acceptance else milestones[:1],
    }


class Flow:
    def __init__(self, client: httpx.AsyncClient, settings: Settings, app: PartnerApplication):
        self.client = client
        self.settings = settings
        self.app = app
        self.pool: Any = None  # the service's asyncpg pool, when in process
        self.director = auth(settings, "director.zhang", "director")
        self.pm = auth(settings, PM, "project_manager")
        self.specialist = auth(settings, SPECIALIST, "specialist")

    def advance_to(self, day: date, hour: int = 18) -> None:
        """Moves the service's (manual) clock forward to `day` local time, so
        that facts dated that day are in the past; never moves it back."""
        clock = self.app.clock
        assert isinstance(clock, ManualClock), "the flow drives a service on a manual clock"
        moment = datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=8)
        if moment > clock.now():
            clock.set(moment)

    async def ok(self, method: str, url: str, headers: dict[str, str], **kw: Any) -> Any:
        response = await self.client.request(method, url, headers=headers, **kw)
        assert response.status_code in (200, 201), f"{method} {url}: {response.text}"
        return response.json()

    async def qualified_partner(self, n: int, *, expires_on: date | None = None) -> str:
        partner = await self.ok("POST", "/v1/partners", self.pm, json=registration(n))
        certificate = {
            "name": "ISO/IEC 27001",
            "certificate_no": f"CN-{n}",
            "expires_on": (expires_on or date(2028, 6, 30)).isoformat(),
        }
        await self.ok(
            "POST",
            f"/v1/partners/{partner['id']}/evaluations",
            self.specialist,
            json={"scores": scores(), "qualifications": [certificate], "summary": "合格"},
        )
        await self.ok(
            "POST",
            f"/v1/partners/{partner['id']}/qualification",
            self.director,
            json={"reason": "尽职调查通过"},
        )
        partner_id: str = partner["id"]
        return partner_id

    def project_body(self, partner_id: str, first_due: date) -> dict[str, Any]:
        return project_body(partner_id, first_due)

    async def planned_project(self, partner_id: str, first_due: date) -> str:
        project = await self.ok(
            "POST", "/v1/projects", self.pm, json=self.project_body(partner_id, first_due)
        )
        project_id: str = project["id"]
        return project_id

    async def approved_project(self, partner_id: str, first_due: date) -> str:
        """Approval outcome applied directly (the Kafka path has its own test)."""
        project_id = await self.planned_project(partner_id, first_due)
        project = await self.ok(
            "POST",
            f"/v1/projects/{project_id}/procurement-approval-requests",
            self.pm,
            json={"justification": "年度运维外包"},
        )
        ctx = self.app.context(Actor("ceo.chen", "ceo"))
        assert self.app.record_procurement_outcome(
            ctx,
            UUID(project_id),
            request_id=UUID(project["approval_request_id"]),
            approved=True,
            decided_at=self.app.clock.now(),
        )
        return project_id

    def contract_body(self, signed_on: date) -> dict[str, Any]:
        return {
            "contract_number": "HT-2026-001",
            "value": "980000.00",
            "signed_on": str(signed_on),
            "starts_on": str(signed_on),
            "ends_on": str(signed_on + timedelta(days=365)),
            "sla_terms": ["可用性 99.9%"],
            "third_party_acceptor": THIRD_PARTY,
        }

    async def contracted_project(self, partner_id: str, signed_on: date) -> str:
        project_id = await self.approved_project(partner_id, signed_on + timedelta(days=30))
        self.advance_to(signed_on, hour=9)
        await self.ok(
            "POST",
            f"/v1/projects/{project_id}/contract",
            self.pm,
            json=self.contract_body(signed_on),
        )
        return project_id

    def kickoff_body(self, held_on: date) -> dict[str, Any]:
        return {
            "held_on": str(held_on),
            "goals": ["稳定运行"],
            "timetable": "12月上线，次年2月验收",
            "responsibilities": [{"person": PM, "duty": "总体负责"}],
        }

    async def project_in_progress(self, partner_id: str, signed_on: date) -> str:
        project_id = await self.contracted_project(partner_id, signed_on)
        self.advance_to(signed_on + timedelta(days=2))
        await self.ok(
            "POST",
            f"/v1/projects/{project_id}/kickoff",
            self.pm,
            json=self.kickoff_body(signed_on + timedelta(days=2)),
        )
        return project_id
