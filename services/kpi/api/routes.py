"""HTTP routes of the kpi service under /v1/kpi."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from services.kpi.api.schemas import PartnerPage, PartnerRow, PartnerSummary
from shared.auth import AUDITOR, CEO, DEPARTMENT, DEPT_HEAD, FINANCE, Principal
from shared.http import encode_cursor, require_roles, runtime_of, time_id_cursor
from shared.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/kpi", tags=["kpi"], responses=PROBLEM_RESPONSES)

#: Internal roles read KPIs; an external partner does not see the portfolio.
CanRead = Annotated[
    Principal,
    Depends(require_roles(*DEPARTMENT, DEPT_HEAD, FINANCE, CEO, AUDITOR, action="read KPIs")),
]


@router.get("/partners/summary", response_model=PartnerSummary, summary="Partners by status")
async def partners_summary(request: Request, principal: CanRead) -> PartnerSummary:
    async with runtime_of(request).pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT status, partners AS n FROM partner_counts WHERE partners > 0"
        )
        last = await conn.fetchval("SELECT max(registered_at) FROM partners")
    by_status = {r["status"]: r["n"] for r in rows}
    total = sum(by_status.values())
    return PartnerSummary(total=total, by_status=by_status, last_registered_at=last)


@router.get("/partners", response_model=PartnerPage, summary="Partners, oldest first")
async def list_partners(
    request: Request,
    principal: CanRead,
    status: Annotated[str | None, Query(max_length=30)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PartnerPage:
    after_at, after_id = time_id_cursor(cursor)
    async with runtime_of(request).pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT partner_id, name, unified_social_credit_code, status, registered_at,"
            " status_since FROM partners"
            " WHERE ($1::text IS NULL OR status = $1)"
            " AND ($2::timestamptz IS NULL OR (registered_at, partner_id) > ($2, $3::uuid))"
            " ORDER BY registered_at, partner_id LIMIT $4",
            status,
            after_at,
            after_id,
            limit + 1,
        )
    items = [PartnerRow(**dict(r)) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(items[-1].registered_at.isoformat(), items[-1].partner_id)
    return PartnerPage(items=items, next_cursor=next_cursor)
