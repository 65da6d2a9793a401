"""Load for fault tests (issue 9): a few concurrent asyncio clients issuing
real commands over HTTP to the four service processes while faults happen.

Every command carries an `Idempotency-Key` (DESIGN.md section 6) and is
retried with the same key while its service is unreachable or answers 5xx,
so a command whose answer was lost in a crash is answered on the retry with
what it stored, never applied twice. Every command answered 2xx is recorded
with the aggregate it changed and the version it produced: after recovery,
each must be in its service's event store (DESIGN.md section 2, step 2:
"a crash never loses an event").

The clients:
- project sagas (partner, approval over Kafka, docs over Kafka): a partner is
  registered, evaluated and qualified (R2.1); a project is planned with it, a
  complaint received (R6.1), procurement approval requested and signed by
  department head, Finance and CEO on the approval service (R3.1); once
  ProcurementApproved came back over approval.events, the contract is signed
  (the docs service opens the report schedule, R4.3) and the kickoff held
  (the docs service records the kickoff meeting, R3.2/R4.2); a task follows;
- emergencies (approval, R5.3): an emergency action and its explanation;
- department meetings (docs, R5.4/R5.5/R4.2): a meeting and its minutes;
- staff (kpi, R2.2/R2.3): specialists join the department.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.settings import Settings
from tests.support.auth import auth
from tests.support.data import registration
from tests.support.partner_flow import PM, SPECIALIST, THIRD_PARTY, scores

DIRECTOR = "director.zhang"
SHANGHAI = timedelta(hours=8)
#: Answers after which the same request (same key) is sent again: the service
#: was down, restarting, or lost its database or broker for a moment.
RETRY_STATUSES = frozenset({500, 502, 503, 504})
RETRY_ERRORS = (httpx.TransportError,)


@dataclass(frozen=True)
class Accepted:
    """A command answered 2xx: its events must be in the store."""

    service: str
    command: str
    aggregate_id: uuid.UUID
    version: int | None
    status: int


@dataclass(frozen=True)
class Refused:
    """A command answered 4xx (other than the retried ones): a load bug or a
    product bug; fault tests expect none."""

    service: str
    command: str
    status: int
    body: str


class Stopped(Exception):
    """The load was told to stop while a command was still unanswered."""


@dataclass
class Load:
    settings: Settings
    #: service name -> base URL (a restarted process keeps its port).
    urls: Mapping[str, str]
    sagas: int = 3
    accepted: list[Accepted] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    retries: Counter[str] = field(default_factory=Counter)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    progress: asyncio.Condition = field(default_factory=asyncio.Condition)
    numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self.stop.clear()
        for name, url in self.urls.items():
            if name not in self._clients:
                self._clients[name] = httpx.AsyncClient(base_url=url, timeout=10)
        runs = [self._saga_loop() for _ in range(self.sagas)]
        runs += [self._emergency_loop(), self._meeting_loop(), self._staff_loop()]
        self._tasks = [asyncio.create_task(run) for run in runs]

    async def finish(self) -> None:
        """Stops issuing commands; a command in flight is abandoned."""
        self.stop.set()
        async with self.progress:
            self.progress.notify_all()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def more(
        self,
        count: int,
        *,
        within: float = 60.0,
        service: str | None = None,
        command: str | None = None,
    ) -> None:
        """Waits until `count` more commands (of `service`, or named `command`,
        if given) were accepted."""

        def done() -> int:
            return sum(
                1
                for a in self.accepted
                if (service is None or a.service == service)
                and (command is None or a.command == command)
            )

        target = done() + count
        async with asyncio.timeout(within), self.progress:
            await self.progress.wait_for(lambda: done() >= target)

    # -- one command ----------------------------------------------------------------

    async def send(
        self,
        service: str,
        command: str,
        path: str,
        headers: dict[str, str],
        *,
        aggregate: Callable[[Any], uuid.UUID],
        json: Any = None,
        data: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        until_found: bool = False,
    ) -> Any:
        """POSTs until answered 2xx (same Idempotency-Key every time); records
        the command. `until_found`: a 404 means another service's event has
        not arrived yet, so it is retried too."""
        key = f"{command}-{uuid.uuid4()}"
        client = self._clients[service]
        while True:
            if self.stop.is_set():
                raise Stopped
            try:
                response = await client.post(
                    path,
                    headers={**headers, "Idempotency-Key": key},
                    json=json,
                    data=data,
                    files=files,
                )
            except RETRY_ERRORS as exc:
                self.retries[f"{service} {type(exc).__name__}"] += 1
                await asyncio.sleep(0.2)  # a retry backoff, not a wait for state
                continue
            if response.status_code in RETRY_STATUSES or (
                until_found and response.status_code == 404
            ):
                self.retries[f"{service} {response.status_code}"] += 1
                await asyncio.sleep(0.2)
                continue
            if response.status_code >= 300:
                self.refused.append(Refused(service, command, response.status_code, response.text))
                raise Stopped
            body = response.json()
            version = body.get("version", body.get("aggregate_version"))
            self.accepted.append(
                Accepted(service, command, aggregate(body), version, response.status_code)
            )
            async with self.progress:
                self.progress.notify_all()
            return body

    async def get(self, service: str, path: str, ready: Callable[[Any], bool]) -> Any:
        """GETs until the answer is 200 and `ready` accepts it (state another
        service's event brings)."""
        headers = auth(self.settings, DIRECTOR, "director")
        while True:
            if self.stop.is_set():
                raise Stopped
            try:
                response = await self._clients[service].get(path, headers=headers)
                if response.status_code == 200 and ready(response.json()):
                    return response.json()
            except RETRY_ERRORS:
                pass
            await asyncio.sleep(0.2)  # polling another process's observable state

    # -- the clients ----------------------------------------------------------------

    async def _loop(self, one: Callable[[], Any], paced: str | None = None) -> None:
        while not self.stop.is_set():
            try:
                if paced is not None:
                    await self._pace(paced)
                await one()
            except Stopped:
                if self.refused and not self.stop.is_set():
                    return  # a refusal ends this client; the test reports it

    async def _pace(self, command: str) -> None:
        """Keeps a quick client (one command kind) from running far ahead of
        the sagas, which wait on events between services: it goes on once the
        sagas have caught up with it, an observable count, not a timer."""

        def count(name: str) -> int:
            return sum(1 for a in self.accepted if a.command == name)

        def behind() -> bool:
            return self.stop.is_set() or count(command) <= count("register") + 2

        async with self.progress:
            await self.progress.wait_for(behind)
        if self.stop.is_set():
            raise Stopped

    def _h(self, user: str, role: str) -> dict[str, str]:
        return auth(self.settings, user, role)

    async def _saga_loop(self) -> None:
        await self._loop(self._saga)

    async def _saga(self) -> None:
        n = next(self.numbers)
        pm, spec = self._h(PM, "project_manager"), self._h(SPECIALIST, "specialist")
        director = self._h(DIRECTOR, "director")
        by_id: Callable[[Any], uuid.UUID] = lambda b: uuid.UUID(b["id"])  # noqa: E731
        today = datetime.now(UTC).date() - timedelta(days=1)
        partner = await self.send(
            "partner", "register", "/v1/partners", pm, json=registration(n), aggregate=by_id
        )
        pid = partner["id"]
        certificate = {
            "name": "ISO/IEC 27001",
            "certificate_no": f"CN-{n}",
            "expires_on": "2030-06-30",
        }
        await self.send(
            "partner", "evaluate", f"/v1/partners/{pid}/evaluations", spec, aggregate=by_id,
            json={"scores": scores(), "qualifications": [certificate], "summary": "合格"},
        )  # fmt: skip
        await self.send(
            "partner", "qualify", f"/v1/partners/{pid}/qualification", director,
            aggregate=by_id, json={"reason": "尽职调查通过"},
        )  # fmt: skip
        project = await self.send(
            "partner", "plan", "/v1/projects", pm, aggregate=by_id, json={
                "partner_id": pid, "title": f"核心系统运维项目{n}", "scope": "核心业务系统7x24运维",
                "budget": "1000000.00", "currency": "CNY", "project_manager": PM,
                "specialists": [SPECIALIST],
                "milestones": [{
                    "milestone_id": "M1", "name": "上线", "deliverable": "系统上线",
                    "due_on": str(today + timedelta(days=60)),
                }],
            },
        )  # fmt: skip
        base = f"/v1/projects/{project['id']}"
        await self.send(
            "partner", "complaint", f"{base}/complaints", pm, aggregate=by_id,
            json={"source": "业务部", "severity": "low", "summary": f"响应慢{n}"},
        )  # fmt: skip
        asked = await self.send(
            "partner", "request_approval", f"{base}/procurement-approval-requests", pm,
            aggregate=by_id, json={"justification": "年度运维外包"},
        )  # fmt: skip
        url = f"/v1/approvals/{asked['approval_request_id']}/decisions"
        for user, role, step in (
            ("dh.li", "dept_head", "department_head"),
            ("fin.zhao", "finance", "finance"),
            ("ceo.chen", "ceo", "ceo"),
        ):
            await self.send(
                "approval", f"decide_{step}", url, self._h(user, role), aggregate=by_id,
                json={"decision": "approve", "step": step}, until_found=True,
            )  # fmt: skip
        await self.get("partner", base, lambda p: p["status"] == "approved")
        await self.send(
            "partner", "contract", f"{base}/contract", pm, aggregate=by_id, json={
                "contract_number": f"HT-{n}", "value": "980000.00", "signed_on": str(today),
                "starts_on": str(today), "ends_on": str(today + timedelta(days=365)),
                "sla_terms": ["可用性 99.9%"], "third_party_acceptor": THIRD_PARTY,
            },
        )  # fmt: skip
        await self.send(
            "partner", "kickoff", f"{base}/kickoff", pm, aggregate=by_id, json={
                "held_on": str(today), "goals": ["稳定运行"], "timetable": "按月交付",
                "responsibilities": [{"person": PM, "duty": "总体负责"}],
            },
        )  # fmt: skip
        await self.send(
            "partner", "task", f"{base}/tasks", pm, aggregate=by_id, json={
                "task_id": f"T{n}", "title": f"巡检{n}", "specialist": SPECIALIST,
                "due_on": str(today + timedelta(days=7)),
            },
        )  # fmt: skip

    async def _emergency_loop(self) -> None:
        await self._loop(self._emergency, paced="emergency")

    async def _emergency(self) -> None:
        n = next(self.numbers)
        pm = self._h(PM, "project_manager")
        by_id: Callable[[Any], uuid.UUID] = lambda b: uuid.UUID(b["id"])  # noqa: E731
        acted = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        action = await self.send(
            "approval", "emergency", "/v1/emergencies", pm, aggregate=by_id, json={
                "project_id": str(uuid.uuid4()), "what_happened": f"数据库主机宕机{n}",
                "action_taken": "切换备机", "resources_changed": ["备机"], "acted_at": acted,
            },
        )  # fmt: skip
        await self.send(
            "approval", "explain", f"/v1/emergencies/{action['id']}/explanation", pm,
            aggregate=by_id, json={"explanation": "主机硬件故障，先行切换以恢复服务"},
        )  # fmt: skip

    async def _meeting_loop(self) -> None:
        await self._loop(self._meeting, paced="meeting")

    async def _meeting(self) -> None:
        n = next(self.numbers)
        pm = self._h(PM, "project_manager")
        by_id: Callable[[Any], uuid.UUID] = lambda b: uuid.UUID(b["id"])  # noqa: E731
        held = datetime.now(UTC) - timedelta(hours=2)
        meeting = await self.send(
            "docs", "meeting", "/v1/meetings", pm, aggregate=by_id, json={
                "kind": "weekly_department", "title": f"部门周例会{n}",
                "held_at": held.isoformat(), "attendees": [DIRECTOR, PM, SPECIALIST],
                "resolutions": ["推进备份演练"],
            },
        )  # fmt: skip
        day = (held + SHANGHAI).date().isoformat()
        await self.send(
            "docs", "minutes", "/v1/documents", self._h(SPECIALIST, "specialist"),
            aggregate=by_id,
            data={"type": "minutes", "period": day, "name": f"信息技术部-{day}-会议纪要",
                  "meeting_id": meeting["id"]},
            files={"file": ("minutes.pdf", f"%PDF-1.7 minutes {n}".encode(), "application/pdf")},
        )  # fmt: skip

    async def _staff_loop(self) -> None:
        await self._loop(self._staff, paced="join")

    async def _staff(self) -> None:
        n = next(self.numbers)
        department: Callable[[Any], uuid.UUID] = lambda _: DEPARTMENT  # noqa: E731
        await self.send(
            "kpi", "join", "/v1/kpi/staff", self._h(DIRECTOR, "director"), aggregate=department,
            json={"user_id": f"spec.load{n}", "name": f"专员{n}", "role": "specialist",
                  "superior": PM, "joined_on": "2026-03-02"},
        )  # fmt: skip


#: Placeholder for the kpi department (one aggregate); resolved from the
#: store by the verifier.
DEPARTMENT = uuid.UUID(int=0)


async def seed_department(settings: Settings, kpi_url: str) -> None:
    """The Director and a PM, whom the specialists of the load report to."""
    director = auth(settings, DIRECTOR, "director")
    async with httpx.AsyncClient(base_url=kpi_url, timeout=10) as client:
        for user, role, superior in (
            (DIRECTOR, "director", None),
            (PM, "project_manager", DIRECTOR),
        ):
            response = await client.post(
                "/v1/kpi/staff",
                headers=director,
                json={"user_id": user, "name": user, "role": role, "superior": superior,
                      "joined_on": "2026-03-02"},
            )  # fmt: skip
            assert response.status_code == 201, response.text
