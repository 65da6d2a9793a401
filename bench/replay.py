"""Benchmark of `partnerledger replay` (issue 7): N stored events rebuilt into
a new version of the projections, with the raw building blocks measured in
the same run so the figures read as ratios.

The partner service's store is filled with N real events (partners
registered and evaluated through the domain model and the application's
own save, 500 events per transaction), then:

- raw: reading and decoding the store into envelopes (`--dump-events`, what
  the relay does) and COPY of N rows into a table of the same database;
- `partner.views` replayed from its own store, in the partner process;
- `kpi.projections` (facts, partners, the audit trail) replayed from the
  partner store, whose process decodes it into the kpi process.

Each replay prints events/s and the peak memory of its process.

Usage: .venv/bin/python -m bench.replay [--events 1000000] [--out bench/results/replay.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import stop_infra
from services.approval.service import SPEC as APPROVAL
from services.docs.service import SPEC as DOCS
from services.kpi.service import SPEC as KPI
from services.partner.application import PartnerApplication
from services.partner.domain.partner import CRITERIA, Partner
from services.partner.service import SPEC as PARTNER
from shared.clock import SystemClock
from shared.db import connect
from shared.domain import Actor, CommandContext, command_context
from shared.runtime import prepare_schema
from shared.settings import Settings
from tests.support.data import uscc
from tests.support.infra import Infra, create_topics, drop_schemas, start_infra

EVENTS_PER_PARTNER = 10  # registered, then evaluated nine times
PARTNERS_PER_SAVE = 50  # 500 events per transaction: larger batches stall psycopg's pipeline


def generate(app: PartnerApplication, events: int) -> float:
    """Stores `events` events; returns the seconds it took."""
    started = time.perf_counter()
    partners = events // EVENTS_PER_PARTNER
    scores = dict.fromkeys(CRITERIA, 4)
    for first in range(0, partners, PARTNERS_PER_SAVE):
        ctx = CommandContext(actor=Actor("bench.director", "director"), correlation_id=uuid.uuid4())
        batch = []
        with command_context(ctx):
            for n in range(first, min(first + PARTNERS_PER_SAVE, partners)):
                partner = Partner.register(
                    name=f"福州云栈信息技术有限公司{n}",
                    unified_social_credit_code=uscc(n + 1),
                    contact={
                        "name": "林晓",
                        "email": f"lin{n}@example.com",
                        "phone": "13800138000",
                    },
                    service_categories=["运维外包", "软件开发"],
                )
                for _ in range(EVENTS_PER_PARTNER - 1):
                    partner.evaluate(
                        evaluation_id=uuid.uuid4(),
                        scores=scores,
                        qualifications=[],
                        summary="季度尽职调查",
                    )
                batch.append(partner)
        app.save_in(ctx, *batch)
    return time.perf_counter() - started


async def raw_copy_rate(settings: Settings, rows: int) -> float:
    """Rows/s of COPY into a table shaped like processed_events (same database)."""
    conn = await connect(settings.postgres, application_name="bench-raw")
    try:
        await conn.execute(
            "CREATE TEMP TABLE raw_copy (consumer_group text, event_id uuid, source text,"
            " position bigint, PRIMARY KEY (consumer_group, event_id))"
        )
        records = [("bench", uuid.uuid4(), "partner.events", i) for i in range(rows)]
        started = time.perf_counter()
        for i in range(0, rows, 5000):
            await conn.copy_records_to_table("raw_copy", records=records[i : i + 5000])
        return rows / (time.perf_counter() - started)
    finally:
        await conn.close()


def dump_rate(env: dict[str, str], events: int) -> tuple[float, float]:
    """Events/s and seconds of the partner process decoding its whole store."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "services.partner", "--dump-events"],
        env=env,
        stdout=subprocess.PIPE,
        check=True,
    )
    seconds = time.perf_counter() - started
    lines = proc.stdout.count(b"\n") - 1
    assert lines == events, (lines, events)
    return events / seconds, seconds


def replay(env: dict[str, str], service: str, target: str, report: Path) -> dict[str, Any]:
    subprocess.run(
        [
            sys.executable, "-m", f"services.{service}", "--replay", "--targets", target,
            "--no-progress", "--batch-size", "2000", "--report", str(report),
        ],
        env=env,
        check=True,
    )  # fmt: skip
    figures: dict[str, Any] = json.loads(report.read_text())
    return figures


async def run(infra: Infra, events: int) -> dict[str, Any]:
    tmp = infra.tmp
    settings = infra.settings(prefix=f"bench{uuid.uuid4().hex[:6]}_")
    try:
        await create_topics(settings)
        app = await prepare_schema(PARTNER, settings, SystemClock())
        assert isinstance(app, PartnerApplication)
        for spec in (APPROVAL, DOCS, KPI):  # the kpi replay asks every producer
            other = await prepare_schema(spec, settings, SystemClock())
            other.close()
        print(f"storing {events:,} events ...", flush=True)
        seconds = await asyncio.to_thread(generate, app, events)
        app.close()
        stored = events // EVENTS_PER_PARTNER * EVENTS_PER_PARTNER
        print(f"stored {stored:,} events in {seconds:.0f}s ({stored / seconds:,.0f}/s)")
        env = infra.env(settings)
        read_rate, read_s = dump_rate(env, stored)
        print(f"raw: store read + decode {read_rate:,.0f} events/s")
        copy_rate = await raw_copy_rate(settings, min(stored, 200_000))
        print(f"raw: COPY {copy_rate:,.0f} rows/s")
        views = replay(env, "partner", "views", tmp / "views.json")
        kpi = replay(env, "kpi", "projections", tmp / "kpi.json")
        result = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "events": stored,
            "store_save_events_per_s": round(stored / seconds),
            "raw": {
                "store_read_decode_events_per_s": round(read_rate),
                "store_read_decode_s": round(read_s, 1),
                "copy_rows_per_s": round(copy_rate),
            },
            "replay": {"partner.views": views, "kpi.projections": kpi},
        }
        for name, figures in result["replay"].items():
            run_ = next(iter(figures["projections"].values()))
            print(
                f"replay {name}: {run_['events']:,} events in {run_['seconds']}s ="
                f" {run_['events_per_s']:,} events/s; peak memory {figures['peak_rss_mb']} MB"
            )
        return result
    finally:
        await drop_schemas(settings)
        conn = await connect(settings.postgres, application_name="bench")
        try:
            for row in await conn.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1",
                settings.schema_prefix + "%",
            ):
                await conn.execute(f'DROP SCHEMA "{row["nspname"]}" CASCADE')
        finally:
            await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/replay.json"))
    args = parser.parse_args()
    infra = start_infra(Path(tempfile.mkdtemp(prefix="pl-bench-replay-")))
    try:
        result = asyncio.run(run(infra, args.events))
    finally:
        stop_infra(infra)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
