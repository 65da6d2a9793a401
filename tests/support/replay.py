"""Rebuild of the kpi projections from the event stores, for comparison with
the live ones (DESIGN.md section 2, step 5: replay; ADR 0010: the facts are a
pure mapping of the events). Used by tests/integration/test_kpi_rebuild.py
(services in process) and tests/e2e/test_faults.py (service processes).

Every stored event of each service is read back the way the relay reads it
(shared/relay.py: notification -> domain event -> catalogue envelope ->
JSON), parsed the way the consumer parses it, and mapped with `facts_of` +
`store` into a freshly migrated kpi schema.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.kpi.fact_store import store
from services.kpi.facts import facts_of
from services.kpi.metrics import METRICS
from services.kpi.readings import create_views
from services.kpi.service import SPEC as KPI
from shared.db import BASE_MIGRATIONS, connect, migrate, quote_ident
from shared.envelope import EventEnvelope
from shared.eventstore import LedgerApplication
from shared.policy import Policy
from shared.relay import Relay
from shared.settings import Settings

SOURCES = ("partner", "approval", "docs", "kpi")
TABLES = ("fact_events", "facts", "projects", "aggregate_projects")


@dataclass
class Tables:
    """The rows of each table and view, as a multiset (order-independent)."""

    columns: dict[str, tuple[str, ...]]
    rows: dict[str, Counter[tuple[Any, ...]]]

    def values(self, table: str, *names: str) -> list[tuple[Any, ...]]:
        at = [self.columns[table].index(n) for n in names]
        return [tuple(row[i] for i in at) for row in self.rows[table].elements()]


async def snapshot(conn: Any, schema: str) -> Tables:
    """The kpi fact tables and every kpi_<metric> view of `schema`."""
    q = quote_ident(schema)
    tables = Tables({}, {})
    for table in (*TABLES, *(f"kpi_{key}" for key in METRICS)):
        statement = await conn.prepare(f"SELECT * FROM {q}.{table}")
        tables.columns[table] = tuple(a.name for a in statement.get_attributes())
        tables.rows[table] = Counter(tuple(r.values()) for r in await statement.fetch())
    return tables


async def stored_envelopes(application: LedgerApplication) -> list[EventEnvelope]:
    """Every event in the service's store, as its relay publishes it and the
    consumer parses it, in notification order."""
    return list((await stored_notifications(application)).values())


async def stored_notifications(application: LedgerApplication) -> dict[int, EventEnvelope]:
    """Notification id (the relay's position) -> the event stored there, as
    published. Ids may have gaps (a transaction rolled back after it drew one)."""
    relay = Relay(application)
    out: dict[int, EventEnvelope] = {}
    after = 0
    while batch := await asyncio.to_thread(relay._read_batch, after):
        for item in batch:
            out[item.notification_id] = EventEnvelope.parse_message(item.value)
        after = batch[-1].notification_id
    return out


async def rebuild_kpi(
    settings: Settings,
    envelopes: Mapping[str, list[EventEnvelope]],
    policy: Policy,
    schema: str,
) -> dict[str, int]:
    """A fresh kpi schema `schema` filled from the events of each source;
    returns the number of events per source."""
    conn = await connect(settings.postgres, application_name="kpi-rebuild")
    counts: dict[str, int] = {}
    try:
        await migrate(conn, schema, [*BASE_MIGRATIONS, *KPI.migrations])
        await conn.execute(f"SET search_path TO {quote_ident(schema)}")
        await create_views(conn, policy.time.zone)
        async with conn.transaction():  # one transaction: the same rows, much faster
            for source in SOURCES:
                counts[source] = len(envelopes[source])
                for envelope in envelopes[source]:
                    facts = facts_of(source, envelope, policy)
                    await store(conn, source, envelope, facts, policy)
    finally:
        await conn.close()
    return counts


async def drop_schema(settings: Settings, schema: str) -> None:
    conn = await connect(settings.postgres, application_name="tests")
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
    finally:
        await conn.close()


def differences(live: Tables, rebuilt: Tables) -> dict[str, dict[str, list[str]]]:
    return {
        table: {
            "live only": sorted(map(repr, rows - rebuilt.rows[table])),
            "rebuilt only": sorted(map(repr, rebuilt.rows[table] - rows)),
        }
        for table, rows in live.rows.items()
        if rows != rebuilt.rows[table]
    }
