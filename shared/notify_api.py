"""HTTP routes of the notifications (shared.notify), the same on every service
under /v1/notifications: the Director subscribes other enterprise systems to
the service's events by webhook; the Director and auditors read the
subscriptions and the delivery log.

Subscriptions are configuration of the integration, not facts of the policy,
so they live in a table rather than the event store; who created or
deactivated one, and when, is kept on the row.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import asyncpg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from shared.auth import AUDITOR, DIRECTOR, Principal
from shared.db import DbConn
from shared.http import (
    REPLAYED_HEADER,
    encode_cursor,
    idempotency_key,
    record_denial,
    require_roles,
    runtime_of,
    time_id_cursor,
)
from shared.idempotency import IdempotencyKey, IdempotencyKeyReused
from shared.notify import InvalidWebhookUrl, check_public_target, check_webhook_url, new_secret
from shared.problems import PROBLEM_RESPONSES, Problem
from shared.text import PlainText

router = APIRouter(prefix="/v1/notifications", tags=["notifications"], responses=PROBLEM_RESPONSES)

CanManage = Annotated[
    Principal, Depends(require_roles(DIRECTOR, action="manage webhook subscriptions"))
]
CanRead = Annotated[
    Principal,
    Depends(require_roles(DIRECTOR, AUDITOR, action="read webhook subscriptions and deliveries")),
]
Idempotency = Annotated[IdempotencyKey | None, Depends(idempotency_key)]

ALL_EVENTS: Final = "*"
_EVENT_TYPE = re.compile(r"[A-Z][A-Za-z0-9]{0,99}|\*")


def _url(value: str) -> str:
    try:
        return check_webhook_url(value, production=False)
    except InvalidWebhookUrl as exc:
        raise PydanticCustomError("webhook_url", "{reason}", {"reason": str(exc)}) from None


def _event_type(value: str) -> str:
    if not _EVENT_TYPE.fullmatch(value):
        raise PydanticCustomError(
            "event_type", "an event type such as ContractSigned, or * for every event"
        )
    return value


EventType = Annotated[str, Field(max_length=100), AfterValidator(_event_type)]


class CreateWebhook(BaseModel):
    """Subscribe an enterprise system to this service's events."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://procurement.corp.example/hooks/partnerledger",
                    "event_types": ["ContractSigned", "KickoffOverdue"],
                    "description": "采购系统",
                }
            ]
        },
    )

    url: Annotated[
        str,
        Field(max_length=2000, description="https:// (http:// outside production)"),
        AfterValidator(_url),
    ]
    event_types: Annotated[
        list[EventType],
        Field(
            min_length=1,
            max_length=200,
            description="Event types of this service (docs/events/), or * for all of them",
        ),
    ]
    description: Annotated[PlainText, Field(max_length=500)] | None = None


class WebhookView(BaseModel):
    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str | None
    active: bool
    created_by: str
    created_at: datetime
    deactivated_by: str | None
    deactivated_at: datetime | None


class CreatedWebhook(WebhookView):
    secret: str = Field(
        description="Signs every delivery (X-PartnerLedger-Signature). Shown only in this"
        " response: keep it in the receiving system."
    )


class WebhookPage(BaseModel):
    items: list[WebhookView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: done")


class DeliveryView(BaseModel):
    """One notification to one recipient, with what became of it."""

    id: uuid.UUID = Field(description="Also sent as X-PartnerLedger-Delivery")
    channel: Literal["email", "webhook"]
    event_id: uuid.UUID
    event_type: str
    aggregate_id: uuid.UUID
    recipient: str = Field(description="An email address, or the webhook subscription id")
    subscription_id: uuid.UUID | None
    subject: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None = Field(description="Null once delivered or failed")
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: done")


_WEBHOOK_COLUMNS: Final = (
    "id, url, event_types, description, active, created_by, created_at,"
    " deactivated_by, deactivated_at"
)


def _invalid(field: str, message: str, kind: str) -> Problem:
    return Problem(
        422,
        "Invalid request",
        f"{field}: {message}",
        kind="validation",
        errors=[{"field": field, "message": message, "type": kind}],
    )


def _plain(record: asyncpg.Record) -> dict[str, Any]:
    """asyncpg hands out its own UUID subclass; pydantic wants plain ones."""
    return {k: uuid.UUID(str(v)) if isinstance(v, uuid.UUID) else v for k, v in record.items()}


async def _subscription(
    conn: DbConn | asyncpg.Pool, subscription_id: uuid.UUID
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_WEBHOOK_COLUMNS}, secret FROM webhook_subscriptions WHERE id = $1",
        subscription_id,
    )
    return row


def _created(row: asyncpg.Record, *, replayed: bool) -> JSONResponse:
    body = CreatedWebhook(**_plain(row)).model_dump(mode="json")
    headers = {"Location": f"/v1/notifications/webhooks/{row['id']}"}
    if replayed:
        headers[REPLAYED_HEADER] = "true"
    return JSONResponse(body, status_code=201, headers=headers)


class _Raced(Exception):
    """Another request with the same Idempotency-Key committed first."""


@router.post(
    "/webhooks",
    status_code=201,
    response_model=CreatedWebhook,
    summary="Subscribe a system to this service's events by webhook (director)",
)
async def create_webhook(
    body: CreateWebhook, request: Request, principal: CanManage, idempotency: Idempotency
) -> JSONResponse:
    rt = runtime_of(request)
    if rt.settings.environment == "production" and not body.url.startswith("https://"):
        raise _invalid("body.url", "production sends webhooks over https only", "webhook_url")
    if not rt.settings.webhooks_may_reach_private:
        try:
            await asyncio.to_thread(check_public_target, body.url)
        except InvalidWebhookUrl as exc:
            raise _invalid("body.url", str(exc), "webhook_url") from None
    known = set(rt.application.catalogue.by_type)
    for n, event_type in enumerate(body.event_types):
        if event_type != ALL_EVENTS and event_type not in known:
            raise _invalid(
                f"body.event_types.{n}",
                f"{rt.spec.name} publishes no {event_type} (see docs/events/{rt.spec.name}/)",
                "unknown_event_type",
            )
    event_types = sorted(set(body.event_types))
    try:
        async with rt.pool.acquire() as conn, conn.transaction():
            if idempotency is not None:
                done = await _find_idempotent(conn, idempotency)
                if done is not None:
                    return _created(done, replayed=True)
            subscription_id = uuid.uuid4()
            await conn.execute(
                "INSERT INTO webhook_subscriptions (id, url, event_types, secret, description,"
                " created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                subscription_id,
                body.url,
                event_types,
                new_secret(),
                body.description,
                principal.user_id,
                rt.clock.now(),  # the enqueuer compares it with event times: the same clock
            )
            if idempotency is not None:
                stored = await conn.fetchval(
                    "INSERT INTO idempotency_keys (principal, key, request_hash, status_code,"
                    " aggregate_id, aggregate_version) VALUES ($1, $2, $3, 201, $4, 1)"
                    " ON CONFLICT DO NOTHING RETURNING 1",
                    idempotency.principal,
                    idempotency.key,
                    idempotency.request_hash,
                    subscription_id,
                )
                if stored is None:
                    raise _Raced  # rolls our subscription back
            row = await _subscription(conn, subscription_id)
    except _Raced:
        assert idempotency is not None
        async with rt.pool.acquire() as conn:
            done = await _find_idempotent(conn, idempotency)
        if done is None:  # the winner's key expired in between: practically never
            raise Problem(409, "Conflict", "a concurrent request used this key; retry") from None
        return _created(done, replayed=True)
    assert row is not None
    return _created(row, replayed=False)


async def _find_idempotent(conn: DbConn, key: IdempotencyKey) -> asyncpg.Record | None:
    found = await conn.fetchrow(
        "SELECT request_hash, aggregate_id FROM idempotency_keys WHERE principal = $1 AND key = $2",
        key.principal,
        key.key,
    )
    if found is None:
        return None
    if found["request_hash"] != key.request_hash:
        raise IdempotencyKeyReused("this Idempotency-Key was used before with a different request")
    return await _subscription(conn, found["aggregate_id"])


@router.get("/webhooks", response_model=WebhookPage, summary="Webhook subscriptions, oldest first")
async def list_webhooks(
    request: Request,
    principal: CanRead,
    active: Annotated[bool | None, Query(description="Only active (true) or ended (false)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> WebhookPage:
    after_at, after_id = time_id_cursor(cursor)
    rows = await runtime_of(request).pool.fetch(
        f"SELECT {_WEBHOOK_COLUMNS} FROM webhook_subscriptions"
        " WHERE ($1::boolean IS NULL OR active = $1)"
        " AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))"
        " ORDER BY created_at, id LIMIT $4",
        active,
        after_at,
        after_id,
        limit + 1,
    )
    items = [WebhookView(**_plain(r)) for r in rows[:limit]]
    last = items[-1] if items else None
    more = len(rows) > limit
    token = encode_cursor(last.created_at.isoformat(), last.id) if more and last else None
    return WebhookPage(items=items, next_cursor=token)


async def _existing(request: Request, principal: Principal, subscription_id: uuid.UUID) -> Any:
    row = await _subscription(runtime_of(request).pool, subscription_id)
    if row is None:
        await record_denial(request, principal, 404, "no such webhook subscription")
        raise Problem(404, "Not found", "no such webhook subscription", kind="not-found")
    return row


@router.get(
    "/webhooks/{subscription_id}", response_model=WebhookView, summary="One webhook subscription"
)
async def get_webhook(
    subscription_id: uuid.UUID, request: Request, principal: CanRead
) -> WebhookView:
    return WebhookView(**_plain(await _existing(request, principal, subscription_id)))


@router.delete(
    "/webhooks/{subscription_id}",
    response_model=WebhookView,
    summary="End a webhook subscription (director); its pending deliveries are not sent",
)
async def delete_webhook(
    subscription_id: uuid.UUID, request: Request, principal: CanManage
) -> WebhookView:
    rt = runtime_of(request)
    await _existing(request, principal, subscription_id)
    now = rt.clock.now()
    async with rt.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE webhook_subscriptions SET active = false, deactivated_by = $2,"
            " deactivated_at = $3 WHERE id = $1 AND active",
            subscription_id,
            principal.user_id,
            now,
        )
        # The receiver may be gone or compromised: nothing more goes out to it.
        await conn.execute(
            "UPDATE notification_outbox SET status = 'failed', next_attempt_at = NULL,"
            " last_error = 'subscription deactivated', updated_at = $2"
            " WHERE subscription_id = $1 AND status = 'pending'",
            subscription_id,
            now,
        )
        row = await _subscription(conn, subscription_id)
    assert row is not None
    return WebhookView(**_plain(row))


@router.get(
    "/deliveries",
    response_model=DeliveryPage,
    summary="The delivery log: every notification and its attempts, newest first",
)
async def list_deliveries(
    request: Request,
    principal: CanRead,
    status: Literal["pending", "delivered", "failed"] | None = None,
    channel: Literal["email", "webhook"] | None = None,
    event_type: Annotated[str | None, Query(max_length=100)] = None,
    aggregate_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> DeliveryPage:
    before_at, before_id = time_id_cursor(cursor)
    rows = await runtime_of(request).pool.fetch(
        "SELECT id, channel, event_id, event_type, aggregate_id, recipient, subscription_id,"
        " subject, status, attempts, next_attempt_at, last_error, created_at, delivered_at"
        " FROM notification_outbox"
        " WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR channel = $2)"
        " AND ($3::text IS NULL OR event_type = $3) AND ($4::uuid IS NULL OR aggregate_id = $4)"
        " AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6::uuid))"
        " ORDER BY created_at DESC, id DESC LIMIT $7",
        status,
        channel,
        event_type,
        aggregate_id,
        before_at,
        before_id,
        limit + 1,
    )
    items = [DeliveryView(**_plain(r)) for r in rows[:limit]]
    last = items[-1] if items else None
    more = len(rows) > limit
    token = encode_cursor(last.created_at.isoformat(), last.id) if more and last else None
    return DeliveryPage(items=items, next_cursor=token)
