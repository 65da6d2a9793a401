"""The point-in-time audit endpoints every service serves (issue 7).

`GET /v1/audit` names the service's aggregate types; `GET
/v1/audit/{aggregate_type}/{id}` answers an aggregate's history as published
(envelopes: event, time, actor and role, correlation and causation ids) and,
with `?as_of=`, its state at that moment, rebuilt from its own events by the
event store's repository. The state is the aggregate's public attributes as
JSON (`aggregate_state`), the same serialiser the tests capture states with.

Roles: `auditor` and `director` (DESIGN.md section 5: every refusal on
record). Nothing here writes, and `auditors_only_read` (an app-wide
dependency of every service) refuses an auditor anything but reads.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from collections.abc import Iterator, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Final
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import AwareDatetime, BaseModel, Field
from pydantic_core import to_jsonable_python

from shared.auth import AUDITOR, DIRECTOR, Principal
from shared.catalogue import CatalogueError
from shared.domain import LedgerAggregate
from shared.envelope import EventEnvelope
from shared.eventstore import LedgerApplication
from shared.http import (
    authenticated,
    decode_cursor,
    encode_cursor,
    record_denial,
    require_roles,
    runtime_of,
)
from shared.problems import PROBLEM_RESPONSES, Problem

#: Who reads the audit endpoints: auditors, and the Director who answers for
#: the department's compliance (R1.1). Nobody writes through them.
AUDIT_ROLES: Final = (AUDITOR, DIRECTOR)

CanAudit = Annotated[Principal, Depends(require_roles(*AUDIT_ROLES, action="read audit histories"))]

#: Marker put in place of what the audit state never shows (binary content,
#: attributes an aggregate lists in `AUDIT_HIDDEN`).
OMITTED: Final = "<omitted>"

MAX_EVENTS_PAGE: Final = 1000

#: What an auditor may do anywhere: read.
READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


async def auditors_only_read(request: Request) -> None:
    """Every service's guard (an app-wide dependency): a request by an
    auditor that is not a read is refused (403, on record) before the route
    decides anything, whatever roles the route itself admits, so nothing can
    be changed with the auditor role (issue 7). A request without a bearer
    token is left to the route (which answers 401)."""
    if request.method in READ_METHODS:
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return
    principal = await authenticated(request)
    if principal.role == AUDITOR:
        reason = f"the auditor role only reads (it may not {request.method} here)"
        await record_denial(request, principal, 403, reason)
        raise Problem(403, "Forbidden", reason, kind="forbidden")


# -- the state, as JSON ------------------------------------------------------------------------


def _key(value: object) -> str:
    if isinstance(value, str):
        return value
    plain = to_json(value)
    return plain if isinstance(plain, str) else json.dumps(plain, sort_keys=True)


def to_json(value: object) -> Any:  # noqa: PLR0911 - one case per kind of value
    """Any attribute value of an aggregate as plain JSON, deterministic (sets
    sorted, keys as text): dates, times and UUIDs as ISO text, Decimals as
    text (no float rounding), enums by value, dataclasses and mappings as
    objects. Bytes are never shown (file contents stay in their table)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, Decimal | UUID | datetime | date | time | timedelta):
        return to_jsonable_python(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return OMITTED
    if isinstance(value, BaseModel):
        return to_json(value.model_dump())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_json(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not f.name.startswith("_")
        }
    if isinstance(value, Mapping):
        return {_key(k): to_json(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        items = [to_json(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False))
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    # Anything else (an object this serialiser does not know) is shown by its
    # type only: never its repr, which might carry what must not be shown.
    return f"<{type(value).__name__}>"


def aggregate_state(aggregate: LedgerAggregate) -> dict[str, Any]:
    """The aggregate's public attributes as JSON, sorted by name; the
    eventsourcing bookkeeping (`_id`, `_version`, pending events) stays out,
    and so do the names an aggregate class lists in `AUDIT_HIDDEN`."""
    hidden: frozenset[str] = frozenset(getattr(type(aggregate), "AUDIT_HIDDEN", ()))
    return {
        name: OMITTED if name in hidden else to_json(value)
        for name, value in sorted(vars(aggregate).items())
        if not name.startswith("_")
    }


# -- reading an aggregate's history ----------------------------------------------------------


class AuditIndex(BaseModel):
    service: str
    aggregate_types: list[str] = Field(description="What /v1/audit/{aggregate_type}/{id} takes")


class AggregateAudit(BaseModel):
    """An aggregate's published history, and its state at a moment."""

    service: str
    aggregate_type: str
    aggregate_id: UUID
    as_of: datetime | None = Field(
        description="The moment asked for; null: now (no state is rebuilt)"
    )
    version: int = Field(
        description="The aggregate's version at `as_of` (0: it did not exist yet), or its"
        " current version"
    )
    state: dict[str, Any] | None = Field(
        description="With as_of: the aggregate rebuilt from its events recorded up to then"
        " (public attributes); null without as_of or before it existed"
    )
    events: list[EventEnvelope] = Field(
        description="Its events, oldest first (with as_of: those recorded up to then)"
    )
    next_cursor: str | None = None


def _types(app: LedgerApplication) -> dict[str, type[LedgerAggregate]]:
    return {cls.AGGREGATE_TYPE: cls for cls in app.AGGREGATES}


def _not_found() -> Problem:
    return Problem(404, "Not found", "no such resource", kind="not-found")


def _stored(app: LedgerApplication, aggregate_id: UUID, **kw: Any) -> Iterator[Any]:
    return (e for e in app.events.get(aggregate_id, **kw) if isinstance(e, LedgerAggregate.Event))


def version_at(app: LedgerApplication, aggregate_id: UUID, moment: datetime) -> int:
    """The aggregate's version at `moment`: the end of the longest run of its
    events recorded by then (a version is stored only after the one before
    it, so a later event recorded under an earlier clock reading cannot
    reach back before them)."""
    version = 0
    for event in _stored(app, aggregate_id):
        if event.timestamp > moment:
            break
        version = event.originator_version
    return version


def read_audit(
    app: LedgerApplication,
    aggregate_type: str,
    aggregate_id: UUID,
    *,
    as_of: datetime | None,
    after: int,
    limit: int,
) -> AggregateAudit:
    """The history (one page) and state of one aggregate; 404 for a type the
    service does not have, an unknown id or an id of another type."""
    if aggregate_type not in _types(app):
        raise _not_found()
    first = next(_stored(app, aggregate_id, lte=1), None)
    try:
        published_as = app.catalogue.spec_of(first).aggregate_type if first else None
    except CatalogueError:
        published_as = None
    if published_as != aggregate_type:
        raise _not_found()
    state: dict[str, Any] | None = None
    if as_of is not None:
        version = version_at(app, aggregate_id, as_of)
        if version:
            state = aggregate_state(app.repository.get(aggregate_id, version=version))
    else:
        last = next(_stored(app, aggregate_id, desc=True, limit=1))
        version = last.originator_version
    page = list(_stored(app, aggregate_id, gt=after, lte=version, limit=limit + 1))
    more = len(page) > limit
    page = page[:limit]
    return AggregateAudit(
        service=app.SERVICE,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        as_of=as_of,
        version=version,
        state=state,
        events=[app.catalogue.to_envelope(e) for e in page],
        next_cursor=encode_cursor(page[-1].originator_version) if more and page else None,
    )


def _after(cursor: str | None) -> int:
    if cursor is None:
        return 0
    (raw,) = decode_cursor(cursor, 1)
    if not raw.isdigit() or len(raw) > 10:
        raise Problem(422, "Invalid cursor", "pass back a next_cursor value unchanged")
    return int(raw)


# -- the routes ------------------------------------------------------------------------------

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=PROBLEM_RESPONSES)


@router.get("", response_model=AuditIndex, summary="The aggregate types audited here")
async def audit_index(request: Request, principal: CanAudit) -> AuditIndex:
    app = runtime_of(request).application
    return AuditIndex(service=app.SERVICE, aggregate_types=sorted(_types(app)))


@router.get(
    "/{aggregate_type}/{aggregate_id}",
    response_model=AggregateAudit,
    summary="An aggregate's history, and with as_of its state then (auditor, director)",
)
async def aggregate_audit(
    request: Request,
    principal: CanAudit,
    aggregate_type: Annotated[
        str,
        Path(
            pattern=r"^[A-Za-z]{1,60}$",
            description="As published in the envelope, e.g. Partner, Project, Document",
        ),
    ],
    aggregate_id: UUID,
    as_of: Annotated[
        AwareDatetime | None,
        Query(description="Rebuild the state as recorded by this moment (ISO 8601 with offset)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS_PAGE)] = 500,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AggregateAudit:
    app = runtime_of(request).application
    after = _after(cursor)
    return await run_in_threadpool(
        read_audit, app, aggregate_type, aggregate_id, as_of=as_of, after=after, limit=limit
    )
