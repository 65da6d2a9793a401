"""HTTP routes of the staff evaluations under /v1/kpi/evaluations (R6.2,
R2.2, R2.3, R6.4).

- A PM or specialist writes their monthly self-assessment (`2026-11`); their
  superior as of the quarter's last day writes the quarterly assessment
  (`2026-Q4`): the Director for a PM, the PM for a specialist. Anyone else is
  refused (403, on record as a denial).
- Every evaluation is shown with the person's KPI figures for its period
  (`figures`: task completion, document accuracy, response speed, compliance
  breaches, incidents and sanctions attributed to them, R6.1, R6.4), from the
  KPI projections, and with the promotions that cite it (R2.3).
- Readers: the person, their superiors (now, and as of the period's end),
  whoever wrote or owes the assessment; the Director, the department head and
  auditors read all. Other roles are refused.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any, Literal, cast
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.kpi.application import KpiApplication
from services.kpi.domain.evaluation import (
    RATINGS,
    Evaluation,
    EvaluationKind,
    Period,
    StaffHistory,
    evaluation_id,
    may_read,
    readable_people,
)
from services.kpi.figures import person_figures
from shared.auth import (
    AUDITOR,
    DEPARTMENT,
    DEPT_HEAD,
    DIRECTOR,
    PROJECT_MANAGER,
    SPECIALIST,
    Principal,
)
from shared.domain import CommandContext, RuleViolation
from shared.http import (
    REPLAYED_HEADER,
    application,
    command,
    decode_cursor,
    encode_cursor,
    idempotency_key,
    record_denial,
    require_roles,
    runtime_of,
)
from shared.idempotency import IdempotencyKey
from shared.problems import PROBLEM_RESPONSES, Problem
from shared.text import Moment, Reason, UserId

router = APIRouter(prefix="/v1/kpi/evaluations", tags=["evaluations"], responses=PROBLEM_RESPONSES)

SelfAssessor = Annotated[
    Principal,
    Depends(
        require_roles(PROJECT_MANAGER, SPECIALIST, action="write a monthly self-assessment (R6.2)")
    ),
]
Assessor = Annotated[
    Principal,
    Depends(require_roles(DIRECTOR, PROJECT_MANAGER, action="write a quarterly assessment (R6.2)")),
]
Reader = Annotated[
    Principal,
    Depends(require_roles(*DEPARTMENT, DEPT_HEAD, AUDITOR, action="read staff evaluations (R6.2)")),
]
#: Roles that read every evaluation (R5.1 the Director; oversight and audit).
READ_ALL = frozenset({DIRECTOR, DEPT_HEAD, AUDITOR})
Idempotency = Annotated[IdempotencyKey | None, Depends(idempotency_key)]
Status = Literal["pending", "overdue", "on_time", "late", "cancelled"]


def _period(kind: EvaluationKind) -> Any:
    def check(value: str) -> str:
        period = Period.parse(value)
        if period.kind != kind:
            wanted = "a month such as 2026-11" if kind == "self" else "a quarter such as 2026-Q4"
            raise ValueError(f"{value} is not {wanted}")
        return period.key

    return AfterValidator(check)


MonthKey = Annotated[
    str, Field(max_length=10, examples=["2026-11"], description="The month"), _period("self")
]
QuarterKey = Annotated[
    str, Field(max_length=10, examples=["2026-Q4"], description="The quarter"), _period("superior")
]


class _Assessment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: int = Field(
        ge=1,
        le=5,
        description="; ".join(f"{k} {v}" for k, v in RATINGS.items()),
    )
    strengths: Reason
    improvements: Reason
    comment: Reason | None = None


class SelfAssessment(_Assessment):
    """The caller's own assessment of a month (R6.2)."""

    period: MonthKey


class SuperiorAssessment(_Assessment):
    """The superior's assessment of a report's quarter (R6.2, R2.2)."""

    user_id: UserId = Field(description="Whom the assessment is about")
    period: QuarterKey


class Citation(BaseModel):
    """A promotion or succession that rests on this evaluation (R2.3)."""

    event_id: UUID
    change: str
    to_role: str | None
    effective_on: date
    recorded_at: datetime


class EvaluationView(BaseModel):
    evaluation_id: UUID
    user_id: str
    name: str | None
    role: str | None = Field(description="The person's role as of the period's end")
    kind: EvaluationKind = Field(description="self (monthly) or superior (quarterly)")
    period: str
    period_start: date
    period_end: date
    due_at: datetime
    status: Status
    superior: str | None = Field(description="The person's superior as of the period's end")
    assessor: str | None = Field(description="Who wrote it (or owes it, while not written)")
    rating: int | None
    rating_label: str | None
    strengths: str | None
    improvements: str | None
    comment: str | None
    submitted_at: datetime | None
    on_time: bool | None
    overdue_at: datetime | None
    owed_by: str | None = Field(description="Who missed the due time, once overdue")
    figures: dict[str, Any] | None = Field(
        default=None, description="The person's KPI figures for the period (R6.1, R6.4)"
    )
    cited_by: list[Citation] = Field(default_factory=list)

    @classmethod
    def of(cls, e: Evaluation) -> EvaluationView:
        s = e.submission
        return cls(
            evaluation_id=e.id,
            user_id=e.user_id,
            name=e.name,
            role=e.role,
            kind=e.kind,
            period=e.period.key,
            period_start=e.period.start,
            period_end=e.period.end,
            due_at=e.due_at,
            status=cast(Status, e.status),
            superior=e.superior,
            assessor=e.author or e.owed_by,
            rating=s.rating if s else None,
            rating_label=RATINGS[s.rating] if s else None,
            strengths=s.strengths if s else None,
            improvements=s.improvements if s else None,
            comment=s.comment if s else None,
            submitted_at=s.submitted_at if s else None,
            on_time=s.on_time if s else None,
            overdue_at=e.overdue_at,
            owed_by=e.owed_by,
        )

    @classmethod
    def of_row(cls, r: Any) -> EvaluationView:
        return cls(
            **{k: r[k] for k in _ROW_FIELDS},
            rating_label=RATINGS.get(r["rating"]) if r["rating"] else None,
        )


_ROW_FIELDS = (
    "evaluation_id", "user_id", "name", "role", "kind", "period", "period_start", "period_end",
    "due_at", "status", "superior", "assessor", "rating", "strengths", "improvements",
    "comment", "submitted_at", "on_time", "overdue_at", "owed_by",
)  # fmt: skip
_SELECT = (
    "SELECT e.evaluation_id, e.user_id, coalesce(e.name, s.name) AS name,"
    " coalesce(e.role, s.role) AS role, e.kind, e.period, e.period_start, e.period_end,"
    " e.due_at, e.status, e.superior, coalesce(e.assessor, e.owed_by) AS assessor, e.rating,"
    " e.strengths, e.improvements, e.comment, e.submitted_at, e.on_time, e.overdue_at,"
    " e.owed_by FROM evaluations e LEFT JOIN staff s ON s.user_id = e.user_id"
)


class EvaluationPage(BaseModel):
    items: list[EvaluationView]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end")


App = Annotated[KpiApplication, Depends(application)]


# -- helpers ---------------------------------------------------------------------------------


async def _figures(request: Request, views: list[EvaluationView], as_of: datetime | None) -> None:
    """Each view gets the person's KPI figures for its period, and the
    promotions citing it."""
    if not views:
        return
    async with runtime_of(request).pool.acquire() as conn:
        for view in views:
            figures = await person_figures(
                conn,
                view.user_id,
                view.period_start,
                view.period_end,
                as_of,
                policy=runtime_of(request).policy,
                now=runtime_of(request).clock.now(),
            )
            view.figures = jsonable_encoder(figures)
        rows = await conn.fetch(
            "SELECT event_id, user_id, change, to_role, effective_on, evaluation_ref,"
            " recorded_at FROM staff_changes WHERE user_id = ANY($1::text[])"
            " AND evaluation_ref IS NOT NULL ORDER BY recorded_at",
            sorted({v.user_id for v in views}),
        )
    for view in views:
        refs = {view.period, str(view.evaluation_id)}
        view.cited_by = [
            Citation(**{k: r[k] for k in Citation.model_fields})
            for r in rows
            if r["user_id"] == view.user_id and r["evaluation_ref"].strip() in refs
        ]


async def _refuse(request: Request, principal: Principal, reason: str) -> Problem:
    await record_denial(request, principal, 403, reason)
    return Problem(403, "Forbidden", reason, kind="forbidden", rule="R6.2")


async def _submit(
    request: Request,
    principal: Principal,
    idempotency: IdempotencyKey | None,
    app: KpiApplication,
    user_id: str,
    body: _Assessment,
    period: Period,
) -> JSONResponse:
    def execute(c: CommandContext) -> Evaluation:
        return app.submit_evaluation(
            c,
            user_id,
            period,
            rating=body.rating,
            strengths=body.strengths,
            improvements=body.improvements,
            comment=body.comment,
        )

    try:
        response = await command(
            request,
            principal,
            idempotency,
            f"submit_{period.kind}_assessment",
            execute,
            EvaluationView.of,
            status=201,
            location=lambda e: f"{router.prefix}/{quote(e.user_id, safe='')}/{e.period.key}",
        )
    except RuleViolation as exc:
        if exc.forbidden:
            await record_denial(request, principal, 403, str(exc))
        raise
    view = EvaluationView.model_validate(json.loads(bytes(response.body)))
    await _figures(request, [view], None)
    headers = {k: v for k, v in response.headers.items() if k.lower() in ("etag", "location")}
    if REPLAYED_HEADER.lower() in response.headers:
        headers[REPLAYED_HEADER] = response.headers[REPLAYED_HEADER.lower()]
    return JSONResponse(
        view.model_dump(mode="json"), status_code=response.status_code, headers=headers
    )


# -- routes ------------------------------------------------------------------------------------


@router.post(
    "/self-assessments",
    status_code=201,
    response_model=EvaluationView,
    summary="Write one's monthly self-assessment (R6.2)",
)
async def self_assessment(
    body: SelfAssessment,
    request: Request,
    principal: SelfAssessor,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    period = Period.parse(body.period)
    return await _submit(request, principal, idempotency, app, principal.user_id, body, period)


@router.post(
    "/superior-assessments",
    status_code=201,
    response_model=EvaluationView,
    summary="Assess a report's quarter as their superior (R6.2, R2.2)",
)
async def superior_assessment(
    body: SuperiorAssessment,
    request: Request,
    principal: Assessor,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    period = Period.parse(body.period)
    return await _submit(request, principal, idempotency, app, body.user_id, body, period)


@router.get(
    "",
    response_model=EvaluationPage,
    summary="Evaluations owed and written, by period (oldest first)",
)
async def list_evaluations(
    request: Request,
    principal: Reader,
    app: App,
    person: Annotated[str | None, Query(max_length=200)] = None,
    period: Annotated[str | None, Query(max_length=10, examples=["2026-11", "2026-Q4"])] = None,
    kind: EvaluationKind | None = None,
    status: Annotated[
        Status | None, Query(description="Without it: every evaluation but the cancelled")
    ] = None,
    figures: Annotated[bool, Query(description="Include the KPI figures")] = True,
    as_of: Annotated[Moment | None, Query(description="Figures as of this moment")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> EvaluationPage:
    key = _parse_period(period)
    history: StaffHistory | None = None
    people: list[str] | None = None
    if principal.role not in READ_ALL:
        history = await run_in_threadpool(app.staff_history)
        people = sorted(readable_people(history, principal.user_id))
        if person is not None and person not in people:
            raise await _refuse(
                request, principal, f"{principal.user_id} may not read {person}'s evaluations"
            )
    after: list[Any] = [None, None, None]
    if cursor is not None:
        end, user, key_after = decode_cursor(cursor, 3)
        try:
            after = [date.fromisoformat(end), user, key_after]
        except ValueError:
            raise Problem(
                422, "Invalid cursor", "pass back a next_cursor value unchanged"
            ) from None
    async with runtime_of(request).pool.acquire() as conn:
        rows = await conn.fetch(
            f"{_SELECT} WHERE ($1::text IS NULL OR e.user_id = $1)"
            " AND ($2::text IS NULL OR e.period = $2)"
            " AND ($3::text IS NULL OR e.kind = $3)"
            " AND (e.status = $4 OR ($4::text IS NULL AND e.status <> 'cancelled'))"
            " AND ($5::text[] IS NULL OR e.user_id = ANY($5))"
            " AND ($6::date IS NULL"
            " OR (e.period_end, e.user_id, e.period) > ($6, $7::text, $8::text))"
            " ORDER BY e.period_end, e.user_id, e.period LIMIT $9",
            person,
            key,
            kind,
            status,
            people,
            *after,
            limit + 1,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = encode_cursor(last["period_end"].isoformat(), last["user_id"], last["period"])
    views = [EvaluationView.of_row(r) for r in rows]
    if history is not None:
        views = [
            v
            for v in views
            if may_read(
                history,
                principal.user_id,
                v.user_id,
                Period.parse(v.period),
                involved=[x for x in (v.assessor, v.owed_by) if x],
            )
        ]
    if figures:
        await _figures(request, views, as_of)
    return EvaluationPage(items=views, next_cursor=next_cursor)


def _parse_period(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return Period.parse(text).key
    except ValueError as exc:
        raise Problem(422, "Invalid period", str(exc), kind="validation") from None


@router.get(
    "/{user_id}/{period}",
    response_model=EvaluationView,
    summary="One evaluation, beside the person's KPI figures for its period (R6.2)",
)
async def one_evaluation(
    user_id: str,
    period: str,
    request: Request,
    principal: Reader,
    app: App,
    as_of: Annotated[Moment | None, Query(description="Figures as of this moment")] = None,
) -> EvaluationView:
    key = Period.parse(_parse_period(period) or period)
    evaluation = await run_in_threadpool(app.evaluation, user_id, key)
    view: EvaluationView | None = EvaluationView.of(evaluation) if evaluation else None
    if view is None:
        async with runtime_of(request).pool.acquire() as conn:
            row = await conn.fetchrow(
                f"{_SELECT} WHERE e.evaluation_id = $1", evaluation_id(user_id, key)
            )
        view = EvaluationView.of_row(row) if row else None
    if principal.role not in READ_ALL:
        history = await run_in_threadpool(app.staff_history)
        involved = [x for x in (view.assessor, view.owed_by) if x] if view else []
        if not may_read(history, principal.user_id, user_id, key, involved=involved):
            raise await _refuse(
                request, principal, f"{principal.user_id} may not read {user_id}'s evaluations"
            )
    if view is None:
        raise Problem(
            404, "Not found", f"no evaluation of {user_id} for {key} is owed", kind="not-found"
        )
    await _figures(request, [view], as_of)
    return view
