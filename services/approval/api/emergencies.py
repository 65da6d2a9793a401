"""HTTP routes of /v1/emergencies (R5.3): the PM acts first and records it,
files the written explanation within the policy's hours, and the Director
ratifies or rejects it after the fact."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from services.approval.api import schemas as s
from services.approval.api.approvals import App, Idempotency, approval_app, denied
from services.approval.domain.emergency import EmergencyState
from shared.auth import AUDITOR, DIRECTOR, PROJECT_MANAGER, Principal
from shared.envelope import EventEnvelope
from shared.http import (
    command,
    encode_cursor,
    require_roles,
    runtime_of,
    time_id_cursor,
)
from shared.problems import PROBLEM_RESPONSES
from shared.text import Moment

router = APIRouter(prefix="/v1/emergencies", tags=["emergencies"], responses=PROBLEM_RESPONSES)

Manager = Annotated[
    Principal, Depends(require_roles(PROJECT_MANAGER, action="record emergency actions (R5.3)"))
]
Director = Annotated[
    Principal, Depends(require_roles(DIRECTOR, action="ratify emergency actions (R5.3)"))
]
Reader = Annotated[
    Principal,
    Depends(require_roles(DIRECTOR, PROJECT_MANAGER, AUDITOR, action="read emergency actions")),
]


@router.post(
    "",
    status_code=201,
    response_model=s.EmergencyView,
    summary="Record an emergency action taken first; the explanation clock starts (R5.3)",
)
async def record(
    body: s.RecordEmergency,
    request: Request,
    principal: Manager,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    return await command(
        request,
        principal,
        idempotency,
        "record_emergency",
        lambda c: app.record_emergency(
            c,
            project_id=body.project_id,
            what_happened=body.what_happened,
            action_taken=body.action_taken,
            resources_changed=body.resources_changed,
            acted_at=body.acted_at,
        ),
        s.EmergencyView.of,
        status=201,
        location=lambda a: f"/v1/emergencies/{a.id}",
    )


@router.get("", response_model=s.EmergencyPage, summary="Emergency actions, oldest first")
async def list_emergencies(
    request: Request,
    principal: Reader,
    state: EmergencyState | None = None,
    overdue: bool | None = None,
    project_id: UUID | None = None,
    recorded_by: Annotated[str | None, Query(max_length=200)] = None,
    recorded_from: Moment | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> s.EmergencyPage:
    if principal.role == PROJECT_MANAGER:  # a PM reads their own
        recorded_by = principal.user_id
    after_at, after_id = time_id_cursor(cursor)
    rows = await runtime_of(request).pool.fetch(
        "SELECT action_id AS id, project_id, recorded_by, state, acted_at, explanation_due_at,"
        " explained_at, overdue, recorded_at FROM emergency_view"
        " WHERE ($1::text IS NULL OR state = $1) AND ($2::boolean IS NULL OR overdue = $2)"
        " AND ($3::uuid IS NULL OR project_id = $3) AND ($4::text IS NULL OR recorded_by = $4)"
        " AND ($5::timestamptz IS NULL OR recorded_at >= $5)"
        " AND ($6::timestamptz IS NULL OR (recorded_at, action_id) > ($6, $7::uuid))"
        " ORDER BY recorded_at, action_id LIMIT $8",
        state,
        overdue,
        project_id,
        recorded_by,
        recorded_from,
        after_at,
        after_id,
        limit + 1,
    )
    items = [s.EmergencyRow(**dict(r)) for r in rows[:limit]]
    last = items[-1] if len(rows) > limit and items else None
    token = encode_cursor(last.recorded_at.isoformat(), last.id) if last else None
    return s.EmergencyPage(items=items, next_cursor=token)


async def _readable(request: Request, principal: Principal, recorded_by: str) -> None:
    if principal.role == PROJECT_MANAGER and principal.user_id != recorded_by:
        raise await denied(
            request, principal, "a project manager reads their own emergency actions"
        )


@router.get("/{action_id}", response_model=s.EmergencyView, summary="One emergency action")
async def get_emergency(action_id: UUID, request: Request, principal: Reader) -> s.EmergencyView:
    app = approval_app(request)
    action = await run_in_threadpool(app.get_emergency, action_id)
    await _readable(request, principal, action.recorded_by)
    return s.EmergencyView.of(action)


@router.get(
    "/{action_id}/events",
    response_model=list[EventEnvelope],
    summary="The emergency action's event history, as published",
)
async def emergency_history(
    action_id: UUID, request: Request, principal: Reader
) -> list[EventEnvelope]:
    app = approval_app(request)
    action = await run_in_threadpool(app.get_emergency, action_id)
    await _readable(request, principal, action.recorded_by)
    return await run_in_threadpool(app.history, action_id)


@router.post(
    "/{action_id}/explanation",
    response_model=s.EmergencyView,
    summary="File the written explanation (R5.3); late filing is recorded as late",
)
async def explain(
    action_id: UUID,
    body: s.Explain,
    request: Request,
    principal: Manager,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    await run_in_threadpool(app.get_emergency, action_id)
    return await command(
        request,
        principal,
        idempotency,
        "file_explanation",
        lambda c: app.file_explanation(c, action_id, explanation=body.explanation),
        s.EmergencyView.of,
    )


@router.post(
    "/{action_id}/decision",
    response_model=s.EmergencyView,
    summary="The Director ratifies or rejects the action after the fact (R5.3)",
)
async def decide(
    action_id: UUID,
    body: s.Ratify,
    request: Request,
    principal: Director,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    await run_in_threadpool(app.get_emergency, action_id)
    return await command(
        request,
        principal,
        idempotency,
        "decide_emergency",
        lambda c: app.decide_emergency(c, action_id, ratify=body.ratify, reason=body.reason or ""),
        s.EmergencyView.of,
    )
