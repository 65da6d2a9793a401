"""Projection of partners by status (R2.1, R1.2): one row per partner, and a
count per status, following every status change.

The counts are plain increments: they rely on the consumer applying each event
exactly once (event id in the same transaction), which the tests hold it to.
"""

from __future__ import annotations

from services.kpi.consumers.contracts import (
    PartnerActivatedV1,
    PartnerQualifiedV1,
    PartnerRegisteredV1,
    PartnerStatusChangedV1,
)
from shared.consumer import PoisonEvent, Subscription
from shared.db import DbConn
from shared.envelope import EventEnvelope


async def partner_registered(conn: DbConn, event: EventEnvelope) -> None:
    if event.schema_version != 1:
        raise PoisonEvent(f"PartnerRegistered v{event.schema_version} is not understood")
    payload = PartnerRegisteredV1.model_validate(event.payload)
    await conn.execute(
        "INSERT INTO partners (partner_id, name, unified_social_credit_code, status,"
        " registered_at, status_since, last_event_id, last_version)"
        " VALUES ($1, $2, $3, 'candidate', $4, $4, $5, $6)"
        " ON CONFLICT (partner_id) DO NOTHING",
        event.aggregate_id,
        payload.name,
        payload.unified_social_credit_code,
        event.occurred_at,
        event.event_id,
        event.aggregate_version,
    )
    await conn.execute(
        "INSERT INTO partner_counts (status, partners, updated_at) VALUES ('candidate', 1, $1)"
        " ON CONFLICT (status) DO UPDATE SET partners = partner_counts.partners + 1,"
        " updated_at = greatest(partner_counts.updated_at, EXCLUDED.updated_at)",
        event.recorded_at,
    )


async def _move(conn: DbConn, event: EventEnvelope, status: str) -> None:
    """A partner changed status: its row follows, one count moves to another."""
    old = await conn.fetchval(
        "SELECT status FROM partners WHERE partner_id = $1 FOR UPDATE", event.aggregate_id
    )
    if old is None:
        raise PoisonEvent(f"{event.event_type} for a partner never registered here")
    await conn.execute(
        "UPDATE partners SET status = $2, status_since = $3, last_event_id = $4,"
        " last_version = $5 WHERE partner_id = $1",
        event.aggregate_id,
        status,
        event.occurred_at,
        event.event_id,
        event.aggregate_version,
    )
    if old == status:
        return
    await conn.execute(
        "UPDATE partner_counts SET partners = partners - 1,"
        " updated_at = greatest(updated_at, $2) WHERE status = $1",
        old,
        event.recorded_at,
    )
    await conn.execute(
        "INSERT INTO partner_counts (status, partners, updated_at) VALUES ($1, 1, $2)"
        " ON CONFLICT (status) DO UPDATE SET partners = partner_counts.partners + 1,"
        " updated_at = greatest(partner_counts.updated_at, EXCLUDED.updated_at)",
        status,
        event.recorded_at,
    )


def _v1(event: EventEnvelope) -> None:
    if event.schema_version != 1:
        raise PoisonEvent(f"{event.event_type} v{event.schema_version} is not understood")


async def partner_qualified(conn: DbConn, event: EventEnvelope) -> None:
    _v1(event)
    await _move(conn, event, PartnerQualifiedV1.model_validate(event.payload).status)


async def partner_rejected(conn: DbConn, event: EventEnvelope) -> None:
    _v1(event)
    await _move(conn, event, "rejected")


async def partner_activated(conn: DbConn, event: EventEnvelope) -> None:
    _v1(event)
    await _move(conn, event, PartnerActivatedV1.model_validate(event.payload).status)


async def partner_status_changed(conn: DbConn, event: EventEnvelope) -> None:
    _v1(event)
    await _move(conn, event, PartnerStatusChangedV1.model_validate(event.payload).to_status)


PARTNER_EVENTS = Subscription(
    source="partner",
    handlers={
        "PartnerRegistered": partner_registered,
        "PartnerQualified": partner_qualified,
        "PartnerRejected": partner_rejected,
        "PartnerActivated": partner_activated,
        "PartnerStatusChanged": partner_status_changed,
    },
)
