"""A connection whose writes wait and go to PostgreSQL in pipelines (issue 9).

Projection handlers write one statement at a time, each a network round trip
that the process spends waiting: a replay of a million events spent most of its
time so. Given a `PipelinedWrites` instead of the connection, a batch's
handlers run unchanged, but every `execute` with arguments is held back; the
held statements go out when something needs the database's answer (a read, a
statement without arguments, a COPY, a savepoint, the end of the batch), each
run of consecutive identical statements as one `executemany`, which asyncpg
sends as a pipeline (one round trip for the run).

The order of the statements is kept exactly, so the result is the one the
unbatched handlers give; only where an error surfaces moves (to the flush,
still inside the batch's transaction, which the caller rolls back, as it does
for any handler's error). Handlers must not act on `execute`'s status (none
does; it is answered empty here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction


class PipelinedWrites:
    def __init__(self, conn: asyncpg.Connection | PoolConnectionProxy) -> None:
        self.conn = conn
        self._held: list[tuple[str, Sequence[Any]]] = []
        self.round_trips_saved = 0

    def discard(self) -> None:
        """Drops the held writes (their savepoint or transaction is rolled back)."""
        self._held.clear()

    @property
    def held(self) -> int:
        return len(self._held)

    async def flush(self) -> None:
        held, self._held = self._held, []
        start = 0
        while start < len(held):
            query = held[start][0]
            end = start + 1
            while end < len(held) and held[end][0] == query:
                end += 1
            if end - start == 1:
                await self.conn.execute(query, *held[start][1])
            else:
                await self.conn.executemany(query, [args for _, args in held[start:end]])
                self.round_trips_saved += end - start - 1
            start = end

    # -- what handlers call ----------------------------------------------------------------

    async def execute(self, query: str, *args: Any) -> str:
        if not args:  # DDL or several statements: the simple protocol, no pipeline
            await self.flush()
            status: str = await self.conn.execute(query)
            return status
        self._held.append((query, args))
        return ""

    async def executemany(self, command: str, args: Iterable[Sequence[Any]]) -> None:
        self._held.extend((command, tuple(row)) for row in args)

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        await self.flush()
        rows: list[Any] = await self.conn.fetch(query, *args)
        return rows

    async def fetchrow(self, query: str, *args: Any) -> Any:
        await self.flush()
        return await self.conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any, column: int = 0) -> Any:
        await self.flush()
        return await self.conn.fetchval(query, *args, column=column)

    async def copy_records_to_table(self, table_name: str, **kwargs: Any) -> str:
        await self.flush()
        status: str = await self.conn.copy_records_to_table(table_name, **kwargs)
        return status

    def transaction(self, **kwargs: Any) -> _AfterHeld:
        return _AfterHeld(self, self.conn.transaction(**kwargs))


class _AfterHeld:
    """A savepoint (or transaction) that starts once the held writes are sent."""

    def __init__(self, writes: PipelinedWrites, inner: Transaction) -> None:
        self.writes = writes
        self.inner = inner

    async def __aenter__(self) -> None:
        await self.writes.flush()
        await self.inner.__aenter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            try:
                await self.writes.flush()  # what the block wrote belongs inside it
            except BaseException as failed:
                await self.inner.__aexit__(type(failed), failed, failed.__traceback__)
                raise
        else:
            self.writes.discard()
        await self.inner.__aexit__(kind, error, tb)
