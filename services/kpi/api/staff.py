"""HTTP routes of the staff directory under /v1/kpi (R2.2, R2.3): people,
their roles and reporting line, promotions and rotations, departures,
trainings against the yearly target, and head count against the policy's
plan. The Director keeps the directory; the department and auditors read it;
other services resolve a person's superior here (or from `kpi.events`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.kpi.application import KpiApplication
from services.kpi.domain.staff import (
    STAFF_ROLES,
    Department,
    RoleChange,
    StaffRole,
    prorated_target,
)
from shared.auth import AUDITOR, CEO, DEPARTMENT, DEPT_HEAD, DIRECTOR, FINANCE, Principal
from shared.domain import CommandContext
from shared.http import (
    application,
    command,
    idempotency_key,
    require_roles,
)
from shared.idempotency import IdempotencyKey
from shared.problems import PROBLEM_RESPONSES, Problem
from shared.text import Label, Reason, UserId

router = APIRouter(prefix="/v1/kpi", tags=["staff"], responses=PROBLEM_RESPONSES)

Director = Annotated[
    Principal, Depends(require_roles(DIRECTOR, action="keep the staff directory (R2.2, R2.3)"))
]
Reader = Annotated[
    Principal,
    Depends(
        require_roles(*DEPARTMENT, DEPT_HEAD, FINANCE, CEO, AUDITOR, action="read the directory")
    ),
]
Idempotency = Annotated[IdempotencyKey | None, Depends(idempotency_key)]
Day = Annotated[date, Field(ge=date(2000, 1, 1), le=date(2100, 12, 31))]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Join(_In):
    user_id: UserId = Field(description="The id the person's tokens carry")
    name: Label
    role: StaffRole
    superior: UserId | None = Field(
        default=None,
        description="R2.2: a PM's is the Director, a specialist's a PM; none for the Director",
    )
    joined_on: Day


class ChangeRole(_In):
    change: RoleChange = Field(description="promotion (on an evaluation) or rotation (R2.3)")
    to_role: StaffRole
    superior: UserId | None = None
    effective_on: Day
    reason: Reason
    evaluation_ref: Label | None = Field(
        default=None, description="The evaluation a promotion rests on (required for one)"
    )


class ChangeLine(_In):
    superior: UserId
    effective_on: Day
    reason: Reason


class Leave(_In):
    left_on: Day
    reason: Reason


class Succession(_In):
    new_director: UserId = Field(description="A project manager, or a newcomer with `name`")
    name: Label | None = None
    effective_on: Day
    reason: Reason
    evaluation_ref: Label | None = Field(
        default=None, description="Required when a project manager is promoted (R2.3)"
    )


class HoldTraining(_In):
    title: Label
    held_on: Day
    hours: float = Field(gt=0, le=100)
    attendees: list[UserId] = Field(min_length=1, max_length=500)


class PersonView(BaseModel):
    user_id: str
    name: str
    role: StaffRole
    superior: str | None
    superior_role: str | None
    reports: list[str]
    joined_on: date
    left_on: date | None
    trainings_by_year: dict[int, int]


class DirectoryView(BaseModel):
    """The directory after a change (the department's aggregate version)."""

    people: list[PersonView]
    aggregate_version: int

    @classmethod
    def of(cls, d: Department) -> DirectoryView:
        return cls(people=[_person(d, u) for u in sorted(d.people)], aggregate_version=d.version)


class SuperiorView(BaseModel):
    """Whom a person reports to (R2.2), for escalations and evaluations."""

    user_id: str
    role: StaffRole
    superior: str | None
    superior_role: str | None
    chain: list[str] = Field(description="Superiors up to the Director, nearest first")


class StaffingRow(BaseModel):
    role: StaffRole
    planned: int
    actual: int
    gap: int = Field(description="planned - actual (positive: posts open)")


class TrainingRow(BaseModel):
    user_id: str
    role: StaffRole
    year: int
    attended: int
    target: int = Field(description="The yearly target, prorated for a person who joined that year")
    met: bool | None = Field(description="null until the year is closed")


def _person(d: Department, user_id: str) -> PersonView:
    p = d.person(user_id)
    boss = d.people.get(p["superior"]) if p["superior"] else None
    return PersonView(
        user_id=user_id,
        name=p["name"],
        role=p["role"],
        superior=p["superior"],
        superior_role=boss["role"] if boss else None,
        reports=d.reports_of(user_id),
        joined_on=p["joined_on"],
        left_on=p["left_on"],
        trainings_by_year={y: len(ids) for y, ids in sorted(p["trainings"].items())},
    )


App = Annotated[KpiApplication, Depends(application)]


async def _department(app: KpiApplication) -> Department:
    department = await run_in_threadpool(app.department)
    if department is None:
        raise Problem(404, "Not found", "nobody is in the staff directory yet", kind="not-found")
    return department


async def _command(
    request: Request,
    principal: Principal,
    idempotency: IdempotencyKey | None,
    name: str,
    execute: Callable[[CommandContext], Department],
    *,
    status: int = 200,
) -> JSONResponse:
    return await command(
        request, principal, idempotency, name, execute, DirectoryView.of, status=status
    )


@router.post(
    "/staff", status_code=201, response_model=DirectoryView, summary="A person joins (R2.2, R2.3)"
)
async def join(
    body: Join, request: Request, principal: Director, idempotency: Idempotency, app: App
) -> JSONResponse:
    def execute(c: CommandContext) -> Department:
        return app.join(
            c,
            user_id=body.user_id,
            name=body.name,
            role=body.role,
            superior=body.superior,
            joined_on=body.joined_on,
        )

    return await _command(request, principal, idempotency, "join", execute, status=201)


@router.get("/staff", response_model=list[PersonView], summary="The staff directory")
async def directory(
    request: Request,
    principal: Reader,
    app: App,
    role: StaffRole | None = None,
    include_left: bool = False,
) -> list[PersonView]:
    department = await run_in_threadpool(app.department)
    if department is None:
        return []
    return [
        _person(department, u)
        for u, p in sorted(department.people.items())
        if (role is None or p["role"] == role) and (include_left or p["left_on"] is None)
    ]


@router.get(
    "/staff/staffing", response_model=list[StaffingRow], summary="Head count vs plan (R2.3)"
)
async def staffing(request: Request, principal: Reader, app: App) -> list[StaffingRow]:
    department = await run_in_threadpool(app.department)
    plan = app.policy.staffing
    planned = {
        "director": 1,
        "project_manager": plan.project_managers,
        "specialist": plan.specialists,
    }
    rows = []
    for role in STAFF_ROLES:
        actual = len(department.holders(role)) if department else 0
        rows.append(
            StaffingRow(
                role=role,
                planned=planned[role],
                actual=actual,
                gap=planned[role] - actual,
            )
        )
    return rows


@router.get(
    "/staff/trainings",
    response_model=list[TrainingRow],
    summary="Trainings per person in a year against the target (R2.3)",
)
async def training_compliance(
    request: Request,
    principal: Reader,
    app: App,
    year: Annotated[int, Query(ge=2000, le=2100)],
    below_target: bool = False,
) -> list[TrainingRow]:
    department = await run_in_threadpool(app.department)
    if department is None:
        return []
    target = app.policy.staffing.trainings_per_year
    rows = []
    for user_id, p in sorted(department.people.items()):
        # Someone who left during the year is not held to its target.
        if p["joined_on"].year > year or (p["left_on"] is not None and p["left_on"].year <= year):
            continue
        attended = len(p["trainings"].get(year, []))
        owed = prorated_target(target, p["joined_on"], year)
        closed = year in p["years_closed"]
        row = TrainingRow(
            user_id=user_id,
            role=p["role"],
            year=year,
            attended=attended,
            target=owed,
            met=(attended >= owed) if closed else None,
        )
        if not below_target or attended < owed:
            rows.append(row)
    return rows


@router.get("/staff/{user_id}", response_model=PersonView, summary="One person")
async def person(user_id: str, request: Request, principal: Reader, app: App) -> PersonView:
    department = await _department(app)
    if user_id not in department.people:
        raise Problem(404, "Not found", f"{user_id} is not in the directory", kind="not-found")
    return _person(department, user_id)


@router.get(
    "/staff/{user_id}/superior",
    response_model=SuperiorView,
    summary="Whom a person reports to, up to the Director (R2.2)",
)
async def superior(user_id: str, request: Request, principal: Reader, app: App) -> SuperiorView:
    department = await _department(app)
    person = department.active(user_id)
    if person is None:
        raise Problem(404, "Not found", f"{user_id} is not in the department", kind="not-found")
    chain: list[str] = []
    boss = person["superior"]
    while boss is not None and boss not in chain:
        chain.append(boss)
        boss = department.people[boss]["superior"] if boss in department.people else None
    head = department.people.get(person["superior"]) if person["superior"] else None
    return SuperiorView(
        user_id=user_id,
        role=person["role"],
        superior=person["superior"],
        superior_role=head["role"] if head else None,
        chain=chain,
    )


@router.post(
    "/staff/{user_id}/role",
    response_model=DirectoryView,
    summary="Promote on an evaluation, or rotate (R2.3)",
)
async def change_role(
    user_id: str,
    body: ChangeRole,
    request: Request,
    principal: Director,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        "change_role",
        lambda c: app.change_role(
            c,
            user_id,
            change=body.change,
            to_role=body.to_role,
            superior=body.superior,
            effective_on=body.effective_on,
            reason=body.reason,
            evaluation_ref=body.evaluation_ref,
        ),
    )


@router.post(
    "/staff/{user_id}/reporting-line",
    response_model=DirectoryView,
    summary="Report to another superior (R2.2)",
)
async def change_line(
    user_id: str,
    body: ChangeLine,
    request: Request,
    principal: Director,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        "change_line",
        lambda c: app.change_line(
            c, user_id, superior=body.superior, effective_on=body.effective_on, reason=body.reason
        ),
    )


@router.post("/staff/{user_id}/departure", response_model=DirectoryView, summary="A person leaves")
async def leave(
    user_id: str,
    body: Leave,
    request: Request,
    principal: Director,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        "leave",
        lambda c: app.leave(c, user_id, left_on=body.left_on, reason=body.reason),
    )


@router.post(
    "/staff/director-succession",
    response_model=DirectoryView,
    summary="The Director hands over to a promoted PM or a newcomer (R2.2, R2.3)",
)
async def succeed_director(
    body: Succession,
    request: Request,
    principal: Director,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    return await _command(
        request,
        principal,
        idempotency,
        "succeed_director",
        lambda c: app.succeed_director(
            c,
            new_director=body.new_director,
            name=body.name,
            effective_on=body.effective_on,
            reason=body.reason,
            evaluation_ref=body.evaluation_ref,
        ),
    )


@router.post(
    "/trainings",
    status_code=201,
    response_model=DirectoryView,
    summary="Record a training held and its attendees (R2.3)",
)
async def hold_training(
    body: HoldTraining,
    request: Request,
    principal: Director,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    def execute(c: CommandContext) -> Department:
        department, _ = app.hold_training(
            c, title=body.title, held_on=body.held_on, hours=body.hours, attendees=body.attendees
        )
        return department

    return await _command(request, principal, idempotency, "hold_training", execute, status=201)
