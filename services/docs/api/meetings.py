"""HTTP routes of /v1/meetings: department meetings (R5.4), minutes on time
(R4.2) and resolutions with owner and deadline, followed to closure (R5.5).
Project meetings (kickoff R3.2, mid-term review R3.3, acceptance R3.4) are
recorded by the partner service and appear here from its events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from services.docs.api import schemas as s
from services.docs.api.access import (
    INTERNAL,
    STAFF,
    STAFFED,
    ensure_staffed,
    forbidden,
    on_staff,
    project_info,
    staff_scope,
)
from services.docs.api.documents import App, Idempotency
from services.docs.application import DocsApplication
from services.docs.domain.meeting import Meeting, MeetingKind
from shared.auth import DIRECTOR, PROJECT_MANAGER, Principal
from shared.domain import CommandContext
from shared.envelope import EventEnvelope
from shared.http import (
    command,
    encode_cursor,
    require_roles,
    runtime_of,
    time_id_cursor,
)
from shared.idempotency import IdempotencyKey
from shared.problems import PROBLEM_RESPONSES
from shared.text import Moment, UserId

router = APIRouter(prefix="/v1/meetings", tags=["meetings"], responses=PROBLEM_RESPONSES)

Chair = Annotated[
    Principal,
    Depends(require_roles(DIRECTOR, PROJECT_MANAGER, action="record department meetings (R5.4)")),
]
Staff = Annotated[Principal, Depends(require_roles(*STAFF, action="act on meetings (R4.2, R5.5)"))]
Reader = Annotated[Principal, Depends(require_roles(*INTERNAL, action="read meetings"))]
ResolutionId = Annotated[str, Path(pattern=r"^R[0-9]{1,4}$")]


async def _command(
    request: Request,
    principal: Principal,
    idempotency: IdempotencyKey | None,
    name: str,
    execute: Callable[[CommandContext], Meeting],
    *,
    status: int = 200,
) -> JSONResponse:
    return await command(
        request,
        principal,
        idempotency,
        name,
        execute,
        s.MeetingView.of,
        status=status,
        location=lambda m: f"/v1/meetings/{m.id}",
    )


async def _meeting(app: DocsApplication, meeting_id: UUID) -> Meeting:
    return await run_in_threadpool(app.get_meeting, meeting_id)


async def _ensure_runs(request: Request, principal: Principal, meeting: Meeting) -> None:
    """The chair, the Director, or (for a project meeting) its manager."""
    if principal.role == DIRECTOR or principal.user_id == meeting.chaired_by:
        return
    if meeting.project_id is not None and principal.role == PROJECT_MANAGER:
        project = await project_info(request, meeting.project_id)
        if project is not None and project.project_manager == principal.user_id:
            return
    raise await forbidden(
        request,
        principal,
        "the meeting's chair, the project's manager or the Director does this (R5.5)",
        "R5.5",
    )


@router.post(
    "",
    status_code=201,
    response_model=s.MeetingView,
    summary="Record a department meeting held; the minutes and resolution clocks start",
)
async def hold_meeting(
    body: s.HoldMeeting,
    request: Request,
    principal: Chair,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    def execute(c: CommandContext) -> Meeting:
        meeting, _ = app.hold_meeting(
            c,
            kind=body.kind,
            title=body.title,
            held_at=body.held_at,
            attendees=body.attendees,
            resolutions=body.resolutions,
        )
        return meeting

    return await _command(request, principal, idempotency, "hold_meeting", execute, status=201)


@router.get("", response_model=s.MeetingPage, summary="Meetings, oldest first")
async def list_meetings(
    request: Request,
    principal: Reader,
    kind: MeetingKind | None = None,
    project_id: UUID | None = None,
    minutes: Literal["due", "filed", "filed_late", "overdue"] | None = None,
    held_from: Moment | None = None,
    held_to: Moment | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> s.MeetingPage:
    after_at, after_id = time_id_cursor(cursor)
    rows = await runtime_of(request).pool.fetch(
        "SELECT meeting_id AS id, kind, title, project_id, held_at, chaired_by, minutes_due_at,"
        " minutes_status, minutes_document_id FROM meeting_view"
        " WHERE ($1::text IS NULL OR kind = $1) AND ($2::uuid IS NULL OR project_id = $2)"
        " AND ($3::text IS NULL OR minutes_status = $3)"
        " AND ($4::timestamptz IS NULL OR held_at >= $4)"
        " AND ($5::timestamptz IS NULL OR held_at < $5)"
        " AND ($6::timestamptz IS NULL OR (held_at, meeting_id) > ($6, $7::uuid))"
        f" AND {STAFFED.format(uid='$9', role='$10')}"
        " ORDER BY held_at, meeting_id LIMIT $8",
        kind,
        project_id,
        minutes,
        held_from,
        held_to,
        after_at,
        after_id,
        limit + 1,
        *staff_scope(principal),
    )
    items = [s.MeetingRow(**dict(r)) for r in rows[:limit]]
    last = items[-1] if len(rows) > limit and items else None
    token = encode_cursor(last.held_at.isoformat(), last.id) if last else None
    return s.MeetingPage(items=items, next_cursor=token)


@router.get(
    "/resolutions",
    response_model=s.OwnerResolutions,
    summary="One owner's resolutions: open and overdue first (R5.5)",
)
async def owner_resolutions(
    request: Request,
    principal: Reader,
    owner: Annotated[UserId | None, Query(description="Default: the caller")] = None,
    status: Literal["unassigned", "open", "done"] | None = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> s.OwnerResolutions:
    who = owner or principal.user_id
    # One's own resolutions, wherever they are; another owner's only on the
    # caller's projects (R2.2).
    scope = (None, None) if who == principal.user_id else staff_scope(principal)
    pool = runtime_of(request).pool
    rows = await pool.fetch(
        "SELECT meeting_id, resolution_id, project_id, text, owner, deadline, status,"
        " owner_due_at, owner_overdue, overdue, completed_at, on_time FROM resolution_view"
        " WHERE owner = $1 AND ($2::text IS NULL OR status = $2)"
        " AND ($3::boolean IS NULL OR overdue = $3)"
        f" AND {STAFFED.format(uid='$5', role='$6')}"
        " ORDER BY status = 'done', overdue DESC, deadline, meeting_id, resolution_id LIMIT $4",
        who,
        status,
        overdue,
        limit,
        *scope,
    )
    counts = await pool.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'open') AS open,"
        " count(*) FILTER (WHERE status = 'open' AND overdue) AS overdue"
        f" FROM resolution_view WHERE owner = $1 AND {STAFFED.format(uid='$2', role='$3')}",
        who,
        *scope,
    )
    return s.OwnerResolutions(
        owner=who,
        open=counts["open"] if counts else 0,
        overdue=counts["overdue"] if counts else 0,
        items=[s.ResolutionRow(**dict(r)) for r in rows],
    )


@router.get(
    "/resolutions/unassigned",
    response_model=list[s.ResolutionRow],
    summary="Resolutions still without owner and deadline (R5.5)",
)
async def unassigned_resolutions(
    request: Request,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> list[s.ResolutionRow]:
    rows = await runtime_of(request).pool.fetch(
        "SELECT meeting_id, resolution_id, project_id, text, owner, deadline, status,"
        " owner_due_at, owner_overdue, overdue, completed_at, on_time FROM resolution_view"
        f" WHERE status = 'unassigned' AND {STAFFED.format(uid='$2', role='$3')}"
        " ORDER BY owner_due_at, meeting_id, resolution_id LIMIT $1",
        limit,
        *staff_scope(principal),
    )
    return [s.ResolutionRow(**dict(r)) for r in rows]


@router.get("/{meeting_id}", response_model=s.MeetingView, summary="One meeting")
async def get_meeting(
    meeting_id: UUID, request: Request, principal: Reader, app: App
) -> s.MeetingView:
    meeting = await _meeting(app, meeting_id)
    await ensure_staffed(request, principal, meeting.project_id, "meetings")
    return s.MeetingView.of(meeting)


@router.get(
    "/{meeting_id}/events",
    response_model=list[EventEnvelope],
    summary="The meeting's event history, as published",
)
async def meeting_history(
    meeting_id: UUID, request: Request, principal: Reader, app: App
) -> list[EventEnvelope]:
    meeting = await _meeting(app, meeting_id)
    await ensure_staffed(request, principal, meeting.project_id, "meetings")
    return await run_in_threadpool(app.history, meeting_id)


@router.post(
    "/{meeting_id}/minutes",
    response_model=s.MeetingView,
    summary="Name a filed document as the meeting's minutes (R4.2); late is recorded as late",
)
async def file_minutes(
    meeting_id: UUID,
    body: s.FileMinutes,
    request: Request,
    principal: Staff,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    meeting = await _meeting(app, meeting_id)
    project = await project_info(request, meeting.project_id) if meeting.project_id else None
    if meeting.project_id is not None and not on_staff(principal, project):
        raise await forbidden(
            request, principal, "the project's staff file its meeting minutes (R4.2)", "R4.2"
        )
    return await _command(
        request,
        principal,
        idempotency,
        "file_minutes",
        lambda c: app.file_minutes(c, meeting_id, doc_id=body.document_id),
    )


@router.post(
    "/{meeting_id}/resolutions",
    status_code=201,
    response_model=s.MeetingView,
    summary="Write down a further resolution of the meeting (R5.5)",
)
async def add_resolution(
    meeting_id: UUID,
    body: s.AddResolution,
    request: Request,
    principal: Staff,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    await _ensure_runs(request, principal, await _meeting(app, meeting_id))

    return await _command(
        request,
        principal,
        idempotency,
        "add_resolution",
        lambda c: app.add_resolution(c, meeting_id, text=body.text),
        status=201,
    )


@router.post(
    "/{meeting_id}/resolutions/{resolution_id}/assignment",
    response_model=s.MeetingView,
    summary="Give a resolution its owner and deadline (R5.5: within 24 h of the meeting)",
)
async def assign_resolution(
    meeting_id: UUID,
    resolution_id: ResolutionId,
    body: s.AssignResolution,
    request: Request,
    principal: Staff,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    await _ensure_runs(request, principal, await _meeting(app, meeting_id))
    return await _command(
        request,
        principal,
        idempotency,
        "assign_resolution",
        lambda c: app.assign_resolution(
            c, meeting_id, resolution_id, owner=body.owner, deadline=body.deadline
        ),
    )


@router.post(
    "/{meeting_id}/resolutions/{resolution_id}/completion",
    response_model=s.MeetingView,
    summary="Close a resolution (its owner, or the chair); late is recorded as late (R5.5)",
)
async def complete_resolution(
    meeting_id: UUID,
    resolution_id: ResolutionId,
    body: s.CompleteResolution,
    request: Request,
    principal: Reader,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    meeting = await _meeting(app, meeting_id)
    runs = principal.role == DIRECTOR or principal.user_id == meeting.chaired_by
    return await _command(
        request,
        principal,
        idempotency,
        "complete_resolution",
        lambda c: app.complete_resolution(
            c, meeting_id, resolution_id, note=body.note or "", may_close_for_owner=runs
        ),
    )
