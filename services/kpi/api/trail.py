"""The cross-service audit trail over HTTP (issue 7): what one user did, what
happened to one project, in recorded order across the four services, and
the same as an export (zip: JSON Lines, CSV, manifest with SHA-256).
Auditors and the Director read it (shared.audit.AUDIT_ROLES)."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, Field

from services.kpi.trail import After, Kind, TrailEvent, TrailQuery, export_zip, read_trail, sort_key
from shared.audit import CanAudit
from shared.http import decode_cursor, encode_cursor, runtime_of
from shared.problems import PROBLEM_RESPONSES, Problem

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=PROBLEM_RESPONSES)

From = Annotated[
    AwareDatetime | None,
    Query(alias="from", description="Recorded at or after this moment (ISO 8601 with offset)"),
]
To = Annotated[
    AwareDatetime | None,
    Query(description="Recorded before this moment (ISO 8601 with offset)"),
]
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=300)]
UserId = Annotated[str, Path(min_length=1, max_length=200)]


class TrailPage(BaseModel):
    query: dict[str, str | None] = Field(description="kind, id, from, to as asked")
    items: list[TrailEvent]
    next_cursor: str | None = None


def _bad(field: str, message: str) -> Problem:
    return Problem(
        422,
        "Invalid request",
        message,
        kind="validation",
        errors=[{"field": f"query.{field}", "message": message, "type": "value_error"}],
    )


def _query(kind: Kind, subject: str, start: datetime | None, end: datetime | None) -> TrailQuery:
    if start is not None and end is not None and start >= end:
        raise _bad("from", "from must be before to")
    return TrailQuery(kind, subject, start, end)


def _after(cursor: str | None) -> After | None:
    if cursor is None:
        return None
    at, service, aggregate, version_ = decode_cursor(cursor, 4)
    try:
        return datetime.fromisoformat(at), service, UUID(aggregate), int(version_)
    except ValueError:
        raise Problem(422, "Invalid cursor", "pass back a next_cursor value unchanged") from None


async def _page(request: Request, query: TrailQuery, limit: int, cursor: str | None) -> TrailPage:
    after = _after(cursor)
    async with runtime_of(request).pool.acquire() as conn:
        items = await read_trail(conn, query, after, limit + 1)
    more = len(items) > limit
    items = items[:limit]
    next_cursor = None
    if more:
        at, service, aggregate, version_ = sort_key(items[-1])
        next_cursor = encode_cursor(at.isoformat(), service, aggregate, version_)
    return TrailPage(query=query.describe(), items=items, next_cursor=next_cursor)


@router.get(
    "/trail/users/{user_id}",
    response_model=TrailPage,
    summary="Everything a user did, across the services, in recorded order (auditor, director)",
)
async def user_trail(
    request: Request,
    principal: CanAudit,
    user_id: UserId,
    from_: From = None,
    to: To = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> TrailPage:
    return await _page(request, _query("user", user_id, from_, to), limit, cursor)


@router.get(
    "/trail/projects/{project_id}",
    response_model=TrailPage,
    summary="Everything that happened to a project, across the services (auditor, director)",
)
async def project_trail(
    request: Request,
    principal: CanAudit,
    project_id: UUID,
    from_: From = None,
    to: To = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> TrailPage:
    return await _page(request, _query("project", str(project_id), from_, to), limit, cursor)


def _service_version(request: Request) -> str:
    try:
        return version("partnerledger")
    except PackageNotFoundError:  # run from a source tree that was not installed
        return str(request.app.version)


@router.get(
    "/export",
    summary="A user's or a project's trail as a zip: events.jsonl, events.csv, manifest.json",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "the export"}},
)
async def export(
    request: Request,
    principal: CanAudit,
    kind: Annotated[Kind, Query(description="user or project")],
    id: Annotated[str, Query(min_length=1, max_length=200, description="user id or project id")],
    from_: From = None,
    to: To = None,
) -> StreamingResponse:
    subject = id
    if kind == "project":
        try:
            subject = str(UUID(id))
        except ValueError:
            raise _bad("id", "a project id is a UUID") from None
    query = _query(kind, subject, from_, to)
    rt = runtime_of(request)
    generated_at = rt.clock.now()
    meta = {
        "service": rt.spec.name,
        "service_version": _service_version(request),
        "generated_by": {"user_id": principal.user_id, "role": principal.role},
    }
    name = f"audit-{kind}-{generated_at.astimezone(UTC):%Y%m%dT%H%M%SZ}.zip"
    return StreamingResponse(
        export_zip(rt.pool, query, generated_at=generated_at, meta=meta),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
