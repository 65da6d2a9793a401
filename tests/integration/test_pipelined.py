"""Pipelined writes (shared.pipelined, issue 9: replay throughput): handlers
given a `PipelinedWrites` leave exactly what they leave on the plain
connection, reads see every write made before them, an error still rolls
the batch back, and a savepoint keeps its own writes. Real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from shared.db import DbConn, connect
from shared.pipelined import PipelinedWrites
from shared.settings import Settings

pytestmark = pytest.mark.integration

INSERT = "INSERT INTO {t} (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING"
DOUBLE = "UPDATE {t} SET v = v * 2 + $2 WHERE k = $1"
BUMP = (
    "INSERT INTO {t}_counts (k, n) VALUES ($1, 1)"
    " ON CONFLICT (k) DO UPDATE SET n = {t}_counts.n + 1"
)
DELETE = "DELETE FROM {t} WHERE k = $1 AND $2::int IS NOT NULL"
READ = "SELECT coalesce(sum(v), 0) + coalesce((SELECT sum(n) FROM {t}_counts), 0) FROM {t}"

Op = tuple[str, int, int]
ops = st.lists(
    st.tuples(
        st.sampled_from(["insert", "double", "bump", "delete", "read"]),
        st.integers(0, 4),
        st.integers(-3, 3),
    ),
    max_size=60,
)


@pytest.fixture
async def conn(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    c = await connect(settings.postgres, application_name="test-pipelined")
    for t in ("plain", "piped"):
        await c.execute(f"CREATE TEMP TABLE {t} (k int PRIMARY KEY, v bigint NOT NULL)")
        await c.execute(f"CREATE TEMP TABLE {t}_counts (k int PRIMARY KEY, n int NOT NULL)")
    yield c
    await c.close()


async def handle(db: DbConn, table: str, op: Op, reads: list[Any]) -> None:
    """A handler of the kind projections have: writes by key, now and then a read."""
    kind, k, x = op
    if kind == "read":
        reads.append(await db.fetchval(READ.format(t=table)))
        return
    sql = {"insert": INSERT, "double": DOUBLE, "bump": BUMP, "delete": DELETE}[kind]
    args = (k,) if kind == "bump" else (k, x)
    await db.execute(sql.format(t=table), *args)


async def state(conn: asyncpg.Connection, table: str) -> tuple[list[Any], list[Any]]:
    rows = await conn.fetch(f"SELECT k, v FROM {table} ORDER BY k")
    counts = await conn.fetch(f"SELECT k, n FROM {table}_counts ORDER BY k")
    return [tuple(r) for r in rows], [tuple(r) for r in counts]


@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=ops)
async def test_pipelined_writes_leave_what_plain_writes_leave(
    conn: asyncpg.Connection, sequence: list[Op]
) -> None:
    """Issue 9 / ADR 0013: a replay through pipelined writes equals the live,
    statement-by-statement result, reads included."""
    plain_reads: list[Any] = []
    piped_reads: list[Any] = []
    async with conn.transaction():
        await conn.execute("TRUNCATE plain, plain_counts, piped, piped_counts")
        writes = PipelinedWrites(conn)
        for op in sequence:
            await handle(conn, "plain", op, plain_reads)
            await handle(writes, "piped", op, piped_reads)
        await writes.flush()
        assert writes.held == 0
        assert await state(conn, "plain") == await state(conn, "piped")
        assert plain_reads == piped_reads


async def test_runs_of_one_statement_go_out_in_one_round_trip(conn: asyncpg.Connection) -> None:
    writes = PipelinedWrites(conn)
    async with conn.transaction():
        for k in range(100):
            await writes.execute(INSERT.format(t="piped"), k, k)
        for k in range(100):
            await writes.execute(DOUBLE.format(t="piped"), k, 1)
        assert writes.held == 200
        total = await writes.fetchval("SELECT sum(v) FROM piped")
        assert total == sum(2 * k + 1 for k in range(100))
    assert writes.round_trips_saved == 198  # two runs: two round trips for 200 statements


async def test_an_error_surfaces_at_the_flush_and_the_batch_keeps_nothing(
    conn: asyncpg.Connection,
) -> None:
    writes = PipelinedWrites(conn)
    with pytest.raises(asyncpg.NotNullViolationError):
        async with conn.transaction():
            await writes.execute(INSERT.format(t="piped"), 1, 1)
            await writes.execute(INSERT.format(t="piped"), 2, None)  # held: no error yet
            await writes.flush()
    assert await conn.fetchval("SELECT count(*) FROM piped") == 0


async def test_a_savepoint_keeps_its_writes_inside_it(conn: asyncpg.Connection) -> None:
    """What a handler writes in a savepoint that fails is undone, and only that."""
    writes = PipelinedWrites(conn)
    async with conn.transaction():
        await writes.execute(INSERT.format(t="piped"), 1, 10)  # held before the savepoint
        with pytest.raises(asyncpg.NotNullViolationError):
            async with writes.transaction():
                await writes.execute(INSERT.format(t="piped"), 2, 20)
                await writes.execute(INSERT.format(t="piped"), 3, None)
        async with writes.transaction():
            await writes.execute(INSERT.format(t="piped"), 4, 40)
        await writes.execute(DOUBLE.format(t="piped"), 1, 0)
        await writes.flush()
        assert await state(conn, "piped") == ([(1, 20), (4, 40)], [])
