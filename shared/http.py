"""What every service's HTTP API shares: authentication and role checks as
FastAPI dependencies, the recording of every denial, `Idempotency-Key`
handling and the command runner that answers a retried POST from its record.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import IntegrityError
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from shared.auth import AuthError, Principal
from shared.domain import AlreadyExists, CommandContext, LedgerAggregate
from shared.eventstore import LedgerApplication
from shared.idempotency import IdempotencyKey, IdempotencyRecord
from shared.problems import Problem
from shared.telemetry import COMMANDS, DENIALS, current_traceparent

if TYPE_CHECKING:
    from shared.runtime import Runtime

log = logging.getLogger(__name__)

A = TypeVar("A", bound=LedgerAggregate)

IF_MATCH_HEADER = "If-Match"
IDEMPOTENCY_HEADER = "Idempotency-Key"
CORRELATION_HEADER = "X-Correlation-ID"
REPLAYED_HEADER = "Idempotent-Replayed"


def runtime_of(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def application(request: Request) -> LedgerApplication:
    """The service's application, as a dependency. Async on purpose: FastAPI
    runs a plain `def` dependency in its thread pool, a hop that cost more
    than the lookup on every request (make profile)."""
    return runtime_of(request).application


async def record_denial(
    request: Request, principal: Principal | None, status: int, reason: str
) -> None:
    """Every refused request is on record (DESIGN.md section 5)."""
    rt = runtime_of(request)
    DENIALS.labels(rt.spec.name, str(status)).inc()
    log.warning(
        "denied %s %s: %s",
        request.method,
        request.url.path,
        reason,
        extra={"fields": {"user": principal.user_id if principal else None, "status": status}},
    )
    try:
        await rt.pool.execute(
            f"INSERT INTO {rt.quoted_schema}.access_denials"
            " (user_id, role, method, path, status, reason) VALUES ($1, $2, $3, $4, $5, $6)",
            principal.user_id if principal else None,
            principal.role if principal else None,
            request.method,
            request.url.path[:500],
            status,
            reason[:500],
        )
    except Exception:
        # The refusal itself must not turn into a 500; the log line above stays.
        log.exception("could not store the access denial")


async def authenticated(request: Request) -> Principal:
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        # The app-wide auditor guard has verified this request's token
        # already; verifying it again doubled the JWT cost of every command.
        return known
    rt = runtime_of(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        await record_denial(request, None, 401, "missing bearer token")
        raise AuthError("missing bearer token (Authorization: Bearer <jwt>)")
    try:
        if rt.verifier.settings.jwt_jwks_url:
            principal = await asyncio.to_thread(rt.verifier.verify, token.strip())
        else:
            principal = rt.verifier.verify(token.strip())
    except AuthError as exc:
        await record_denial(request, None, 401, str(exc))
        raise
    request.state.principal = principal
    return principal


Authenticated = Annotated[Principal, Depends(authenticated)]
RoleCheck = Callable[..., Awaitable[Principal]]


def require_roles(*roles: str, action: str) -> RoleCheck:
    """A dependency admitting only the given roles; the roles are kept on the
    function (`allowed_roles`) so the role x endpoint matrix can be derived."""

    async def check(request: Request, principal: Authenticated) -> Principal:
        if principal.role not in roles:
            reason = f"role '{principal.role}' may not {action} (allowed: {', '.join(roles)})"
            await record_denial(request, principal, 403, reason)
            raise Problem(403, "Forbidden", reason, kind="forbidden")
        return principal

    check.allowed_roles = roles  # type: ignore[attr-defined]
    return check


async def idempotency_key(request: Request, principal: Authenticated) -> IdempotencyKey | None:
    raw = request.headers.get(IDEMPOTENCY_HEADER)
    if raw is None:
        return None
    if not (1 <= len(raw) <= 200) or not raw.isascii() or not raw.isprintable():
        raise Problem(
            422,
            "Invalid Idempotency-Key",
            "Idempotency-Key must be 1-200 printable ASCII characters",
            kind="validation",
        )
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.url.path}?{request.url.query}\n".encode())
    digest.update(await request.body())
    return IdempotencyKey(principal=principal.user_id, key=raw, request_hash=digest.hexdigest())


def encode_cursor(*values: object) -> str:
    """An opaque cursor for keyset pagination (the last row's sort key)."""
    raw = json.dumps([str(v) for v in values]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str, arity: int) -> list[str]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, binascii.Error):
        values = None
    if (
        not isinstance(values, list)
        or len(values) != arity
        or not all(isinstance(v, str) for v in values)
    ):
        raise Problem(422, "Invalid cursor", "pass back a next_cursor value unchanged")
    return values


def time_id_cursor(cursor: str | None) -> tuple[datetime, UUID] | tuple[None, None]:
    """The (time, id) sort key a keyset page continues after; (None, None) for
    the first page."""
    if cursor is None:
        return None, None
    at, key = decode_cursor(cursor, 2)
    try:
        return datetime.fromisoformat(at), UUID(key)
    except ValueError:
        raise Problem(422, "Invalid cursor", "pass back a next_cursor value unchanged") from None


def command_context(
    request: Request, principal: Principal, idempotency: IdempotencyKey | None = None
) -> CommandContext:
    rt = runtime_of(request)
    correlation: UUID | None = None
    raw = request.headers.get(CORRELATION_HEADER)
    if raw:
        try:
            correlation = UUID(raw)
        except ValueError:
            raise Problem(
                422,
                "Invalid X-Correlation-ID",
                "X-Correlation-ID must be a UUID",
                kind="validation",
            ) from None
    ctx = rt.application.context(
        principal.actor,
        correlation_id=correlation,
        traceparent=current_traceparent(),
        idempotency=idempotency,
    )
    expected = expected_version(request.headers.get(IF_MATCH_HEADER))
    return ctx if expected is None else replace(ctx, expected_version=expected)


def expected_version(if_match: str | None) -> int | None:
    """The aggregate version named by `If-Match` (the ETag `"<version>"` a
    command answered with); None without the header or for `*`."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not (tag.isascii() and tag.isdigit()) or len(tag) > 18 or int(tag) < 1:
        raise Problem(
            422,
            "Invalid If-Match",
            'If-Match must name one version, as the ETag gave it: "<version>"',
            kind="validation",
        )
    return int(tag)


def run_command(
    app: LedgerApplication,
    ctx: CommandContext,
    command: str,
    execute: Callable[[CommandContext], A],
    render: Callable[[A], BaseModel],
    *,
    status: int = 200,
    location: Callable[[A], str] | None = None,
) -> JSONResponse:
    """Runs a command once per Idempotency-Key and renders its aggregate.

    A retry with the same key is answered with the aggregate at the version the
    first attempt produced (same body), marked `Idempotent-Replayed: true`.
    """
    key = ctx.idempotency
    if key is not None:
        key = replace(key, success_status=status)
        ctx = replace(ctx, idempotency=key)
        done = app.find_idempotent(key)
        if done is not None:
            return _replay(app, done, render, location)
    try:
        aggregate = execute(ctx)
    except (IntegrityError, AlreadyExists):
        # Two attempts with one key raced: the loser answers like a retry.
        done = app.find_idempotent(key) if key is not None else None
        if done is not None:
            return _replay(app, done, render, location)
        COMMANDS.labels(app.SERVICE, command, "conflict").inc()
        raise
    except Exception:
        # A retry that raced its first attempt can find the state moved on by
        # that attempt (and be refused for it): it answers like a retry.
        done = app.find_idempotent(key) if key is not None else None
        if done is not None:
            return _replay(app, done, render, location)
        COMMANDS.labels(app.SERVICE, command, "refused").inc()
        raise
    COMMANDS.labels(app.SERVICE, command, "ok").inc()
    return _respond(aggregate, status, render, location, replayed=False)


def _replay(
    app: LedgerApplication,
    done: IdempotencyRecord,
    render: Callable[[A], BaseModel],
    location: Callable[[A], str] | None,
) -> JSONResponse:
    aggregate: A = app.repository.get(done.aggregate_id, version=done.aggregate_version)
    return _respond(aggregate, done.key.success_status, render, location, replayed=True)


def _respond(
    aggregate: A,
    status: int,
    render: Callable[[A], BaseModel],
    location: Callable[[A], str] | None,
    *,
    replayed: bool,
) -> JSONResponse:
    headers = {"ETag": f'"{aggregate.version}"'}
    if location is not None:
        headers["Location"] = location(aggregate)
    if replayed:
        headers[REPLAYED_HEADER] = "true"
    body: Any = render(aggregate).model_dump(mode="json")
    return JSONResponse(body, status_code=status, headers=headers)


async def command(
    request: Request,
    principal: Principal,
    idempotency: IdempotencyKey | None,
    name: str,
    execute: Callable[[CommandContext], A],
    render: Callable[[A], BaseModel],
    *,
    status: int = 200,
    location: Callable[[A], str] | None = None,
) -> JSONResponse:
    """A route's command: its context from the request, run once per
    Idempotency-Key (`run_command`) off the event loop, since the event store
    is synchronous."""
    ctx = command_context(request, principal, idempotency)
    return await run_in_threadpool(
        run_command,
        runtime_of(request).application,
        ctx,
        name,
        execute,
        render,
        status=status,
        location=location,
    )
