"""The vertical slice in one process, on real PostgreSQL and a real broker:
registering a partner (R2.1) is stored, published, projected and readable.

Covers: 201 with Location/ETag, Idempotency-Key replay, 422 naming the field
and the GB 32100-2015 rule, 409 naming R2.1, 401, 403 (DESIGN.md section 5).
"""

from __future__ import annotations

import asyncio

import pytest

from services.kpi.service import SPEC as KPI
from services.partner.application import PartnerApplication
from services.partner.service import SPEC as PARTNER
from shared.settings import Settings
from tests.support.apps import running
from tests.support.auth import auth
from tests.support.data import registration
from tests.support.partner_flow import Flow
from tests.support.waiting import consumer_caught_up, wait_until

pytestmark = pytest.mark.integration


async def test_registration_travels_to_the_kpi_projection_R2_1(settings: Settings) -> None:
    async with running(PARTNER, settings) as partner, running(KPI, settings) as kpi:
        response = await partner.client.post(
            "/v1/partners", json=registration(1), headers=auth(settings)
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["status"] == "candidate"
        assert response.headers["location"] == f"/v1/partners/{body['id']}"
        assert response.headers["etag"] == '"1"'

        async def caught_up() -> bool:
            return consumer_caught_up(
                await partner.status(), await kpi.status(), kpi_group(settings)
            )

        await wait_until(caught_up, what="kpi applied partner.events")
        summary = await kpi.client.get("/v1/kpi/partners/summary", headers=auth(settings))
        assert summary.status_code == 200
        assert summary.json()["total"] == 1
        assert summary.json()["by_status"] == {"candidate": 1}


def kpi_group(settings: Settings) -> str:
    return f"{settings.consumer_group_of('kpi')}.projections"


async def test_idempotency_key_replays_the_first_answer(settings: Settings) -> None:
    async with running(PARTNER, settings, relay=False, consumers=False) as partner:
        headers = {**auth(settings), "Idempotency-Key": "order-42"}
        first = await partner.client.post("/v1/partners", json=registration(2), headers=headers)
        again = await partner.client.post("/v1/partners", json=registration(2), headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        other = await partner.client.post("/v1/partners", json=registration(3), headers=headers)
        assert other.status_code == 422
        assert other.headers["content-type"] == "application/problem+json"
        assert "different request" in other.json()["detail"]
        assert partner.runtime.application.log_head() == 1  # one event, however many retries


async def test_racing_retries_with_one_key_apply_once(settings: Settings) -> None:
    async with running(PARTNER, settings, relay=False, consumers=False) as partner:
        headers = {**auth(settings), "Idempotency-Key": "race"}
        answers = await asyncio.gather(
            *(
                partner.client.post("/v1/partners", json=registration(4), headers=headers)
                for _ in range(8)
            )
        )
        assert {a.status_code for a in answers} == {201}
        assert len({a.json()["id"] for a in answers}) == 1
        assert partner.runtime.application.log_head() == 1


async def test_wrong_credit_code_is_422_naming_field_and_rule(settings: Settings) -> None:
    async with running(PARTNER, settings, relay=False, consumers=False) as partner:
        body = registration(5)
        body["unified_social_credit_code"] = body["unified_social_credit_code"][:-1] + (
            "0" if body["unified_social_credit_code"][-1] != "0" else "1"
        )
        response = await partner.client.post("/v1/partners", json=body, headers=auth(settings))
        assert response.status_code == 422
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        (error,) = problem["errors"]
        assert error["field"] == "body.unified_social_credit_code"
        assert error["type"] == "uscc_check_character"
        assert "GB 32100-2015" in error["message"]
        assert partner.runtime.application.log_head() == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "  "}, "body.name"),
        ({"name": "bad\x00name"}, "body.name"),
        ({"service_categories": []}, "body.service_categories"),
        (
            {"contact": {"name": "x", "email": "not-an-email", "phone": "13800138000"}},
            "body.contact.email",
        ),
        (
            {"contact": {"name": "x", "email": "a@b.example", "phone": "12345"}},
            "body.contact.phone",
        ),
        ({"unified_social_credit_code": "9135010"}, "body.unified_social_credit_code"),
        ({"unexpected": 1}, "body.unexpected"),
    ],
)
async def test_bad_input_names_the_field(
    settings: Settings, change: dict[str, object], field: str
) -> None:
    async with running(PARTNER, settings, relay=False, consumers=False) as partner:
        body = {**registration(6), **change}
        response = await partner.client.post("/v1/partners", json=body, headers=auth(settings))
        assert response.status_code == 422, response.text
        assert field in {e["field"] for e in response.json()["errors"]}
        assert partner.runtime.application.log_head() == 0


async def test_second_registration_of_a_code_is_409_naming_R2_1(settings: Settings) -> None:
    async with running(PARTNER, settings, relay=False, consumers=False) as partner:
        first = await partner.client.post(
            "/v1/partners", json=registration(7), headers=auth(settings)
        )
        assert first.status_code == 201
        again = registration(7, name="另一个名字有限公司")
        second = await partner.client.post("/v1/partners", json=again, headers=auth(settings))
        assert second.status_code == 409
        assert second.json()["rule"] == "R2.1"
        assert second.json()["existing_id"] == first.json()["id"]


async def test_concurrent_registrations_of_one_code_store_one_partner(settings: Settings) -> None:
    async with running(PARTNER, settings, relay=False, consumers=False) as partner:
        answers = await asyncio.gather(
            *(
                partner.client.post("/v1/partners", json=registration(8), headers=auth(settings))
                for _ in range(10)
            )
        )
        codes = sorted(a.status_code for a in answers)
        assert codes.count(201) == 1
        assert set(codes) == {201, 409}
        assert partner.runtime.application.log_head() == 1


async def test_no_token_is_401_and_recorded(settings: Settings) -> None:
    async with running(PARTNER, settings, relay=False, consumers=False) as partner:
        response = await partner.client.post("/v1/partners", json=registration(9))
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        bad = await partner.client.post(
            "/v1/partners", json=registration(9), headers={"Authorization": "Bearer nonsense"}
        )
        assert bad.status_code == 401
        denials = await partner.runtime.pool.fetchval("SELECT count(*) FROM access_denials")
        assert denials == 2


@pytest.mark.parametrize("role", ["dept_head", "finance", "ceo", "auditor"])
async def test_roles_outside_the_department_get_403(settings: Settings, role: str) -> None:
    async with running(PARTNER, settings, relay=False, consumers=False) as partner:
        response = await partner.client.post(
            "/v1/partners", json=registration(10), headers=auth(settings, "bob", role)
        )
        assert response.status_code == 403
        assert role in response.json()["detail"]
        row = await partner.runtime.pool.fetchrow(
            "SELECT user_id, role, status FROM access_denials"
        )
        assert dict(row) == {"user_id": "bob", "role": role, "status": 403}
        assert partner.runtime.application.log_head() == 0


async def test_partner_token_reads_only_its_own_partner(settings: Settings) -> None:
    async with running(PARTNER, settings, relay=False, consumers=False) as partner:
        a = (
            await partner.client.post("/v1/partners", json=registration(11), headers=auth(settings))
        ).json()
        b = (
            await partner.client.post("/v1/partners", json=registration(12), headers=auth(settings))
        ).json()
        vendor = auth(settings, "vendor-a", "partner", partner_id=a["id"])
        assert (
            await partner.client.get(f"/v1/partners/{a['id']}", headers=vendor)
        ).status_code == 200
        assert (
            await partner.client.get(f"/v1/partners/{b['id']}", headers=vendor)
        ).status_code == 404
        history = await partner.client.get(f"/v1/partners/{a['id']}/events", headers=auth(settings))
        assert [e["event_type"] for e in history.json()] == ["PartnerRegistered"]
        assert history.json()[0]["actor"] == {"user_id": "alice", "role": "director"}


async def test_kpi_follows_partner_status_changes_R2_1(settings: Settings) -> None:
    async with running(PARTNER, settings) as partner, running(KPI, settings) as kpi:
        app = partner.runtime.application
        assert isinstance(app, PartnerApplication)
        flow = Flow(partner.client, settings, app)
        first = await flow.qualified_partner(21)
        await flow.qualified_partner(22)
        rejected = await flow.ok("POST", "/v1/partners", flow.pm, json=registration(23))
        await flow.ok(
            "POST",
            f"/v1/partners/{rejected['id']}/rejection",
            flow.director,
            json={"reason": "资质不足"},
        )
        await flow.ok(
            "POST",
            f"/v1/partners/{first}/status",
            flow.director,
            json={"action": "suspend", "reason": "安全事件"},
        )

        async def caught_up() -> bool:
            return consumer_caught_up(
                await partner.status(), await kpi.status(), kpi_group(settings)
            )

        await wait_until(caught_up, what="kpi applied the status changes")
        summary = await kpi.client.get("/v1/kpi/partners/summary", headers=auth(settings))
        assert summary.json()["by_status"] == {"qualified": 1, "rejected": 1, "suspended": 1}
        assert summary.json()["total"] == 3
