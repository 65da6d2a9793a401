"""The docs service as its clients see it (real PostgreSQL, in process, a
manual clock), with the hands that feed it partner events and move its time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx

from services.docs.application import DocsApplication
from services.docs.consumers.projects import project_subscription
from services.docs.domain.schedule import schedule_id
from shared.clock import ManualClock
from shared.envelope import ActorRef, EventEnvelope
from shared.settings import Settings
from tests.support.apps import RunningService, fire, settle
from tests.support.auth import auth

SHANGHAI = timedelta(hours=8)

PM = "pm.wang"
OTHER_PM = "pm.li"
SPECIALIST = "sp.zhao"
OTHER_SPECIALIST = "sp.qian"
DIRECTOR = "director.zhang"
AUDITOR = "auditor.sun"
DEPT_HEAD = "dh.zhou"
FINANCE = "fin.zhao"
CEO = "ceo.chen"
PARTNER_USER = "vendor.liu"
OTHER_PARTNER_USER = "vendor.ma"
PROJECT_NAME = "核心系统运维项目"


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A wall-clock time in Asia/Shanghai, as UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC) - SHANGHAI


def end_of_day(year: int, month: int, day: int) -> datetime:
    """The last instant of a day in Asia/Shanghai (R3.5 deadlines), as UTC."""
    return local(year, month, day) + timedelta(days=1) - timedelta(microseconds=1)


class DocsApi:
    def __init__(self, svc: RunningService, settings: Settings, clock: ManualClock) -> None:
        self.svc = svc
        self.client: httpx.AsyncClient = svc.client
        self.settings = settings
        self.clock = clock
        app = svc.runtime.application
        assert isinstance(app, DocsApplication)
        self.app = app
        self.partner_id = uuid4()
        self.pm = self.token(PM, "project_manager")
        self.other_pm = self.token(OTHER_PM, "project_manager")
        self.specialist = self.token(SPECIALIST, "specialist")
        self.other_specialist = self.token(OTHER_SPECIALIST, "specialist")
        self.director = self.token(DIRECTOR, "director")
        self.auditor = self.token(AUDITOR, "auditor")
        self.dept_head = self.token(DEPT_HEAD, "dept_head")
        self.finance = self.token(FINANCE, "finance")
        self.ceo = self.token(CEO, "ceo")
        self.other_partner_id = uuid4()
        self.partner = self.token(PARTNER_USER, "partner", str(self.partner_id))
        self.other_partner = self.token(OTHER_PARTNER_USER, "partner", str(self.other_partner_id))

    def token(self, user: str, role: str, partner_id: str | None = None) -> dict[str, str]:
        return auth(self.settings, user, role, partner_id)

    # -- partner events -------------------------------------------------------------------

    def partner_event(
        self, event_type: str, project_id: UUID, payload: dict[str, Any]
    ) -> EventEnvelope:
        now = self.clock.now()
        return EventEnvelope(
            event_id=uuid4(),
            event_type=event_type,
            schema_version=1,
            aggregate_type="Project",
            aggregate_id=project_id,
            aggregate_version=1,
            occurred_at=now,
            recorded_at=now,
            actor=ActorRef(user_id=PM, role="project_manager"),
            correlation_id=uuid4(),
            causation_id=None,
            payload=payload,
        )

    async def deliver(self, event: EventEnvelope) -> None:
        handler = project_subscription(self.app).handlers[event.event_type]
        async with self.svc.runtime.pool.acquire() as conn, conn.transaction():
            await handler(conn, event)

    def contract_signed(
        self, project_id: UUID, signed_on: date, *, starts_on: date | None = None
    ) -> EventEnvelope:
        """The partner service's ContractSigned, as it arrives from `partner.events`."""
        return self.partner_event(
            "ContractSigned",
            project_id,
            {
                "partner_id": str(self.partner_id),
                "contract_number": "HT-2026-001",
                "value": "900000.00",
                "currency": "CNY",
                "signed_on": signed_on.isoformat(),
                "starts_on": (starts_on or signed_on).isoformat(),
                "ends_on": date(signed_on.year + 1, 12, 31).isoformat(),
                "sla_terms": [],
                "third_party_acceptor": "某第三方检测机构",
                "kickoff_due_at": datetime(
                    signed_on.year, signed_on.month, signed_on.day, tzinfo=UTC
                ).isoformat(),
            },
        )

    def kickoff_held(self, project_id: UUID, held_on: date, *, late: bool = False) -> EventEnvelope:
        """The partner service's KickoffHeld (R3.2): goals, timetable, responsibilities."""
        return self.partner_event(
            "KickoffHeld",
            project_id,
            {
                "held_on": held_on.isoformat(),
                "goals": ["核心系统 7x24 可用"],
                "timetable": [{"milestone": "上线", "due_on": "2027-03-31"}],
                "responsibilities": [{"who": PM, "what": "进度与质量"}],
                "due_at": (
                    datetime(held_on.year, held_on.month, held_on.day, tzinfo=UTC)
                ).isoformat(),
                "late": late,
            },
        )

    async def close(self, project_id: UUID, outcome: str = "completed") -> None:
        """The partner service closed the project (ProjectClosed)."""
        await self.deliver(
            self.partner_event(
                "ProjectClosed",
                project_id,
                {
                    "outcome": outcome,
                    "reason": "验收通过，项目结束",
                    "budget": "1000000.00",
                    "costs_total": "930000.00",
                },
            )
        )
        await self.settle()

    async def project(
        self,
        name: str = PROJECT_NAME,
        *,
        signed_on: date | None = None,
        starts_on: date | None = None,
        manager: str = PM,
        specialists: tuple[str, ...] = (SPECIALIST,),
    ) -> UUID:
        """A project created in the partner service, contracted if `signed_on`."""
        project_id = uuid4()
        await self.deliver(
            self.partner_event(
                "ProjectCreated",
                project_id,
                {
                    "title": name,
                    "scope": "7x24 运维",
                    "budget": "1000000.00",
                    "currency": "CNY",
                    "partner_id": str(self.partner_id),
                    "project_manager": manager,
                    "specialists": list(specialists),
                    "milestones": [],
                },
            )
        )
        if signed_on is not None:
            await self.sign(project_id, signed_on, starts_on=starts_on)
        return project_id

    async def sign(
        self, project_id: UUID, signed_on: date, *, starts_on: date | None = None
    ) -> None:
        await self.deliver(
            self.partner_event(
                "ContractSigned",
                project_id,
                {
                    "partner_id": str(self.partner_id),
                    "contract_number": "HT-2026-001",
                    "value": "900000.00",
                    "currency": "CNY",
                    "signed_on": signed_on.isoformat(),
                    "starts_on": (starts_on or signed_on).isoformat(),
                    "ends_on": date(signed_on.year + 1, 12, 31).isoformat(),
                    "sla_terms": [],
                    "third_party_acceptor": "某第三方检测机构",
                    "kickoff_due_at": datetime(
                        signed_on.year, signed_on.month, signed_on.day, tzinfo=UTC
                    ).isoformat(),
                },
            )
        )
        await self.settle()

    # -- HTTP ---------------------------------------------------------------------------------

    async def upload(
        self,
        headers: dict[str, str],
        *,
        name: str,
        doc_type: str,
        period: str,
        project_id: UUID | None,
        content: bytes = b"report body",
        media_type: str = "application/pdf",
        extra: dict[str, str] | None = None,
        file_name: str | None = None,
    ) -> httpx.Response:
        data = {"type": doc_type, "period": period, "name": name, **(extra or {})}
        if project_id is not None:
            data["project_id"] = str(project_id)
        files = {"file": (file_name or f"{name}.pdf", content, media_type)}
        return await self.client.post("/v1/documents", headers=headers, data=data, files=files)

    async def contents(self) -> int:
        """Rows of stored file content."""
        n: int = await self.svc.runtime.pool.fetchval("SELECT count(*) FROM contents")
        return n

    async def upload_refused(
        self, status: int, headers: dict[str, str], **kw: Any
    ) -> dict[str, Any]:
        """An upload refused with `status` as problem+json: no event, no content stored."""
        before, stored = self.app.log_head(), await self.contents()
        response = await self.upload(headers, **kw)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert self.app.log_head() == before, "a refused upload stored an event"
        assert await self.contents() == stored, "a refused upload stored content"
        problem: dict[str, Any] = response.json()
        return problem

    async def filed(self, headers: dict[str, str], **kw: Any) -> dict[str, Any]:
        """An upload accepted (201): the document as answered."""
        response = await self.upload(headers, **kw)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

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

    # -- time ---------------------------------------------------------------------------------

    async def settle(self) -> None:
        await settle(self.svc)

    async def fire(self) -> int:
        return await fire(self.svc)

    async def fire_at(self, moment: datetime) -> int:
        """Moves the clock to `moment` and records what it made overdue."""
        self.clock.set(moment)
        return await self.fire()

    def types(self, aggregate_id: UUID | str) -> list[str]:
        return [e.event_type for e in self.app.history(UUID(str(aggregate_id)))]

    def payloads(self, aggregate_id: UUID | str, event_type: str) -> list[dict[str, Any]]:
        return [
            e.payload
            for e in self.app.history(UUID(str(aggregate_id)))
            if e.event_type == event_type
        ]

    def schedule_types(self, project_id: UUID) -> list[str]:
        return self.types(schedule_id(project_id))

    def schedule_payloads(self, project_id: UUID, event_type: str) -> list[dict[str, Any]]:
        return self.payloads(schedule_id(project_id), event_type)
