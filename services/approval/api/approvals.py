"""HTTP routes of /v1/approvals: procurement approvals (R3.1), Director
decisions (R5.1, R5.2), the approvers' inbox and their delegations.

Every command runs once per Idempotency-Key; every refusal names its rule. A
decision that lost a race (or was made on a stale version) is a 409 carrying
the request's current version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar, cast
from uuid import UUID

from eventsourcing.persistence import IntegrityError
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from services.approval.api import schemas as s
from services.approval.application import ApprovalApplication
from services.approval.domain.request import ApprovalRequest, State, Step
from shared.auth import (
    AUDITOR,
    CEO,
    DEPARTMENT,
    DEPT_HEAD,
    DIRECTOR,
    FINANCE,
    PROJECT_MANAGER,
    Principal,
)
from shared.domain import CommandContext, LedgerAggregate, RuleViolation
from shared.envelope import EventEnvelope
from shared.http import (
    application,
    command,
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
from shared.text import Moment

router = APIRouter(prefix="/v1/approvals", tags=["approvals"], responses=PROBLEM_RESPONSES)

APPROVERS = (DEPT_HEAD, FINANCE, CEO, DIRECTOR)
INTERNAL = (*DEPARTMENT, DEPT_HEAD, FINANCE, CEO, AUDITOR)

Idempotency = Annotated[IdempotencyKey | None, Depends(idempotency_key)]
Reader = Annotated[Principal, Depends(require_roles(*INTERNAL, action="read approvals"))]
Requester = Annotated[
    Principal, Depends(require_roles(*DEPARTMENT, action="request approvals (R3.1, R5.2)"))
]
Approver = Annotated[
    Principal, Depends(require_roles(*APPROVERS, action="decide approval steps (R3.1, R5.1)"))
]
Auditing = Annotated[
    Principal,
    Depends(require_roles(DIRECTOR, DEPT_HEAD, FINANCE, CEO, AUDITOR, action="read histories")),
]
Delegator = Annotated[
    Principal, Depends(require_roles(*APPROVERS, action="delegate a signature (R3.1)"))
]
DelegationReader = Annotated[
    Principal, Depends(require_roles(*APPROVERS, AUDITOR, action="read delegations"))
]
OpenBody = Annotated[s.OpenProcurement | s.OpenDecision, Body(discriminator="kind")]


def approval_app(request: Request) -> ApprovalApplication:
    return cast(ApprovalApplication, runtime_of(request).application)


App = Annotated[ApprovalApplication, Depends(application)]

P = ParamSpec("P")
R = TypeVar("R")
A = TypeVar("A", bound=LedgerAggregate)


async def denied(request: Request, principal: Principal, reason: str) -> Problem:
    """The 403 to raise, once the denial is on record (DESIGN.md section 5)."""
    await record_denial(request, principal, 403, reason)
    return Problem(403, "Forbidden", reason, kind="forbidden")


# -- opening --------------------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    response_model=s.ApprovalView,
    summary="Request a procurement approval (R3.1) or a Director decision (R5.1, R5.2)",
)
async def open_request(
    body: OpenBody,
    request: Request,
    principal: Requester,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    if isinstance(body, s.OpenProcurement) and body.approvers and principal.role != DIRECTOR:
        reason = (
            "only the Director names approvers; a requester never picks who signs their"
            " request (segregation of duties)"
        )
        raise RuleViolation("R3.1", reason, forbidden=True)
    if isinstance(body, s.OpenDecision):
        if principal.role not in (PROJECT_MANAGER, DIRECTOR):
            reason = "major decisions are raised by a project manager"
            raise RuleViolation("R5.2", reason, forbidden=True)
        app.ensure_major(body.kind, current_budget=body.current_budget, new_budget=body.new_budget)
    ctx = command_context(request, principal, idempotency)

    def execute(c: CommandContext) -> ApprovalRequest:
        if isinstance(body, s.OpenProcurement):
            request_, _ = app.open_request(
                c,
                request_id=c.new_id(),
                kind="procurement",
                project_id=body.project_id,
                partner_id=body.partner_id,
                title=body.title,
                amount=body.amount,
                currency=body.currency,
                justification=body.justification,
                requested_by=principal.user_id,
                source="api",
                approvers={str(k): v for k, v in body.approvers.items()},
            )
        else:
            request_, _ = app.open_request(
                c,
                request_id=c.new_id(),
                kind=body.kind,
                project_id=body.project_id,
                partner_id=None,
                title=body.title,
                amount=body.new_budget or body.new_value,
                currency=body.currency,
                justification=body.justification,
                requested_by=principal.user_id,
                source="api",
                new_budget=body.new_budget,
                new_scope=body.new_scope,
                new_end_date=body.new_end_date,
                new_value=body.new_value,
            )
        return request_

    return await run_in_threadpool(
        run_command,
        app,
        ctx,
        "open_approval",
        execute,
        s.ApprovalView.of,
        status=201,
        location=lambda r: f"/v1/approvals/{r.id}",
    )


# -- reading ---------------------------------------------------------------------------------

_ROW_COLUMNS = (
    "request_id AS id, kind, state, title, project_id, amount, currency, requested_by, step,"
    " round, assignee_role, assignee, escalated_to, due_at, overdue, opened_at, closed_at"
)


@router.get("", response_model=s.ApprovalPage, summary="Approval requests, oldest first")
async def list_requests(
    request: Request,
    principal: Reader,
    state: State | None = None,
    step: Step | None = None,
    kind: Annotated[str | None, Query(max_length=30)] = None,
    assignee: Annotated[
        str | None,
        Query(max_length=200, description="A role (dept_head, finance, ...) or a user id"),
    ] = None,
    overdue: Annotated[
        bool | None, Query(description="Open requests whose open step passed its limit")
    ] = None,
    project_id: UUID | None = None,
    requested_by: Annotated[str | None, Query(max_length=200)] = None,
    opened_from: Moment | None = None,
    opened_to: Moment | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> s.ApprovalPage:
    after_at, after_id = time_id_cursor(cursor)
    rows = await runtime_of(request).pool.fetch(
        f"SELECT {_ROW_COLUMNS} FROM approval_view"
        " WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR step = $2)"
        " AND ($3::text IS NULL OR kind = $3)"
        " AND ($4::text IS NULL OR assignee_role = $4 OR assignee = $4 OR escalated_to = $4)"
        " AND ($5::boolean IS NULL OR (overdue AND state IN ('pending', 'returned')) = $5)"
        " AND ($6::uuid IS NULL OR project_id = $6)"
        " AND ($7::text IS NULL OR requested_by = $7)"
        " AND ($8::timestamptz IS NULL OR opened_at >= $8)"
        " AND ($9::timestamptz IS NULL OR opened_at < $9)"
        " AND ($10::timestamptz IS NULL OR (opened_at, request_id) > ($10, $11::uuid))"
        " ORDER BY opened_at, request_id LIMIT $12",
        state,
        step,
        kind,
        assignee,
        overdue,
        project_id,
        requested_by,
        opened_from,
        opened_to,
        after_at,
        after_id,
        limit + 1,
    )
    items = [s.ApprovalRow(**dict(r)) for r in rows[:limit]]
    last = items[-1] if len(rows) > limit and items else None
    token = encode_cursor(last.opened_at.isoformat(), last.id) if last else None
    return s.ApprovalPage(items=items, next_cursor=token)


@router.get(
    "/inbox",
    response_model=s.Inbox,
    summary="What awaits the caller: steps to sign (own, escalated, delegated), returns to answer",
)
async def inbox(request: Request, principal: Reader) -> s.Inbox:
    rt = runtime_of(request)
    now = rt.clock.now()
    user, role = principal.user_id, principal.role
    # Never one's own request, except a Director decision the Director raised: the
    # Director decides it (one Director, R2.3; as the domain allows, R5.1).
    rows = await rt.pool.fetch(
        f"SELECT {_ROW_COLUMNS},"
        " CASE WHEN state = 'returned' THEN 'returned_to_you'"
        "      WHEN assignee_role = $2 AND (assignee IS NULL OR assignee = $1) THEN 'assigned'"
        "      WHEN escalated_to = $2 THEN 'escalated'"
        "      ELSE 'delegated' END AS why,"
        " CASE WHEN state = 'pending' AND assignee IS NOT NULL AND assignee <> $1"
        "      AND assignee_role = $2 AND coalesce(escalated_to, '') <> $2"
        "      THEN assignee END AS on_behalf_of"
        " FROM approval_view v"
        " WHERE (state = 'returned' AND requested_by = $1)"
        " OR (state = 'pending'"
        "     AND (requested_by <> $1 OR (kind <> 'procurement' AND $2 = 'director'))"
        "     AND NOT EXISTS (SELECT 1 FROM approval_steps x WHERE x.request_id = v.request_id"
        "         AND x.decision = 'approved' AND $1 IN (x.decided_by, x.delegate_of))"
        "     AND ((assignee_role = $2 AND (assignee IS NULL OR assignee = $1))"
        "          OR escalated_to = $2"
        "          OR (assignee_role = $2 AND assignee IN (SELECT delegator FROM delegation_view"
        "              WHERE delegate = $1 AND role = $2 AND revoked_at IS NULL"
        "              AND starts_at <= $3 AND ends_at > $3))))"
        " ORDER BY due_at NULLS LAST, opened_at LIMIT 500",
        user,
        role,
        now,
    )
    return s.Inbox(items=[s.InboxItem(**dict(r)) for r in rows])


@router.get("/{request_id}", response_model=s.ApprovalView, summary="One request with every step")
async def get_request(request_id: UUID, principal: Reader, app: App) -> s.ApprovalView:
    found = await run_in_threadpool(app.get_request, request_id)
    return s.ApprovalView.of(found)


@router.get(
    "/{request_id}/events",
    response_model=list[EventEnvelope],
    summary="The request's event history, as published",
)
async def request_history(request_id: UUID, principal: Auditing, app: App) -> list[EventEnvelope]:
    await run_in_threadpool(app.get_request, request_id)
    return await run_in_threadpool(app.history, request_id)


# -- deciding ---------------------------------------------------------------------------------


def _conflict(app: ApprovalApplication, request_id: UUID) -> Callable[[Exception], Problem]:
    def to_problem(exc: Exception) -> Problem:
        current = app.get_request(request_id).version
        if isinstance(exc, RuleViolation):
            return Problem(
                409,
                "Rule violated",
                exc.detail,
                kind="rule-violation",
                rule=exc.rule,
                current_version=current,
            )
        return Problem(
            409,
            "Version conflict",
            "another decision on this request was recorded at the same time; reload it",
            kind="version-conflict",
            rule="R3.1",
            current_version=current,
        )

    return to_problem


def _decide(
    app: ApprovalApplication,
    ctx: CommandContext,
    request_id: UUID,
    execute: Callable[[CommandContext], ApprovalRequest],
    name: str,
) -> JSONResponse:
    try:
        return run_command(app, ctx, name, execute, s.ApprovalView.of)
    except (RuleViolation, IntegrityError) as exc:
        # (A retry racing its first attempt was answered as a replay by run_command.)
        if isinstance(exc, RuleViolation) and exc.forbidden:
            raise
        raise _conflict(app, request_id)(exc) from None


@router.post(
    "/{request_id}/decisions",
    response_model=s.ApprovalView,
    summary="Approve, reject or return the open step (R3.1; Director decisions R5.1, R5.2)",
)
async def decide(
    request_id: UUID,
    body: s.Decide,
    request: Request,
    principal: Approver,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    await run_in_threadpool(app.get_request, request_id)  # 404 first
    ctx = command_context(request, principal, idempotency)
    return await run_in_threadpool(
        _decide,
        app,
        ctx,
        request_id,
        lambda c: app.decide(
            c,
            request_id,
            decision=body.decision,
            reason=body.reason or "",
            step=body.step,
            on_behalf_of=body.on_behalf_of,
            expected_version=body.expected_version,
        ),
        f"{body.decision}_step",
    )


@router.post(
    "/{request_id}/resubmission",
    response_model=s.ApprovalView,
    summary="Answer a request returned for information; the step opens again (R3.1)",
)
async def resubmit(
    request_id: UUID,
    body: s.Resubmit,
    request: Request,
    principal: Requester,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    await run_in_threadpool(app.get_request, request_id)
    ctx = command_context(request, principal, idempotency)
    return await run_in_threadpool(
        _decide,
        app,
        ctx,
        request_id,
        lambda c: app.resubmit(c, request_id, response=body.response),
        "resubmit",
    )


# -- delegations ----------------------------------------------------------------------------

delegations = APIRouter(prefix="/v1/delegations", tags=["delegations"], responses=PROBLEM_RESPONSES)


@delegations.post(
    "",
    status_code=201,
    response_model=s.DelegationsView,
    summary="Delegate your signature to a colleague with your role for a period (R3.1)",
)
async def delegate(
    body: s.Delegate,
    request: Request,
    principal: Delegator,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    return await command(
        request,
        principal,
        idempotency,
        "delegate",
        lambda c: app.delegate(
            c,
            delegate=body.delegate,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            reason=body.reason,
        ),
        s.DelegationsView.of,
        status=201,
    )


@delegations.get(
    "",
    response_model=s.DelegationList,
    summary="Delegations the caller gave and received (an auditor may name a user)",
)
async def list_delegations(
    request: Request,
    principal: DelegationReader,
    user: Annotated[str | None, Query(max_length=200, description="auditor only")] = None,
) -> s.DelegationList:
    who = principal.user_id
    if user is not None and user != who:
        if principal.role != AUDITOR:
            raise await denied(request, principal, "only an auditor reads others' delegations")
        who = user
    rows = await runtime_of(request).pool.fetch(
        "SELECT grant_id, delegator, delegate, role, starts_at, ends_at, reason, revoked_at"
        " FROM delegation_view WHERE delegator = $1 OR delegate = $1 ORDER BY starts_at",
        who,
    )
    views = [s.DelegationView(**dict(r)) for r in rows]
    return s.DelegationList(
        given=[v for v in views if v.delegator == who],
        received=[v for v in views if v.delegate == who],
    )


@delegations.post(
    "/{grant_id}/revocation",
    response_model=s.DelegationsView,
    summary="Take a delegation back before it ends",
)
async def revoke(
    grant_id: UUID,
    request: Request,
    principal: Delegator,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    return await command(
        request,
        principal,
        idempotency,
        "revoke_delegation",
        lambda c: app.revoke_delegation(c, grant_id),
        s.DelegationsView.of,
    )
