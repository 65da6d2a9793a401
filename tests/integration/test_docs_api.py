"""The docs service over HTTP (real PostgreSQL, in process, a manual clock):
R4.4 names, R4.5 versions and reads, R4.1 the encrypted archive, R4.3 report
schedules, R4.2 minutes, R5.5 resolutions. Projectors and the deadline engine
are driven by hand (`settle`, `fire`)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest

from services.docs.service import SPEC as DOCS
from shared.clock import ManualClock
from shared.settings import Settings
from tests.support.apps import running
from tests.support.docs_api import PROJECT_NAME, DocsApi, local

pytestmark = pytest.mark.integration


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(local(2026, 11, 23, 9))  # Monday 09:00 Shanghai


@pytest.fixture
async def api(settings: Settings, clock: ManualClock) -> AsyncIterator[DocsApi]:
    async with running(
        DOCS, settings, relay=False, consumers=False, projectors=False, clock=clock
    ) as svc:
        yield DocsApi(svc, settings, clock)


async def test_weekly_report_filed_on_time_then_a_new_version_R4_3_R4_4_R4_5(api: DocsApi) -> None:
    """R4.3, R4.4, R4.5: a contracted project owes a weekly report; the policy's
    own name form is accepted; a second upload under the name is version 2."""
    project = await api.project(signed_on=date(2026, 11, 16))
    response = await api.upload(
        api.specialist,
        name=f"{PROJECT_NAME}-2026年11月-周报",
        doc_type="weekly_report",
        period="2026-W48",
        project_id=project,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["doc_type"] == "周报"
    assert body["filing"]["report"] == "filed"
    assert body["versions"][0]["sha256"] == hashlib.sha256(b"report body").hexdigest()
    api.clock.advance(timedelta(hours=1))
    again = await api.upload(
        api.specialist,
        name=f"{PROJECT_NAME}-2026年11月-周报",
        doc_type="周报",
        period="2026-W48",
        project_id=project,
        content=b"report body v2",
    )
    assert again.status_code == 201, again.text
    assert [v["version"] for v in again.json()["versions"]] == [1, 2]
    await api.settle()
    schedule = await api.ok("GET", f"/v1/schedules/{project}", api.director)
    assert schedule["counts"]["weekly"]["filed"] == 1
    content = await api.client.get(f"/v1/documents/{body['id']}/versions/1/content", headers=api.pm)
    assert content.status_code == 200 and content.content == b"report body"


async def test_contract_readable_by_the_director_only_R4_1(api: DocsApi) -> None:
    """R4.1: the contract is stored encrypted; the PM's read is refused and on record."""
    project = await api.project(signed_on=date(2026, 11, 16))
    secret = "合同正文：甲方乙方保密条款。".encode() * 200
    response = await api.upload(
        api.pm,
        name=f"{PROJECT_NAME}-2026-11-16-合同",
        doc_type="contract",
        period="2026-11-16",
        project_id=project,
        content=secret,
    )
    assert response.status_code == 201, response.text
    doc = response.json()
    assert doc["encrypted"] and doc["contract_number"] == "HT-2026-001"
    denied = await api.client.get(f"/v1/documents/{doc['id']}/content", headers=api.pm)
    assert denied.status_code == 403 and denied.json()["rule"] == "R4.1"
    read = await api.client.get(f"/v1/documents/{doc['id']}/content", headers=api.director)
    assert read.status_code == 200 and read.content == secret
    assert api.types(doc["id"]) == [
        "DocumentFiled",
        "ContractAccessDenied",
        "ContractDocumentRead",
    ]
    rows = await api.svc.runtime.pool.fetch("SELECT data FROM contents")
    assert rows and all(secret[:64] not in bytes(r["data"]) for r in rows)
