"""HTTP routes of the partner service under /v1/partners."""

from __future__ import annotations

from typing import Annotated, cast
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from services.partner.api.schemas import PartnerView, RegisterPartner
from services.partner.application import PartnerApplication
from shared.auth import AUDITOR, DEPARTMENT, PARTNER, ROLES, Principal
from shared.envelope import EventEnvelope
from shared.http import (
    command_context,
    idempotency_key,
    record_denial,
    require_roles,
    run_command,
    runtime_of,
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


App = Annotated[PartnerApplication, Depends(partner_app)]


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
    return app.history(partner_id)
