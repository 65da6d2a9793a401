"""Errors as `application/problem+json` (RFC 9457), the same on every service.

422 bad input (which field, why), 404 unknown id, 409 illegal transition or
version conflict (naming the rule), 403 denied, 401 unauthenticated. An
unexpected error is a 500 that is logged with its trace id, never a 200.
"""

from __future__ import annotations

import logging
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.auth import AuthError
from shared.domain import AlreadyExists, RuleViolation
from shared.idempotency import IdempotencyKeyReused

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://partnerledger.example/problems/"


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending input, e.g. body.contact.email")
    message: str
    type: str = Field(description="Machine-readable error type")


class ProblemDetail(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    rule: str | None = Field(
        default=None, description="Requirement id the request broke, e.g. R3.4"
    )
    errors: list[FieldError] | None = None
    existing_id: str | None = None
    current_version: int | None = None


class Problem(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        kind: str | None = None,
        rule: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.rule = rule
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    request: Request | None,
    status: int,
    title: str,
    detail: str | None = None,
    *,
    kind: str | None = None,
    rule: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = ProblemDetail(
        type=TYPE_BASE + kind if kind else "about:blank",
        title=title,
        status=status,
        detail=detail,
        instance=str(request.url.path) if request is not None else None,
        rule=rule,
        **extra,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            request,
            exc.status,
            exc.title,
            exc.detail,
            kind=exc.kind,
            rule=exc.rule,
            headers=exc.headers,
            **exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            FieldError(field=_field_path(tuple(e["loc"])), message=e["msg"], type=e["type"])
            for e in exc.errors()
        ]
        summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        return problem_response(
            request,
            422,
            "Invalid request",
            summary,
            kind="validation",
            errors=[e.model_dump() for e in errors],
        )

    @app.exception_handler(AlreadyExists)
    async def _exists(request: Request, exc: AlreadyExists) -> JSONResponse:
        return problem_response(
            request,
            409,
            "Already exists",
            exc.detail,
            kind="already-exists",
            rule=exc.rule,
            existing_id=str(exc.existing_id),
        )

    @app.exception_handler(RuleViolation)
    async def _rule(request: Request, exc: RuleViolation) -> JSONResponse:
        if exc.forbidden:
            return problem_response(
                request, 403, "Forbidden by policy", exc.detail, kind="forbidden", rule=exc.rule
            )
        return problem_response(
            request, 409, "Rule violated", exc.detail, kind="rule-violation", rule=exc.rule
        )

    @app.exception_handler(IntegrityError)
    async def _conflict(request: Request, exc: IntegrityError) -> JSONResponse:
        return problem_response(
            request,
            409,
            "Version conflict",
            "the resource was changed by another request at the same time; reload and retry",
            kind="version-conflict",
        )

    @app.exception_handler(AggregateNotFoundError)
    async def _missing(request: Request, exc: AggregateNotFoundError) -> JSONResponse:
        return problem_response(request, 404, "Not found", "no such resource", kind="not-found")

    @app.exception_handler(IdempotencyKeyReused)
    async def _key_reused(request: Request, exc: IdempotencyKeyReused) -> JSONResponse:
        return problem_response(
            request, 422, "Idempotency-Key reused", str(exc), kind="idempotency-key-reused"
        )

    @app.exception_handler(AuthError)
    async def _unauthenticated(request: Request, exc: AuthError) -> JSONResponse:
        return problem_response(
            request,
            401,
            "Unauthenticated",
            str(exc),
            kind="unauthenticated",
            headers={"WWW-Authenticate": 'Bearer realm="partnerledger"'},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(
            request,
            exc.status_code,
            _TITLES.get(exc.status_code, "Error"),
            str(exc.detail) if exc.detail else None,
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            request, 500, "Internal error", "the error was logged with its trace id"
        )


_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid request",
}

#: For OpenAPI: the problem responses every command may answer with.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemDetail, "description": title, "content": {PROBLEM_JSON: {}}}
    for status, title in (
        (401, "Missing or invalid bearer token"),
        (403, "The caller's role may not do this"),
        (422, "Invalid input: which field and why"),
    )
}
