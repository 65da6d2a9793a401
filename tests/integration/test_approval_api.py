"""The approval service over HTTP (real PostgreSQL, in process, a manual clock):

- R3.1: three signatures in strict order (department head -> Finance -> CEO),
  each step on record (who, when, decision, reason, delegate, hours open);
  reject ends the request, return-for-information re-opens the same step;
  segregation of duties; named approvers and their delegates;
- R3.5: a step past its limit (working hours, weekends excluded) is recorded
  overdue exactly once and escalated to the Director, who may then sign;
- R5.1, R5.2: major decisions go to the Director, and only the Director decides;
- R5.3: an emergency action is explained within 24 h (late is on record) and
  ratified or rejected by the Director after the explanation;
- DESIGN.md sections 2 and 6: a lost race is a 409 with the current version and
  never a second signature; Idempotency-Key replays; bad input is a 422 naming
  the field; a refused command stores nothing; the consumer of partner events
  opens a request once per request id.

The projectors and the deadline engine are driven by hand (`settle`, `fire`),
so every assertion reads a position that was waited for, never a sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from services.approval.application import ApprovalApplication
from services.approval.consumers.requests import request_subscription
from services.approval.service import SPEC as APPROVAL
from shared.clock import ManualClock
from shared.consumer import PoisonEvent
from shared.envelope import ActorRef, EventEnvelope
from shared.settings import Settings
from tests.support.apps import RunningService, running
from tests.support.auth import auth

pytestmark = pytest.mark.integration

SHANGHAI = timedelta(hours=8)
#: Friday 2026-11-27, 09:00 in Asia/Shanghai (the policy zone).
FRIDAY_9 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)

PM = "pm.wang"
OTHER_PM = "pm.li"
DH = "dh.li"
DH_COLLEAGUE = "dh.zhou"
DH_OTHER = "dh.wu"
FIN = "fin.zhao"
CEO = "ceo.chen"
DIRECTOR = "director.zhang"


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A wall-clock time in Asia/Shanghai, as UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC) - SHANGHAI


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


class Api:
    """The service as its clients see it, plus the hands that move its time."""

    def __init__(self, svc: RunningService, settings: Settings, clock: ManualClock) -> None:
        self.svc = svc
        self.client: httpx.AsyncClient = svc.client
        self.settings = settings
        self.clock = clock
        app = svc.runtime.application
        assert isinstance(app, ApprovalApplication)
        self.app = app
        self.pm = self.token(PM, "project_manager")
        self.dh = self.token(DH, "dept_head")
        self.fin = self.token(FIN, "finance")
        self.ceo = self.token(CEO, "ceo")
        self.director = self.token(DIRECTOR, "director")

    def token(self, user: str, role: str) -> dict[str, str]:
        return auth(self.settings, user, role)

    async def call(
        self, method: str, url: str, headers: dict[str, str], body: Any = None, **kw: Any
    ) -> httpx.Response:
        if body is not None:
            kw["json"] = body
        return await self.client.request(method, url, headers=headers, **kw)

    async def ok(
        self, method: str, url: str, headers: dict[str, str], body: Any = None, **kw: Any
    ) -> Any:
        response = await self.call(method, url, headers, body, **kw)
        assert response.status_code in (200, 201), f"{method} {url}: {response.text}"
        return response.json()

    async def refused(
        self, method: str, url: str, headers: dict[str, str], body: Any, status: int
    ) -> dict[str, Any]:
        """The request is refused with `status` as problem+json and stores nothing."""
        before = self.app.log_head()
        response = await self.call(method, url, headers, body)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert self.app.log_head() == before, "a refused command stored an event"
        problem: dict[str, Any] = response.json()
        return problem

    async def denials(self) -> list[dict[str, Any]]:
        """The refusals on record (DESIGN.md section 5), oldest first."""
        rows = await self.svc.runtime.pool.fetch(
            "SELECT user_id, role, status, reason FROM access_denials ORDER BY id"
        )
        return [dict(r) for r in rows]

    async def settle(self) -> None:
        """Every stored event applied to the views and the deadline clocks."""
        for projector in self.svc.runtime.projectors:
            await projector.catch_up()
        head = self.app.log_head()
        assert all(p.position == head for p in self.svc.runtime.projectors)

    async def fire(self) -> int:
        """Moves no time: records what the current clock has made overdue."""
        await self.settle()
        engine = self.svc.runtime.deadlines
        assert engine is not None
        fired = await engine.fire_due()
        await self.settle()
        return fired

    def history(self, aggregate_id: str) -> list[EventEnvelope]:
        return self.app.history(UUID(aggregate_id))

    def types(self, aggregate_id: str) -> list[str]:
        return [e.event_type for e in self.history(aggregate_id)]

    def payloads(self, aggregate_id: str, event_type: str) -> list[dict[str, Any]]:
        return [e.payload for e in self.history(aggregate_id) if e.event_type == event_type]

    async def procurement(
        self, headers: dict[str, str] | None = None, **changes: Any
    ) -> dict[str, Any]:
        body = {
            "kind": "procurement",
            "title": "核心系统运维外包",
            "amount": "250000.00",
            "currency": "CNY",
            "justification": "7x24 运维，现有人手不足",
            **changes,
        }
        # Only the Director names approvers (R3.1: a requester never picks who signs).
        default = self.director if "approvers" in changes else self.pm
        opened: dict[str, Any] = await self.ok("POST", "/v1/approvals", headers or default, body)
        return opened

    async def decide(
        self, request_id: str, headers: dict[str, str], decision: str = "approve", **extra: Any
    ) -> dict[str, Any]:
        decided: dict[str, Any] = await self.ok(
            "POST",
            f"/v1/approvals/{request_id}/decisions",
            headers,
            {"decision": decision, **extra},
        )
        return decided

    async def listed(self, headers: dict[str, str], query: str = "") -> list[str]:
        page = await self.ok("GET", f"/v1/approvals{query}", headers)
        return [item["id"] for item in page["items"]]

    async def inbox(self, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
        await self.settle()
        page = await self.ok("GET", "/v1/approvals/inbox", headers)
        return {item["id"]: item for item in page["items"]}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(FRIDAY_9)


@pytest.fixture
async def api(settings: Settings, clock: ManualClock) -> AsyncIterator[Api]:
    # Projectors and the deadline engine are not started in the background:
    # the tests apply events (`settle`) and fire deadlines (`fire`) themselves.
    async with running(
        APPROVAL, settings, relay=False, consumers=False, projectors=False, clock=clock
    ) as svc:
        yield Api(svc, settings, clock)


# -- R3.1: the chain -------------------------------------------------------------------------


async def test_three_signatures_in_order_each_on_record_R3_1(api: Api) -> None:
    """R3.1: department head -> Finance -> CEO over HTTP; ProcurementApproved carries the
    three signatures in order, and the request shows every step (who, when, decision,
    reason, delegate, hours open)."""
    opened = await api.procurement()
    rid = opened["id"]
    assert opened["state"] == "pending" and opened["open_step"] == "department_head"
    assert opened["steps"] == ["department_head", "finance", "ceo"]
    assert opened["requested_by"] == PM and opened["source"] == "api"

    api.clock.advance(timedelta(hours=2))
    await api.decide(rid, api.dh, reason="预算合理")
    api.clock.advance(timedelta(hours=5))
    after_finance = await api.decide(rid, api.fin, step="finance", reason="资金已列支")
    assert after_finance["open_step"] == "ceo"
    api.clock.advance(timedelta(hours=1, minutes=30))
    done = await api.decide(rid, api.ceo)
    assert done["state"] == "approved" and done["open_step"] is None
    assert at(done["closed_at"]) == FRIDAY_9 + timedelta(hours=8, minutes=30)

    view = await api.ok("GET", f"/v1/approvals/{rid}", api.pm)
    steps = [(s["step"], s["round"], s["decision"], s["decided_by"]) for s in view["history"]]
    assert steps == [
        ("department_head", 1, "approved", DH),
        ("finance", 1, "approved", FIN),
        ("ceo", 1, "approved", CEO),
    ]
    assert [s["reason"] for s in view["history"]] == ["预算合理", "资金已列支", ""]
    assert [s["delegate_of"] for s in view["history"]] == [None, None, None]
    assert [s["hours_open"] for s in view["history"]] == [2.0, 5.0, 1.5]
    assert [at(s["decided_at"]) for s in view["history"]] == [
        FRIDAY_9 + timedelta(hours=2),
        FRIDAY_9 + timedelta(hours=7),
        FRIDAY_9 + timedelta(hours=8, minutes=30),
    ]
    assert [s["assignee_role"] for s in view["history"]] == ["dept_head", "finance", "ceo"]
    assert not any(s["overdue"] for s in view["history"])

    history = await api.ok("GET", f"/v1/approvals/{rid}/events", api.director)
    assert [e["event_type"] for e in history] == [
        "ApprovalRequested",
        "ApprovalStepOpened",
        "ApprovalStepApproved",
        "ApprovalStepOpened",
        "ApprovalStepApproved",
        "ApprovalStepOpened",
        "ApprovalStepApproved",
        "ProcurementApproved",
    ]
    approved = history[-1]
    assert approved["payload"]["request_id"] == rid
    assert Decimal(approved["payload"]["amount"]) == Decimal("250000.00")
    signatures = [
        (s["step"], s["approver"], s["delegate_of"]) for s in approved["payload"]["steps"]
    ]
    assert signatures == [("department_head", DH, None), ("finance", FIN, None), ("ceo", CEO, None)]
    assert approved["actor"] == {"user_id": CEO, "role": "ceo"}
    assert [
        e["payload"]["on_time"] for e in history if e["event_type"] == "ApprovalStepApproved"
    ] == [
        True,
        True,
        True,
    ]

    await api.settle()
    assert rid in await api.listed(api.pm, "?state=approved")
    assert rid not in await api.listed(api.pm, "?state=pending")


async def test_steps_are_signed_in_strict_order_R3_1(api: Api) -> None:
    """R3.1: Finance or the CEO before the department head is a 409 of order naming R3.1
    (with the current version), whether or not the step is named; a role that signs no
    step of the chain is a 403; a department head after their step is a 409 too."""
    rid = (await api.procurement())["id"]
    url = f"/v1/approvals/{rid}/decisions"
    for headers, body in (
        (api.fin, {"decision": "approve"}),
        (api.fin, {"decision": "approve", "step": "finance"}),
        (api.ceo, {"decision": "reject", "reason": "不同意"}),
        (api.dh, {"decision": "approve", "step": "finance"}),
    ):
        early = await api.refused("POST", url, headers, body, 409)
        assert early["rule"] == "R3.1" and "strict order" in early["detail"]
        assert "department_head" in early["detail"] and early["current_version"] == 2
    director = await api.refused("POST", url, api.director, {"decision": "approve"}, 403)
    assert director["rule"] == "R3.1" and "signed by dept_head" in director["detail"]

    await api.decide(rid, api.dh, step="department_head")
    for body in ({"decision": "approve"}, {"decision": "approve", "step": "department_head"}):
        late = await api.refused("POST", url, api.token(DH_OTHER, "dept_head"), body, 409)
        assert late["rule"] == "R3.1" and late["current_version"] == 4
    assert (await api.ok("GET", f"/v1/approvals/{rid}", api.pm))["open_step"] == "finance"


async def test_reject_needs_a_reason_and_ends_the_request_R3_1(api: Api) -> None:
    """R3.1: a rejection without a reason is a 422 of the schema; a rejection ends the
    request (ProcurementRejected with the reason) and nothing is decided after it."""
    rid = (await api.procurement())["id"]
    url = f"/v1/approvals/{rid}/decisions"
    no_reason = await api.refused("POST", url, api.dh, {"decision": "reject"}, 422)
    assert "reason" in no_reason["detail"]
    blank = await api.refused("POST", url, api.dh, {"decision": "reject", "reason": "  "}, 422)
    assert "body.reason" in {e["field"] for e in blank["errors"]}
    no_return_reason = await api.refused("POST", url, api.dh, {"decision": "return"}, 422)
    assert "reason" in no_return_reason["detail"]

    await api.decide(rid, api.dh)
    api.clock.advance(timedelta(hours=3))
    rejected = await api.decide(rid, api.fin, "reject", reason="超出年度预算")
    assert rejected["state"] == "rejected" and rejected["open_step"] is None
    assert rejected["history"][-1]["decision"] == "rejected"
    assert rejected["history"][-1]["decided_by"] == FIN
    assert rejected["history"][-1]["reason"] == "超出年度预算"
    assert rejected["history"][-1]["hours_open"] == 3.0

    (payload,) = api.payloads(rid, "ProcurementRejected")
    assert payload["step"] == "finance" and payload["reason"] == "超出年度预算"
    assert payload["rejected_by"] == FIN and payload["delegate_of"] is None
    assert "ProcurementApproved" not in api.types(rid)

    for headers, body in (
        (api.fin, {"decision": "approve"}),
        (api.ceo, {"decision": "approve"}),
        (api.fin, {"decision": "reject", "reason": "再次拒绝"}),
    ):
        ended = await api.refused("POST", url, headers, body, 409)
        assert ended["rule"] == "R3.1" and "rejected" in ended["detail"]
    await api.settle()
    assert rid in await api.listed(api.pm, "?state=rejected")


async def test_return_for_information_then_resubmission_opens_round_two_R3_1(api: Api) -> None:
    """R3.1: a step returned for information waits for the requester alone (another user
    403); the resubmission re-opens the same step as round 2 with a new due time."""
    rid = (await api.procurement())["id"]
    url = f"/v1/approvals/{rid}/decisions"
    returned = await api.decide(rid, api.dh, "return", reason="请补充三家比价")
    assert returned["state"] == "returned" and returned["open_step"] == "department_head"
    assert returned["history"][0]["decision"] == "returned"

    waiting = await api.refused("POST", url, api.dh, {"decision": "approve"}, 409)
    assert waiting["rule"] == "R3.1" and "returned" in waiting["detail"]
    assert (await api.inbox(api.pm))[rid]["why"] == "returned_to_you"
    assert rid not in await api.inbox(api.dh)

    resubmission = f"/v1/approvals/{rid}/resubmission"
    body = {"response": "比价单见附件：A 25万，B 28万，C 30万"}
    other = await api.refused(
        "POST", resubmission, api.token(OTHER_PM, "project_manager"), body, 403
    )
    assert other["rule"] == "R3.1"
    not_a_requester = await api.refused("POST", resubmission, api.dh, body, 403)
    assert "request approvals" in not_a_requester["detail"]

    monday_10 = local(2026, 11, 30, 10)
    api.clock.set(monday_10)
    reopened = await api.ok("POST", resubmission, api.pm, body)
    assert reopened["state"] == "pending" and reopened["open_step"] == "department_head"
    assert reopened["responses"] == [body["response"]]
    first, second = reopened["history"]
    assert (first["round"], second["round"]) == (1, 2)
    assert second["step"] == "department_head" and second["decision"] is None
    assert at(second["opened_at"]) == monday_10
    # 48 working hours from Monday 10:00: Monday 14 h, Tuesday 24 h, Wednesday 10 h.
    assert at(second["due_at"]) == local(2026, 12, 2, 10)
    assert at(second["due_at"]) > at(first["due_at"])
    again = await api.refused("POST", resubmission, api.pm, body, 409)
    assert again["rule"] == "R3.1"

    assert rid in await api.inbox(api.dh)
    approved = await api.decide(rid, api.dh)
    assert approved["open_step"] == "finance"
    assert api.payloads(rid, "ApprovalStepApproved")[0]["round"] == 2


# -- R3.1: segregation of duties, named approvers, delegation ----------------------------------


async def test_segregation_of_duties_R3_1(api: Api) -> None:
    """R3.1: the requester never decides their own request, even holding an approver role;
    one person never signs two steps; a named approver excludes the other role holders."""
    rid = (await api.procurement())["id"]
    url = f"/v1/approvals/{rid}/decisions"
    own = await api.refused("POST", url, api.token(PM, "dept_head"), {"decision": "approve"}, 403)
    assert own["rule"] == "R3.1" and "requester" in own["detail"]

    await api.decide(rid, api.dh)
    twice = await api.refused("POST", url, api.token(DH, "finance"), {"decision": "approve"}, 403)
    assert twice["rule"] == "R3.1" and "two steps" in twice["detail"]
    await api.decide(rid, api.fin)
    for user in (DH, FIN):
        again = await api.refused("POST", url, api.token(user, "ceo"), {"decision": "approve"}, 403)
        assert again["rule"] == "R3.1"
    assert (await api.decide(rid, api.ceo))["state"] == "approved"
    denials = await api.denials()
    assert [(d["user_id"], d["role"], d["status"]) for d in denials] == [
        (PM, "dept_head", 403),
        (DH, "finance", 403),
        (DH, "ceo", 403),
        (FIN, "ceo", 403),
    ]
    assert all(d["reason"].startswith("R3.1: segregation of duties") for d in denials)

    named = (await api.procurement(approvers={"department_head": DH, "finance": FIN}))["id"]
    url = f"/v1/approvals/{named}/decisions"
    assert (await api.ok("GET", f"/v1/approvals/{named}", api.pm))["history"][0]["assignee"] == DH
    other = await api.refused(
        "POST", url, api.token(DH_OTHER, "dept_head"), {"decision": "approve"}, 403
    )
    assert other["rule"] == "R3.1" and DH in other["detail"]
    await api.decide(named, api.dh)
    other_finance = await api.refused(
        "POST", url, api.token("fin.qian", "finance"), {"decision": "approve"}, 403
    )
    assert other_finance["rule"] == "R3.1"
    await api.settle()
    assert await api.listed(api.pm, f"?assignee={FIN}") == [named]
    assert (await api.decide(named, api.fin))["open_step"] == "ceo"

    for approvers in ({"finance": DIRECTOR}, {"department_head": DH, "ceo": DH}, {"director": DH}):
        problem = await api.refused(
            "POST",
            "/v1/approvals",
            api.director,
            {
                "kind": "procurement",
                "title": "x",
                "amount": "1.00",
                "justification": "x",
                "approvers": approvers,
            },
            422 if "director" in approvers else 409,
        )
        if "director" not in approvers:
            assert problem["rule"] == "R3.1"
    picked = await api.refused(
        "POST",
        "/v1/approvals",
        api.pm,
        {
            "kind": "procurement",
            "title": "x",
            "amount": "1.00",
            "justification": "x",
            "approvers": {"department_head": DH},
        },
        403,
    )
    assert picked["rule"] == "R3.1" and "Director" in picked["detail"]


async def test_a_delegate_signs_for_the_named_approver_R3_1(api: Api) -> None:
    """R3.1: a named approver delegates to a colleague with the same role for a period;
    the delegate signs (recognised by itself or with `on_behalf_of`), the step records
    both names, and the delegate's inbox lists the step as delegated."""
    first = (await api.procurement(approvers={"department_head": DH}))["id"]
    second = (await api.procurement(approvers={"department_head": DH}))["id"]
    colleague = api.token(DH_COLLEAGUE, "dept_head")
    granted = await api.ok(
        "POST",
        "/v1/delegations",
        api.dh,
        {
            "delegate": DH_COLLEAGUE,
            "starts_at": FRIDAY_9.isoformat(),
            "ends_at": (FRIDAY_9 + timedelta(days=7)).isoformat(),
            "reason": "出差一周",
        },
    )
    assert granted["delegator"] == DH
    (grant,) = granted["delegations"]
    assert (grant["delegate"], grant["role"], grant["revoked_at"]) == (
        DH_COLLEAGUE,
        "dept_head",
        None,
    )

    await api.settle()
    given = await api.ok("GET", "/v1/delegations", api.dh)
    assert [g["grant_id"] for g in given["given"]] == [grant["grant_id"]] and given[
        "received"
    ] == []
    received = await api.ok("GET", "/v1/delegations", colleague)
    assert [g["delegator"] for g in received["received"]] == [DH] and received["given"] == []
    mine = await api.ok(
        "GET", "/v1/delegations", api.token("audit.sun", "auditor"), params={"user": DH}
    )
    assert len(mine["given"]) == 1
    await api.refused("GET", f"/v1/delegations?user={DH}", colleague, None, 403)

    inbox = await api.inbox(colleague)
    assert {inbox[r]["why"] for r in (first, second)} == {"delegated"}
    assert {inbox[r]["on_behalf_of"] for r in (first, second)} == {DH}
    assert first not in await api.inbox(api.token(DH_OTHER, "dept_head"))
    assert (await api.inbox(api.dh))[first]["why"] == "assigned"

    recognised = await api.decide(first, colleague, reason="代签")
    step = recognised["history"][0]
    assert (step["decided_by"], step["delegate_of"]) == (DH_COLLEAGUE, DH)
    explicit = await api.decide(second, colleague, on_behalf_of=DH)
    step = explicit["history"][0]
    assert (step["decided_by"], step["delegate_of"]) == (DH_COLLEAGUE, DH)
    for rid in (first, second):
        (signed,) = api.payloads(rid, "ApprovalStepApproved")
        assert (signed["approver"], signed["delegate_of"]) == (DH_COLLEAGUE, DH)

    # The one delegated for signed the step too: neither signs another step.
    url = f"/v1/approvals/{first}/decisions"
    for user in (DH, DH_COLLEAGUE):
        problem = await api.refused(
            "POST", url, api.token(user, "finance"), {"decision": "approve"}, 403
        )
        assert problem["rule"] == "R3.1"
    await api.decide(first, api.fin)
    done = await api.decide(first, api.ceo)
    (approved,) = api.payloads(first, "ProcurementApproved")
    assert approved["steps"][0]["approver"] == DH_COLLEAGUE
    assert approved["steps"][0]["delegate_of"] == DH
    assert done["state"] == "approved"


async def test_no_signature_outside_the_delegation_R3_1(api: Api) -> None:
    """R3.1: before or after the delegation's period, after its revocation, or holding
    another role, the delegate may not sign the named approver's step (403)."""
    rid = (await api.procurement(approvers={"department_head": DH}))["id"]
    url = f"/v1/approvals/{rid}/decisions"
    colleague = api.token(DH_COLLEAGUE, "dept_head")
    starts, ends = FRIDAY_9 + timedelta(days=1), FRIDAY_9 + timedelta(days=2)
    period = {
        "delegate": DH_COLLEAGUE,
        "starts_at": starts.isoformat(),
        "ends_at": ends.isoformat(),
        "reason": "年假",
    }
    await api.ok("POST", "/v1/delegations", api.dh, period)

    async def denied(headers: dict[str, str]) -> None:
        for body in ({"decision": "approve"}, {"decision": "approve", "on_behalf_of": DH}):
            problem = await api.refused("POST", url, headers, body, 403)
            assert problem["rule"] == "R3.1"

    await denied(colleague)  # not yet
    assert rid not in await api.inbox(colleague)
    api.clock.set(starts + timedelta(hours=1))
    assert (await api.inbox(colleague))[rid]["why"] == "delegated"
    other_role = await api.refused(
        "POST",
        url,
        api.token(DH_COLLEAGUE, "finance"),
        {"decision": "approve", "on_behalf_of": DH},
        403,
    )
    assert "no delegation" in other_role["detail"]  # the delegation is for dept_head
    api.clock.set(ends)
    await denied(colleague)  # over
    assert rid not in await api.inbox(colleague)

    now = api.clock.now()
    renewed = await api.ok(
        "POST",
        "/v1/delegations",
        api.dh,
        {**period, "starts_at": now.isoformat(), "ends_at": (now + timedelta(days=1)).isoformat()},
    )
    grant = renewed["delegations"][-1]["grant_id"]
    assert len(renewed["delegations"]) == 2
    await api.refused("POST", f"/v1/delegations/{grant}/revocation", colleague, None, 404)
    revoked = await api.ok("POST", f"/v1/delegations/{grant}/revocation", api.dh)
    assert revoked["delegations"][-1]["revoked_at"] is not None
    await denied(colleague)  # revoked
    twice = await api.refused("POST", f"/v1/delegations/{grant}/revocation", api.dh, None, 409)
    assert twice["rule"] == "R3.1"
    await api.refused("POST", f"/v1/delegations/{uuid4()}/revocation", api.dh, None, 404)
    await api.settle()
    given = (await api.ok("GET", "/v1/delegations", api.dh))["given"]
    assert [g["revoked_at"] is not None for g in given] == [False, True]

    self_grant = await api.refused(
        "POST", "/v1/delegations", api.dh, {**period, "delegate": DH}, 409
    )
    assert self_grant["rule"] == "R3.1"
    backwards = {**period, "starts_at": ends.isoformat(), "ends_at": starts.isoformat()}
    assert (await api.refused("POST", "/v1/delegations", api.dh, backwards, 409))["rule"] == "R3.1"
    await api.refused("POST", "/v1/delegations", api.pm, period, 403)  # signs no step
    assert (await api.decide(rid, api.dh))["history"][0]["delegate_of"] is None


# -- R3.5: time limits --------------------------------------------------------------------------


async def test_an_overdue_step_is_recorded_once_and_escalated_to_the_director_R3_5(
    api: Api,
) -> None:
    """R3.5, R3.1: opened on a Friday, the department head's 48 working hours end on
    Tuesday (the weekend does not count); past it, ApprovalStepOverdue is recorded exactly
    once and ApprovalStepEscalated names the Director, who may then sign the step."""
    opened = await api.procurement()
    rid = opened["id"]
    due = at(opened["history"][0]["due_at"])
    # Friday 09:00 + 48 working hours: Friday 15 h, Monday 24 h, Tuesday 9 h.
    assert due == local(2026, 12, 1, 9)
    assert due == api.app.policy.approval_step_due("department_head", FRIDAY_9)
    assert due - FRIDAY_9 == timedelta(hours=96)

    api.clock.set(due - timedelta(seconds=1))
    assert await api.fire() == 0
    director_url = f"/v1/approvals/{rid}/decisions"
    early = await api.refused("POST", director_url, api.director, {"decision": "approve"}, 403)
    assert early["rule"] == "R3.1"

    api.clock.set(due + timedelta(seconds=1))
    assert await api.fire() == 1
    assert await api.fire() == 0
    api.clock.advance(timedelta(days=3))
    assert await api.fire() == 0
    assert api.types(rid).count("ApprovalStepOverdue") == 1
    (overdue,) = api.payloads(rid, "ApprovalStepOverdue")
    assert (overdue["step"], overdue["round"], at(overdue["due_at"])) == ("department_head", 1, due)
    (escalated,) = api.payloads(rid, "ApprovalStepEscalated")
    assert escalated["escalated_to"] == "director" and escalated["step"] == "department_head"

    fresh = (await api.procurement())["id"]  # opened now: nowhere near its limit
    await api.settle()
    assert await api.listed(api.director, "?overdue=true") == [rid]
    assert await api.listed(api.director, "?overdue=true&state=pending&assignee=director") == [rid]
    assert await api.listed(api.director, "?assignee=director") == [rid]
    assert set(await api.listed(api.director, "?assignee=dept_head")) == {rid, fresh}
    assert await api.listed(api.director, "?overdue=false") == [fresh]
    assert (await api.inbox(api.director))[rid]["why"] == "escalated"
    assert fresh not in await api.inbox(api.director)
    view = await api.ok("GET", f"/v1/approvals/{rid}", api.director)
    assert view["history"][0]["overdue"] is True
    assert view["history"][0]["escalated_to"] == "director"

    signed = await api.decide(rid, api.director, reason="超时，由总监代为初审")
    assert signed["history"][0]["decided_by"] == DIRECTOR
    assert signed["open_step"] == "finance" and signed["history"][1]["escalated_to"] is None
    (approval,) = api.payloads(rid, "ApprovalStepApproved")
    assert approval["approver_role"] == "director" and approval["on_time"] is False
    assert await api.fire() == 0
    row = await api.svc.runtime.pool.fetchrow(
        "SELECT status, met_at FROM deadlines WHERE aggregate_id = $1 AND ref = $2",
        UUID(rid),
        "department_head#1",
    )
    assert row is not None and row["status"] == "overdue" and row["met_at"] is not None


async def test_a_step_decided_in_time_never_becomes_overdue_R3_5(api: Api) -> None:
    """R3.5: a step signed before its limit stops its clock; moving time past the limit
    records nothing for it (the next step runs on its own clock)."""
    rid = (await api.procurement())["id"]
    api.clock.advance(timedelta(hours=1))
    finance = (await api.decide(rid, api.dh))["history"][1]
    # Friday 10:00 + 72 working hours: Friday 14 h, Monday 24 h, Tuesday 24 h, Wednesday 10 h.
    assert at(finance["due_at"]) == local(2026, 12, 2, 10)

    api.clock.set(local(2026, 12, 1, 12))  # past the department head's limit
    assert await api.fire() == 0
    assert "ApprovalStepOverdue" not in api.types(rid)
    statuses = await api.svc.runtime.pool.fetch(
        "SELECT ref, status FROM deadlines WHERE aggregate_id = $1 ORDER BY due_at", UUID(rid)
    )
    assert [(r["ref"], r["status"]) for r in statuses] == [
        ("department_head#1", "met"),
        ("finance#1", "pending"),
    ]
    await api.settle()
    assert await api.listed(api.director, "?overdue=true") == []

    api.clock.set(local(2026, 12, 2, 10, 1))
    assert await api.fire() == 1
    (overdue,) = api.payloads(rid, "ApprovalStepOverdue")
    assert overdue["step"] == "finance"


async def test_a_step_signed_late_before_the_engine_fired_is_still_overdue_R3_5(
    api: Api,
) -> None:
    """R3.5: with the deadline engine down (or behind), a step signed after its limit
    records its ApprovalStepOverdue first, in the same save (never escalated, it is
    decided); the engine coming back later records nothing more. Likewise a late
    emergency explanation records EmergencyExplanationOverdue (R5.3)."""
    rid = (await api.procurement())["id"]
    await api.settle()
    api.clock.set(local(2026, 12, 2, 12))  # past the department head's 48 working hours
    await api.decide(rid, api.dh)
    assert api.types(rid)[-3:] == [
        "ApprovalStepOverdue",
        "ApprovalStepApproved",
        "ApprovalStepOpened",
    ]
    (approved,) = api.payloads(rid, "ApprovalStepApproved")
    assert approved["on_time"] is False
    assert await api.fire() == 0  # the engine comes back: nothing twice
    assert api.types(rid).count("ApprovalStepOverdue") == 1
    assert "ApprovalStepEscalated" not in api.types(rid)
    rows = await api.svc.runtime.pool.fetch(
        "SELECT ref, status, met_at IS NOT NULL AS met FROM deadlines WHERE aggregate_id = $1"
        " ORDER BY due_at",
        UUID(rid),
    )
    assert [(r["ref"], r["status"], r["met"]) for r in rows] == [
        ("department_head#1", "overdue", True),
        ("finance#1", "pending", False),
    ]

    action = await api.ok(
        "POST",
        "/v1/emergencies",
        api.pm,
        {
            "what_happened": "存储阵列故障",
            "action_taken": "切换到备用阵列",
            "acted_at": api.clock.now().isoformat(),
        },
    )
    await api.settle()
    api.clock.advance(timedelta(hours=30))
    await api.ok(
        "POST", f"/v1/emergencies/{action['id']}/explanation", api.pm, {"explanation": "迟交说明"}
    )
    assert api.types(action["id"])[-2:] == [
        "EmergencyExplanationOverdue",
        "EmergencyExplanationFiled",
    ]
    assert await api.fire() == 0


# -- R5.1, R5.2: Director decisions ---------------------------------------------------------------


async def test_major_decisions_go_to_the_director_alone_R5_1_R5_2(api: Api) -> None:
    """R5.1, R5.2: a budget increase within the policy's 10% stays with the PM (409 R5.2);
    above it, a scope change and a contract renewal open one Director step; only the
    Director decides: DirectorDecisionApproved, or DirectorDecisionRejected with the reason."""
    project = str(uuid4())

    def budget(new: str) -> dict[str, Any]:
        return {
            "kind": "budget_increase",
            "title": "扩容预算",
            "justification": "新增两个子系统",
            "project_id": project,
            "current_budget": "1000000.00",
            "new_budget": new,
        }

    for small in ("1050000.00", "1100000.00"):
        problem = await api.refused("POST", "/v1/approvals", api.pm, budget(small), 409)
        assert problem["rule"] == "R5.2"
    lower = await api.refused("POST", "/v1/approvals", api.pm, budget("900000.00"), 409)
    assert lower["rule"] == "R5.2"
    missing = await api.refused(
        "POST", "/v1/approvals", api.pm, {**budget("2000000.00"), "new_budget": None}, 422
    )
    assert "new_budget" in missing["detail"]
    specialist = api.token("spec.li", "specialist")
    by_specialist = await api.refused(
        "POST", "/v1/approvals", specialist, budget("2000000.00"), 403
    )
    assert by_specialist["rule"] == "R5.2"
    assert [(d["user_id"], d["status"]) for d in await api.denials()] == [("spec.li", 403)]

    increase = await api.ok("POST", "/v1/approvals", api.pm, budget("1500000.00"))
    assert (increase["kind"], increase["steps"], increase["open_step"]) == (
        "budget_increase",
        ["director"],
        "director",
    )
    assert Decimal(increase["new_budget"]) == Decimal("1500000.00")
    assert increase["project_id"] == project
    scope = await api.ok(
        "POST",
        "/v1/approvals",
        api.pm,
        {
            "kind": "scope_change",
            "title": "范围变更",
            "justification": "客户新增移动端",
            "project_id": project,
            "new_scope": "增加移动端 App 运维",
        },
    )
    renewal = await api.ok(
        "POST",
        "/v1/approvals",
        api.pm,
        {
            "kind": "contract_renewal",
            "title": "续约",
            "justification": "合作良好",
            "project_id": project,
            "new_end_date": "2027-12-31",
            "new_value": "800000.00",
        },
    )
    assert renewal["new_end_date"] == "2027-12-31"

    for rid in (increase["id"], scope["id"], renewal["id"]):
        url = f"/v1/approvals/{rid}/decisions"
        for headers in (api.dh, api.fin, api.ceo):
            problem = await api.refused("POST", url, headers, {"decision": "approve"}, 403)
            assert problem["rule"] == "R3.1"

    own = await api.ok(
        "POST",
        "/v1/approvals",
        api.director,
        {**budget("3000000.00"), "title": "总监发起的预算调整"},
    )
    await api.settle()
    inbox = await api.inbox(api.director)
    assert {inbox[r["id"]]["why"] for r in (increase, scope, renewal, own)} == {"assigned"}
    assert (await api.decide(own["id"], api.director))["state"] == "approved"
    assert set(await api.listed(api.director, "?kind=budget_increase")) == {
        increase["id"],
        own["id"],
    }

    approved = await api.decide(increase["id"], api.director, reason="同意扩容")
    assert approved["state"] == "approved"
    (event,) = api.payloads(increase["id"], "DirectorDecisionApproved")
    assert (event["kind"], event["comment"], event["project_id"]) == (
        "budget_increase",
        "同意扩容",
        project,
    )
    no_reason = await api.refused(
        "POST", f"/v1/approvals/{scope['id']}/decisions", api.director, {"decision": "reject"}, 422
    )
    assert "reason" in no_reason["detail"]
    rejected = await api.decide(scope["id"], api.director, "reject", reason="超出合同范围")
    assert rejected["state"] == "rejected"
    assert rejected["history"][0]["decided_by"] == DIRECTOR
    (event,) = api.payloads(scope["id"], "DirectorDecisionRejected")
    assert (event["kind"], event["reason"]) == ("scope_change", "超出合同范围")

    # R3.5: a Director decision has a limit too; overdue, it has nobody to escalate to.
    due = at(renewal["history"][0]["due_at"])
    assert due == api.app.policy.approval_step_due("director", FRIDAY_9)
    api.clock.set(due + timedelta(minutes=1))
    assert await api.fire() == 1
    assert api.types(renewal["id"]).count("ApprovalStepOverdue") == 1
    assert "ApprovalStepEscalated" not in api.types(renewal["id"])
    assert (await api.decide(renewal["id"], api.director))["state"] == "approved"
    assert api.payloads(renewal["id"], "DirectorDecisionApproved")[0]["kind"] == (
        "contract_renewal"
    )


# -- R5.3: emergency actions --------------------------------------------------------------------


async def test_emergency_actions_are_explained_then_ratified_R5_3(api: Api) -> None:
    """R5.3: the PM acts first and records it; an explanation within 24 h is on time; an
    action left unexplained is recorded overdue once, and its late explanation is still
    filed (on_time false); the Director alone ratifies or rejects (with the reason), only
    after the explanation; a PM reads only their own actions."""
    other_pm = api.token(OTHER_PM, "project_manager")
    acted = api.clock.now() - timedelta(hours=1)
    body = {
        "project_id": str(uuid4()),
        "what_happened": "生产数据库服务器宕机",
        "action_taken": "临时调配两名工程师抢修，启用备用服务器",
        "resources_changed": ["工程师 x2", "备用服务器"],
        "acted_at": acted.isoformat(),
    }
    first = await api.ok("POST", "/v1/emergencies", api.pm, body)
    assert first["state"] == "awaiting_explanation" and first["recorded_by"] == PM
    assert at(first["explanation_due_at"]) == acted + timedelta(hours=24)
    second = await api.ok(
        "POST", "/v1/emergencies", api.pm, {**body, "acted_at": api.clock.now().isoformat()}
    )
    theirs = await api.ok("POST", "/v1/emergencies", other_pm, body)
    await api.refused("POST", "/v1/emergencies", api.token("spec.li", "specialist"), body, 403)
    await api.refused("POST", "/v1/emergencies", api.director, body, 403)
    future = {**body, "acted_at": (api.clock.now() + timedelta(hours=1)).isoformat()}
    assert (await api.refused("POST", "/v1/emergencies", api.pm, future, 409))["rule"] == "R5.3"

    one, two = f"/v1/emergencies/{first['id']}", f"/v1/emergencies/{second['id']}"
    before = await api.refused("POST", f"{one}/decision", api.director, {"ratify": True}, 409)
    assert before["rule"] == "R5.3" and "explanation" in before["detail"]
    await api.refused("GET", one, other_pm, None, 403)
    await api.refused("GET", f"{one}/events", other_pm, None, 403)
    assert [(d["user_id"], d["status"]) for d in await api.denials()][-2:] == [
        (OTHER_PM, 403),
        (OTHER_PM, 403),
    ]
    assert (await api.ok("GET", f"/v1/emergencies/{theirs['id']}", other_pm))[
        "recorded_by"
    ] == OTHER_PM
    not_theirs = await api.refused(
        "POST", f"{one}/explanation", other_pm, {"explanation": "不是我"}, 403
    )
    assert not_theirs["rule"] == "R5.3"
    await api.refused("POST", f"{one}/explanation", api.pm, {"explanation": "  "}, 422)

    api.clock.advance(timedelta(hours=20))
    explained = await api.ok("POST", f"{one}/explanation", api.pm, {"explanation": "硬盘故障"})
    assert explained["state"] == "explained"
    (filed,) = api.payloads(first["id"], "EmergencyExplanationFiled")
    assert filed["on_time"] is True and filed["filed_by"] == PM
    for headers in (api.pm, api.dh, api.ceo):
        await api.refused("POST", f"{one}/decision", headers, {"ratify": True}, 403)
    no_reason = await api.refused("POST", f"{one}/decision", api.director, {"ratify": False}, 422)
    assert "reason" in no_reason["detail"]
    ratified = await api.ok("POST", f"{one}/decision", api.director, {"ratify": True})
    assert ratified["state"] == "ratified" and ratified["decided_by"] == DIRECTOR
    assert (await api.refused("POST", f"{one}/decision", api.director, {"ratify": True}, 409))[
        "rule"
    ] == "R5.3"

    api.clock.set(at(second["explanation_due_at"]) + timedelta(seconds=1))
    assert await api.fire() == 2  # the second action and the other PM's
    assert await api.fire() == 0
    assert api.types(second["id"]).count("EmergencyExplanationOverdue") == 1
    assert "EmergencyExplanationOverdue" not in api.types(first["id"])
    assert (await api.ok("GET", two, api.pm))["explanation_overdue"] is True

    mine = await api.ok("GET", "/v1/emergencies", api.pm)
    assert {a["id"] for a in mine["items"]} == {first["id"], second["id"]}
    overdue = await api.ok("GET", "/v1/emergencies?overdue=true", api.director)
    assert {a["id"] for a in overdue["items"]} == {second["id"], theirs["id"]}
    mine_overdue = await api.ok("GET", "/v1/emergencies?overdue=true", api.pm)
    assert [a["id"] for a in mine_overdue["items"]] == [second["id"]]

    late = await api.ok("POST", f"{two}/explanation", api.pm, {"explanation": "当晚忙于抢修"})
    assert late["state"] == "explained" and late["explanation_overdue"] is True
    (filed,) = api.payloads(second["id"], "EmergencyExplanationFiled")
    assert filed["on_time"] is False
    rejected = await api.ok(
        "POST", f"{two}/decision", api.director, {"ratify": False, "reason": "应先电话报备"}
    )
    assert rejected["state"] == "rejected" and rejected["decision_reason"] == "应先电话报备"
    (event,) = api.payloads(second["id"], "EmergencyActionRejected")
    assert event["reason"] == "应先电话报备"
    assert await api.fire() == 0
    assert api.types(second["id"]).count("EmergencyExplanationOverdue") == 1


# -- DESIGN.md sections 2 and 6: races, retries, bad input ----------------------------------------


async def test_fifty_parallel_decisions_sign_a_step_once_R3_1(api: Api) -> None:
    """R3.1, DESIGN.md section 2: 50 department heads sign one step at the same time
    (half of them naming the step): exactly one 200, every other a 409 carrying the
    current version (never a 403), and one ApprovalStepApproved stored for the step."""
    rid = (await api.procurement())["id"]
    url = f"/v1/approvals/{rid}/decisions"
    heads = [api.token(f"dh.{n:02d}", "dept_head") for n in range(50)]
    bodies = [{"decision": "approve"}, {"decision": "approve", "step": "department_head"}]
    responses = await asyncio.gather(
        *(api.call("POST", url, h, bodies[n % 2]) for n, h in enumerate(heads))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 49, [r.text for r in responses if r.status_code != 409]
    final = (await api.ok("GET", f"/v1/approvals/{rid}", api.pm))["version"]
    for response in responses:
        if response.status_code == 409:
            problem = response.json()
            assert problem["rule"] == "R3.1"
            assert isinstance(problem["current_version"], int)
            assert 2 <= problem["current_version"] <= final
    assert api.types(rid).count("ApprovalStepApproved") == 1
    (winner,) = [r.json() for r in responses if r.status_code == 200]
    (signed,) = api.payloads(rid, "ApprovalStepApproved")
    assert signed["approver"] == winner["history"][0]["decided_by"]
    assert winner["open_step"] == "finance"


async def test_a_stale_expected_version_is_409_with_the_current_one(api: Api) -> None:
    """R3.1, DESIGN.md section 6: a decision taken on a version the request has moved on
    from is a 409 carrying the current version."""
    opened = await api.procurement()
    rid = opened["id"]
    seen = opened["version"]
    await api.decide(rid, api.dh, expected_version=seen)
    stale = await api.refused(
        "POST",
        f"/v1/approvals/{rid}/decisions",
        api.fin,
        {"decision": "approve", "expected_version": seen},
        409,
    )
    assert stale["current_version"] == seen + 2
    assert (await api.decide(rid, api.fin, expected_version=seen + 2))["open_step"] == "ceo"


async def test_an_idempotency_key_replays_the_decision_R3_1(api: Api) -> None:
    """DESIGN.md section 6: the same Idempotency-Key replays the first answer
    (Idempotent-Replayed: true) and stores nothing new, also for retries racing the first
    attempt; another body with the key is a 422."""
    key = {"Idempotency-Key": "open-1"}
    opened = await api.call("POST", "/v1/approvals", {**api.pm, **key}, _procurement_body())
    assert opened.status_code == 201
    head = api.app.log_head()
    again = await api.call("POST", "/v1/approvals", {**api.pm, **key}, _procurement_body())
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == opened.json()["id"]
    assert again.headers["Location"] == f"/v1/approvals/{opened.json()['id']}"
    assert api.app.log_head() == head

    rid = opened.json()["id"]
    url = f"/v1/approvals/{rid}/decisions"
    headers = {**api.dh, "Idempotency-Key": "decide-1"}
    first = await api.call("POST", url, headers, {"decision": "approve", "reason": "同意"})
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    head = api.app.log_head()
    for _ in range(2):
        replay = await api.call("POST", url, headers, {"decision": "approve", "reason": "同意"})
        assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json() == first.json()
    assert api.app.log_head() == head
    assert api.types(rid).count("ApprovalStepApproved") == 1
    reused = await api.refused("POST", url, headers, {"decision": "approve", "reason": "改"}, 422)
    assert "Idempotency-Key" in reused["title"]

    # Retries sent while the first attempt is in flight: one decision, and every other
    # answer is its replay (never a 409 from the request the first attempt moved on).
    rid = (await api.procurement())["id"]
    racing = {**api.dh, "Idempotency-Key": "decide-2"}
    responses = await asyncio.gather(
        *(
            api.call("POST", f"/v1/approvals/{rid}/decisions", racing, {"decision": "approve"})
            for _ in range(20)
        )
    )
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1
    assert all(r.json() == responses[0].json() for r in responses)
    assert api.types(rid).count("ApprovalStepApproved") == 1


def _procurement_body(**changes: Any) -> dict[str, Any]:
    return {
        "kind": "procurement",
        "title": "机房扩容",
        "amount": "120000.00",
        "justification": "容量不足",
        **changes,
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"surprise": 1}, "surprise"),
        ({"amount": "-5"}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "12.345"}, "amount"),
        ({"amount": "a lot"}, "amount"),
        ({"justification": "   "}, "justification"),
        ({"title": ""}, "title"),
        ({"currency": "cny"}, "currency"),
        ({"partner_id": "not-a-uuid"}, "partner_id"),
        ({"project_id": "123"}, "project_id"),
        ({"approvers": {"cfo": "x"}}, "approvers"),
        ({"kind": "lunch"}, "kind"),
    ],
)
async def test_bad_requests_are_422_naming_the_field(
    api: Api, change: dict[str, Any], field: str
) -> None:
    """DESIGN.md section 6: unknown fields, bad amounts, blank text and bad UUIDs are a
    422 problem+json naming the field, and store nothing."""
    problem = await api.refused("POST", "/v1/approvals", api.pm, _procurement_body(**change), 422)
    errors = [(e["field"].split("."), e["message"]) for e in problem["errors"]]
    # The path names the field; an unknown `kind` is named by the message (the path is
    # the body: the discriminator found no model to name a field of).
    assert any(
        path[0] == "body" and (field in path or f"'{field}'" in message) for path, message in errors
    ), errors


async def test_bad_decisions_and_unknown_ids(api: Api) -> None:
    """DESIGN.md section 6: a decision's bad fields and bad path ids are 422 naming the
    field; an unknown request, emergency or delegation is a 404; nothing is stored."""
    rid = (await api.procurement())["id"]
    url = f"/v1/approvals/{rid}/decisions"
    bodies: tuple[tuple[dict[str, Any], str], ...] = (
        ({"decision": "approve", "extra": True}, "body.extra"),
        ({"decision": "maybe"}, "body.decision"),
        ({"decision": "approve", "step": "cfo"}, "body.step"),
        ({"decision": "approve", "expected_version": 0}, "body.expected_version"),
        ({"decision": "approve", "on_behalf_of": ""}, "body.on_behalf_of"),
        ({"decision": "reject", "reason": "x" * 2001}, "body.reason"),
    )
    for body, field in bodies:
        problem = await api.refused("POST", url, api.dh, body, 422)
        assert field in {e["field"] for e in problem["errors"]}, problem

    bad_ids: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
        ("GET", "/v1/approvals/not-a-uuid", None),
        ("GET", "/v1/approvals/not-a-uuid/events", None),
        ("POST", "/v1/approvals/not-a-uuid/decisions", {"decision": "approve"}),
        ("GET", "/v1/emergencies/42", None),
    )
    for method, path, payload in bad_ids:
        problem = await api.refused(method, path, api.director, payload, 422)
        fields = {e["field"] for e in problem["errors"]}
        assert fields & {"path.request_id", "path.action_id"}, problem
    await api.refused(
        "POST", "/v1/approvals/not-a-uuid/resubmission", api.pm, {"response": "x"}, 422
    )
    bad_cursor = await api.refused("GET", "/v1/approvals?cursor=xyz", api.pm, None, 422)
    assert bad_cursor["title"] == "Invalid cursor"
    await api.refused("GET", "/v1/approvals?overdue=perhaps", api.pm, None, 422)

    unknown = str(uuid4())
    emergency = (
        await api.ok(
            "POST",
            "/v1/emergencies",
            api.pm,
            {"what_happened": "断网", "action_taken": "切换线路", "acted_at": FRIDAY_9.isoformat()},
        )
    )["id"]
    unknown_ids: tuple[tuple[str, str, dict[str, str], dict[str, Any] | None], ...] = (
        ("GET", f"/v1/approvals/{unknown}", api.pm, None),
        ("GET", f"/v1/approvals/{unknown}/events", api.director, None),
        ("POST", f"/v1/approvals/{unknown}/decisions", api.dh, {"decision": "approve"}),
        ("POST", f"/v1/approvals/{unknown}/resubmission", api.pm, {"response": "x"}),
        ("GET", f"/v1/approvals/{emergency}", api.pm, None),  # not a request
        ("POST", f"/v1/approvals/{emergency}/decisions", api.dh, {"decision": "approve"}),
        ("GET", f"/v1/emergencies/{unknown}", api.director, None),
        ("GET", f"/v1/emergencies/{rid}", api.director, None),  # not an emergency
        ("POST", f"/v1/emergencies/{unknown}/explanation", api.pm, {"explanation": "x"}),
        ("POST", f"/v1/emergencies/{unknown}/decision", api.director, {"ratify": True}),
    )
    for method, path, headers, payload in unknown_ids:
        problem = await api.refused(method, path, headers, payload, 404)
        assert problem["status"] == 404

    # Roles: who may not even ask.
    partner = auth(api.settings, "vendor.a", "partner", partner_id=str(uuid4()))
    await api.refused("GET", f"/v1/approvals/{rid}", partner, None, 403)
    await api.refused("POST", "/v1/approvals", api.dh, _procurement_body(), 403)
    await api.refused("POST", url, api.pm, {"decision": "approve"}, 403)
    await api.refused("GET", f"/v1/approvals/{rid}/events", api.pm, None, 403)
    missing = await api.client.get(f"/v1/approvals/{rid}")
    assert missing.status_code == 401


# -- the consumer of partner.events -------------------------------------------------------------


def _partner_event(event_type: str, project_id: UUID, payload: dict[str, Any]) -> EventEnvelope:
    return EventEnvelope(
        event_id=uuid4(),
        event_type=event_type,
        schema_version=1,
        aggregate_type="Project",
        aggregate_id=project_id,
        aggregate_version=3,
        occurred_at=FRIDAY_9,
        recorded_at=FRIDAY_9,
        actor=ActorRef(user_id=PM, role="project_manager"),
        correlation_id=uuid4(),
        causation_id=None,
        payload=payload,
    )


async def test_requests_raised_by_projects_open_once_R3_1_R5_2(api: Api) -> None:
    """R3.1, R5.1, R5.2, DESIGN.md section 2: a project's ProcurementApprovalRequested
    opens the three-step chain (project id from the envelope, requester from the
    payload); the same envelope delivered twice opens nothing twice; a
    DirectorDecisionRequested opens a Director decision."""
    subscription = request_subscription(api.app)
    assert subscription.source == "partner"
    project = uuid4()
    request_id = uuid4()
    partner = uuid4()
    event = _partner_event(
        "ProcurementApprovalRequested",
        project,
        {
            "request_id": str(request_id),
            "title": "核心系统运维项目",
            "partner_id": str(partner),
            "amount": "1000000.00",
            "currency": "CNY",
            "justification": "年度运维外包",
            "requested_by": PM,
        },
    )
    handler = subscription.handlers["ProcurementApprovalRequested"]
    async with api.svc.runtime.pool.acquire() as conn:
        await handler(conn, event)
        head = api.app.log_head()
        await handler(conn, event)  # redelivered
        assert api.app.log_head() == head
        await handler(conn, event.model_copy(update={"event_id": uuid4()}))  # re-published
        assert api.app.log_head() == head

    view = await api.ok("GET", f"/v1/approvals/{request_id}", api.director)
    assert view["project_id"] == str(project) and view["partner_id"] == str(partner)
    assert view["requested_by"] == PM and view["source"] == "partner.events"
    assert view["open_step"] == "department_head" and Decimal(view["amount"]) == 1000000
    assert api.types(str(request_id)) == ["ApprovalRequested", "ApprovalStepOpened"]
    (requested,) = api.history(str(request_id))[:1]
    assert requested.causation_id == event.event_id
    assert requested.correlation_id == event.correlation_id
    # The project's requester is the requester here, with segregation of duties.
    own = await api.refused(
        "POST",
        f"/v1/approvals/{request_id}/decisions",
        api.token(PM, "dept_head"),
        {"decision": "approve"},
        403,
    )
    assert own["rule"] == "R3.1"
    await api.settle()
    assert await api.listed(api.director, f"?project_id={project}") == [str(request_id)]

    decision_id = uuid4()
    decision = _partner_event(
        "DirectorDecisionRequested",
        project,
        {
            "decision_id": str(decision_id),
            "kind": "budget_increase",
            "reason": "新增两个子系统",
            "new_budget": "1500000.00",
            "new_scope": None,
            "new_end_date": None,
            "new_value": None,
        },
    )
    async with api.svc.runtime.pool.acquire() as conn:
        for _ in range(2):
            await subscription.handlers["DirectorDecisionRequested"](conn, decision)
    opened = await api.ok("GET", f"/v1/approvals/{decision_id}", api.director)
    assert (opened["kind"], opened["steps"], opened["project_id"]) == (
        "budget_increase",
        ["director"],
        str(project),
    )
    assert Decimal(opened["new_budget"]) == Decimal("1500000.00")
    assert api.types(str(decision_id)).count("ApprovalRequested") == 1
    assert (await api.decide(str(decision_id), api.director))["state"] == "approved"

    before = api.app.log_head()
    async with api.svc.runtime.pool.acquire() as conn:
        broken = _partner_event("ProcurementApprovalRequested", project, {"title": "缺字段"})
        with pytest.raises(PoisonEvent):
            await handler(conn, broken)
        newer = event.model_copy(update={"schema_version": 2, "event_id": uuid4()})
        with pytest.raises(PoisonEvent):
            await handler(conn, newer)
        no_amount = _partner_event(
            "ProcurementApprovalRequested",
            project,
            {**event.payload, "request_id": str(uuid4()), "amount": "0"},
        )
        with pytest.raises(PoisonEvent):
            await handler(conn, no_amount)
    assert api.app.log_head() == before


async def test_moments_out_of_range_are_422_and_stall_nothing(api: Api) -> None:
    """R5.3: an action time that overflows in UTC (year 1 at +14:00, year 9999) is 422,
    never stored (it would stop the read models) and never a 500; the same for the
    time filters of the lists."""
    for acted_at in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:00:00Z"):
        problem = await api.refused(
            "POST",
            "/v1/emergencies",
            api.pm,
            {"what_happened": "x", "action_taken": "y", "acted_at": acted_at},
            422,
        )
        assert problem["errors"][0]["field"] == "body.acted_at"
    for url in (
        "/v1/approvals?opened_from=0001-01-01T00:00:00%2B14:00",
        "/v1/approvals?opened_to=2026-01-01T00:00:00",  # no time zone
        "/v1/emergencies?recorded_from=9999-12-31T23:59:59Z",
    ):
        response = await api.call("GET", url, api.director, None)
        assert response.status_code == 422, (url, response.text)
    rid = (await api.procurement())["id"]
    await api.settle()
    assert rid in await api.listed(api.director)
