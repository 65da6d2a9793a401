"""The docs service under concurrent use and hostile input (real PostgreSQL,
in process, a manual clock):

- R4.5, R4.1: reads are recorded on the document, so two people reading at
  once both get the content and both reads are on record; a refused contract
  read racing another one is on record too;
- R2.2: a project's meetings and report schedule are read by its staff (and
  the department's readers of everything), not by other PMs or specialists;
- DESIGN.md section 6: an upload without a token is refused before it is
  parsed; a note with a NUL is a 422, never a stalled projector;
- R4.1: a contract's file name and note never reach the events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest

from services.docs.service import SPEC as DOCS
from shared.clock import ManualClock
from shared.settings import Settings
from tests.support.apps import running
from tests.support.docs_api import PROJECT_NAME, DocsApi, local

pytestmark = pytest.mark.integration

WEEKLY = f"{PROJECT_NAME}-2026年11月-周报"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(local(2026, 11, 23, 9))


@pytest.fixture
async def api(settings: Settings, clock: ManualClock) -> AsyncIterator[DocsApi]:
    async with running(
        DOCS, settings, relay=False, consumers=False, projectors=False, clock=clock
    ) as svc:
        yield DocsApi(svc, settings, clock)


async def test_simultaneous_reads_all_succeed_and_are_all_on_record_R4_5_R4_1(
    api: DocsApi,
) -> None:
    """R4.5: eight people downloading one report at once all get it, and eight
    DocumentRead events are stored; eight refused contract reads at once are
    eight ContractAccessDenied events, none lost to a version conflict (R4.1)."""
    project = await api.project(signed_on=date(2026, 11, 16))
    report = await api.filed(
        api.specialist, name=WEEKLY, doc_type="周报", period="2026-W48", project_id=project
    )
    contract = await api.filed(
        api.pm,
        name=f"{PROJECT_NAME}-2026-11-16-合同",
        doc_type="合同",
        period="2026-11-16",
        project_id=project,
        content=b"contract text",
    )
    reads = await asyncio.gather(
        *(api.client.get(f"/v1/documents/{report['id']}/content", headers=api.auditor)
          for _ in range(8))
    )  # fmt: skip
    assert [r.status_code for r in reads] == [200] * 8
    assert api.types(report["id"]).count("DocumentRead") == 8
    denied = await asyncio.gather(
        *(api.client.get(f"/v1/documents/{contract['id']}/content", headers=api.pm)
          for _ in range(8))
    )  # fmt: skip
    assert [r.status_code for r in denied] == [403] * 8
    assert api.types(contract["id"]).count("ContractAccessDenied") == 8


async def test_meetings_and_schedules_are_read_by_the_projects_staff_R2_2(api: DocsApi) -> None:
    """R2.2: another project's PM or specialist gets 403 (recorded) for its
    schedule and its meetings, and does not see them listed; its own staff,
    the Director and the auditor do; department meetings are read by all staff;
    the list of resolutions without an owner is scoped the same way."""
    project = await api.project(signed_on=date(2026, 11, 16))
    await api.deliver(api.kickoff_held(project, date(2026, 11, 20)))
    department = await api.ok(
        "POST",
        "/v1/meetings",
        api.pm,
        {
            "kind": "weekly_department",
            "title": "部门周会",
            "held_at": local(2026, 11, 23, 8).isoformat(),
        },
    )
    await api.settle()
    kickoff = (await api.ok("GET", f"/v1/meetings?project_id={project}", api.director))["items"]
    assert len(kickoff) == 1
    for reader in (api.pm, api.specialist, api.director, api.auditor):
        await api.ok("GET", f"/v1/schedules/{project}", reader)
        await api.ok("GET", f"/v1/meetings/{kickoff[0]['id']}", reader)
        listed = await api.ok("GET", "/v1/schedules", reader)
        assert {p["project_id"] for p in listed["items"]} == {str(project)}
    for outsider in (api.other_pm, api.other_specialist):
        assert (
            await api.client.get(f"/v1/schedules/{project}", headers=outsider)
        ).status_code == 403
        meeting = await api.client.get(f"/v1/meetings/{kickoff[0]['id']}", headers=outsider)
        assert meeting.status_code == 403 and meeting.json()["rule"] == "R2.2"
        assert (await api.ok("GET", "/v1/schedules", outsider))["items"] == []
        meetings = await api.ok("GET", "/v1/meetings", outsider)
        assert [m["id"] for m in meetings["items"]] == [department["id"]]
        await api.ok("GET", f"/v1/meetings/{department['id']}", outsider)
    denials = await api.svc.runtime.pool.fetch("SELECT status FROM access_denials")
    assert [d["status"] for d in denials] == [403] * 4

    # Resolutions without an owner: the project's staff see its own, others not.
    await api.ok(
        "POST", f"/v1/meetings/{kickoff[0]['id']}/resolutions", api.pm, {"text": "补充监控方案"}
    )
    await api.settle()
    mine = await api.ok("GET", "/v1/meetings/resolutions/unassigned", api.pm)
    assert [r["meeting_id"] for r in mine] == [kickoff[0]["id"]]
    assert await api.ok("GET", "/v1/meetings/resolutions/unassigned", api.other_pm) == []
    assert len(await api.ok("GET", "/v1/meetings/resolutions/unassigned", api.auditor)) == 1


async def test_uploads_without_a_token_and_notes_with_a_nul_are_refused_R4_5(
    api: DocsApi,
) -> None:
    """An upload without a token is 401 before its body is parsed; a note or a
    completion note with a NUL is a 422 and stores nothing (a NUL would stall
    the projection that writes it to PostgreSQL)."""
    project = await api.project(signed_on=date(2026, 11, 16))
    anonymous = await api.client.post(
        "/v1/documents",
        data={"type": "周报", "period": "2026-W48", "project_id": str(project), "name": WEEKLY},
        files={"file": ("a.pdf", b"x" * 1000, "application/pdf")},
    )
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    head = api.app.log_head()
    nul = await api.upload(
        api.specialist,
        name=WEEKLY,
        doc_type="周报",
        period="2026-W48",
        project_id=project,
        extra={"note": "修正\x00"},
    )
    assert nul.status_code == 422 and nul.json()["errors"][0]["field"].endswith("note")
    assert api.app.log_head() == head


async def test_a_contracts_file_name_and_note_stay_off_the_events_R4_1(api: DocsApi) -> None:
    """R4.1: a contract's original file name (which may carry its terms) is
    replaced by its R4.4 name, and a note on a contract is refused: both would
    be published on docs.events unencrypted."""
    project = await api.project(signed_on=date(2026, 11, 16))
    name = f"{PROJECT_NAME}-2026-11-16-合同"
    with_note = await api.upload(
        api.pm,
        name=name,
        doc_type="合同",
        period="2026-11-16",
        project_id=project,
        extra={"note": "金额 500 万"},
    )
    assert with_note.status_code == 422 and with_note.json()["rule"] == "R4.1"
    filed = await api.filed(
        api.pm,
        name=name,
        doc_type="合同",
        period="2026-11-16",
        project_id=project,
        file_name="与某公司合同_金额500万.pdf",
        content=b"terms",
    )
    (payload,) = api.payloads(filed["id"], "DocumentFiled")
    assert payload["file_name"] == f"{name}.pdf" and "500" not in str(payload)
    api.clock.advance(timedelta(minutes=5))
    read = await api.client.get(f"/v1/documents/{filed['id']}/content", headers=api.director)
    assert read.status_code == 200 and read.content == b"terms"
