"""HTTP routes of /v1/documents (R4.4 names, R4.5 versions and reads, R4.1
the encrypted contract archive, R6.1 reviews)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import urllib.parse
from collections.abc import Callable
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.formparsers import MultiPartParser

from services.docs.api import schemas as s
from services.docs.api.access import (
    INTERNAL,
    STAFF,
    ensure_may_file,
    ensure_may_see,
    forbidden,
    is_vendor_of,
    manages,
    may_see,
    not_found,
    project_info,
)
from services.docs.application import DocsApplication, Filing, ProjectInfo, Upload
from services.docs.archive import ArchiveError, read_content
from services.docs.domain.document import CONTRACT, Document
from services.docs.domain.naming import (
    DocType,
    NameProblem,
    canonical_type,
    check_name,
    split_filename,
)
from services.docs.domain.periods import Period
from shared.auth import DIRECTOR, PARTNER, Principal
from shared.domain import CommandContext
from shared.envelope import EventEnvelope
from shared.http import (
    IDEMPOTENCY_HEADER,
    Authenticated,
    application,
    command,
    command_context,
    encode_cursor,
    idempotency_key,
    require_roles,
    runtime_of,
    time_id_cursor,
)
from shared.idempotency import IdempotencyKey
from shared.problems import PROBLEM_RESPONSES, Problem
from shared.text import Moment, Reason

log = logging.getLogger(__name__)

# Starlette spools an upload over 1 MiB to a temporary file, in plain: a
# contract would sit on disk unencrypted (R4.1). The body limit bounds every
# upload (shared.runtime.BodyLimitMiddleware), so keep them in memory.
MultiPartParser.spool_max_size = 1024 * 1024 * 1024

router = APIRouter(prefix="/v1/documents", tags=["documents"], responses=PROBLEM_RESPONSES)

Idempotency = Annotated[IdempotencyKey | None, Depends(idempotency_key)]


async def upload_idempotency_key(
    request: Request, principal: Authenticated
) -> IdempotencyKey | None:
    """The Idempotency-Key of a multipart upload. FastAPI has consumed the body
    into the form by now (shared.http.idempotency_key would fail reading it),
    and a client re-encoding a retry picks a new multipart boundary, so the
    request is fingerprinted by its form: every field, and each file's name,
    media type and SHA-256."""
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
    parts: list[list[str]] = []
    for key, value in (await request.form()).multi_items():
        if isinstance(value, str):
            parts.append([key, "field", value])
            continue
        digest = hashlib.sha256()
        while chunk := await value.read(1024 * 1024):
            digest.update(chunk)
        await value.seek(0)
        parts.append(
            [key, "file", value.filename or "", value.content_type or "", digest.hexdigest()]
        )
    fingerprint = hashlib.sha256()
    fingerprint.update(f"{request.method} {request.url.path}?{request.url.query}\n".encode())
    fingerprint.update(json.dumps(sorted(parts), ensure_ascii=False).encode())
    return IdempotencyKey(
        principal=principal.user_id, key=raw, request_hash=fingerprint.hexdigest()
    )


UploadIdempotency = Annotated[IdempotencyKey | None, Depends(upload_idempotency_key)]
Filer = Annotated[Principal, Depends(require_roles(*STAFF, action="file documents (R4.4)"))]
Reader = Annotated[
    Principal, Depends(require_roles(*INTERNAL, PARTNER, action="read documents (R4.5)"))
]
#: Who read what is the department's own record: not shown to vendors.
Insider = Annotated[
    Principal, Depends(require_roles(*INTERNAL, action="read a document's history (R4.5)"))
]
Reviewer = Annotated[
    Principal,
    Depends(require_roles(DIRECTOR, "project_manager", action="review documents (R6.1)")),
]

MEDIA_TYPE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}$"
)


App = Annotated[DocsApplication, Depends(application)]


def _name_problem(exc: NameProblem, field: str | None = None) -> Problem:
    """A 422 naming the input at fault: the name's part (`name.project`,
    `name.date`, ...), or the form field whose value does not fit (`type`,
    `period`)."""
    where = field or ("period" if exc.part == "period" else f"name.{exc.part}")
    return Problem(
        422,
        "Invalid document name" if where.startswith("name") else "Invalid request",
        f"{exc} (R4.4: 项目名称-日期-类型)",
        kind="validation",
        rule="R4.4",
        errors=[
            {
                "field": where,
                "message": f"{exc.detail}; expected {exc.expected}",
                "type": f"document_name.{exc.part}",
            }
        ],
    )


def _invalid(field: str, message: str, rule: str = "R4.4") -> Problem:
    return Problem(
        422,
        "Invalid request",
        f"{field}: {message}",
        kind="validation",
        rule=rule,
        errors=[{"field": field, "message": message, "type": "value_error"}],
    )


async def _project(request: Request, project_id: UUID | None) -> ProjectInfo | None:
    if project_id is None:
        return None
    project = await project_info(request, project_id)
    if project is None:
        raise Problem(
            404,
            "Not found",
            f"project {project_id} is not known here (yet): the partner service creates it",
            kind="not-found",
        )
    return project


async def _document(
    request: Request, principal: Principal, app: DocsApplication, doc_id: UUID
) -> tuple[Document, ProjectInfo | None]:
    document = await run_in_threadpool(app.get_document, doc_id)
    project = await project_info(request, document.project_id) if document.project_id else None
    return document, project


async def _command(
    request: Request,
    principal: Principal,
    idempotency: IdempotencyKey | None,
    name: str,
    execute: Callable[[CommandContext], Document],
    render: Callable[[Document], BaseModel],
    *,
    status: int = 200,
) -> JSONResponse:
    return await command(
        request,
        principal,
        idempotency,
        name,
        execute,
        render,
        status=status,
        location=lambda d: f"/v1/documents/{d.id}",
    )


@router.post(
    "",
    status_code=201,
    response_model=s.DocumentView,
    summary="File a document (multipart); a name in use gets a new version (R4.4, R4.5)",
)
async def file_document(
    request: Request,
    principal: Filer,
    idempotency: UploadIdempotency,
    app: App,
    file: Annotated[UploadFile, File(description="The document's content")],
    doc_type: Annotated[
        str,
        Form(
            alias="type",
            max_length=40,
            description="周报 月报 季报 合同 会议纪要 启动会纪要 中期评审报告 验收报告, or the"
            " English aliases weekly_report, monthly_report, quarterly_report, contract,"
            " minutes, kickoff_minutes, midterm_review_report, acceptance_report",
        ),
    ],
    period: Annotated[
        str,
        Form(
            max_length=20,
            description="The period covered: 2026-W48 (周报), 2026-11 (月报), 2026-Q4 (季报),"
            " or the day (2026-11-27) of a contract, minutes or review report",
        ),
    ],
    project_id: Annotated[
        UUID | None, Form(description="Omit for department documents (R5.4 minutes)")
    ] = None,
    name: Annotated[
        str | None,
        Form(max_length=300, description="项目名称-日期-类型; default: the file name's stem"),
    ] = None,
    meeting_id: Annotated[
        UUID | None, Form(description="Files these as the meeting's minutes (R4.2)")
    ] = None,
    note: Annotated[
        Reason | None,
        Form(description="What changed, for a new version (not for contracts: published)"),
    ] = None,
) -> JSONResponse:
    policy = app.policy.documents
    try:
        kind: DocType = canonical_type(doc_type)
    except NameProblem as exc:
        raise _name_problem(exc, "type") from None
    try:
        covered = Period.parse(period)
    except ValueError as exc:
        raise _invalid("period", str(exc)) from None
    project = await _project(request, project_id)
    await ensure_may_file(request, principal, project, kind)
    file_name = _safe_file_name(file.filename or "")  # a browser may send C:\\...\\name.pdf
    try:
        stem = name if name is not None else split_filename(file_name)[0]
        if not stem:
            raise NameProblem("name", "no name given and the file has none", "项目名称-日期-类型")
        project_name = project.name if project else policy.department_name
        check_name(
            stem,
            project_name=project_name,
            doc_type=kind,
            period=covered,
            max_length=policy.max_name_length,
        )
    except NameProblem as exc:
        raise _name_problem(exc) from None
    media_type = file.content_type or "application/octet-stream"
    if not MEDIA_TYPE.match(media_type.split(";")[0].strip()):
        raise _invalid("file", f"unusable media type {media_type[:80]!r}")
    content = await file.read(policy.max_upload_bytes + 1)
    if len(content) > policy.max_upload_bytes:
        raise Problem(
            413,
            "Payload too large",
            f"a document may be at most {policy.max_upload_mb:g} MiB"
            " (policy documents.max_upload_mb)",
            kind="too-large",
            rule="R4.5",
        )
    if not content:
        raise _invalid("file", "the file is empty", "R4.5")
    if kind == CONTRACT:
        # A contract's name and dates are its published metadata; its file
        # name and a note could carry its terms onto Kafka (R4.1).
        if note:
            raise _invalid(
                "note", "a contract takes no note: it would be published unencrypted", "R4.1"
            )
        extension = split_filename(file_name)[1]
        file_name = f"{stem}.{extension}" if extension else stem
    upload = Upload(
        content=content,
        media_type=media_type.split(";")[0].strip().lower(),
        file_name=file_name,
        note=note or "",
    )
    filed: list[Filing] = []

    def execute(ctx: CommandContext) -> Document:
        filing = app.file_document(
            ctx,
            project=project,
            doc_type=kind,
            period=covered,
            name=stem,
            upload=upload,
            meeting_id=meeting_id,
        )
        filed.append(filing)
        return filing.document

    try:
        return await _command(
            request,
            principal,
            idempotency,
            "file_document",
            execute,
            lambda d: s.DocumentView.of(d, filed[0] if filed else None),
            status=201,
        )
    except NameProblem as exc:
        raise _name_problem(exc) from None


def _safe_file_name(name: str) -> str:
    """Only the last path segment, printable, bounded, not a directory (`..`):
    a file name is shown back in Content-Disposition and must never act as a
    path."""
    last = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in last if ch.isprintable())[:200]
    # "." and ".." name directories, not files: no file name at all then.
    return "" if not cleaned.strip(". ") else cleaned


@router.get("", response_model=s.DocumentPage, summary="Documents the caller may see, oldest first")
async def list_documents(
    request: Request,
    principal: Reader,
    project_id: UUID | None = None,
    department: Annotated[bool | None, Query(description="true: only department documents")] = None,
    doc_type: Annotated[str | None, Query(alias="type", max_length=40)] = None,
    period: Annotated[str | None, Query(max_length=20)] = None,
    review: Annotated[str | None, Query(pattern="^(accepted|needs_correction|none)$")] = None,
    filed_from: Moment | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> s.DocumentPage:
    if project_id is not None and principal.role == PARTNER:
        listed = await project_info(request, project_id)
        if listed is None or not is_vendor_of(principal, listed):
            raise await not_found(request, principal, "a partner reads only its own projects")
    canonical = None
    if doc_type is not None:
        try:
            canonical = canonical_type(doc_type)
        except NameProblem as exc:
            raise _name_problem(exc, "type") from None
    if period is not None:
        try:
            period = Period.parse(period).key  # 2026-w48 finds 2026-W48
        except ValueError as exc:
            raise _invalid("period", str(exc)) from None
    after_at, after_id = time_id_cursor(cursor)
    rt = runtime_of(request)
    items: list[s.DocumentRow] = []
    projects: dict[UUID | None, ProjectInfo | None] = {}
    last_at, last_id = after_at, after_id
    # Visibility depends on the project and the type: filter page by page,
    # so a caller never learns of a document it may not see.
    while len(items) <= limit:
        rows = await rt.pool.fetch(
            "SELECT document_id AS id, project_id, name, doc_type, period, encrypted,"
            " contract_number, versions, latest_sha256, latest_size, filed_by, last_filed_by,"
            " filed_at, updated_at, review, reads, denials FROM document_view"
            " WHERE ($1::uuid IS NULL OR project_id = $1)"
            " AND ($2::boolean IS NULL OR (project_id IS NULL) = $2)"
            " AND ($3::text IS NULL OR doc_type = $3) AND ($4::text IS NULL OR period = $4)"
            " AND ($5::text IS NULL OR coalesce(review, 'none') = $5)"
            " AND ($6::timestamptz IS NULL OR filed_at >= $6)"
            " AND ($7::timestamptz IS NULL OR (filed_at, document_id) > ($7, $8::uuid))"
            " ORDER BY filed_at, document_id LIMIT $9",
            project_id,
            department,
            canonical,
            period,
            review,
            filed_from,
            last_at,
            last_id,
            limit + 1,
        )
        for row in rows:
            pid = row["project_id"]
            if pid not in projects:
                projects[pid] = await project_info(request, pid) if pid else None
            last_at, last_id = row["filed_at"], row["id"]
            if may_see(principal, projects[pid], row["doc_type"]):
                items.append(s.DocumentRow(**dict(row)))
                if len(items) > limit:
                    break
        if len(rows) <= limit:
            break
    page = items[:limit]
    token = (
        encode_cursor(page[-1].filed_at.isoformat(), page[-1].id)
        if len(items) > limit and page
        else None
    )
    return s.DocumentPage(items=page, next_cursor=token)


@router.get("/{document_id}", response_model=s.DocumentView, summary="One document, every version")
async def get_document(
    document_id: UUID, request: Request, principal: Reader, app: App
) -> s.DocumentView:
    document, project = await _document(request, principal, app, document_id)
    await ensure_may_see(request, principal, project, document.doc_type)
    return s.DocumentView.of(document)


@router.get(
    "/{document_id}/content",
    summary="The latest version's content; the read is recorded (R4.5; contracts: R4.1)",
    response_class=Response,
)
async def latest_content(
    document_id: UUID, request: Request, principal: Reader, app: App
) -> Response:
    return await _content(request, principal, app, document_id, None)


@router.get(
    "/{document_id}/versions/{version}/content",
    summary="One version's content; the read is recorded (R4.5; contracts: R4.1)",
    response_class=Response,
)
async def version_content(
    document_id: UUID,
    version: Annotated[int, Path(ge=1, le=1_000_000)],
    request: Request,
    principal: Reader,
    app: App,
) -> Response:
    return await _content(request, principal, app, document_id, version)


async def _content(
    request: Request,
    principal: Principal,
    app: DocsApplication,
    document_id: UUID,
    version: int | None,
) -> Response:
    document, project = await _document(request, principal, app, document_id)
    if document.doc_type != CONTRACT:
        await ensure_may_see(request, principal, project, document.doc_type)
    elif principal.role == PARTNER and not (
        project is not None and principal.partner_id == str(project.partner_id)
    ):
        raise await not_found(request, principal, "a partner reads only its own projects")
    may_read_contract = principal.role == DIRECTOR
    if (
        version is not None
        and version > len(document.versions)
        and (not document.is_contract or may_read_contract)
    ):
        raise Problem(
            404, "Not found", f"the document has versions 1 to {len(document.versions)}",
            kind="not-found",
        )  # fmt: skip
    ctx = command_context(request, principal)
    # Contract content: anyone but the Director is refused (403) after the
    # attempt is stored as ContractAccessDenied (R4.1).
    read, number, content_id = await run_in_threadpool(
        lambda: app.record_read(
            ctx, document_id, version=version, may_read_contract=may_read_contract
        )
    )
    record = read.version_record(number)
    rt = runtime_of(request)
    try:
        data = await read_content(
            rt.pool, app.schema, content_id, app.keyring if read.encrypted else None
        )
    except ArchiveError:
        # The details (content and key ids) go to the log, not to the caller.
        log.exception("content %s of document %s failed verification", content_id, document_id)
        raise Problem(
            500, "Content unreadable", "the stored content failed verification; it was logged"
        ) from None
    headers = {
        "ETag": f'"{record["sha256"]}"',
        "X-Content-SHA256": record["sha256"],
        "X-Document-Version": str(number),
        "Content-Disposition": _disposition(record["file_name"] or document.name),
        "X-Content-Type-Options": "nosniff",
    }
    if document.encrypted:
        headers["Cache-Control"] = "no-store"
    return Response(data, media_type=record["media_type"], headers=headers)


def _disposition(file_name: str) -> str:
    ascii_name = "".join(
        ch if (ch.isascii() and ch.isalnum()) or ch in "._-" else "_" for ch in file_name
    )
    quoted = urllib.parse.quote(file_name, safe="")
    return f"attachment; filename=\"{ascii_name or 'document'}\"; filename*=UTF-8''{quoted}"


@router.post(
    "/{document_id}/reviews",
    response_model=s.DocumentView,
    summary="Accept a version or send it back for correction (R6.1 document accuracy)",
)
async def review_document(
    document_id: UUID,
    body: s.Review,
    request: Request,
    principal: Reviewer,
    idempotency: Idempotency,
    app: App,
) -> JSONResponse:
    document, project = await _document(request, principal, app, document_id)
    if document.is_contract and principal.role != DIRECTOR:
        # Nobody vouches for content they may not read (R4.1).
        raise await forbidden(request, principal, "only the Director reviews a contract", "R4.1")
    if not manages(principal, project):
        raise await forbidden(
            request, principal, "the Director or the project's manager reviews (R6.1)", "R6.1"
        )
    return await _command(
        request,
        principal,
        idempotency,
        "review_document",
        lambda c: app.review_document(
            c,
            document_id,
            version=body.version,
            outcome=body.outcome,
            reasons=[r for r in body.reasons if r.strip()],
        ),
        s.DocumentView.of,
    )


@router.get(
    "/{document_id}/reads",
    response_model=list[s.ReadRow],
    summary="Every read and refused read of the document (R4.5)",
)
async def document_reads(
    document_id: UUID,
    request: Request,
    principal: Insider,
    app: App,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    since: Moment | None = None,
) -> list[s.ReadRow]:
    document, project = await _document(request, principal, app, document_id)
    await ensure_may_see(request, principal, project, document.doc_type)
    rows = await runtime_of(request).pool.fetch(
        "SELECT event_id, version, user_id, role, outcome, at FROM document_reads"
        " WHERE document_id = $1 AND ($2::timestamptz IS NULL OR at > $2)"
        " ORDER BY at, event_id LIMIT $3",
        document_id,
        since,
        limit,
    )
    return [s.ReadRow(**dict(r)) for r in rows]


@router.get(
    "/{document_id}/events",
    response_model=list[EventEnvelope],
    summary="The document's history as published: filings, versions, reviews, reads (R4.5)",
)
async def document_history(
    document_id: UUID, request: Request, principal: Insider, app: App
) -> list[EventEnvelope]:
    document, project = await _document(request, principal, app, document_id)
    await ensure_may_see(request, principal, project, document.doc_type)
    return await run_in_threadpool(app.history, document_id)
