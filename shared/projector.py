"""Local projections: a service's own read models, folded from its own event
store (no Kafka in between).

A projector follows the application's notification log like the relay does,
applies each batch of events and stores its position in the same PostgreSQL
transaction, so every event takes effect exactly once, across crashes. One
projector of a name is active at a time (an advisory lock); its tables can be
rebuilt from scratch by resetting the position.

Services use them for what they query themselves: lists with filters, and the
deadlines their events start and stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg

from shared.db import DbConn, connect, lock_key, projection_writes_key
from shared.domain import LedgerAggregate
from shared.eventstore import LedgerApplication
from shared.resilience import run_forever, sleep_unless, wait_for_wake

log = logging.getLogger(__name__)

ProjectionHandler = Callable[[DbConn, Any], Awaitable[None]]


class LocalProjector:
    def __init__(
        self,
        app: LedgerApplication,
        name: str,
        handlers: Mapping[str, ProjectionHandler],
        pool: asyncpg.Pool,
        *,
        batch_size: int = 500,
    ) -> None:
        self.app = app
        self.name = name
        self.handlers = dict(handlers)
        self.pool = pool
        self.batch_size = batch_size
        self.position = 0
        self.active = False
        self._conn: asyncpg.Connection | None = None
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        await run_forever(
            f"projector {self.app.SERVICE}.{self.name}",
            lambda: self._run_active(stop),
            stop,
            after_failure=self.close,
        )
        await self.close()

    async def open(self) -> bool:
        if self._conn is None:
            self._conn = await connect(
                self.app.settings.postgres,
                application_name=f"{self.app.SERVICE}-{self.name}",
            )
        key = lock_key("projector", self.app.schema, self.name)
        if not await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            return False
        self.active = True
        await self._conn.add_listener(f"{self.app.SERVICE}_events", self._on_notify)
        self.position = await self.pool.fetchval(
            "INSERT INTO projector_positions (name) VALUES ($1) ON CONFLICT (name)"
            " DO UPDATE SET name = EXCLUDED.name RETURNING position",
            self.name,
        )
        return True

    async def close(self) -> None:
        self.active = False
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close()
            except Exception:  # a broken connection is closed either way
                log.debug("projector %s: closing a broken connection", self.name)

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def _run_active(self, stop: asyncio.Event) -> None:
        while not await self.open():
            await sleep_unless(stop, 2.0)
            if stop.is_set():
                return
        while not stop.is_set():
            # Cleared before the read (as the relay does): a short read needs
            # no second, empty one, and no notification is lost meanwhile.
            self._wake.clear()
            if await self.step() >= self.batch_size:
                continue
            await wait_for_wake(
                self._wake,
                stop,
                poll_s=self.app.settings.relay_poll_interval_s,
                coalesce_ms=self.app.settings.wake_coalesce_ms,
            )

    async def step(self) -> int:
        """Applies the next batch of events; returns how many it read."""
        notifications = await asyncio.to_thread(
            self.app.recorder.select_notifications,
            start=self.position,
            limit=self.batch_size,
            inclusive_of_start=False,
        )
        if not notifications:
            return 0
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock_shared($1)", projection_writes_key(self.app.schema)
            )
            stored = await conn.fetchval(
                "SELECT position FROM projector_positions WHERE name = $1", self.name
            )
            if stored is not None and stored != self.position:
                # A replay was promoted meanwhile (shared.replay): its tables
                # hold everything up to its position; go on from there.
                self.position = stored
                self._wake.set()  # read on from there now, not at the next event
                return len(notifications)
            for notification in notifications:
                event = self.app.mapper.to_domain_event(notification)
                if not isinstance(event, LedgerAggregate.Event):
                    continue
                handler = self.handlers.get(event.EVENT_TYPE)
                if handler is not None:
                    await handler(conn, event)
            last = notifications[-1].id
            await conn.execute(
                "UPDATE projector_positions SET position = $2, updated_at = now() WHERE name = $1",
                self.name,
                last,
            )
        self.position = last
        return len(notifications)

    async def catch_up(self) -> int:
        """Applies everything stored so far (tests, rebuilds)."""
        total = 0
        while moved := await self.step():
            total += moved
        return total
