"""Feeds events to the kpi service the way its consumer does (the same
handlers, one transaction per event), for scenarios with hand-computed
figures. The consumer itself (Kafka, offsets, redelivery) is proven in
test_consumer.py and the e2e pipeline; here the arithmetic is under test."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from shared.consumer import Handler
from shared.envelope import ActorRef, EventEnvelope
from tests.support.apps import RunningService

SHANGHAI = timedelta(hours=8)


def local(day: date, hour: int = 10, minute: int = 0) -> datetime:
    """A moment given in Shanghai time, as UTC."""
    return datetime.combine(day, time(hour, minute), tzinfo=UTC) - SHANGHAI


@dataclass
class FactFeed:
    svc: RunningService
    versions: dict[uuid.UUID, int] = field(default_factory=dict)
    events: list[EventEnvelope] = field(default_factory=list)

    def handlers(self, source: str) -> dict[str, Handler]:
        """The service's consumer handlers for `source` (facts, partners)."""
        rt = self.svc.runtime
        found: dict[str, Handler] = {}
        for spec in rt.spec.consumers:
            for sub in spec.subscriptions(rt):
                if sub.source == source:
                    found.update(sub.handlers)
        return found

    async def emit(
        self,
        source: str,
        event_type: str,
        aggregate_id: uuid.UUID,
        payload: dict[str, Any],
        *,
        at: datetime,
        aggregate_type: str = "Project",
        actor: str = "alice",
    ) -> EventEnvelope:
        version = self.versions.get(aggregate_id, 0) + 1
        self.versions[aggregate_id] = version
        event = EventEnvelope(
            event_id=uuid.uuid4(),
            event_type=event_type,
            schema_version=1,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            aggregate_version=version,
            occurred_at=at,
            recorded_at=at,
            actor=ActorRef(user_id=actor, role="director"),
            correlation_id=uuid.uuid4(),
            payload=payload,
        )
        rt = self.svc.runtime
        handler = self.handlers(source)[event_type]
        async with rt.pool.acquire() as conn, conn.transaction():
            await handler(conn, event)
        self.events.append(event)
        return event
