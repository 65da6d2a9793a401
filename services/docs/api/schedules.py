"""HTTP routes of /v1/schedules: which reports each contracted project owes,
which are filed, late or overdue (R4.3, R3.5)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request

from services.docs.api import schemas as s
from services.docs.api.access import INTERNAL, STAFFED, ensure_staffed, staff_scope
from shared.auth import Principal
from shared.http import decode_cursor, encode_cursor, require_roles, runtime_of
from shared.problems import PROBLEM_RESPONSES, Problem
from shared.text import Moment

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], responses=PROBLEM_RESPONSES)

Reader = Annotated[Principal, Depends(require_roles(*INTERNAL, action="read report schedules"))]
ReportKindName = Literal["weekly", "monthly", "quarterly"]
PERIOD_COLUMNS = (
    "project_id, kind, period, period_start, period_end, due_at, status, document_id,"
    " filed_by, filed_at, overdue_event_id"
)


@router.get(
    "",
    response_model=s.PeriodPage,
    summary="Report periods: due, overdue, filed, per project and period (R4.3)",
)
async def list_periods(
    request: Request,
    principal: Reader,
    project_id: UUID | None = None,
    kind: ReportKindName | None = None,
    status: s.PeriodStatusName | None = None,
    due_from: Moment | None = None,
    due_to: Moment | None = None,
    covering: Annotated[
        date | None, Query(description="Only periods that include this day")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> s.PeriodPage:
    after: list[str | None] = [None, None, None, None]
    if cursor is not None:
        after = list(decode_cursor(cursor, 4))
    try:
        after_due = None if after[0] is None else datetime.fromisoformat(after[0])
        after_project = None if after[1] is None else UUID(after[1])
    except ValueError:
        raise Problem(422, "Invalid cursor", "pass back a next_cursor value unchanged") from None
    rows = await runtime_of(request).pool.fetch(
        f"SELECT {PERIOD_COLUMNS} FROM report_periods"
        " WHERE ($1::uuid IS NULL OR project_id = $1) AND ($2::text IS NULL OR kind = $2)"
        " AND ($3::text IS NULL OR status = $3)"
        " AND ($4::timestamptz IS NULL OR due_at >= $4)"
        " AND ($5::timestamptz IS NULL OR due_at < $5)"
        " AND ($6::date IS NULL OR (period_start <= $6 AND period_end >= $6))"
        " AND ($7::timestamptz IS NULL OR (due_at, project_id, kind, period)"
        "  > ($7, $8::uuid, $9::text, $10::text))"
        f" AND {STAFFED.format(uid='$12', role='$13')}"
        " ORDER BY due_at, project_id, kind, period LIMIT $11",
        project_id,
        kind,
        status,
        due_from,
        due_to,
        covering,
        after_due,
        after_project,
        after[2],
        after[3],
        limit + 1,
        *staff_scope(principal),
    )
    items = [s.PeriodRow(**dict(r)) for r in rows[:limit]]
    last = items[-1] if len(rows) > limit and items else None
    token = (
        encode_cursor(last.due_at.isoformat(), last.project_id, last.kind, last.period)
        if last
        else None
    )
    return s.PeriodPage(items=items, next_cursor=token)


@router.get(
    "/{project_id}",
    response_model=s.ScheduleView,
    summary="A project's report schedule: open periods and counts per kind (R4.3)",
)
async def get_schedule(project_id: UUID, request: Request, principal: Reader) -> s.ScheduleView:
    await ensure_staffed(request, principal, project_id, "report schedule")
    pool = runtime_of(request).pool
    row = await pool.fetchrow(
        "SELECT project_id, project_name, project_manager, first_day, state, opened_at,"
        " closed_at FROM schedule_view WHERE project_id = $1",
        project_id,
    )
    if row is None:
        raise Problem(
            404,
            "Not found",
            "no report schedule: the project has no contract signed (yet)",
            kind="not-found",
        )
    counts: dict[str, dict[str, int]] = {
        k: {"open": 0, "filed": 0, "filed_late": 0, "overdue": 0}
        for k in ("weekly", "monthly", "quarterly")
    }
    for c in await pool.fetch(
        "SELECT kind, status, count(*) AS n FROM report_periods WHERE project_id = $1"
        " GROUP BY kind, status",
        project_id,
    ):
        counts[c["kind"]][c["status"]] = c["n"]
    open_rows = await pool.fetch(
        f"SELECT {PERIOD_COLUMNS} FROM report_periods WHERE project_id = $1"
        " AND status = 'open' ORDER BY due_at, kind",
        project_id,
    )
    return s.ScheduleView(
        **dict(row), counts=counts, open_periods=[s.PeriodRow(**dict(r)) for r in open_rows]
    )
