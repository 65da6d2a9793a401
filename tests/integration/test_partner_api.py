"""The partner service's API refuses what the policy forbids, saying which
rule (R2.1 partner selection, R2.2 who acts, R3.1 approval before contract,
R3.2 kickoff before work, R3.3 reviews of active projects, R3.4 acceptance with
the third party, R5.1/R5.2 Director decisions), and refuses bad input with the
field named; a refused command stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

import pytest

from services.partner.application import PartnerApplication
from services.partner.service import SPEC as PARTNER
from shared.clock import ManualClock
from shared.settings import Settings
from tests.support.apps import RunningService, running
from tests.support.auth import auth
from tests.support.data import registration
from tests.support.partner_flow import SPECIALIST, THIRD_PARTY, Flow, scores
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

TODAY = date(2026, 11, 27)


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[RunningService]:
    clock = ManualClock(datetime(2026, 11, 27, 1, 0, tzinfo=UTC))
    async with running(PARTNER, settings, relay=False, consumers=False, clock=clock) as svc:
        yield svc


@pytest.fixture
def flow(service: RunningService, settings: Settings) -> Flow:
    app = service.runtime.application
    assert isinstance(app, PartnerApplication)
    flow = Flow(service.client, settings, app)
    flow.pool = service.runtime.pool
    return flow


async def refused(
    flow: Flow, method: str, url: str, headers: dict[str, str], body: Any, status: int
) -> dict[str, Any]:
    before = flow.app.log_head()
    response = await flow.client.request(method, url, headers=headers, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert flow.app.log_head() == before, "a refused command stored an event"
    problem: dict[str, Any] = response.json()
    return problem


# -- 409: the policy's rules -------------------------------------------------------------


async def test_contract_before_procurement_approval_is_409_R3_1(flow: Flow) -> None:
    partner = await flow.qualified_partner(1)
    project = await flow.planned_project(partner, date(2027, 1, 31))
    problem = await refused(
        flow, "POST", f"/v1/projects/{project}/contract", flow.pm, flow.contract_body(TODAY), 409
    )
    assert problem["rule"] == "R3.1"


async def test_delivery_before_kickoff_is_409_R3_2(flow: Flow) -> None:
    partner = await flow.qualified_partner(2)
    project = await flow.contracted_project(partner, TODAY)
    problem = await refused(
        flow,
        "POST",
        f"/v1/projects/{project}/milestones/M1/deliveries",
        flow.pm,
        {"delivered_on": "2026-12-01"},
        409,
    )
    assert problem["rule"] == "R3.2"


async def test_final_acceptance_needs_the_named_third_party_R3_4(flow: Flow) -> None:
    partner = await flow.qualified_partner(3)
    project = await flow.project_in_progress(partner, TODAY)
    flow.advance_to(date(2027, 2, 1))
    for milestone in ("M1", "M2"):
        await flow.ok(
            "POST",
            f"/v1/projects/{project}/milestones/{milestone}/deliveries",
            flow.pm,
            json={"delivered_on": "2026-12-20"},
        )
        await flow.ok(
            "POST",
            f"/v1/projects/{project}/milestones/{milestone}/acceptance",
            flow.pm,
            json={"accepted": True},
        )
    body = {
        "accepted_on": "2027-02-01",
        "third_party": "某某自家公司",
        "signatory": "张三",
        "report_ref": "YS-1",
    }
    problem = await refused(
        flow, "POST", f"/v1/projects/{project}/final-acceptance", flow.pm, body, 409
    )
    assert problem["rule"] == "R3.4"
    assert THIRD_PARTY in problem["detail"]
    closing = await refused(
        flow,
        "POST",
        f"/v1/projects/{project}/closure",
        flow.pm,
        {"outcome": "completed", "reason": "done"},
        409,
    )
    assert closing["rule"] == "R3.4"
    body["third_party"] = f"  {THIRD_PARTY} "
    accepted = await flow.ok("POST", f"/v1/projects/{project}/final-acceptance", flow.pm, json=body)
    assert accepted["status"] == "accepted"


@pytest.mark.parametrize("action", ["suspend", "terminate"])
async def test_a_suspended_or_terminated_partner_is_not_chosen_R2_1(
    flow: Flow, action: str
) -> None:
    partner = await flow.qualified_partner(4)
    await flow.ok(
        "POST",
        f"/v1/partners/{partner}/status",
        flow.director,
        json={"action": action, "reason": "违约", "blacklist": action == "terminate"},
    )
    problem = await refused(
        flow, "POST", "/v1/projects", flow.pm, flow.project_body(partner, date(2027, 1, 31)), 409
    )
    assert problem["rule"] == "R2.1"


async def test_a_candidate_is_not_chosen_and_evaluation_comes_before_qualification(
    flow: Flow,
) -> None:
    candidate = await flow.ok("POST", "/v1/partners", flow.pm, json=_registration(5))
    problem = await refused(
        flow,
        "POST",
        "/v1/projects",
        flow.pm,
        flow.project_body(candidate["id"], date(2027, 1, 31)),
        409,
    )
    assert problem["rule"] == "R2.1"
    no_evaluation = await refused(
        flow,
        "POST",
        f"/v1/partners/{candidate['id']}/qualification",
        flow.director,
        {"reason": "ok"},
        409,
    )
    assert "evaluation" in no_evaluation["detail"]


async def test_expired_certificates_cannot_qualify_R2_1(flow: Flow) -> None:
    candidate = await flow.ok("POST", "/v1/partners", flow.pm, json=_registration(6))
    expired = {"name": "ISO/IEC 27001", "certificate_no": "X", "expires_on": "2026-01-31"}
    await flow.ok(
        "POST",
        f"/v1/partners/{candidate['id']}/evaluations",
        flow.specialist,
        json={"scores": _scores(), "qualifications": [expired], "summary": "证书过期"},
    )
    problem = await refused(
        flow,
        "POST",
        f"/v1/partners/{candidate['id']}/qualification",
        flow.director,
        {"reason": "ok"},
        409,
    )
    assert problem["rule"] == "R2.1"
    assert "expired" in problem["detail"]


async def test_big_budget_increase_goes_to_the_director_R5_2(flow: Flow) -> None:
    partner = await flow.qualified_partner(7)
    project = await flow.contracted_project(partner, TODAY)
    small = await flow.ok(
        "POST",
        f"/v1/projects/{project}/budget",
        flow.pm,
        json={"new_budget": "1050000.00", "reason": "扩容"},
    )
    assert small["budget"] == "1050000.00" and small["pending_decisions"] == []
    big = await flow.ok(
        "POST",
        f"/v1/projects/{project}/budget",
        flow.pm,
        json={"new_budget": "2000000.00", "reason": "新增系统"},
    )
    assert big["budget"] == "1050000.00"
    assert [d["kind"] for d in big["pending_decisions"]] == ["budget_increase"]
    again = await refused(
        flow,
        "POST",
        f"/v1/projects/{project}/budget",
        flow.pm,
        {"new_budget": "3000000.00", "reason": "再次"},
        409,
    )
    assert again["rule"] == "R5.2"
    renewal = await refused(
        flow,
        "POST",
        f"/v1/projects/{project}/renewal",
        flow.pm,
        {"new_end_date": "2026-12-01", "reason": "续约"},
        409,
    )
    assert renewal["rule"] == "R5.1"


async def test_review_of_a_closed_project_is_409_R3_3(flow: Flow) -> None:
    partner = await flow.qualified_partner(8)
    project = await flow.contracted_project(partner, TODAY)
    await flow.ok(
        "POST",
        f"/v1/projects/{project}/closure",
        flow.director,
        json={"outcome": "terminated", "reason": "合作方违约"},
    )
    problem = await refused(
        flow,
        "POST",
        f"/v1/projects/{project}/reviews",
        flow.pm,
        {"held_on": "2026-12-15", "progress": "-", "risk_rating": "low"},
        409,
    )
    assert problem["rule"] == "R3.3"


# -- 403 / 404: who may act (R2.2, DESIGN.md section 5) ----------------------------------------


async def test_only_managers_and_the_director_create_projects(flow: Flow) -> None:
    partner = await flow.qualified_partner(9)
    body = flow.project_body(partner, date(2027, 1, 31))
    for role in ("specialist", "finance", "ceo", "auditor", "dept_head"):
        await refused(flow, "POST", "/v1/projects", auth(flow.settings, "u", role), body, 403)
    other_pm = auth(flow.settings, "pm.other", "project_manager")
    problem = await refused(flow, "POST", "/v1/projects", other_pm, body, 403)
    assert problem["rule"] == "R2.2"


async def test_a_manager_acts_on_own_projects_only_R2_2(flow: Flow) -> None:
    partner = await flow.qualified_partner(10)
    project = await flow.planned_project(partner, date(2027, 1, 31))
    other_pm = auth(flow.settings, "pm.other", "project_manager")
    problem = await refused(
        flow,
        "POST",
        f"/v1/projects/{project}/procurement-approval-requests",
        other_pm,
        {"justification": "x"},
        403,
    )
    assert problem["rule"] == "R2.2"
    row = await _last_denial(flow)
    assert row["user_id"] == "pm.other" and row["status"] == 403


async def test_tasks_are_acknowledged_by_their_specialist(flow: Flow) -> None:
    partner = await flow.qualified_partner(11)
    project = await flow.project_in_progress(partner, TODAY)
    await flow.ok(
        "POST",
        f"/v1/projects/{project}/tasks",
        flow.pm,
        json={"task_id": "T1", "title": "巡检", "specialist": SPECIALIST, "due_on": "2026-12-10"},
    )
    someone_else = auth(flow.settings, "spec.zhao", "specialist")
    await refused(
        flow, "POST", f"/v1/projects/{project}/tasks/T1/acknowledgement", someone_else, None, 403
    )
    done = await flow.ok(
        "POST", f"/v1/projects/{project}/tasks/T1/acknowledgement", flow.specialist
    )
    assert done["tasks"][0]["status"] == "acknowledged"
    not_on_team = await refused(
        flow,
        "POST",
        f"/v1/projects/{project}/tasks",
        flow.pm,
        {"task_id": "T2", "title": "x", "specialist": "spec.zhao", "due_on": "2026-12-10"},
        409,
    )
    assert not_on_team["rule"] == "R2.2"


async def test_a_partner_sees_and_delivers_only_its_own_projects(flow: Flow) -> None:
    mine = await flow.qualified_partner(12)
    other = await flow.qualified_partner(13)
    my_project = await flow.project_in_progress(mine, TODAY)
    other_project = await flow.project_in_progress(other, TODAY)
    flow.advance_to(date(2026, 12, 20))
    vendor = auth(flow.settings, "vendor.a", "partner", partner_id=mine)
    assert (await flow.client.get(f"/v1/projects/{my_project}", headers=vendor)).status_code == 200
    await refused(flow, "GET", f"/v1/projects/{other_project}", vendor, None, 404)
    await refused(
        flow,
        "POST",
        f"/v1/projects/{other_project}/milestones/M1/deliveries",
        vendor,
        {"delivered_on": "2026-12-20"},
        404,
    )
    delivered = await flow.ok(
        "POST",
        f"/v1/projects/{my_project}/milestones/M1/deliveries",
        vendor,
        json={"delivered_on": "2026-12-20"},
    )
    assert delivered["milestones"][0]["status"] == "delivered"
    await refused(
        flow,
        "POST",
        f"/v1/projects/{my_project}/milestones/M1/acceptance",
        vendor,
        {"accepted": True},
        403,
    )
    listed = await flow.client.get("/v1/projects", headers=vendor)
    assert listed.status_code == 200
    await _wait_views(flow)
    listed = await flow.client.get("/v1/projects", headers=vendor)
    assert {p["id"] for p in listed.json()["items"]} == {my_project}


async def test_only_the_director_decides_on_partners(flow: Flow) -> None:
    candidate = await flow.ok("POST", "/v1/partners", flow.pm, json=_registration(14))
    await refused(
        flow, "POST", f"/v1/partners/{candidate['id']}/qualification", flow.pm, {"reason": "x"}, 403
    )
    await refused(
        flow,
        "POST",
        f"/v1/partners/{candidate['id']}/status",
        flow.pm,
        {"action": "suspend", "reason": "x"},
        403,
    )


async def test_unknown_ids_are_404(flow: Flow) -> None:
    partner = await flow.qualified_partner(15)
    await refused(flow, "GET", f"/v1/projects/{uuid4()}", flow.pm, None, 404)
    await refused(flow, "GET", f"/v1/projects/{partner}", flow.pm, None, 404)  # a partner's id
    await refused(flow, "GET", f"/v1/partners/{uuid4()}", flow.pm, None, 404)


# -- 422: bad input, field named -------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"milestones": []}, "body.milestones"),
        ({"budget": "-5"}, "body.budget"),
        ({"currency": "cny"}, "body.currency"),
        ({"title": ""}, "body.title"),
        ({"partner_id": "not-a-uuid"}, "body.partner_id"),
        ({"project_manager": "pm\u0000x"}, "body.project_manager"),
    ],
)
async def test_bad_project_input_names_the_field(
    flow: Flow, change: dict[str, Any], field: str
) -> None:
    partner = await flow.qualified_partner(16)
    body = {**flow.project_body(partner, date(2027, 1, 31)), **change}
    problem = await refused(flow, "POST", "/v1/projects", flow.pm, body, 422)
    assert field in {e["field"] for e in problem["errors"]}


async def test_duplicate_milestones_and_backwards_contracts_are_422(flow: Flow) -> None:
    partner = await flow.qualified_partner(17)
    body = flow.project_body(partner, date(2027, 1, 31))
    body["milestones"][1]["milestone_id"] = "M1"
    await refused(flow, "POST", "/v1/projects", flow.pm, body, 422)
    project = await flow.approved_project(partner, date(2027, 1, 31))
    contract = flow.contract_body(TODAY)
    contract["ends_on"] = "2026-01-01"
    await refused(flow, "POST", f"/v1/projects/{project}/contract", flow.pm, contract, 422)


async def test_evaluation_needs_every_criterion(flow: Flow) -> None:
    candidate = await flow.ok("POST", "/v1/partners", flow.pm, json=_registration(18))
    scores = _scores()
    del scores["references"]
    problem = await refused(
        flow,
        "POST",
        f"/v1/partners/{candidate['id']}/evaluations",
        flow.specialist,
        {"scores": scores, "summary": "x"},
        422,
    )
    assert "references" in problem["detail"]


# -- helpers ----------------------------------------------------------------------------------


def _registration(n: int) -> dict[str, Any]:
    return registration(n)


def _scores() -> dict[str, int]:
    return scores()


async def _last_denial(flow: Flow) -> dict[str, Any]:
    row = await flow.pool.fetchrow(
        "SELECT user_id, status FROM access_denials ORDER BY id DESC LIMIT 1"
    )
    assert row is not None
    return dict(row)


async def _wait_views(flow: Flow) -> None:
    """The list is a projection: wait for its position to reach the log head."""

    async def caught_up() -> bool:
        position = await flow.pool.fetchval(
            "SELECT position FROM projector_positions WHERE name = 'views'"
        )
        return bool(position == flow.app.log_head())

    await wait_until(caught_up, what="the views projector")


async def test_lists_page_with_cursors_and_filters(flow: Flow) -> None:
    for n in (30, 31, 32):
        await flow.qualified_partner(n)
    await _wait_views(flow)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": 2, "status": "qualified", **({"cursor": cursor} if cursor else {})}
        page = (await flow.client.get("/v1/partners", headers=flow.pm, params=params)).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 3
    bad = await flow.client.get("/v1/partners", headers=flow.pm, params={"cursor": "garbage"})
    assert bad.status_code == 422
    none = await flow.client.get("/v1/partners", headers=flow.pm, params={"status": "terminated"})
    assert none.json()["items"] == []
