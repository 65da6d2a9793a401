"""PostgreSQL plumbing shared by every service: connections and migrations.

Each service owns one schema (`partner`, `approval`, ... optionally prefixed
for isolated test runs). Migrations are plain SQL, applied in order under an
advisory lock so replicas starting together do not race.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.pipelined import PipelinedWrites
from shared.settings import PostgresParams

#: A connection, pooled or not, or one whose writes go out in pipelines.
DbConn = asyncpg.Connection | PoolConnectionProxy | PipelinedWrites


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str  # may use {schema}; identifiers are quoted by the runner


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lock_key(*parts: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def projection_writes_key(schema: str) -> int:
    """The lock every writer of a schema's projection tables holds shared for
    its transaction, and a replay's promotion or verification holds
    exclusively: while it is held no projection moves (shared.replay)."""
    return lock_key("projection-writes", schema)


def _connect_kwargs(params: PostgresParams, settings: dict[str, str]) -> dict[str, Any]:
    return {
        "host": params.host,
        "port": params.port,
        "user": params.user,
        "password": params.password or None,
        "database": params.dbname,
        "server_settings": settings,
        "timeout": 10,
    }


async def connect(params: PostgresParams, *, application_name: str) -> asyncpg.Connection:
    conn: asyncpg.Connection = await asyncpg.connect(
        **_connect_kwargs(params, {"application_name": application_name})
    )
    return conn


async def create_pool(
    params: PostgresParams,
    *,
    application_name: str,
    schema: str,
    min_size: int = 1,
    max_size: int = 10,
) -> asyncpg.Pool:
    """A pool whose connections resolve unqualified names in the service's schema."""
    pool = await asyncpg.create_pool(
        **_connect_kwargs(params, {"application_name": application_name, "search_path": schema}),
        min_size=min_size,
        max_size=max_size,
    )
    assert pool is not None
    return pool


async def ensure_database(params: PostgresParams) -> None:
    """Creates the database if missing (embedded mode; needs CREATEDB)."""
    admin = params.model_copy(update={"dbname": "postgres"})
    conn = await connect(admin, application_name="partnerledger-setup")
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", params.dbname)
        if not exists:
            await conn.execute(f"CREATE DATABASE {quote_ident(params.dbname)}")
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def schema_lock(conn: DbConn, schema: str) -> AsyncIterator[None]:
    """Serialises schema changes of one service across processes (replicas
    starting together; CREATE TABLE IF NOT EXISTS is not safe when raced).
    Re-entrant within the session."""
    await conn.execute("SELECT pg_advisory_lock($1)", lock_key("migrate", schema))
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock_key("migrate", schema))


async def migrate(
    conn: asyncpg.Connection, schema: str, migrations: Sequence[Migration]
) -> list[int]:
    """Applies the migrations not yet applied to `schema`; returns their versions."""
    applied: list[int] = []
    q = quote_ident(schema)
    async with schema_lock(conn, schema):
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {q}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {q}.schema_migrations ("
            " version int PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            r["version"] for r in await conn.fetch(f"SELECT version FROM {q}.schema_migrations")
        }
        for m in sorted(migrations, key=lambda m: m.version):
            if m.version in done:
                continue
            async with conn.transaction():
                await conn.execute(m.sql.format(schema=q))
                await conn.execute(
                    f"INSERT INTO {q}.schema_migrations (version, name) VALUES ($1, $2)",
                    m.version,
                    m.name,
                )
            applied.append(m.version)
    return applied


#: Tables every service has: the outbox relay's state, the consumers' inbox
#: (processed event ids, offsets, parked events), idempotency keys, the
#: record of refused requests, local projector positions and deadlines, the
#: notification outbox with its webhook subscriptions (shared.notify), and the
#: hash chain over the stored events (shared.audit_chain).
BASE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "infrastructure",
        """
        CREATE TABLE {schema}.relay_state (
            topic text PRIMARY KEY,
            position bigint NOT NULL DEFAULT 0,
            epoch int NOT NULL DEFAULT 1,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE {schema}.relay_partitions (
            topic text NOT NULL,
            partition int NOT NULL,
            high_offset bigint NOT NULL,
            event_id uuid NOT NULL,
            PRIMARY KEY (topic, partition)
        );
        CREATE TABLE {schema}.consumer_offsets (
            consumer_group text NOT NULL,
            topic text NOT NULL,
            partition int NOT NULL,
            next_offset bigint NOT NULL,
            epoch int NOT NULL,
            last_event_id uuid,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer_group, topic, partition)
        );
        CREATE TABLE {schema}.processed_events (
            consumer_group text NOT NULL,
            event_id uuid NOT NULL,
            source text NOT NULL,
            position bigint,
            processed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer_group, event_id)
        );
        CREATE TABLE {schema}.dead_letters (
            id bigserial PRIMARY KEY,
            consumer_group text NOT NULL,
            topic text NOT NULL,
            partition int NOT NULL,
            "offset" bigint NOT NULL,
            event_id uuid,
            aggregate_id text,
            event_type text,
            reason text NOT NULL,
            error text NOT NULL,
            message bytea NOT NULL,
            headers jsonb NOT NULL DEFAULT '[]',
            parked_at timestamptz NOT NULL DEFAULT now(),
            redriven_at timestamptz
        );
        CREATE INDEX dead_letters_open ON {schema}.dead_letters
            (consumer_group, aggregate_id) WHERE redriven_at IS NULL;
        CREATE TABLE {schema}.idempotency_keys (
            principal text NOT NULL,
            key text NOT NULL,
            request_hash text NOT NULL,
            status_code int NOT NULL,
            aggregate_id uuid NOT NULL,
            aggregate_version int NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (principal, key)
        );
        CREATE TABLE {schema}.access_denials (
            id bigserial PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT now(),
            user_id text,
            role text,
            method text NOT NULL,
            path text NOT NULL,
            status int NOT NULL,
            reason text NOT NULL
        );
        """,
    ),
    Migration(
        2,
        "local projections and deadlines",
        """
        CREATE TABLE {schema}.projector_positions (
            name text PRIMARY KEY,
            position bigint NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE {schema}.deadlines (
            id uuid PRIMARY KEY,
            kind text NOT NULL,
            aggregate_id uuid NOT NULL,
            ref text NOT NULL DEFAULT '',
            due_at timestamptz NOT NULL,
            status text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'met', 'overdue', 'cancelled')),
            started_by uuid NOT NULL,
            started_at timestamptz NOT NULL,
            met_at timestamptz,
            overdue_event_id uuid,
            closed_at timestamptz
        );
        CREATE INDEX deadlines_pending ON {schema}.deadlines (due_at) WHERE status = 'pending';
        CREATE INDEX deadlines_by_aggregate ON {schema}.deadlines (aggregate_id);
        """,
    ),
    Migration(
        3,
        "notifications: webhook subscriptions and the delivery outbox",
        # The outbox is the delivery log too. A row's id is derived from
        # (channel, event, recipient, notice), so re-reading the event store
        # never queues a delivery twice and a receiver can deduplicate on it.
        # Times come from the service's injected clock, never from now().
        """
        CREATE TABLE {schema}.webhook_subscriptions (
            id uuid PRIMARY KEY,
            url text NOT NULL,
            event_types text[] NOT NULL CHECK (cardinality(event_types) > 0),
            secret text NOT NULL,
            description text,
            active boolean NOT NULL DEFAULT true,
            created_by text NOT NULL,
            created_at timestamptz NOT NULL,
            deactivated_by text,
            deactivated_at timestamptz
        );
        CREATE INDEX webhook_subscriptions_active ON {schema}.webhook_subscriptions
            USING gin (event_types) WHERE active;
        CREATE TABLE {schema}.notification_outbox (
            id uuid PRIMARY KEY,
            channel text NOT NULL CHECK (channel IN ('email', 'webhook')),
            event_id uuid NOT NULL,
            event_type text NOT NULL,
            aggregate_id uuid NOT NULL,
            recipient text NOT NULL,
            subscription_id uuid REFERENCES {schema}.webhook_subscriptions (id),
            notice_no int NOT NULL DEFAULT 0,
            subject text NOT NULL,
            body text NOT NULL,
            status text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'delivered', 'failed')),
            attempts int NOT NULL DEFAULT 0,
            next_attempt_at timestamptz,
            last_error text,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            delivered_at timestamptz,
            UNIQUE (channel, event_id, recipient, notice_no)
        );
        CREATE INDEX notification_outbox_due ON {schema}.notification_outbox
            (next_attempt_at) WHERE status = 'pending';
        CREATE INDEX notification_outbox_log ON {schema}.notification_outbox (created_at, id);
        CREATE INDEX notification_outbox_by_aggregate ON {schema}.notification_outbox
            (aggregate_id);
        """,
    ),
    Migration(
        4,
        "tamper evidence: a hash chain over the stored events",
        # One link per stored event, written by the recorder in the event's
        # transaction (shared.eventstore.LedgerRecorder); the origin row says
        # up to which notification the links were made by the backfill of
        # events stored before this migration (shared.audit_chain, ADR 0012).
        """
        CREATE TABLE {schema}.event_chain (
            notification_id bigint PRIMARY KEY,
            event_id uuid,
            originator_id uuid NOT NULL,
            originator_version bigint NOT NULL,
            prev bytea NOT NULL CHECK (octet_length(prev) = 32),
            link bytea NOT NULL CHECK (octet_length(link) = 32),
            chained_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE {schema}.event_chain_origin (
            only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
            backfill_through bigint NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now(),
            backfilled_at timestamptz
        );
        """,
    ),
    Migration(
        5,
        "replay: the versions of the projections rebuilt beside the live ones",
        # Version 1 is what the service built live (on record once replaced);
        # `partnerledger replay` builds 2, 3, ... in <schema>_v<N> (shared.replay,
        # ADR 0013).
        """
        CREATE TABLE {schema}.projection_versions (
            version int PRIMARY KEY,
            schema_name text NOT NULL,
            targets text[] NOT NULL,
            source text NOT NULL,
            as_of timestamptz,
            status text NOT NULL DEFAULT 'building',
            events bigint NOT NULL DEFAULT 0,
            started_at timestamptz NOT NULL DEFAULT now(),
            built_at timestamptz,
            promoted_at timestamptz,
            retired_schema text
        );
        """,
    ),
)
