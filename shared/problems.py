"""Errors as `application/problem+json` (RFC 9457), the same on every service.

422 bad input (which field, why), 404 unknown id, 409 illegal transition or
version conflict (naming the rule), 403 denied, 401 unauthenticated. An
unexpected error is a 500 that is logged with its trace id, never a 200.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.auth import AuthError
from shared.domain import AlreadyExists, RuleViolation, VersionConflict
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


def problem_response(request: Request | None, problem: Problem) -> JSONResponse:
    body = ProblemDetail(
        type=TYPE_BASE + problem.kind if problem.kind else "about:blank",
        title=problem.title,
        status=problem.status,
        detail=problem.detail,
        instance=str(request.url.path) if request is not None else None,
        rule=problem.rule,
        **problem.extra,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def install_problem_handlers(app: FastAPI) -> None:
    def handle(exc_class: type[Exception], to_problem: Callable[[Any], Problem]) -> None:
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return problem_response(request, to_problem(exc))

        app.add_exception_handler(exc_class, handler)

    handle(Problem, lambda exc: exc)
    handle(RequestValidationError, _invalid_input)
    handle(
        AlreadyExists,
        lambda exc: Problem(
            409,
            "Already exists",
            exc.detail,
            kind="already-exists",
            rule=exc.rule,
            existing_id=str(exc.existing_id),
        ),
    )
    handle(RuleViolation, rule_problem)
    handle(
        IntegrityError,
        lambda exc: Problem(
            409,
            "Version conflict",
            "the resource was changed by another request at the same time; reload and retry",
            kind="version-conflict",
        ),
    )
    handle(
        VersionConflict,
        lambda exc: Problem(
            409,
            "Version conflict",
            f"If-Match names version {exc.expected}, the resource is at version {exc.current}:"
            " reload it and decide again",
            kind="version-conflict",
            current_version=exc.current,
            headers={"ETag": f'"{exc.current}"'},
        ),
    )
    handle(
        AggregateNotFoundError,
        lambda exc: Problem(404, "Not found", "no such resource", kind="not-found"),
    )
    handle(
        IdempotencyKeyReused,
        lambda exc: Problem(422, "Idempotency-Key reused", str(exc), kind="idempotency-key-reused"),
    )
    handle(
        AuthError,
        lambda exc: Problem(
            401,
            "Unauthenticated",
            str(exc),
            kind="unauthenticated",
            headers={"WWW-Authenticate": 'Bearer realm="partnerledger"'},
        ),
    )
    handle(
        StarletteHTTPException,
        lambda exc: Problem(
            exc.status_code,
            _TITLES.get(exc.status_code, "Error"),
            str(exc.detail) if exc.detail else None,
            headers=dict(exc.headers or {}),
        ),
    )
    handle(Exception, _crash)
    document_problems(app)


def rule_problem(exc: RuleViolation) -> Problem:
    """A policy refusal: 403 when the caller may not, else 409; naming the rule."""
    if exc.forbidden:
        return Problem(403, "Forbidden by policy", exc.detail, kind="forbidden", rule=exc.rule)
    return Problem(409, "Rule violated", exc.detail, kind="rule-violation", rule=exc.rule)


def _invalid_input(exc: RequestValidationError) -> Problem:
    errors = [
        FieldError(field=_field_path(tuple(e["loc"])), message=e["msg"], type=e["type"])
        for e in exc.errors()
    ]
    summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
    return Problem(
        422,
        "Invalid request",
        summary,
        kind="validation",
        errors=[e.model_dump() for e in errors],
    )


def _crash(exc: Exception) -> Problem:
    log.error("unhandled error", exc_info=exc)
    return Problem(500, "Internal error", "the error was logged with its trace id")


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


# -- OpenAPI: the problems every operation may answer ----------------------------------------

_PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetail"}
_DOCUMENTED = {
    400: "Unparsable request body",
    401: "Missing or invalid bearer token",
    403: "The caller's role may not do this, or the policy forbids it",
    404: "No such resource",
    409: "Illegal transition, rule violated or version conflict (naming the rule)",
    413: "Request body too large",
    422: "Invalid input: which field and why",
}
_METHODS = ("get", "put", "post", "delete", "patch")


def problem_statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """What an operation may answer as a problem (DESIGN.md section 6): every
    `/v1/` route authenticates (401), authorises (403) and validates (422); a
    route with an id in its path may find nothing (404); a command may be
    refused by a rule or lose a race (409); a body may be unparsable (400, the
    body-limit middleware and FastAPI) or too large (413)."""
    if not path.startswith("/v1/"):
        return set()
    statuses = {401, 403, 422}
    if "{" in path:
        statuses.add(404)
    if method != "get":
        statuses.add(409)
    if "requestBody" in operation:
        statuses |= {400, 413}
    return statuses


def _is_problem_content(content: dict[str, Any] | None) -> bool:
    """Content that FastAPI generated for a problem (its default validation
    error, or `PROBLEM_RESPONSES` whose model lands under application/json)."""
    if not content:
        return True
    refs = {
        str((media.get("schema") or {}).get("$ref", "")).rsplit("/", 1)[-1]
        for media in content.values()
    }
    return refs <= {"ProblemDetail", "HTTPValidationError", ""}


def _document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if "ProblemDetail" not in components:
        generated = ProblemDetail.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(generated.pop("$defs", {}))
        components["ProblemDetail"] = generated
    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            statuses = problem_statuses(path, method, operation)
            statuses |= {int(code) for code in responses if code.isdigit() and int(code) >= 400}
            for status in sorted(statuses):
                existing = responses.get(str(status), {})
                if not _is_problem_content(existing.get("content")):
                    continue  # a route that documents its own error body
                responses[str(status)] = {
                    "description": existing.get("description") or _DOCUMENTED.get(status, "Error"),
                    "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF}},
                }
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    return schema


def document_problems(app: FastAPI) -> None:
    """Documents on every operation the application/problem+json answers it
    can give (`problem_statuses`), with the ProblemDetail schema they have, so
    a client (and schemathesis) holds each answer against the OpenAPI."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document_problems(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
