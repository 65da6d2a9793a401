"""The facts consumer: every topic's events that a KPI reads become facts
(services/kpi/facts.py), stored with the event in the consumer's transaction."""

from __future__ import annotations

from services.kpi.fact_store import store
from services.kpi.facts import MAPPERS, facts_of
from shared.consumer import Handler
from shared.db import DbConn
from shared.envelope import EventEnvelope
from shared.policy import Policy


def _handler(source: str, policy: Policy) -> Handler:
    async def handle(conn: DbConn, event: EventEnvelope) -> None:
        await store(conn, source, event, facts_of(source, event, policy), policy)

    return handle


def fact_handlers(source: str, policy: Policy) -> dict[str, Handler]:
    """Event type -> handler, for the events of `source` that make facts."""
    return {t: _handler(source, policy) for (s, t) in MAPPERS if s == source}
