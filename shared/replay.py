"""Replay: a service's projections rebuilt from the events, beside the live
ones, compared with them row by row, and promoted without downtime (issue 7,
ADR 0013). `partnerledger replay` runs this in each service's process.

What is replayed is declared by the service (`replay_tables` on a consumer or
projector spec): pure projections only. Consumers that react with commands
(the approval saga, the docs service's meetings) and deadline projectors
(whose rows drive Overdue events) declare none and are never replayed: a
replay would issue their commands again.

- **Version schema.** Version N is built in `<schema>_v<N>`: the service's
  migrations run there, then every table but the replayed ones and the
  consumer bookkeeping is dropped, so unqualified names resolve to the rebuilt
  tables first and to the live schema for anything else a handler reads. The
  live tables are never written.
- **Sources.** A consumer's events come from the producing services' event
  stores (each producer's process decodes its own store exactly as its relay
  does, `--dump-events`, and the streams are merged by recording time), or
  with `--source kafka` from the topics. A projector reads its own store.
  Nothing is published: relays and other services' consumers never see a
  replay.
- **Throughput.** A batch runs every handler in one transaction, their
  writes pipelined (shared.pipelined), and records the processed event ids
  with COPY; a batch with an event that fails falls
  back to the live consumer's own path (a savepoint per event, parking in the
  version's dead letters), so the result is the live consumer's.
- **Verify** holds the live writers back (the `projection-writes` lock every
  consumer and projector batch takes shared), brings the version up to the
  stores' heads, and once the live projections have applied the same events
  compares every table with EXCEPT ALL both ways (columns filled by `now()`
  or a sequence are left out): a readable diff and a non-zero exit.
- **Promote** does the same catch-up under that lock, then in one
  transaction moves the live tables to `<schema>_v<old>_retired` and the
  rebuilt ones into the live schema, with their grants, the consumer's
  processed ids and the projectors' positions, and recreates the views that
  read them (the service's `startup`). Readers wait for a few catalogue
  updates at most; the live writers go on from where the version stands.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import resource
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import asyncpg
from aiokafka import TopicPartition
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from shared.auth import TokenVerifier
from shared.clock import SystemClock
from shared.consumer import Consumer
from shared.db import (
    BASE_MIGRATIONS,
    DbConn,
    connect,
    create_pool,
    migrate,
    projection_writes_key,
    quote_ident,
)
from shared.domain import LedgerAggregate
from shared.eventstore import LedgerApplication
from shared.heap import settle
from shared.pipelined import PipelinedWrites
from shared.policy import Policy, load_policy
from shared.projector import ProjectionHandler
from shared.replay_compare import compare_table, render_diff
from shared.replay_sources import (
    Item,
    ReplayError,
    dump_events,
    kafka_batches,
    store_batches,
)
from shared.resilience import TRANSIENT
from shared.runtime import Runtime, ServiceSpec
from shared.settings import Settings

#: Tables a version schema keeps besides the replayed ones: the consumer's
#: bookkeeping (its exact path writes there) and the migrations' record.
BOOKKEEPING = (
    "schema_migrations",
    "processed_events",
    "dead_letters",
    "consumer_offsets",
    "projector_positions",
)
Source = Literal["stores", "kafka"]


@dataclass(frozen=True)
class Target:
    """A replayable projection: a consumer or a local projector of the service."""

    name: str
    kind: Literal["consumer", "projector"]
    tables: tuple[str, ...]


def targets_of(spec: ServiceSpec) -> list[Target]:
    return [
        *(Target(c.name, "consumer", c.replay_tables) for c in spec.consumers if c.replay_tables),
        *(Target(p.name, "projector", p.replay_tables) for p in spec.projectors if p.replay_tables),
    ]


@dataclass(frozen=True)
class ReplayOptions:
    names: tuple[str, ...] = ()  # targets by name; none: every one of the service
    source: Source = "stores"
    as_of: datetime | None = None
    verify: bool = False
    promote: bool = False
    batch_size: int = 1000
    #: How long verify waits for the live projections to apply what the
    #: version holds (they follow the topics, the version the stores).
    wait_s: float = 60.0
    progress: bool = True
    report: Path | None = None  # the figures as JSON (bench/replay.py)


@dataclass
class TargetRun:
    target: Target
    events: int = 0  # read from the source
    applied: int = 0
    parked: int = 0
    seconds: float = 0.0


# -- applying ----------------------------------------------------------------------------


class ConsumerReplayer:
    """Applies batches of a consumer's events to the version's tables."""

    def __init__(
        self, consumer: Consumer, pool: asyncpg.Pool, version_schema: str, *, dedupe: bool
    ) -> None:
        self.consumer = consumer
        self.pool = pool
        self.raw_schema = version_schema
        self.schema = quote_ident(version_schema)
        self.dedupe = dedupe  # Kafka holds an event twice after a republish
        self.seen: set[int] = set()
        self.parked_aggregates: set[str] = set()
        self.positions: dict[str, int] = {}

    async def load(self, conn: DbConn, target: str) -> None:
        rows = await conn.fetch(
            f"SELECT source, position FROM {self.schema}.replay_positions WHERE target = $1", target
        )
        self.positions = {r["source"]: r["position"] for r in rows}
        if self.dedupe:
            ids = await conn.fetch(
                f"SELECT event_id FROM {self.schema}.processed_events WHERE consumer_group = $1",
                self.consumer.group,
            )
            self.seen = {r["event_id"].int for r in ids}
        await self._load_parked(conn)

    async def _load_parked(self, conn: DbConn) -> None:
        rows = await conn.fetch(
            f"SELECT DISTINCT aggregate_id FROM {self.schema}.dead_letters"
            " WHERE consumer_group = $1 AND redriven_at IS NULL AND aggregate_id IS NOT NULL",
            self.consumer.group,
        )
        self.parked_aggregates = {r["aggregate_id"] for r in rows}

    async def apply(self, target: str, items: Sequence[Item], as_of: datetime | None) -> int:
        """Applies a batch; returns how many events it applied."""
        wanted = [
            i
            for i in items
            if i.envelope is None or as_of is None or i.envelope.recorded_at <= as_of
        ]
        if self.dedupe:
            wanted = [
                i for i in wanted if i.envelope is None or i.envelope.event_id.int not in self.seen
            ]
        exact = any(
            i.envelope is None or str(i.envelope.aggregate_id) in self.parked_aggregates
            for i in wanted
        )
        applied = 0
        if not exact:
            try:
                applied = await self._fast(target, wanted, items)
            except TRANSIENT:
                raise
            except Exception:
                exact = True
        if exact:
            applied = await self._exact(target, wanted, items)
        if self.dedupe:
            self.seen.update(i.envelope.event_id.int for i in wanted if i.envelope is not None)
        return applied

    async def _fast(self, target: str, wanted: Sequence[Item], items: Sequence[Item]) -> int:
        processed = []
        async with self.pool.acquire() as conn, conn.transaction():
            writes = PipelinedWrites(conn)
            for item in wanted:
                env = item.envelope
                assert env is not None
                handler = self.consumer.handler_for(item.topic, env.event_type)
                if handler is None:
                    continue
                await handler(writes, env)
                processed.append((self.consumer.group, env.event_id, item.topic, item.position))
            await writes.flush()
            if processed:
                await conn.copy_records_to_table(
                    "processed_events",
                    schema_name=self.raw_schema,
                    columns=("consumer_group", "event_id", "source", "position"),
                    records=processed,
                )
            await self._save_positions(conn, target, items)
        return len(processed)

    async def _exact(self, target: str, wanted: Sequence[Item], items: Sequence[Item]) -> int:
        applied = 0
        if wanted:
            outcome = await self.consumer.apply(
                TopicPartition("replay", 0), [i.record() for i in wanted], 0
            )
            applied = outcome.applied
        async with self.pool.acquire() as conn, conn.transaction():
            await self._save_positions(conn, target, items)
            await self._load_parked(conn)
        return applied

    async def _save_positions(self, conn: DbConn, target: str, items: Sequence[Item]) -> None:
        for item in items:
            key = item.source_key
            self.positions[key] = max(self.positions.get(key, 0), item.position)
        await conn.executemany(
            f"INSERT INTO {self.schema}.replay_positions (target, source, position)"
            " VALUES ($1, $2, $3) ON CONFLICT (target, source) DO UPDATE"
            " SET position = EXCLUDED.position",
            [(target, k, v) for k, v in self.positions.items()],
        )


class ProjectorReplayer:
    """Applies a local projector's handlers to its own store's events."""

    def __init__(
        self,
        app: LedgerApplication,
        handlers: Mapping[str, ProjectionHandler],
        pool: asyncpg.Pool,
        version_schema: str,
    ) -> None:
        self.app = app
        self.handlers = handlers
        self.pool = pool
        self.schema = quote_ident(version_schema)
        self.position = 0

    async def load(self, conn: DbConn, target: str) -> None:
        self.position = (
            await conn.fetchval(
                f"SELECT position FROM {self.schema}.replay_positions"
                " WHERE target = $1 AND source = 'store'",
                target,
            )
            or 0
        )

    def _read(self, after: int, limit: int) -> list[tuple[int, Any]]:
        notifications = self.app.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
        return [(n.id, self.app.mapper.to_domain_event(n)) for n in notifications]

    async def run(
        self, target: str, batch_size: int, as_of: datetime | None, step: Callable[[int], None]
    ) -> tuple[int, int]:
        """Applies everything after the position; returns (read, applied)."""
        read = applied = 0
        pending = asyncio.ensure_future(asyncio.to_thread(self._read, self.position, batch_size))
        while True:
            batch = await pending
            if not batch:
                return read, applied
            # Reading the next batch overlaps with applying this one.
            pending = asyncio.ensure_future(asyncio.to_thread(self._read, batch[-1][0], batch_size))
            async with self.pool.acquire() as conn, conn.transaction():
                writes = PipelinedWrites(conn)
                for _, event in batch:
                    if not isinstance(event, LedgerAggregate.Event):
                        continue
                    if as_of is not None and event.timestamp > as_of:
                        continue
                    handler = self.handlers.get(event.EVENT_TYPE)
                    if handler is not None:
                        await handler(writes, event)
                        applied += 1
                await writes.flush()
                self.position = batch[-1][0]
                await conn.execute(
                    f"INSERT INTO {self.schema}.replay_positions (target, source, position)"
                    " VALUES ($1, 'store', $2) ON CONFLICT (target, source) DO UPDATE"
                    " SET position = EXCLUDED.position",
                    target,
                    self.position,
                )
            read += len(batch)
            step(len(batch))


# -- the run -----------------------------------------------------------------------------


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} events/s")


@dataclass
class Replay:
    """One replay of one service's projections into a new version."""

    spec: ServiceSpec
    settings: Settings
    options: ReplayOptions
    console: Console
    policy: Policy | None = None
    application: LedgerApplication | None = None
    live_pool: asyncpg.Pool | None = None
    pool: asyncpg.Pool | None = None
    version: int = 0
    runs: list[TargetRun] = field(default_factory=list)
    _consumers: dict[str, ConsumerReplayer] = field(default_factory=dict)
    _projectors: dict[str, ProjectorReplayer] = field(default_factory=dict)

    @property
    def live(self) -> str:
        return self.settings.schema_of(self.spec.name)

    @property
    def version_schema(self) -> str:
        return f"{self.live}_v{self.version}"

    def targets(self) -> list[Target]:
        every = targets_of(self.spec)
        if not self.options.names:
            return every
        known = {t.name: t for t in every}
        unknown = [n for n in self.options.names if n not in known]
        if unknown:
            names = ", ".join(f"{self.spec.name}.{t.name}" for t in every) or "none"
            raise ReplayError(
                f"{', '.join(unknown)}: not a replayable projection of the {self.spec.name}"
                f" service (replayable: {names}; consumers that react with commands and"
                " deadline projectors are never replayed)"
            )
        return [known[n] for n in self.options.names]

    async def open(self) -> None:
        self.policy = load_policy(self.settings.policy_file)
        admin = await connect(self.settings.postgres, application_name=f"{self.spec.name}-replay")
        try:  # the registry may be newer than the running service (migration 5)
            await migrate(admin, self.live, [*BASE_MIGRATIONS, *self.spec.migrations])
        finally:
            await admin.close()
        self.application = await asyncio.to_thread(
            self.spec.application, self.settings, clock=SystemClock(), policy=self.policy
        )
        self.live_pool = await create_pool(
            self.settings.postgres,
            application_name=f"{self.spec.name}-replay",
            schema=self.live,
            max_size=2,
        )

    async def close(self) -> None:
        for pool in (self.pool, self.live_pool):
            if pool is not None:
                await pool.close()
        if self.application is not None:
            await asyncio.to_thread(self.application.close)

    # -- the version ----------------------------------------------------------------------

    async def create_version(self, targets: Sequence[Target]) -> None:
        assert self.live_pool is not None
        opts = self.options
        async with self.live_pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE projection_versions IN EXCLUSIVE MODE")
            self.version = await conn.fetchval(
                "SELECT coalesce(max(version), 1) + 1 FROM projection_versions"
            )
            await conn.execute(
                "INSERT INTO projection_versions (version, schema_name, targets, source, as_of)"
                " VALUES ($1, $2, $3, $4, $5)",
                self.version,
                self.version_schema,
                [t.name for t in targets],
                opts.source,
                opts.as_of,
            )
        keep = {*BOOKKEEPING, *(t for target in targets for t in target.tables)}
        admin = await connect(self.settings.postgres, application_name=f"{self.spec.name}-replay")
        try:
            await migrate(admin, self.version_schema, [*BASE_MIGRATIONS, *self.spec.migrations])
            q = quote_ident(self.version_schema)
            async with admin.transaction():
                for row in await admin.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = $1", self.version_schema
                ):
                    if row["tablename"] not in keep:
                        await admin.execute(
                            f"DROP TABLE IF EXISTS {q}.{quote_ident(row['tablename'])} CASCADE"
                        )
                await admin.execute(
                    f"CREATE TABLE {q}.replay_positions (target text NOT NULL,"
                    " source text NOT NULL, position bigint NOT NULL,"
                    " PRIMARY KEY (target, source))"
                )
        finally:
            await admin.close()

    def _runtime(self, pool: asyncpg.Pool) -> Runtime:
        """The service's runtime as its spec's hooks expect it (subscriptions,
        startup); nothing of it runs."""
        assert self.application is not None and self.policy is not None
        return Runtime(
            spec=self.spec,
            settings=self.settings,
            clock=SystemClock(),
            application=self.application,
            pool=pool,
            verifier=TokenVerifier(self.settings),
            policy=self.policy,
        )

    async def open_version(self) -> None:
        path = f"{quote_ident(self.version_schema)}, {quote_ident(self.live)}"
        self.pool = await create_pool(
            self.settings.postgres,
            application_name=f"{self.spec.name}-replay",
            schema=path,
            max_size=3,
        )
        rt = self._runtime(self.pool)
        assert self.application is not None and self.policy is not None
        for target in self.targets():
            if target.kind == "consumer":
                cspec = next(c for c in self.spec.consumers if c.name == target.name)
                consumer = Consumer(
                    owner=self.spec.name,
                    name=cspec.name,
                    settings=self.settings,
                    subscriptions=cspec.subscriptions(rt),
                    pool=self.pool,
                    schema=self.version_schema,
                )
                self._consumers[target.name] = ConsumerReplayer(
                    consumer, self.pool, self.version_schema, dedupe=self.options.source == "kafka"
                )
            else:
                pspec = next(p for p in self.spec.projectors if p.name == target.name)
                self._projectors[target.name] = ProjectorReplayer(
                    self.application, pspec.handlers(self.policy), self.pool, self.version_schema
                )
        async with self.pool.acquire() as conn:
            for name, c in self._consumers.items():
                await c.load(conn, name)
            for name, p in self._projectors.items():
                await p.load(conn, name)

    # -- building ----------------------------------------------------------------------

    async def build(self, *, quiet: bool = False) -> None:
        """Applies everything the sources hold beyond the version's positions."""
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TimeRemainingColumn(),
        )
        with Progress(
            *columns,
            console=self.console,
            disable=quiet or not self.options.progress,
            transient=quiet,
        ) as progress:
            for target in self.targets():
                run = next((r for r in self.runs if r.target == target), None)
                if run is None:
                    run = TargetRun(target)
                    self.runs.append(run)
                task = progress.add_task(f"{self.spec.name}.{target.name}", total=None)
                started = time.perf_counter()

                def step(n: int, task: Any = task) -> None:
                    progress.advance(task, n)

                def total(n: int, task: Any = task) -> None:
                    progress.update(task, total=n)

                if target.kind == "consumer":
                    read, applied = await self._build_consumer(target, step, total)
                else:
                    projector = self._projectors[target.name]
                    total(max((self.application_head() - projector.position), 0))
                    read, applied = await projector.run(
                        target.name, self.options.batch_size, self.options.as_of, step
                    )
                run.events += read
                run.applied += applied
                run.seconds += time.perf_counter() - started
                progress.update(task, total=progress.tasks[-1].completed)

    def application_head(self) -> int:
        assert self.application is not None
        return self.application.recorder.max_notification_id() or 0

    async def _build_consumer(
        self, target: Target, step: Callable[[int], None], total: Callable[[int], None]
    ) -> tuple[int, int]:
        replayer = self._consumers[target.name]
        consumer = replayer.consumer
        read = applied = 0
        batches: AsyncIterator[list[Item]]
        if self.options.source == "kafka":
            batches = kafka_batches(
                self.settings,
                consumer.topics,
                replayer.positions,
                self.options.batch_size,
                total,
            )
        else:
            sources = {
                t.removeprefix(self.settings.schema_prefix).removesuffix(".events"): t
                for t in consumer.topics
            }
            positions = {
                source: replayer.positions.get(f"{topic}/0", 0) for source, topic in sources.items()
            }
            # A store with nothing new is not asked (no process to start).
            heads = await self._store_heads(positions)
            positions = {
                s: after for s, after in positions.items() if heads.get(s, after + 1) > after
            }
            batches = store_batches(self.settings, positions, self.options.batch_size, total)
        async for batch in batches:
            applied += await replayer.apply(target.name, batch, self.options.as_of)
            read += len(batch)
            step(len(batch))
        return read, applied

    async def _store_heads(self, sources: Mapping[str, int]) -> dict[str, int]:
        """The last notification id of each producer's store (its table is
        `<schema>.<service>_events`, as the eventsourcing recorder names it)."""
        assert self.live_pool is not None
        heads: dict[str, int] = {}
        for source in sources:
            table = (
                f"{quote_ident(self.settings.schema_of(source))}.{quote_ident(source + '_events')}"
            )
            try:
                heads[source] = await self.live_pool.fetchval(
                    f"SELECT coalesce(max(notification_id), 0) FROM {table}"
                )
            except asyncpg.PostgresError:  # not readable here: the dump will tell
                continue
        return heads

    # -- verify and promote ---------------------------------------------------------------

    async def _live_behind(self, conn: DbConn) -> list[str]:
        """What the live projections have not applied yet of what the version
        holds (they follow the topics, the version the stores)."""
        behind: list[str] = []
        vq = quote_ident(self.version_schema)
        for name, c in self._consumers.items():
            group = c.consumer.group
            mine = await conn.fetchval(
                f"SELECT count(*) FROM {vq}.processed_events WHERE consumer_group = $1", group
            )
            theirs = await conn.fetchval(
                "SELECT count(*) FROM processed_events WHERE consumer_group = $1", group
            )
            if mine != theirs:
                behind.append(f"{self.spec.name}.{name}: live applied {theirs}, rebuilt {mine}")
        for name, p in self._projectors.items():
            live = await conn.fetchval(
                "SELECT position FROM projector_positions WHERE name = $1", name
            )
            if (live or 0) != p.position:
                behind.append(
                    f"{self.spec.name}.{name}: live at event {live or 0}, rebuilt at {p.position}"
                )
        return behind

    async def _held(self, conn: DbConn) -> None:
        """Holds the live writers back for the rest of the transaction."""
        await conn.execute("SELECT pg_advisory_xact_lock($1)", projection_writes_key(self.live))

    async def verify(self) -> tuple[bool, list[str]]:
        assert self.live_pool is not None
        deadline = time.monotonic() + self.options.wait_s
        while True:
            await self.build(quiet=True)
            async with self.live_pool.acquire() as conn, conn.transaction():
                await self._held(conn)
                await self.build(quiet=True)  # what arrived before the lock
                behind = await self._live_behind(conn)
                if not behind or time.monotonic() >= deadline:
                    diffs = [
                        await compare_table(conn, self.live, self.version_schema, table)
                        for target in self.targets()
                        for table in target.tables
                    ]
                    lines = render_diff(self.live, diffs)
                    if behind:
                        lines += [
                            f"live is behind after {self.options.wait_s:.0f}s: {b}" for b in behind
                        ]
                    ok = not behind and all(d.equal for d in diffs)
                    return ok, lines
            await asyncio.sleep(0.5)

    async def promote(self) -> list[str]:
        assert self.live_pool is not None and self.pool is not None
        await self.build(quiet=True)
        lq, vq = quote_ident(self.live), quote_ident(self.version_schema)
        async with self.live_pool.acquire() as conn, conn.transaction():
            # This connection waits idle while the catch-up runs on others.
            await conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            await self._held(conn)
            await self.build(quiet=True)  # everything stored until the writers stopped
            current = await conn.fetchval(
                "SELECT coalesce(max(version), 1) FROM projection_versions"
                " WHERE status = 'promoted'"
            )
            retired = f"{self.live}_v{current}_retired"
            # Version 1 is what the service built live: on record once replaced.
            await conn.execute(
                "INSERT INTO projection_versions (version, schema_name, targets, source, status)"
                " VALUES (1, $1, $2, 'live', 'promoted') ON CONFLICT (version) DO NOTHING",
                self.live,
                [t.name for t in self.targets()],
            )
            rq = quote_ident(retired)
            notes: list[str] = []
            for name, c in self._consumers.items():
                group = c.consumer.group
                stuck = await conn.fetch(
                    f"SELECT v.event_type, v.event_id, v.reason FROM {vq}.dead_letters v"
                    " WHERE v.consumer_group = $1 AND v.redriven_at IS NULL AND EXISTS"
                    " (SELECT 1 FROM processed_events l WHERE l.consumer_group = $1"
                    " AND l.event_id = v.event_id)",
                    group,
                )
                if stuck:
                    listed = "; ".join(
                        f"{r['event_type']} {r['event_id']}: {r['reason']}" for r in stuck[:5]
                    )
                    raise ReplayError(
                        f"not promoted: the rebuilt {self.spec.name}.{name} parked {len(stuck)}"
                        f" events the live one applied ({listed})"
                    )
                missing = await conn.fetchval(
                    "SELECT count(*) FROM processed_events l WHERE l.consumer_group = $1"
                    f" AND NOT EXISTS (SELECT 1 FROM {vq}.processed_events v"
                    " WHERE v.consumer_group = $1 AND v.event_id = l.event_id)",
                    group,
                )
                if missing:
                    raise ReplayError(
                        f"not promoted: {missing} events the live {self.spec.name}.{name}"
                        " applied are not in the rebuilt version yet (its source is behind);"
                        " run the promotion again"
                    )
                await conn.execute(
                    "INSERT INTO processed_events (consumer_group, event_id, source, position)"
                    f" SELECT consumer_group, event_id, source, position FROM {vq}.processed_events"
                    " WHERE consumer_group = $1 ON CONFLICT DO NOTHING",
                    group,
                )
                resolved = await conn.execute(
                    "UPDATE dead_letters l SET redriven_at = now() WHERE l.consumer_group = $1"
                    f" AND l.redriven_at IS NULL AND EXISTS (SELECT 1 FROM {vq}.processed_events p"
                    " WHERE p.consumer_group = $1 AND p.event_id = l.event_id)",
                    group,
                )
                notes.append(
                    f"{self.spec.name}.{name}: {resolved.split()[-1]} parked events"
                    " resolved by the replay"
                )
            for name, p in self._projectors.items():
                await conn.execute(
                    "INSERT INTO projector_positions (name, position) VALUES ($1, $2)"
                    " ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position,"
                    " updated_at = now()",
                    name,
                    p.position,
                )
            await conn.execute(f"CREATE SCHEMA {rq}")
            # Readers running long queries on a table hold the swap back; then
            # fail (and roll back) rather than queue every reader behind it.
            await conn.execute("SET LOCAL lock_timeout = '10s'")
            owner = None
            for target in self.targets():
                for table in target.tables:
                    t = quote_ident(table)
                    grants = await _grants(conn, self.live, table)
                    owner = await conn.fetchval(
                        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = $1::regclass",
                        f"{lq}.{t}",
                    )
                    # The service's role keeps owning its tables whoever promotes.
                    await conn.execute(f"ALTER TABLE {vq}.{t} OWNER TO {quote_ident(owner)}")
                    await conn.execute(f"ALTER TABLE {lq}.{t} SET SCHEMA {rq}")
                    await conn.execute(f"ALTER TABLE {vq}.{t} SET SCHEMA {lq}")
                    for grant in grants:
                        await conn.execute(grant)
            if self.spec.startup is not None:
                if owner is not None:  # the views belong to the service's role too
                    await conn.execute(f"SET LOCAL ROLE {quote_ident(owner)}")
                await self.spec.startup(self._runtime(self.live_pool), conn)
                await conn.execute("RESET ROLE")
            stale = await _views_reading(conn, retired, self.live)
            if stale:
                raise ReplayError(
                    f"not promoted: views {', '.join(stale)} read the replaced tables and the"
                    f" {self.spec.name} service does not recreate them"
                )
            await conn.execute(
                "UPDATE projection_versions SET status = 'retired', retired_schema = $2"
                " WHERE version = $1",
                current,
                retired,
            )
            await conn.execute(
                "UPDATE projection_versions SET status = 'promoted', promoted_at = now()"
                " WHERE version = $1",
                self.version,
            )
        await self.pool.close()
        self.pool = None
        async with self.live_pool.acquire() as conn:
            await conn.execute(f"DROP SCHEMA {vq} CASCADE")  # only its bookkeeping is left
        notes.append(
            f"{self.spec.name}: version {self.version} is live; the replaced tables are kept"
            f" in {retired}"
        )
        return notes

    async def mark_built(self) -> None:
        assert self.live_pool is not None
        await self.live_pool.execute(
            "UPDATE projection_versions SET status = 'built', built_at = now(), events = $2"
            " WHERE version = $1 AND status = 'building'",
            self.version,
            sum(r.events for r in self.runs),
        )


async def _grants(conn: DbConn, schema: str, table: str) -> list[str]:
    """The live table's grants, as statements for the table replacing it."""
    rows = await conn.fetch(
        "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC'"
        " ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS grantee"
        " FROM pg_class c, aclexplode(c.relacl) a"
        " WHERE c.oid = $1::regclass AND a.grantee <> c.relowner",
        f"{quote_ident(schema)}.{quote_ident(table)}",
    )
    target = f"{quote_ident(schema)}.{quote_ident(table)}"
    return [f"GRANT {r['privilege_type']} ON {target} TO {r['grantee']}" for r in rows]


async def _views_reading(conn: DbConn, tables_schema: str, views_schema: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT v.relname FROM pg_depend d"
        " JOIN pg_rewrite r ON r.oid = d.objid"
        " JOIN pg_class v ON v.oid = r.ev_class"
        " JOIN pg_class t ON t.oid = d.refobjid"
        " WHERE t.relnamespace = $1::regnamespace AND v.relnamespace = $2::regnamespace"
        " AND v.oid <> t.oid",
        quote_ident(tables_schema),
        quote_ident(views_schema),
    )
    return sorted(r["relname"] for r in rows)


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM: getrusage would count the
    image of a parent it was forked from) or of a dump process it ran."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                own = int(line.split()[1])
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


async def run_replay(
    spec: ServiceSpec, settings: Settings, options: ReplayOptions, console: Console
) -> int:
    """The `--replay` of a service's process: 0 when built (and equal or
    promoted), 1 when verify found differences, 2 when it could not run."""
    if options.as_of is not None and (options.verify or options.promote):
        console.print(
            "[red]--as-of builds a version to inspect: it is not the live state, so it is"
            " neither verified against it nor promoted[/red]"
        )
        return 2
    replay = Replay(spec, settings, options, console)
    try:
        targets = replay.targets()
        if not targets:
            console.print(f"{spec.name}: no replayable projections")
            return 0
        await replay.open()
        await replay.create_version(targets)
        await replay.open_version()
        console.print(
            f"{spec.name}: building version {replay.version} in schema"
            f" {replay.version_schema} from the {options.source}"
            + (f", as of {options.as_of.isoformat()}" if options.as_of else "")
        )
        await replay.build()
        await replay.mark_built()
        console.print(_summary(replay))
        if options.report is not None:
            options.report.write_text(json.dumps(_figures(replay), indent=2) + "\n")
        code = 0
        if options.verify:
            ok, lines = await replay.verify()
            for line in lines:
                console.print(line, markup=False, highlight=False, soft_wrap=True)
            code = 0 if ok else 1
        if options.promote and code == 0:
            for line in await replay.promote():
                console.print(line, markup=False, highlight=False, soft_wrap=True)
        elif options.promote:
            console.print(f"{spec.name}: not promoted, the verification failed")
        return code
    except ReplayError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    except asyncpg.PostgresError as exc:  # e.g. a promotion's lock timeout: rolled back
        console.print(f"[red]{spec.name}: {type(exc).__name__}: {exc}[/red]")
        return 2
    finally:
        await replay.close()


def _figures(replay: Replay) -> dict[str, Any]:
    return {
        "service": replay.spec.name,
        "version": replay.version,
        "source": replay.options.source,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "projections": {
            run.target.name: {
                "events": run.events,
                "applied": run.applied,
                "seconds": round(run.seconds, 2),
                "events_per_s": round(run.events / run.seconds) if run.seconds else None,
            }
            for run in replay.runs
        },
    }


def _summary(replay: Replay) -> Table:
    table = Table(title=f"{replay.spec.name} version {replay.version}")
    for name in ("projection", "events read", "applied", "seconds", "events/s"):
        table.add_column(name, justify="right" if name != "projection" else "left")
    for run in replay.runs:
        rate = run.events / run.seconds if run.seconds else 0.0
        table.add_row(
            f"{replay.spec.name}.{run.target.name}",
            f"{run.events:,}",
            f"{run.applied:,}",
            f"{run.seconds:.1f}",
            f"{rate:,.0f}",
        )
    table.caption = f"peak memory {peak_rss_mb():.0f} MB"
    return table


async def discard(spec: ServiceSpec, settings: Settings, version: int, console: Console) -> int:
    """Drops a version that is not live (built, or retired after a promotion)."""
    schema = settings.schema_of(spec.name)
    conn = await connect(settings.postgres, application_name=f"{spec.name}-replay")
    try:
        row = await conn.fetchrow(
            f"SELECT status, schema_name, retired_schema FROM {quote_ident(schema)}"
            ".projection_versions WHERE version = $1",
            version,
        )
        if row is None:
            console.print(f"[red]{spec.name}: no version {version}[/red]")
            return 2
        if row["status"] == "promoted":
            console.print(f"[red]{spec.name}: version {version} is live[/red]")
            return 2
        # Only version schemas: version 1's schema_name is the live schema.
        own = re.compile(rf"{re.escape(schema)}_v\d+(_retired)?")
        dropped = [s for s in (row["schema_name"], row["retired_schema"]) if s and own.fullmatch(s)]
        async with conn.transaction():
            for name in dropped:
                await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(name)} CASCADE")
            await conn.execute(
                f"UPDATE {quote_ident(schema)}.projection_versions SET status = 'discarded'"
                " WHERE version = $1",
                version,
            )
        console.print(f"{spec.name}: version {version} discarded ({', '.join(dropped)})")
        return 0
    finally:
        await conn.close()


def replay_main(spec: ServiceSpec, settings: Settings, args: argparse.Namespace) -> int:
    """`python -m services.<name> --replay | --discard N | --dump-events`."""
    console = Console(stderr=True, soft_wrap=True)
    settle()  # what is imported stays: collections walk only the events in flight
    if args.dump_events:
        # stdout carries the events: every log line goes to stderr.
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
                handler.setStream(sys.stderr)
        application = spec.application(settings)
        try:
            dump_events(application, sys.stdout.buffer, after=args.after)
        finally:
            application.close()
        return 0
    if args.discard is not None:
        return asyncio.run(discard(spec, settings, args.discard, console))
    try:
        as_of = datetime.fromisoformat(args.as_of) if args.as_of else None
    except ValueError:
        console.print(f"[red]--as-of {args.as_of!r} is not an ISO time[/red]")
        return 2
    if as_of is not None and as_of.tzinfo is None:
        console.print("[red]--as-of needs an offset, e.g. 2026-06-30T00:00+08:00[/red]")
        return 2
    options = ReplayOptions(
        names=tuple(n.strip() for n in args.targets.split(",") if n.strip()),
        source=args.source,
        as_of=as_of,
        verify=args.verify,
        promote=args.promote,
        batch_size=max(args.batch_size, 1),
        wait_s=args.wait,
        progress=not args.no_progress,
        report=args.report,
    )
    return asyncio.run(run_replay(spec, settings, options, console))
