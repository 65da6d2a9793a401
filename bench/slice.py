"""Benchmark of the foundation slice: partner registration (R2.1) over HTTP,
through the event store, the relay, Kafka and the kpi consumer.

Runs the real processes on embedded PostgreSQL and Tansu (or DATABASE_URL /
KAFKA_BOOTSTRAP_SERVERS), and measures in the same run the raw building
blocks, so every figure reads as a ratio:

- raw: eventsourcing save rate (one thread, no HTTP), batched asyncpg upserts;
- commands/s over HTTP at 32 connections, with p50/p95/p99 latency;
- latency at half that rate (paced);
- command -> projection-visible lag p50/p99 at a fixed rate (processed_at of
  the consumer transaction minus recorded_at of the event);
- peak RSS of each service process.

`--api-processes N` (N > 1) runs the partner service as in Kubernetes: N
processes serving the API only and one running its relay, consumers and
projections (`--role workers`), the load spread over the N.

Usage: .venv/bin/python -m bench.slice [--commands 3000] [--api-processes 1]
       [--out bench/results/latest.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import gc_pauses, machine, stop_infra
from bench.http_client import Pool, Spread
from partnerledger.embedded import free_port
from shared.db import connect
from shared.heap import settle
from tests.support.auth import auth
from tests.support.data import registration
from tests.support.infra import Infra, create_topics, drop_schemas, start_infra
from tests.support.processes import ServiceProcess
from tests.support.waiting import consumer_caught_up, wait_until


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(latencies_s: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in latencies_s]
    return {
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
    }


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


async def raw_save_rate(infra: Infra, count: int) -> float:
    """eventsourcing alone: register partners in one thread, no HTTP."""
    from services.partner.service import SPEC
    from shared.clock import SystemClock
    from shared.runtime import prepare_schema
    from tests.support.events import register

    settings = infra.settings()
    app = await prepare_schema(SPEC, settings, SystemClock())
    try:

        def work() -> float:
            started = time.perf_counter()
            for n in range(count):
                register(app, 10_000_000 + n)  # type: ignore[arg-type]
            return count / (time.perf_counter() - started)

        return await asyncio.to_thread(work)
    finally:
        app.close()
        await drop_schemas(settings)


async def raw_upsert_rate(infra: Infra, count: int) -> float:
    """asyncpg alone: batched upserts of projection-like rows."""
    settings = infra.settings()
    conn = await connect(settings.postgres, application_name="bench")
    table = f"bench_upsert_{uuid.uuid4().hex[:8]}"
    try:
        await conn.execute(
            f"CREATE TABLE {table} (id uuid PRIMARY KEY, name text, status text, at timestamptz)"
        )
        rows = [(uuid.uuid4(), f"p{n}", "candidate", datetime.now(UTC)) for n in range(count)]
        started = time.perf_counter()
        for i in range(0, count, 500):
            async with conn.transaction():
                await conn.executemany(
                    f"INSERT INTO {table} VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE"
                    " SET status = EXCLUDED.status, at = EXCLUDED.at",
                    rows[i : i + 500],
                )
        return count / (time.perf_counter() - started)
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()


async def drive(
    client: Pool | Spread,
    headers: dict[str, str],
    numbers: range,
    *,
    concurrency: int,
    rate: float | None = None,
) -> tuple[list[float], float, int]:
    """POSTs registrations; open loop at `rate`/s if given. Returns latencies,
    elapsed seconds and the count of non-201 answers."""
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in numbers:
        queue.put_nowait(n)
    started = time.perf_counter()

    async def one(n: int) -> None:
        nonlocal failures
        t0 = time.perf_counter()
        answer = await client.request(
            "POST", "/v1/partners", json_body=registration(n), headers=headers
        )
        latencies.append(time.perf_counter() - t0)
        if answer.status != 201:
            failures += 1

    if rate is None:

        async def worker() -> None:
            while not queue.empty():
                await one(queue.get_nowait())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    else:
        tasks = []
        for i, n in enumerate(numbers):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return latencies, time.perf_counter() - started, failures


async def projection_lag(kpi: ServiceProcess, infra: Infra, settings: Any) -> list[float]:
    conn = await connect(settings.postgres, application_name="bench")
    try:
        schema = settings.schema_of("kpi")
        rows = await conn.fetch(
            f'SELECT p.processed_at, e.registered_at FROM "{schema}".processed_events p'
            f' JOIN "{schema}".partners e ON e.last_event_id = p.event_id'
        )
        return [(r["processed_at"] - r["registered_at"]).total_seconds() for r in rows]
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="pl-bench-"))
    infra = await asyncio.to_thread(start_infra, tmp)
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    try:
        result["raw_eventsourcing_saves_per_s"] = round(await raw_save_rate(infra, 1000), 1)
        result["raw_asyncpg_upserts_per_s"] = round(await raw_upsert_rate(infra, 20_000), 1)
        ports = {f"{n}_port": free_port() for n in ("partner", "approval", "docs", "kpi")}
        settings = infra.settings(**ports, log_level="WARNING")  # type: ignore[arg-type]
        await create_topics(settings)
        ops = auth(settings, "operator", "director")
        env = infra.env(settings)
        if args.api_processes > 1:
            ports_of_apis = [free_port() for _ in range(args.api_processes)]
            apis = [
                ServiceProcess(
                    "partner",
                    {**env, "PL_PARTNER_PORT": str(port)},
                    port,
                    tmp / f"api-{port}",
                    role="api",
                    headers=ops,
                )
                for port in ports_of_apis
            ]
            partners = [*apis, ServiceProcess("partner", env, 0, tmp, role="workers")]
        else:
            apis = [ServiceProcess("partner", env, settings.partner_port, tmp, headers=ops)]
            partners = apis
        partner = apis[0]
        kpi = ServiceProcess("kpi", env, settings.kpi_port, tmp, headers=ops)
        for process in [*partners, kpi]:
            process.start()
        try:
            await asyncio.gather(*(api.wait_ready() for api in apis), kpi.wait_ready())
            pids = {}
            for process in [*partners, kpi]:
                assert process.process is not None
                suffix = f"-{process.port}" if process.role == "api" else ""
                pids[f"{process.name}-{process.role}{suffix}"] = process.process.pid
            result["topology"] = sorted(pids)
            result["idle_rss_mb"] = {name: rss_mb(pid) for name, pid in pids.items()}
            headers = auth(settings)
            client = Spread([Pool(api.url, headers) for api in apis])
            try:
                await drive(client, {}, range(0, 200), concurrency=8)  # warm-up
                # The load generator's own full collections (up to 110 ms)
                # would show as the services' latency: it settles like them.
                settle()
                lat, elapsed, failed = await drive(
                    client, {}, range(1000, 1000 + args.commands), concurrency=32
                )
                rate = args.commands / elapsed
                result["http_commands"] = {
                    "connections": 32,
                    "commands": args.commands,
                    "per_s": round(rate, 1),
                    "failed": failed,
                    **summary(lat),
                }
                half = rate / 2

                async def settled() -> bool:
                    return consumer_caught_up(
                        await partner.status(),
                        await kpi.status(),
                        f"{settings.consumer_group_of('kpi')}.projections",
                    )

                # Half the load in a steady state: the relay and the consumer
                # first drain what the full load left them (measured while
                # they still did, the machine was as busy as at full load).
                await wait_until(settled, within=300, what="projection caught up")
                lat, _, failed = await drive(
                    client, {}, range(100_000, 100_000 + int(half * 10)), concurrency=0, rate=half
                )
                result["http_at_half_rate"] = {
                    "per_s": round(half, 1),
                    "failed": failed,
                    **summary(lat),
                }

                await wait_until(settled, within=300, what="projection caught up")
                # Lag at a fixed rate: the goal's (at most 80% of what was
                # measured above), then half the measured rate.
                lag_rates = {
                    "command_to_projection": min(args.lag_rate, rate * 0.8),
                    "command_to_projection_at_half_rate": half,
                }
                for n, (key, lag_rate) in enumerate(lag_rates.items()):
                    conn = await connect(settings.postgres, application_name="bench")
                    await conn.execute(f'TRUNCATE "{settings.schema_of("kpi")}".processed_events')
                    await conn.close()
                    first = 200_000 + 100_000 * n
                    await drive(
                        client,
                        {},
                        range(first, first + int(lag_rate * 10)),
                        concurrency=0,
                        rate=lag_rate,
                    )
                    await wait_until(settled, within=300, what="projection caught up")
                    lags = await projection_lag(kpi, infra, settings)
                    result[key] = {
                        "rate_per_s": round(lag_rate, 1),
                        "events": len(lags),
                        **summary(lags),
                    }
            finally:
                await client.close()
            result["peak_rss_mb"] = {name: peak_rss_mb(pid) for name, pid in pids.items()}
            result["gc_pauses"] = {
                f"{p.name}-{p.role}-{p.port}": await gc_pauses(p.url) for p in [*apis, kpi]
            }
            result["ratios"] = {
                "http_vs_raw_save": round(
                    result["http_commands"]["per_s"] / result["raw_eventsourcing_saves_per_s"], 2
                ),
            }
        finally:
            for process in [*partners, kpi]:
                process.stop()
            await drop_schemas(settings)
    finally:
        stop_infra(infra)
    return result


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=3000)
    parser.add_argument("--lag-rate", type=float, default=200.0)
    parser.add_argument("--api-processes", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.json"))
    args = parser.parse_args()
    result = asyncio.run(main(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    cli()
