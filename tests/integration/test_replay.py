"""`partnerledger replay` (issue 7, R4.5 audits, ADR 0013), run as the real
command against the four real services of a year's scenario (the one of
test_kpi_rebuild: every kind of KPI fact, staff, approvals, documents,
meetings), with their relays, consumers and projectors running:

- a rebuild of every replayable projection from the event stores, and of the
  kpi one from the topics, equals the live tables (`--verify`, exit 0), while
  nothing else changes: no live table, no relay position, no topic;
- rows edited behind the services' back are found and shown (exit 1), and
  `--promote` puts the rebuilt tables live: the views read them, the live
  consumer and projectors go on from where the version stands and count a new
  event once, and a later verify is clean again;
- `--as-of` builds the state at that moment; it is neither verified against
  the live state nor promoted; reacting consumers are never replayed.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import date

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.clock import ManualClock
from shared.db import connect, quote_ident
from shared.settings import SERVICE_NAMES, Settings
from tests.integration.test_kpi_rebuild import (
    department_meeting,
    emergency,
    local,
    project_under_way,
    settle_everything,
    stack,
)
from tests.support.infra import Infra
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

#: Every replayable projection and the tables it writes (the services' specs say so).
TABLES = {
    "kpi": (
        "fact_events", "facts", "projects", "aggregate_projects", "partners",
        "partner_counts", "audit_trail", "audit_trail_projects",
        "staff", "staff_changes", "trainings", "training_years",
    ),
    "partner": ("partner_view", "project_view"),
    "approval": ("approval_view", "approval_steps", "emergency_view", "delegation_view"),
    "docs": (
        "document_view", "document_versions", "document_reads", "schedule_view",
        "report_periods", "meeting_view", "resolution_view",
    ),
}  # fmt: skip


async def replay(infra: Infra, settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The command, in a thread: the services of this test run on this
    event loop, and a replay's `--verify` or `--promote` waits for their
    writers' transactions to end (a blocked loop never ends one that was
    open when the command started: it waited out the timeout once)."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "partnerledger", "replay", "--no-progress", *args],
        env=infra.env(settings),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def fingerprint(settings: Settings) -> dict[str, str]:
    """An md5 of every table of the four live schemas (the replay's own
    registry aside) and of every relay position."""
    conn = await connect(settings.postgres, application_name="tests")
    try:
        out: dict[str, str] = {}
        for name in SERVICE_NAMES:
            schema = settings.schema_of(name)
            for row in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = $1"
                " AND tablename <> 'projection_versions'",
                schema,
            ):
                table = f"{quote_ident(schema)}.{quote_ident(row['tablename'])}"
                out[table] = await conn.fetchval(
                    f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                    f" FROM {table} t"
                )
        return out
    finally:
        await conn.close()


async def drop_versions(settings: Settings) -> None:
    conn = await connect(settings.postgres, application_name="tests")
    try:
        for row in await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1 || '%\\_v%'",
            settings.schema_prefix,
        ):
            await conn.execute(f"DROP SCHEMA {quote_ident(row['nspname'])} CASCADE")
    finally:
        await conn.close()


async def topic_ends(settings: Settings) -> dict[str, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        parts = [
            TopicPartition(settings.topic_of(s), p)
            for s in SERVICE_NAMES
            for p in sorted(consumer.partitions_for_topic(settings.topic_of(s)) or ())
        ]
        ends = await consumer.end_offsets(parts)
        return {f"{tp.topic}/{tp.partition}": end for tp, end in ends.items()}
    finally:
        await consumer.stop()


def equal_lines(output: str) -> set[str]:
    return {line.split(":")[0] for line in output.splitlines() if ": equal (" in line}


async def test_replay_rebuilds_verifies_and_promotes_every_projection_R4_5(
    infra: Infra, settings: Settings
) -> None:
    """R4.5 (audits replay anything), R6.1, R3.5: the replay command over a
    year's events of the four real services."""
    clock = ManualClock(local(date(2026, 3, 2), 9))
    kpi, partner = (quote_ident(settings.schema_of(n)) for n in ("kpi", "partner"))
    try:
        async with stack(settings, clock) as s:
            project_id = await project_under_way(s)
            middle = clock.now()
            await department_meeting(s)
            await emergency(s, project_id)
            s.at(date(2026, 5, 11), 9)
            await settle_everything(s)
            await wait_until(s.quiet, within=60, what="quiet")

        # -- the services stopped: a replay changes nothing and publishes nothing
        before = await fingerprint(settings)
        ends = await topic_ends(settings)

        # -- every projection from the stores, verified: equal, nothing else moved
        done = await replay(infra, settings, "--verify")
        assert done.returncode == 0, done.stdout + done.stderr
        expected = {
            f"{settings.schema_of(svc)}.{table}"
            for svc, tables in TABLES.items()
            for table in tables
        }
        assert equal_lines(done.stderr) == expected, done.stderr
        assert "events/s" in done.stderr and "peak memory" in done.stderr
        assert await fingerprint(settings) == before, "a replay changed a live table"
        assert await topic_ends(settings) == ends, "a replay published something"

        # -- the kpi projection from the topics
        done = await replay(infra, settings, "kpi.projections", "--source", "kafka", "--verify")
        assert done.returncode == 0, done.stdout + done.stderr
        assert len(equal_lines(done.stderr)) == 8, done.stderr

        # -- rows edited behind the services' back are found and shown
        conn = await connect(settings.postgres, application_name="tests")
        try:
            edited = await conn.fetchval(
                f"UPDATE {kpi}.partners SET name = 'tampered' WHERE partner_id ="
                f" (SELECT partner_id FROM {kpi}.partners ORDER BY partner_id LIMIT 1)"
                " RETURNING partner_id"
            )
            await conn.execute(
                f"DELETE FROM {partner}.project_view WHERE project_id = $1", project_id
            )
        finally:
            await conn.close()
        done = await replay(infra, settings, "kpi", "partner.views", "--verify", "--wait", "3")
        assert done.returncode == 1, done.stdout + done.stderr
        err = done.stderr
        assert f"{settings.schema_of('kpi')}.partners: DIFFERS" in err, err
        assert f"changed (partner_id={edited}): name: live 'tampered' | rebuilt" in err, err
        assert f"{settings.schema_of('partner')}.project_view: DIFFERS" in err, err
        assert f"only rebuilt (project_id={project_id})" in err, err

        async with stack(settings, clock) as s:
            kpi_pool = s.services["kpi"].runtime.pool
            partner_pool = s.services["partner"].runtime.pool
            flow = s.flow()
            # -- promoted: the rebuilt tables are live, the edited ones retired
            done = await replay(infra, settings, "kpi", "partner.views", "--promote")
            assert done.returncode == 0, done.stdout + done.stderr
            assert "is live" in done.stderr
            name = await kpi_pool.fetchval(
                "SELECT name FROM partners WHERE partner_id = $1", edited
            )
            assert name != "tampered"
            retired = quote_ident(f"{settings.schema_of('kpi')}_v1_retired")
            assert (
                await kpi_pool.fetchval(
                    f"SELECT name FROM {retired}.partners WHERE partner_id = $1", edited
                )
                == "tampered"
            )
            assert (
                await partner_pool.fetchval(
                    "SELECT count(*) FROM project_view WHERE project_id = $1", project_id
                )
                == 1
            )
            # The views read the promoted tables (recreated with them).
            assert await kpi_pool.fetchval("SELECT count(*) FROM kpi_compliance") > 0
            versions = await kpi_pool.fetch(
                "SELECT version, status FROM projection_versions ORDER BY version"
            )
            statuses = {r["version"]: r["status"] for r in versions}
            assert statuses[1] == "retired" and "promoted" in statuses.values(), statuses

            # -- the live writers go on from the version: a new partner, counted once
            new_partner = await flow.qualified_partner(7)
            await wait_until(s.quiet, within=60, what="the new partner everywhere")
            await wait_until(
                lambda: _has_partner(kpi_pool, new_partner), within=30, what="kpi has it"
            )
            assert (
                await kpi_pool.fetchval(
                    "SELECT count(*) FROM partners WHERE partner_id::text = $1", new_partner
                )
                == 1
            )
            assert (
                await partner_pool.fetchval(
                    "SELECT count(*) FROM partner_view WHERE partner_id::text = $1", new_partner
                )
                == 1
            )
            done = await replay(infra, settings, "--verify")
            assert done.returncode == 0, done.stdout + done.stderr

            # -- as of a moment: the state then; never verified or promoted
            done = await replay(infra, settings, "kpi.projections", "--as-of", middle.isoformat())
            assert done.returncode == 0, done.stdout + done.stderr
            version = await kpi_pool.fetchval(
                "SELECT max(version) FROM projection_versions WHERE as_of IS NOT NULL"
            )
            then = quote_ident(f"{settings.schema_of('kpi')}_v{version}")
            late = await kpi_pool.fetchval(
                f"SELECT count(*) FROM {then}.fact_events WHERE recorded_at > $1", middle
            )
            assert late == 0
            assert await kpi_pool.fetchval(f"SELECT count(*) FROM {then}.fact_events") < (
                await kpi_pool.fetchval("SELECT count(*) FROM fact_events")
            )
            refused = await replay(
                infra, settings, "kpi", "--as-of", middle.isoformat(), "--verify"
            )
            assert refused.returncode == 2 and "neither verified" in refused.stderr

            # -- discarded; reacting consumers are never replayed
            done = await replay(infra, settings, "kpi", "--discard", str(version))
            assert done.returncode == 0, done.stdout + done.stderr
            assert not await kpi_pool.fetchval(
                "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
                f"{settings.schema_of('kpi')}_v{version}",
            )
            # Version 1 (the tables the services built) is dropped, never the live schema.
            done = await replay(infra, settings, "kpi", "--discard", "1")
            assert done.returncode == 0, done.stdout + done.stderr
            assert await kpi_pool.fetchval("SELECT count(*) FROM kpi_events") > 0
            assert not await kpi_pool.fetchval(
                "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
                f"{settings.schema_of('kpi')}_v1_retired",
            )
            refused = await replay(infra, settings, "approval.requests")
            assert refused.returncode == 2
            assert "never replayed" in refused.stderr
    finally:
        await drop_versions(settings)


async def _has_partner(pool: asyncpg.Pool, partner_id: str) -> bool:
    found = await pool.fetchval(
        "SELECT count(*) FROM partners WHERE partner_id::text = $1", partner_id
    )
    return bool(found)
