"""The deadline engine (R3.5): every process node has a time limit, and missing
one is recorded, exactly once.

- Starting, meeting and cancelling a clock are effects of the service's own
  events, applied by a local projector (shared.projector) into the `deadlines`
  table: a contract signed starts the kickoff clock, the kickoff held meets it.
  The table is derived state and can be rebuilt from the events.
- `DeadlineEngine.fire_due()` runs on the injected clock. It locks the pending
  deadlines that have passed (`FOR UPDATE SKIP LOCKED`, so replicas never fire
  the same one) and asks the service to record the matching `...Overdue`
  event. The aggregate method that records it is idempotent (it refuses a
  second Overdue for the same deadline, and optimistic concurrency refuses a
  racing one), so a crash between the event and the row update fires nothing
  twice: the retry finds the event recorded and only closes the row.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

from shared.clock import Clock
from shared.db import DbConn
from shared.eventstore import LedgerApplication
from shared.resilience import run_forever, sleep_unless

log = logging.getLogger(__name__)

DEADLINE_NAMESPACE: Final = uuid.UUID("3b8f54f4-6a77-5c59-9d37-2f1f0a3d2c11")


def deadline_id(kind: str, aggregate_id: uuid.UUID, ref: str = "") -> uuid.UUID:
    return uuid.uuid5(DEADLINE_NAMESPACE, f"{kind}/{aggregate_id}/{ref}")


@dataclass(frozen=True)
class Deadline:
    id: uuid.UUID
    kind: str
    aggregate_id: uuid.UUID
    ref: str
    due_at: datetime
    started_by: uuid.UUID


#: Records the Overdue event for a deadline that passed and returns its id (also
#: when an earlier attempt had recorded it); None when the step was done after
#: all (the projector has not applied it yet) or the aggregate ended.
OverdueHandler = Callable[[LedgerApplication, Deadline], uuid.UUID | None]


# -- effects used by projector handlers (inside their transaction) -------------


async def start(
    conn: DbConn,
    kind: str,
    aggregate_id: uuid.UUID,
    due_at: datetime,
    *,
    started_by: uuid.UUID,
    started_at: datetime,
    ref: str = "",
) -> None:
    await conn.execute(
        "INSERT INTO deadlines (id, kind, aggregate_id, ref, due_at, started_by, started_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        deadline_id(kind, aggregate_id, ref),
        kind,
        aggregate_id,
        ref,
        due_at,
        started_by,
        started_at,
    )


async def meet(
    conn: DbConn, kind: str, aggregate_id: uuid.UUID, at: datetime, *, ref: str = ""
) -> None:
    """The step was done: a pending clock stops; an overdue one keeps its
    status and learns when the step was done after all."""
    await conn.execute(
        "UPDATE deadlines SET met_at = coalesce(met_at, $2),"
        " status = CASE WHEN status = 'pending' THEN 'met' ELSE status END,"
        " closed_at = coalesce(closed_at, $2) WHERE id = $1",
        deadline_id(kind, aggregate_id, ref),
        at,
    )


async def mark_overdue(
    conn: DbConn,
    kind: str,
    aggregate_id: uuid.UUID,
    event_id: uuid.UUID,
    at: datetime,
    *,
    ref: str = "",
) -> None:
    await conn.execute(
        "UPDATE deadlines SET status = 'overdue', overdue_event_id = $2,"
        " closed_at = coalesce(closed_at, $3) WHERE id = $1 AND status IN ('pending', 'overdue')",
        deadline_id(kind, aggregate_id, ref),
        event_id,
        at,
    )


async def missed(conn: DbConn, event: Any) -> None:
    """Projection handler of an `...Overdue` event that names its clock
    (`deadline_id`): the clock is closed as overdue by that event, whether
    the engine fired it or a late step recorded the breach itself."""
    await conn.execute(
        "UPDATE deadlines SET status = 'overdue', overdue_event_id = $2,"
        " closed_at = coalesce(closed_at, $3) WHERE id = $1",
        event.deadline_id,
        event.event_id,
        event.timestamp,
    )


async def cancel_all(
    conn: DbConn, aggregate_id: uuid.UUID, at: datetime, *, kind: str | None = None
) -> None:
    """The aggregate ended (a project closed), or one kind of clock no longer
    applies to it: its pending clocks (of that kind) stop."""
    await conn.execute(
        "UPDATE deadlines SET status = 'cancelled', closed_at = $2"
        " WHERE aggregate_id = $1 AND status = 'pending' AND ($3::text IS NULL OR kind = $3)",
        aggregate_id,
        at,
        kind,
    )


# -- firing ------------------------------------------------------------------------


class DeadlineEngine:
    def __init__(
        self,
        app: LedgerApplication,
        pool: asyncpg.Pool,
        clock: Clock,
        handlers: Mapping[str, OverdueHandler],
        *,
        interval_s: float = 1.0,
        batch: int = 50,
    ) -> None:
        self.app = app
        self.pool = pool
        self.clock = clock
        self.handlers = dict(handlers)
        self.interval_s = interval_s
        self.batch = batch
        self.fired = 0

    async def run(self, stop: asyncio.Event) -> None:
        async def loop() -> None:
            while not stop.is_set():
                while await self.fire_due():
                    pass
                await sleep_unless(stop, self.interval_s)

        await run_forever(f"deadlines {self.app.SERVICE}", loop, stop)

    async def fire_due(self) -> int:
        """Records the Overdue events of the deadlines passed by now; returns
        how many deadlines it closed."""
        now = self.clock.now()
        closed = 0
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, kind, aggregate_id, ref, due_at, started_by FROM deadlines"
                " WHERE status = 'pending' AND due_at <= $1 ORDER BY due_at LIMIT $2"
                " FOR UPDATE SKIP LOCKED",
                now,
                self.batch,
            )
            for row in rows:
                deadline = Deadline(
                    id=uuid.UUID(str(row["id"])),  # a plain UUID, not asyncpg's subclass
                    kind=row["kind"],
                    aggregate_id=uuid.UUID(str(row["aggregate_id"])),
                    ref=row["ref"],
                    due_at=row["due_at"],
                    started_by=uuid.UUID(str(row["started_by"])),
                )
                handler = self.handlers.get(deadline.kind)
                if handler is None:
                    log.error("no overdue handler for deadline kind %s", deadline.kind)
                    continue
                event_id = await asyncio.to_thread(handler, self.app, deadline)
                if event_id is None:
                    continue  # done after all: the projector will meet or cancel it
                await conn.execute(
                    "UPDATE deadlines SET status = 'overdue', overdue_event_id = $2,"
                    " closed_at = $3 WHERE id = $1",
                    deadline.id,
                    event_id,
                    now,
                )
                closed += 1
                log.info("deadline %s of %s passed", deadline.kind, deadline.aggregate_id)
        self.fired += closed
        return closed
