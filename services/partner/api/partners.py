"""HTTP routes of the partner service under /v1/partners."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, cast
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from services.partner.api.partner_schemas import (
    ChangeStatus,
    Decision,
    EvaluatePartner,
    PartnerPage,
    PartnerRow,
    PartnerView,
    RegisterPartner,
)
from services.partner.application import PartnerApplication
from services.partner.domain.partner import Partner
from shared.auth import (
    AUDITOR,
    CEO,
    DEPARTMENT,
    DEPT_HEAD,
    DIRECTOR,
    FINANCE,
    PARTNER,
    PROJECT_MANAGER,
    ROLES,
    SPECIALIST,
    Principal,
)
from shared.domain import CommandContext
from shared.envelope import EventEnvelope
from shared.http import (
    application,
    command_context,
    encode_cursor,
    idempotency_key,
    record_denial,
    require_roles,
    run_command,
    runtime_of,
    time_id_cursor,
)
from shared.idempotency import IdempotencyKey
from shared.problems import PROBLEM_RESPONSES, Problem

router = APIRouter(prefix="/v1/partners", tags=["partners"], responses=PROBLEM_RESPONSES)

CanRegister = Annotated[Principal, Depends(require_roles(*DEPARTMENT, action="register partners"))]
CanRead = Annotated[Principal, Depends(require_roles(*ROLES, action="read partners"))]
CanAudit = Annotated[
    Principal, Depends(require_roles(*DEPARTMENT, AUDITOR, action="read partner histories"))
]
Idempotency = Annotated[IdempotencyKey | None, Depends(idempotency_key)]


def partner_app(request: Request) -> PartnerApplication:
    return cast(PartnerApplication, runtime_of(request).application)


App = Annotated[PartnerApplication, Depends(application)]


@router.post(
    "",
    status_code=201,
    response_model=PartnerView,
    summary="Register a partner candidate (R2.1)",
    responses={409: {"description": "A partner with this credit code exists (R2.1)"}},
)
def register_partner(
    body: RegisterPartner,
    request: Request,
    principal: CanRegister,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    ctx = command_context(request, principal, idempotency)
    return run_command(
        app,
        ctx,
        "register_partner",
        lambda c: app.register_partner(
            c,
            name=body.name,
            unified_social_credit_code=body.unified_social_credit_code,
            contact=body.contact_value(),
            service_categories=body.service_categories,
        ),
        PartnerView.of,
        status=201,
        location=lambda p: f"/v1/partners/{p.id}",
    )


async def _own_partner_only(request: Request, principal: Principal, partner_id: UUID) -> None:
    if principal.role == PARTNER and principal.partner_id != str(partner_id):
        await record_denial(request, principal, 404, "a partner may read only itself")
        # A vendor sees only itself; do not even confirm that others exist.
        raise Problem(404, "Not found", "no such resource", kind="not-found")


@router.get("/{partner_id}", response_model=PartnerView, summary="One partner")
async def get_partner(
    partner_id: UUID, request: Request, principal: CanRead, app: App
) -> PartnerView:
    await _own_partner_only(request, principal, partner_id)
    return PartnerView.of(await run_in_threadpool(app.get_partner, partner_id))


@router.get(
    "/{partner_id}/events",
    response_model=list[EventEnvelope],
    summary="The partner's event history, as published",
)
def partner_history(partner_id: UUID, principal: CanAudit, app: App) -> list[EventEnvelope]:
    app.get_partner(partner_id)  # 404 for anything but a partner
    return app.history(partner_id)


CanEvaluate = Annotated[
    Principal,
    Depends(require_roles(DIRECTOR, PROJECT_MANAGER, SPECIALIST, action="evaluate partners")),
]
DirectorOnly = Annotated[
    Principal, Depends(require_roles(DIRECTOR, action="decide on partners (R2.1)"))
]
Internal = Annotated[
    Principal,
    Depends(require_roles(*DEPARTMENT, DEPT_HEAD, FINANCE, CEO, AUDITOR, action="list partners")),
]


def _partner_command(
    request: Request,
    principal: Principal,
    idempotency: IdempotencyKey | None,
    name: str,
    execute: Callable[[CommandContext], Partner],
) -> JSONResponse:
    app = partner_app(request)
    ctx = command_context(request, principal, idempotency)
    return run_command(app, ctx, name, execute, PartnerView.of)


@router.get("", response_model=PartnerPage, summary="Partners, oldest first")
async def list_partners(
    request: Request,
    principal: Internal,
    status: Annotated[str | None, Query(max_length=30)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> PartnerPage:
    after_at, after_id = time_id_cursor(cursor)
    rows = await runtime_of(request).pool.fetch(
        "SELECT partner_id AS id, name, unified_social_credit_code, status, blacklisted,"
        " requalification_required, valid_until, service_categories, registered_at, updated_at"
        " FROM partner_view WHERE ($1::text IS NULL OR status = $1)"
        " AND ($2::timestamptz IS NULL OR (registered_at, partner_id) > ($2, $3::uuid))"
        " ORDER BY registered_at, partner_id LIMIT $4",
        status,
        after_at,
        after_id,
        limit + 1,
    )
    items = [PartnerRow(**dict(r)) for r in rows[:limit]]
    last = items[-1] if items else None
    more = len(rows) > limit
    token = encode_cursor(last.registered_at.isoformat(), last.id) if more and last else None
    return PartnerPage(items=items, next_cursor=token)


@router.post(
    "/{partner_id}/evaluations",
    response_model=PartnerView,
    summary="Due diligence by a specialist or project manager (R2.1)",
)
def evaluate_partner(
    partner_id: UUID,
    body: EvaluatePartner,
    request: Request,
    principal: CanEvaluate,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    return _partner_command(
        request,
        principal,
        idempotency,
        "evaluate_partner",
        lambda c: app.evaluate_partner(
            c,
            partner_id,
            scores={str(k): v for k, v in body.scores.items()},
            qualifications=body.qualification_values(),
            summary=body.summary,
        ),
    )


@router.post(
    "/{partner_id}/qualification",
    response_model=PartnerView,
    summary="The Director qualifies the partner on its latest evaluation (R2.1)",
)
def qualify_partner(
    partner_id: UUID,
    body: Decision,
    request: Request,
    principal: DirectorOnly,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    return _partner_command(
        request,
        principal,
        idempotency,
        "qualify_partner",
        lambda c: app.qualify_partner(c, partner_id, reason=body.reason),
    )


@router.post(
    "/{partner_id}/rejection",
    response_model=PartnerView,
    summary="The Director rejects the candidate (R2.1)",
)
def reject_partner(
    partner_id: UUID,
    body: Decision,
    request: Request,
    principal: DirectorOnly,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    return _partner_command(
        request,
        principal,
        idempotency,
        "reject_partner",
        lambda c: app.reject_partner(c, partner_id, reason=body.reason),
    )


@router.post(
    "/{partner_id}/status",
    response_model=PartnerView,
    summary="Probation, suspension, termination (blacklist) or reinstatement (R2.1)",
)
def change_partner_status(
    partner_id: UUID,
    body: ChangeStatus,
    request: Request,
    principal: DirectorOnly,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    return _partner_command(
        request,
        principal,
        idempotency,
        "change_partner_status",
        lambda c: app.change_partner_status(
            c, partner_id, action=body.action, reason=body.reason, blacklist=body.blacklist
        ),
    )
