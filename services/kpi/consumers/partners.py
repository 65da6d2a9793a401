"""Projection of partners by status (R2.1, R1.2): one row per partner, and a
count per status.

The counts are plain increments: they rely on the consumer applying each event
exactly once (event id in the same transaction), which the tests hold it to.
"""

from __future__ import annotations

from services.kpi.consumers.contracts import PartnerRegisteredV1
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
        " updated_at = EXCLUDED.updated_at",
        event.recorded_at,
    )


PARTNER_EVENTS = Subscription(
    source="partner",
    handlers={"PartnerRegistered": partner_registered},
)
