"""Meetings over HTTP with a moved clock (R4.2, R5.4, R5.5, R3.2, R3.5):

- R5.4: the weekly department meeting (a PM or the Director records it) and
  the quarterly strategy meeting (called by the Director only);
- R4.2: MeetingHeld starts a 24-hour minutes clock; minutes filed as a
  document (with `meeting_id`, or named afterwards) stop it: MinutesFiled on
  time or late; none -> MinutesOverdue at the 24th hour;
- R5.5: resolutions get an owner and a deadline within 24 hours
  (ResolutionOwnerOverdue otherwise), then are completed by their owner or
  become ResolutionOverdue at their deadline; each owner's open and overdue
  resolutions are listed;
- R3.2: a kickoff held (partner.events KickoffHeld) is a project meeting whose
  minutes are a 启动会纪要, recorded once however often the event arrives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from services.docs.service import SPEC as DOCS
from shared.clock import ManualClock
from shared.settings import Settings
from tests.support.apps import running
from tests.support.docs_api import (
    DIRECTOR,
    OTHER_SPECIALIST,
    PM,
    PROJECT_NAME,
    SPECIALIST,
    DocsApi,
    end_of_day,
    local,
)

pytestmark = pytest.mark.integration

DAY = timedelta(hours=24)
MICROSECOND = timedelta(microseconds=1)
HELD = local(2026, 11, 23, 8)  # Monday 08:00 Shanghai, an hour before the clock
MINUTES_NAME = "信息技术部-2026-11-23-会议纪要"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(local(2026, 11, 23, 9))  # Monday 09:00 Shanghai


@pytest.fixture
async def api(settings: Settings, clock: ManualClock) -> AsyncIterator[DocsApi]:
    async with running(
        DOCS, settings, relay=False, consumers=False, projectors=False, clock=clock
    ) as svc:
        yield DocsApi(svc, settings, clock)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def hold(
    api: DocsApi,
    headers: dict[str, str],
    *,
    kind: str = "weekly_department",
    resolutions: list[str] | None = None,
    held_at: datetime = HELD,
) -> dict[str, Any]:
    meeting: dict[str, Any] = await api.ok(
        "POST",
        "/v1/meetings",
        headers,
        {
            "kind": kind,
            "title": "部门周例会" if kind == "weekly_department" else "季度战略会",
            "held_at": held_at.isoformat(),
            "attendees": [DIRECTOR, PM, SPECIALIST],
            "resolutions": resolutions or [],
        },
    )
    await api.settle()
    return meeting


async def minutes(
    api: DocsApi, headers: dict[str, str], meeting_id: str | None, **kw: Any
) -> dict[str, Any]:
    """The department's minutes of 2026-11-23, filed (with `meeting_id` if given)."""
    extra = {"meeting_id": meeting_id} if meeting_id else None
    args: dict[str, Any] = {
        "name": MINUTES_NAME,
        "doc_type": "minutes",
        "period": "2026-11-23",
        "project_id": None,
        "extra": extra,
        **kw,
    }
    return await api.filed(headers, **args)


async def test_weekly_department_meeting_with_minutes_on_time_R5_4_R4_2(api: DocsApi) -> None:
    """R5.4, R4.2, R5.5: a PM records the weekly department meeting with its
    resolutions; the minutes clock runs 24 h from the meeting. Minutes filed as the
    department document `信息技术部-<day>-会议纪要` with `meeting_id` within the 24 h
    are MinutesFiled on time, and the end of the 24 h records nothing."""
    meeting = await hold(api, api.pm, resolutions=["推进备份演练", "更新值班表"])
    mid = meeting["id"]
    assert meeting["kind"] == "weekly_department" and meeting["project_id"] is None
    assert meeting["chaired_by"] == PM and meeting["source"] == "api"
    assert at(meeting["minutes_due_at"]) == HELD + DAY
    assert meeting["minutes_types"] == ["会议纪要"]
    assert [(r["resolution_id"], r["status"], r["owner"]) for r in meeting["resolutions"]] == [
        ("R1", "unassigned", None),
        ("R2", "unassigned", None),
    ]
    assert all(at(r["owner_due_at"]) == HELD + DAY for r in meeting["resolutions"])

    api.clock.set(HELD + DAY - timedelta(minutes=1))
    doc = await minutes(api, api.specialist, mid)
    assert doc["filing"]["minutes_of"] == mid and doc["meeting_id"] == mid
    assert doc["doc_type"] == "会议纪要" and doc["project_id"] is None
    assert api.types(mid) == [
        "MeetingHeld",
        "ResolutionRecorded",
        "ResolutionRecorded",
        "MinutesFiled",
    ]
    (filed,) = api.payloads(mid, "MinutesFiled")
    assert filed["on_time"] is True and filed["document_id"] == doc["id"]
    assert (filed["document_name"], filed["filed_by"]) == (MINUTES_NAME, SPECIALIST)

    # The end of the 24 h: the minutes clock was met (only the owner clocks fire).
    await api.fire_at(HELD + DAY)
    assert "MinutesOverdue" not in api.types(mid)
    view = await api.ok("GET", f"/v1/meetings/{mid}", api.auditor)
    assert view["minutes_document_id"] == doc["id"] and view["minutes_overdue"] is False
    listed = await api.ok("GET", "/v1/meetings?minutes=filed", api.dept_head)
    assert [m["id"] for m in listed["items"]] == [mid]


async def test_the_quarterly_strategy_meeting_is_the_directors_R5_4(api: DocsApi) -> None:
    """R5.4: a PM recording the quarterly strategy meeting is refused 403 (nothing
    stored, the refusal on record); the Director records it. A specialist records no
    meeting; project meetings do not come through this route (422)."""
    body = {
        "kind": "quarterly_strategy",
        "title": "2026年第四季度战略会",
        "held_at": HELD.isoformat(),
        "resolutions": ["2027年预算方案"],
    }
    problem = await api.refused("POST", "/v1/meetings", api.pm, body, 403)
    assert problem["rule"] == "R5.4"
    await api.refused("POST", "/v1/meetings", api.specialist, body, 403)
    kickoff = await api.refused("POST", "/v1/meetings", api.pm, {**body, "kind": "kickoff"}, 422)
    assert kickoff["errors"][0]["field"] == "body.kind"
    future = await api.refused(
        "POST",
        "/v1/meetings",
        api.director,
        {**body, "held_at": local(2026, 11, 24, 9).isoformat()},
        409,
    )
    assert future["rule"] == "R4.2"
    denials = await api.svc.runtime.pool.fetch("SELECT user_id, status, reason FROM access_denials")
    assert [(d["user_id"], d["status"]) for d in denials] == [(PM, 403), ("sp.zhao", 403)]
    assert "R5.4" in denials[0]["reason"]

    meeting = await api.ok("POST", "/v1/meetings", api.director, body)
    assert meeting["kind"] == "quarterly_strategy" and meeting["chaired_by"] == DIRECTOR
    assert [r["text"] for r in meeting["resolutions"]] == ["2027年预算方案"]


async def test_no_minutes_is_minutes_overdue_after_24_hours_R4_2_R3_5(api: DocsApi) -> None:
    """R4.2, R3.5: without minutes, MinutesOverdue is recorded at the 24th hour after
    the meeting, not a microsecond before, and once; minutes named afterwards through
    `POST /v1/meetings/{id}/minutes` are MinutesFiled late."""
    mid = (await hold(api, api.pm))["id"]
    assert await api.fire_at(HELD + DAY - MICROSECOND) == 0
    assert await api.fire_at(HELD + DAY) == 1
    assert api.types(mid) == ["MeetingHeld", "MinutesOverdue"]
    (overdue,) = api.payloads(mid, "MinutesOverdue")
    assert overdue["chaired_by"] == PM and at(overdue["due_at"]) == HELD + DAY
    assert await api.fire_at(HELD + 3 * DAY) == 0
    listed = await api.ok("GET", "/v1/meetings?minutes=overdue", api.director)
    assert [m["id"] for m in listed["items"]] == [mid]

    doc = await minutes(api, api.specialist, None)
    named = await api.ok(
        "POST", f"/v1/meetings/{mid}/minutes", api.specialist, {"document_id": doc["id"]}
    )
    assert named["minutes_document_id"] == doc["id"] and named["minutes_overdue"] is True
    assert api.types(mid) == ["MeetingHeld", "MinutesOverdue", "MinutesFiled"]
    assert api.payloads(mid, "MinutesFiled")[0]["on_time"] is False
    await api.settle()
    listed = await api.ok("GET", "/v1/meetings?minutes=filed_late", api.director)
    assert [m["id"] for m in listed["items"]] == [mid]


async def test_minutes_named_through_the_meeting_R4_2_R4_4(api: DocsApi) -> None:
    """R4.2, R4.4: `POST /v1/meetings/{id}/minutes` names a filed document as the
    minutes: within the 24 h it is on time; a document of another type, of another
    day, or a second set of minutes is refused (409) and stores nothing."""
    mid = (await hold(api, api.pm))["id"]
    url = f"/v1/meetings/{mid}/minutes"
    weekly = await api.filed(
        api.specialist,
        name="信息技术部-2026年11月-周报",
        doc_type="周报",
        period="2026-W48",
        project_id=None,
    )
    wrong_type = await api.refused("POST", url, api.specialist, {"document_id": weekly["id"]}, 409)
    assert wrong_type["rule"] == "R4.2"
    other_day = await api.filed(
        api.specialist,
        name="信息技术部-2026-11-20-会议纪要",
        doc_type="会议纪要",
        period="2026-11-20",
        project_id=None,
    )
    wrong_day = await api.refused(
        "POST", url, api.specialist, {"document_id": other_day["id"]}, 409
    )
    assert wrong_day["rule"] == "R4.4" and "2026-11-23" in wrong_day["detail"]

    api.clock.set(HELD + timedelta(hours=5))
    doc = await minutes(api, api.pm, None)
    named = await api.ok("POST", url, api.specialist, {"document_id": doc["id"]})
    assert named["minutes_document_id"] == doc["id"]
    assert api.payloads(mid, "MinutesFiled")[0]["on_time"] is True
    same_day = await api.filed(
        api.pm,
        name="信息技术部-2026年11月23日-会议纪要",
        doc_type="会议纪要",
        period="2026-11-23",
        project_id=None,
    )
    second = await api.refused("POST", url, api.pm, {"document_id": same_day["id"]}, 409)
    assert second["rule"] == "R4.2"
    await api.refused("POST", url, api.partner, {"document_id": doc["id"]}, 403)


async def test_resolutions_get_owners_and_are_followed_to_closure_R5_5_R3_5(
    api: DocsApi,
) -> None:
    """R5.5, R3.5: R1 gets its owner and deadline within 24 h (on time); R2 is left
    unassigned past the 24 h -> ResolutionOwnerOverdue (once), then assigned late;
    R1 passes its deadline -> ResolutionOverdue; R3 is completed by its owner on
    time, not by someone else (403). The owner's list counts open and overdue
    resolutions; a late completion records no second ResolutionOverdue."""
    meeting = await hold(api, api.pm, resolutions=["备份演练", "值班表", "漏洞扫描"])
    mid = meeting["id"]
    base = f"/v1/meetings/{mid}/resolutions"
    r1_deadline = local(2026, 11, 27, 18)

    api.clock.set(HELD + timedelta(hours=2))
    assigned = await api.ok(
        "POST",
        f"{base}/R1/assignment",
        api.pm,
        {"owner": SPECIALIST, "deadline": r1_deadline.isoformat()},
    )
    assert [(r["resolution_id"], r["status"], r["owner"]) for r in assigned["resolutions"]] == [
        ("R1", "open", SPECIALIST),
        ("R2", "unassigned", None),
        ("R3", "unassigned", None),
    ]
    await api.ok(
        "POST",
        f"{base}/R3/assignment",
        api.pm,
        {"owner": SPECIALIST, "deadline": local(2026, 11, 30, 18).isoformat()},
    )
    await api.refused(
        "POST",
        f"{base}/R2/assignment",
        api.specialist,
        {"owner": SPECIALIST, "deadline": r1_deadline.isoformat()},
        403,
    )
    past = await api.refused(
        "POST",
        f"{base}/R2/assignment",
        api.pm,
        {"owner": SPECIALIST, "deadline": HELD.isoformat()},
        409,
    )
    assert past["rule"] == "R5.5"

    # The 24 h end: R2 has no owner (the minutes are overdue too).
    assert await api.fire_at(HELD + DAY - MICROSECOND) == 0
    await api.fire_at(HELD + DAY)
    owner_overdue = api.payloads(mid, "ResolutionOwnerOverdue")
    assert [(p["resolution_id"], p["chaired_by"]) for p in owner_overdue] == [("R2", PM)]
    assert at(owner_overdue[0]["due_at"]) == HELD + DAY

    api.clock.set(HELD + DAY + timedelta(hours=3))
    late = await api.ok(
        "POST",
        f"{base}/R2/assignment",
        api.pm,
        {"owner": SPECIALIST, "deadline": local(2026, 12, 4, 18).isoformat()},
    )
    r2 = next(r for r in late["resolutions"] if r["resolution_id"] == "R2")
    assert r2["owner_overdue"] is True and r2["status"] == "open"
    on_time = [(p["resolution_id"], p["on_time"]) for p in api.payloads(mid, "ResolutionAssigned")]
    assert on_time == [("R1", True), ("R3", True), ("R2", False)]

    # R3: only its owner (or the chair) completes it.
    await api.refused("POST", f"{base}/R3/completion", api.other_specialist, {"note": "x"}, 403)
    done = await api.ok("POST", f"{base}/R3/completion", api.specialist, {"note": "扫描完成"})
    assert next(r for r in done["resolutions"] if r["resolution_id"] == "R3")["status"] == "done"

    # R1's deadline passes.
    assert await api.fire_at(r1_deadline - MICROSECOND) == 0
    assert await api.fire_at(r1_deadline) == 1
    overdue = api.payloads(mid, "ResolutionOverdue")
    assert [(p["resolution_id"], p["owner"]) for p in overdue] == [("R1", SPECIALIST)]

    mine = await api.ok("GET", f"/v1/meetings/resolutions?owner={SPECIALIST}", api.director)
    assert (mine["owner"], mine["open"], mine["overdue"]) == (SPECIALIST, 2, 1)
    assert [(r["resolution_id"], r["status"], r["overdue"]) for r in mine["items"]] == [
        ("R1", "open", True),
        ("R2", "open", False),
        ("R3", "done", False),
    ]
    own = await api.ok("GET", "/v1/meetings/resolutions", api.specialist)
    assert own["open"] == 2 and own["overdue"] == 1
    nobody = await api.ok("GET", f"/v1/meetings/resolutions?owner={OTHER_SPECIALIST}", api.pm)
    assert (nobody["open"], nobody["overdue"], nobody["items"]) == (0, 0, [])

    api.clock.advance(timedelta(hours=5))
    await api.ok("POST", f"{base}/R1/completion", api.specialist, {"note": "演练完成"})
    completed = api.payloads(mid, "ResolutionCompleted")
    assert [(p["resolution_id"], p["on_time"]) for p in completed] == [
        ("R3", True),
        ("R1", False),
    ]
    assert len(api.payloads(mid, "ResolutionOverdue")) == 1
    await api.settle()
    mine = await api.ok("GET", f"/v1/meetings/resolutions?owner={SPECIALIST}", api.director)
    assert (mine["open"], mine["overdue"]) == (1, 0)
    assert [r["on_time"] for r in mine["items"] if r["status"] == "done"] in (
        [False, True],
        [True, False],
    )


async def test_a_kickoff_from_partner_events_is_a_project_meeting_R3_2_R4_2(
    api: DocsApi,
) -> None:
    """R3.2, R4.2: KickoffHeld from the partner service records a `kickoff` meeting of
    the project, chaired by its PM, whose minutes are a 启动会纪要; a redelivery
    records nothing twice; the minutes filed with `meeting_id` within 24 h are on
    time."""
    project = await api.project(signed_on=date(2026, 11, 16))
    kickoff = api.kickoff_held(project, date(2026, 11, 23))
    await api.deliver(kickoff)
    await api.settle()
    head = api.app.log_head()
    await api.deliver(kickoff)
    await api.settle()
    assert api.app.log_head() == head

    listed = await api.ok("GET", f"/v1/meetings?project_id={project}", api.pm)
    assert len(listed["items"]) == 1
    mid = listed["items"][0]["id"]
    meeting = await api.ok("GET", f"/v1/meetings/{mid}", api.pm)
    assert (meeting["kind"], meeting["project_id"], meeting["source"]) == (
        "kickoff",
        str(project),
        "partner.events",
    )
    assert meeting["chaired_by"] == PM and PROJECT_NAME in meeting["title"]
    assert meeting["minutes_types"][0] == "启动会纪要"
    assert at(meeting["held_at"]) == local(2026, 11, 23, 9)  # reported the same day: now
    assert at(meeting["minutes_due_at"]) == local(2026, 11, 24, 9)

    api.clock.advance(timedelta(hours=6))
    doc = await api.filed(
        api.specialist,
        name=f"{PROJECT_NAME}-2026年11月23日-启动会纪要",
        doc_type="kickoff_minutes",
        period="2026-11-23",
        project_id=project,
        extra={"meeting_id": mid},
    )
    assert doc["doc_type"] == "启动会纪要" and doc["filing"]["minutes_of"] == mid
    assert api.types(mid) == ["MeetingHeld", "MinutesFiled"]
    assert api.payloads(mid, "MinutesFiled")[0]["on_time"] is True


async def test_a_kickoff_reported_days_later_is_overdue_at_once_R3_2_R4_2(api: DocsApi) -> None:
    """R4.2, R3.5: a kickoff held on Friday 11-20 but reported on Monday counts from
    the end of its day; its minutes were due 24 h later, so the engine records
    MinutesOverdue at once. Minutes of a project meeting filed as a department
    document are refused (409, R4.2)."""
    project = await api.project(signed_on=date(2026, 11, 16))
    await api.deliver(api.kickoff_held(project, date(2026, 11, 20), late=True))
    await api.settle()
    (meeting,) = (await api.ok("GET", f"/v1/meetings?project_id={project}", api.pm))["items"]
    assert at(meeting["held_at"]) == end_of_day(2026, 11, 20)
    assert at(meeting["minutes_due_at"]) == end_of_day(2026, 11, 20) + DAY
    await api.fire()
    assert api.types(meeting["id"]) == ["MeetingHeld", "MinutesOverdue"]

    problem = await api.upload_refused(
        409,
        api.specialist,
        name="信息技术部-2026-11-20-会议纪要",
        doc_type="minutes",
        period="2026-11-20",
        project_id=None,
        extra={"meeting_id": meeting["id"]},
    )
    assert problem["rule"] == "R4.2"
    late = await api.filed(
        api.pm,
        name=f"{PROJECT_NAME}-2026-11-20-启动会纪要",
        doc_type="启动会纪要",
        period="2026-11-20",
        project_id=project,
        extra={"meeting_id": meeting["id"]},
    )
    assert late["filing"]["minutes_of"] == meeting["id"]
    assert api.types(meeting["id"]) == ["MeetingHeld", "MinutesOverdue", "MinutesFiled"]
    assert api.payloads(meeting["id"], "MinutesFiled")[0]["on_time"] is False
