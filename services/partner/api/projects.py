"""HTTP routes of /v1/projects: one engagement from plan to closure.

Every command loads the project, checks who may act (api/access.py, R2.2),
and runs once per Idempotency-Key; every refusal of the policy is a 409 that
names its requirement.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from services.partner.api import project_schemas as s
from services.partner.api.access import (
    Capacity,
    ensure_can_read,
    ensure_capacity,
    ensure_task_owner,
)
from services.partner.api.partners import Idempotency, partner_app
from services.partner.application import PartnerApplication
from services.partner.domain.project import Project
from shared.auth import AUDITOR, DEPARTMENT, DIRECTOR, PARTNER, PROJECT_MANAGER, ROLES, Principal
from shared.domain import CommandContext
from shared.envelope import EventEnvelope
from shared.http import (
    application,
    command_context,
    encode_cursor,
    record_denial,
    require_roles,
    run_command,
    runtime_of,
    time_id_cursor,
)
from shared.idempotency import IdempotencyKey
from shared.problems import PROBLEM_RESPONSES, Problem

router = APIRouter(prefix="/v1/projects", tags=["projects"], responses=PROBLEM_RESPONSES)

App = Annotated[PartnerApplication, Depends(application)]
Anyone = Annotated[Principal, Depends(require_roles(*ROLES, action="use projects"))]
CanCreate = Annotated[
    Principal, Depends(require_roles(DIRECTOR, PROJECT_MANAGER, action="create projects"))
]
CanAudit = Annotated[
    Principal, Depends(require_roles(*DEPARTMENT, AUDITOR, action="read project histories"))
]

M, D, T, V = Capacity.MANAGER, Capacity.DIRECTOR, Capacity.TEAM, Capacity.VENDOR


async def _command(
    request: Request,
    principal: Principal,
    idempotency: IdempotencyKey | None,
    project_id: UUID,
    name: str,
    allowed: tuple[Capacity, ...],
    execute: Callable[[PartnerApplication, CommandContext], Project],
    *,
    action: str,
    status: int = 200,
) -> JSONResponse:
    app = partner_app(request)
    project = await run_in_threadpool(app.get_project, project_id)
    await ensure_capacity(request, principal, project, *allowed, action=action)
    ctx = command_context(request, principal, idempotency)
    return await run_in_threadpool(
        run_command,
        app,
        ctx,
        name,
        lambda c: execute(app, c),
        s.ProjectView.of,
        status=status,
    )


# -- create, read, list -------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    response_model=s.ProjectView,
    summary="Plan a project with a qualified partner (R2.1, R2.2)",
)
async def create_project(
    body: s.CreateProject,
    request: Request,
    principal: CanCreate,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    if principal.role == PROJECT_MANAGER and body.project_manager != principal.user_id:
        reason = "a project manager creates projects they manage themselves (R2.2)"
        await record_denial(request, principal, 403, reason)
        raise Problem(403, "Forbidden", reason, kind="forbidden", rule="R2.2")
    ctx = command_context(request, principal, idempotency)
    return await run_in_threadpool(
        run_command,
        app,
        ctx,
        "create_project",
        lambda c: app.create_project(
            c,
            partner_id=body.partner_id,
            title=body.title,
            scope=body.scope,
            budget=body.budget,
            currency=body.currency,
            project_manager=body.project_manager,
            specialists=body.specialists,
            milestones=body.milestone_values(),
        ),
        _with_partner_warnings(app),
        status=201,
        location=lambda p: f"/v1/projects/{p.id}",
    )


def _with_partner_warnings(app: PartnerApplication) -> Callable[[Project], s.ProjectView]:
    def render(project: Project) -> s.ProjectView:
        view = s.ProjectView.of(project)
        partner = app.get_partner(project.partner_id)
        if partner.status == "probation":
            view.warnings.append("the partner is on probation (R2.1)")
        return view

    return render


@router.get("", response_model=s.ProjectPage, summary="Projects, oldest first, with filters")
async def list_projects(
    request: Request,
    principal: Anyone,
    status: Annotated[str | None, Query(max_length=30)] = None,
    partner_id: UUID | None = None,
    project_manager: Annotated[str | None, Query(max_length=200)] = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> s.ProjectPage:
    if principal.role == PARTNER:  # a vendor lists only its own projects
        own = _uuid_or_none(principal.partner_id)
        if own is None or (partner_id is not None and partner_id != own):
            return s.ProjectPage(items=[], next_cursor=None)
        partner_id = own
    after_at, after_id = time_id_cursor(cursor)
    rows = await runtime_of(request).pool.fetch(
        "SELECT project_id AS id, title, partner_id, project_manager, status, budget, currency,"
        " created_at, contract_signed_on, outcome FROM project_view"
        " WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR partner_id = $2)"
        " AND ($3::text IS NULL OR project_manager = $3)"
        " AND ($4::timestamptz IS NULL OR created_at >= $4)"
        " AND ($5::timestamptz IS NULL OR created_at < $5)"
        " AND ($6::timestamptz IS NULL OR (created_at, project_id) > ($6, $7::uuid))"
        " ORDER BY created_at, project_id LIMIT $8",
        status,
        partner_id,
        project_manager,
        created_from,
        created_to,
        after_at,
        after_id,
        limit + 1,
    )
    items = [s.ProjectRow(**dict(r)) for r in rows[:limit]]
    more = len(rows) > limit
    last = items[-1] if items else None
    token = encode_cursor(last.created_at.isoformat(), last.id) if more and last else None
    return s.ProjectPage(items=items, next_cursor=token)


def _uuid_or_none(value: str | None) -> UUID | None:
    try:
        return UUID(value) if value else None
    except ValueError:
        return None


@router.get("/{project_id}", response_model=s.ProjectView, summary="One project, current")
async def get_project(
    project_id: UUID, request: Request, principal: Anyone, app: App
) -> s.ProjectView:
    project = await run_in_threadpool(app.get_project, project_id)
    await ensure_can_read(request, principal, project)
    return s.ProjectView.of(project)


@router.get(
    "/{project_id}/events",
    response_model=list[EventEnvelope],
    summary="The project's event history, as published",
)
async def project_history(project_id: UUID, principal: CanAudit, app: App) -> list[EventEnvelope]:
    await run_in_threadpool(app.get_project, project_id)
    return await run_in_threadpool(app.history, project_id)


# -- procurement, contract, kickoff ------------------------------------------------------


@router.post(
    "/{project_id}/procurement-approval-requests",
    response_model=s.ProjectView,
    summary="Request the three-step procurement approval (R3.1)",
)
async def request_approval(
    project_id: UUID,
    body: s.RequestApproval,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "request_procurement_approval",
        (M, D),
        lambda app, c: app.request_procurement_approval(
            c, project_id, justification=body.justification
        ),
        action="request procurement approval",
    )


@router.post(
    "/{project_id}/contract",
    response_model=s.ProjectView,
    summary="Sign the contract: only after approval; starts the kickoff clock (R3.1, R3.2)",
)
async def sign_contract(
    project_id: UUID,
    body: s.SignContract,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "sign_contract",
        (M, D),
        lambda app, c: app.sign_contract(
            c,
            project_id,
            contract_number=body.contract_number,
            value=body.value,
            currency=body.currency,
            signed_on=body.signed_on,
            starts_on=body.starts_on,
            ends_on=body.ends_on,
            sla_terms=body.sla_terms,
            third_party_acceptor=body.third_party_acceptor,
        ),
        action="sign the contract",
    )


@router.post(
    "/{project_id}/kickoff",
    response_model=s.ProjectView,
    summary="Record the kickoff meeting (R3.2); late if after the deadline",
)
async def hold_kickoff(
    project_id: UUID,
    body: s.HoldKickoff,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "hold_kickoff",
        (M, D),
        lambda app, c: app.hold_kickoff(
            c,
            project_id,
            held_on=body.held_on,
            goals=body.goals,
            timetable=body.timetable,
            responsibilities=body.responsibility_values(),
        ),
        action="record the kickoff",
    )


# -- milestones and tasks ------------------------------------------------------------------


@router.post(
    "/{project_id}/milestones/{milestone_id}/deliveries",
    response_model=s.ProjectView,
    summary="Record a delivery; on time if by the due date (R6.1)",
)
async def deliver_milestone(
    project_id: UUID,
    milestone_id: str,
    body: s.Deliver,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "deliver_milestone",
        (M, D, V),
        lambda app, c: app.deliver_milestone(
            c, project_id, milestone_id=milestone_id, delivered_on=body.delivered_on, note=body.note
        ),
        action="record a delivery",
    )


@router.post(
    "/{project_id}/milestones/{milestone_id}/acceptance",
    response_model=s.ProjectView,
    summary="Accept a delivered milestone, or reject it with reasons",
)
async def judge_milestone(
    project_id: UUID,
    milestone_id: str,
    body: s.Acceptance,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    def execute(app: PartnerApplication, c: CommandContext) -> Project:
        if body.accepted:
            return app.accept_milestone(c, project_id, milestone_id=milestone_id)
        return app.reject_milestone(c, project_id, milestone_id=milestone_id, reasons=body.reasons)

    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "judge_milestone",
        (M, D),
        execute,
        action="accept or reject a delivery",
    )


@router.post(
    "/{project_id}/tasks",
    response_model=s.ProjectView,
    summary="Assign a task to a specialist of the project (R2.2)",
)
async def assign_task(
    project_id: UUID,
    body: s.AssignTask,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "assign_task",
        (M, D),
        lambda app, c: app.assign_task(
            c,
            project_id,
            task_id=body.task_id,
            title=body.title,
            specialist=body.specialist,
            due_on=body.due_on,
        ),
        action="assign tasks",
    )


async def _task_command(
    request: Request,
    principal: Principal,
    idempotency: IdempotencyKey | None,
    project_id: UUID,
    task_id: str,
    name: str,
    execute: Callable[[PartnerApplication, CommandContext], Project],
    *,
    action: str,
) -> JSONResponse:
    app = partner_app(request)
    project = await run_in_threadpool(app.get_project, project_id)
    await ensure_task_owner(request, principal, project, task_id, action=action)
    ctx = command_context(request, principal, idempotency)
    return await run_in_threadpool(
        run_command, app, ctx, name, lambda c: execute(app, c), s.ProjectView.of
    )


@router.post(
    "/{project_id}/tasks/{task_id}/acknowledgement",
    response_model=s.ProjectView,
    summary="The assigned specialist acknowledges the task (response speed, R6.1)",
)
async def acknowledge_task(
    project_id: UUID,
    task_id: str,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _task_command(
        request,
        principal,
        idempotency,
        project_id,
        task_id,
        "acknowledge_task",
        lambda app, c: app.acknowledge_task(c, project_id, task_id=task_id),
        action="acknowledge it",
    )


@router.post(
    "/{project_id}/tasks/{task_id}/completion",
    response_model=s.ProjectView,
    summary="The assigned specialist completes the task (R6.1)",
)
async def complete_task(
    project_id: UUID,
    task_id: str,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _task_command(
        request,
        principal,
        idempotency,
        project_id,
        task_id,
        "complete_task",
        lambda app, c: app.complete_task(c, project_id, task_id=task_id),
        action="complete it",
    )


# -- reviews, complaints, incidents ----------------------------------------------------------


@router.post(
    "/{project_id}/reviews",
    response_model=s.ProjectView,
    summary="Record the quarterly mid-term review (R3.3)",
)
async def hold_review(
    project_id: UUID,
    body: s.HoldReview,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "hold_review",
        (M, D),
        lambda app, c: app.hold_review(
            c,
            project_id,
            held_on=body.held_on,
            progress=body.progress,
            risk_rating=body.risk_rating,
            issues=body.issues,
        ),
        action="record a review",
    )


@router.post(
    "/{project_id}/complaints",
    response_model=s.ProjectView,
    summary="Record a complaint from a business unit or customer (R6.1)",
)
async def receive_complaint(
    project_id: UUID,
    body: s.ReceiveComplaint,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "receive_complaint",
        (M, D, T),
        lambda app, c: app.receive_complaint(
            c,
            project_id,
            source=body.source,
            channel=body.channel or "unspecified",
            severity=body.severity,
            summary=body.summary,
            received_at=body.received_at,
        ),
        action="record complaints",
    )


@router.post(
    "/{project_id}/complaints/{complaint_id}/response",
    response_model=s.ProjectView,
    summary="The first response to a complaint (response speed, R6.1)",
)
async def respond_to_complaint(
    project_id: UUID,
    complaint_id: str,
    body: s.RespondToComplaint,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "respond_to_complaint",
        (M, D, V),
        lambda app, c: app.respond_to_complaint(
            c, project_id, complaint_id=complaint_id, response=body.response
        ),
        action="respond to complaints",
    )


@router.post(
    "/{project_id}/complaints/{complaint_id}/resolution",
    response_model=s.ProjectView,
    summary="Resolve a complaint",
)
async def resolve_complaint(
    project_id: UUID,
    complaint_id: str,
    body: s.ResolveComplaint,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "resolve_complaint",
        (M, D),
        lambda app, c: app.resolve_complaint(
            c, project_id, complaint_id=complaint_id, resolution=body.resolution
        ),
        action="resolve complaints",
    )


@router.post(
    "/{project_id}/incidents",
    response_model=s.ProjectView,
    summary="Report an incident; a data leak late or not opens an investigation (R6.4)",
)
async def report_incident(
    project_id: UUID,
    body: s.ReportIncident,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "report_incident",
        (M, D, T),
        lambda app, c: app.report_incident(
            c,
            project_id,
            category=body.category,
            severity=body.severity,
            occurred_at=body.occurred_at,
            detected_at=body.detected_at,
            description=body.description,
        ),
        action="report incidents",
    )


@router.post(
    "/{project_id}/investigations/{investigation_id}/conclusion",
    response_model=s.ProjectView,
    summary="Conclude an investigation with findings and sanctions (R6.4)",
)
async def conclude_investigation(
    project_id: UUID,
    investigation_id: str,
    body: s.ConcludeInvestigation,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "conclude_investigation",
        (D,),
        lambda app, c: app.conclude_investigation(
            c,
            project_id,
            investigation_id=investigation_id,
            findings=body.findings,
            sanctions=body.sanction_values(),
        ),
        action="conclude investigations",
    )


# -- costs, satisfaction, decisions ------------------------------------------------------------


@router.post(
    "/{project_id}/costs", response_model=s.ProjectView, summary="Record a cost (R6.1 cost control)"
)
async def record_cost(
    project_id: UUID,
    body: s.RecordCost,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "record_cost",
        (M, D),
        lambda app, c: app.record_cost(
            c,
            project_id,
            amount=body.amount,
            category=body.category,
            incurred_on=body.incurred_on,
            note=body.note,
        ),
        action="record costs",
    )


@router.post(
    "/{project_id}/satisfaction-surveys",
    response_model=s.ProjectView,
    summary="Record a customer satisfaction survey, 1-5 (R6.1)",
)
async def record_satisfaction(
    project_id: UUID,
    body: s.RecordSatisfaction,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "record_satisfaction",
        (M, D, T),
        lambda app, c: app.record_satisfaction(
            c, project_id, score=body.score, respondent=body.respondent, comment=body.comment
        ),
        action="record surveys",
    )


@router.post(
    "/{project_id}/budget",
    response_model=s.ProjectView,
    summary="Change the budget; above the threshold the Director is asked (R5.2)",
)
async def change_budget(
    project_id: UUID,
    body: s.ChangeBudget,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "change_budget",
        (M, D),
        lambda app, c: app.change_budget(
            c, project_id, new_budget=body.new_budget, reason=body.reason
        ),
        action="change the budget",
    )


@router.post(
    "/{project_id}/scope",
    response_model=s.ProjectView,
    summary="Change the scope; a major decision for the Director (R5.2)",
)
async def change_scope(
    project_id: UUID,
    body: s.ChangeScope,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "change_scope",
        (M, D),
        lambda app, c: app.change_scope(
            c, project_id, new_scope=body.new_scope, reason=body.reason
        ),
        action="change the scope",
    )


@router.post(
    "/{project_id}/renewal",
    response_model=s.ProjectView,
    summary="Ask the Director to renew the contract (R5.1)",
)
async def request_renewal(
    project_id: UUID,
    body: s.RequestRenewal,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "request_renewal",
        (M, D),
        lambda app, c: app.request_renewal(
            c,
            project_id,
            new_end_date=body.new_end_date,
            new_value=body.new_value,
            reason=body.reason,
        ),
        action="request a renewal",
    )


# -- acceptance and closure --------------------------------------------------------------------


@router.post(
    "/{project_id}/final-acceptance",
    response_model=s.ProjectView,
    summary="Final acceptance, signed off by the contract's third party (R3.4)",
)
async def final_acceptance(
    project_id: UUID,
    body: s.FinalAcceptance,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "record_final_acceptance",
        (M, D),
        lambda app, c: app.record_final_acceptance(
            c,
            project_id,
            accepted_on=body.accepted_on,
            third_party=body.third_party,
            signatory=body.signatory,
            report_ref=body.report_ref,
        ),
        action="record final acceptance",
    )


@router.post(
    "/{project_id}/closure",
    response_model=s.ProjectView,
    summary="Close as completed, failed or terminated (termination: the Director, R5.1)",
)
async def close_project(
    project_id: UUID,
    body: s.CloseProject,
    request: Request,
    principal: Anyone,
    idempotency: Idempotency,
) -> JSONResponse:
    allowed = (D,) if body.outcome == "terminated" else (M, D)
    return await _command(
        request,
        principal,
        idempotency,
        project_id,
        "close_project",
        allowed,
        lambda app, c: app.close_project(c, project_id, outcome=body.outcome, reason=body.reason),
        action=f"close it as {body.outcome}",
    )
