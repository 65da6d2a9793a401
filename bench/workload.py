"""Benchmark of the realistic workload (issue 9): a year of outsourcing
activity driven through the HTTP APIs of the four real service processes.

Runs `partner`, `approval`, `docs` and `kpi` as processes on embedded
PostgreSQL and Tansu (or DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS), loads the
demo's story (partnerledger/demo.py: partners, procurement approvals,
contracts, kickoffs, milestones, tasks, reviews, reports, minutes,
complaints, incidents) with concurrent asyncio clients, times every HTTP call
with an httpx event hook, and measures in the same run the raw building
blocks of bench/slice.py, so every figure reads as a ratio:

- commands/s per service: 2xx non-GET requests per second of the load's wall time;
- p50/p95/p99 latency per endpoint class (method and route template);
- command -> projection-visible lag p50/p99 for the kpi consumers
  (processed_events.processed_at minus the event's recorded_at);
- events stored per service (counted in the stores), idle and peak RSS per process;
- CPU seconds per service process during the load (and per command), the
  machine's busy share, and the load generator's own CPU (it shares the 2 cores);
- raw: eventsourcing save rate (one thread, no HTTP), batched asyncpg upserts.

Usage: .venv/bin/python -m bench.workload [--partners 50 --projects 200 --concurrency 16]
       [--small] [--out bench/results/workload.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from bench.common import gc_pauses, machine, stop_infra
from bench.profile import cpu_seconds, machine_busy_s
from bench.slice import peak_rss_mb, raw_save_rate, raw_upsert_rate, rss_mb, summary
from partnerledger.demo import DemoOptions, run_demo
from partnerledger.embedded import free_port
from shared.db import connect, quote_ident
from shared.heap import settle
from shared.settings import SERVICE_NAMES, Settings
from tests.support.auth import auth
from tests.support.infra import Infra, create_topics, drop_schemas, start_infra
from tests.support.processes import ServiceProcess
from tests.support.waiting import consumer_caught_up, wait_until

#: About 100,000 events (issue 9): the demo records about 150 events per project.
FULL = {"partners": 50, "projects": 650, "concurrency": 16}
SMALL = {"partners": 6, "projects": 12, "concurrency": 4}
T0 = "bench_t0"
LAG_WINDOW_S = 10  # the request extension that carries the send time
ID_SEGMENT = re.compile(
    r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|\d+)$"
)


# -- endpoint classes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    template: str
    pattern: re.Pattern[str]
    literal_segments: int


def routes_of(openapi: dict[str, Any]) -> list[Route]:
    """The service's route templates, most specific first."""
    found = []
    for template in openapi.get("paths", {}):
        parts = [
            "[^/]+" if p.startswith("{") and p.endswith("}") else re.escape(p)
            for p in template.split("/")
        ]
        literal = sum(1 for p in template.split("/") if p and not p.startswith("{"))
        found.append(Route(template, re.compile("/".join(parts) + "$"), literal))
    return sorted(found, key=lambda r: (-r.literal_segments, r.template))


def template_of(routes: list[Route], path: str) -> str:
    for route in routes:
        if route.pattern.match(path):
            return route.template
    # Not in the OpenAPI (e.g. a hidden route): ids grouped by their shape.
    return "/".join("{id}" if ID_SEGMENT.match(p) else p for p in path.split("/"))


# -- the timing hooks ------------------------------------------------------------------------------


@dataclass
class Calls:
    """Every HTTP call of the load, as (service, method, path, status, seconds)."""

    service_by_port: dict[int, str]
    records: list[tuple[str, str, str, int, float]] = field(default_factory=list)
    transport_errors: int = 0

    async def on_request(self, request: httpx.Request) -> None:
        request.extensions[T0] = time.perf_counter()

    async def on_response(self, response: httpx.Response) -> None:
        await response.aread()  # the body is part of the call's latency
        request = response.request
        elapsed = time.perf_counter() - request.extensions[T0]
        service = self.service_by_port.get(request.url.port or 0, "?")
        self.records.append(
            (service, request.method, request.url.path, response.status_code, elapsed)
        )

    def hooks(self) -> dict[str, list[Any]]:
        return {"request": [self.on_request], "response": [self.on_response]}


def analyse(
    calls: Calls, routes: dict[str, list[Route]], wall_s: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(commands/s per service, latency per endpoint class per service)."""
    commands: dict[str, int] = defaultdict(int)
    rejected: dict[str, int] = defaultdict(int)
    by_class: dict[tuple[str, str], list[float]] = defaultdict(list)
    status_by_class: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for service, method, path, status, seconds in calls.records:
        endpoint = f"{method} {template_of(routes.get(service, []), path)}"
        by_class[(service, endpoint)].append(seconds)
        status_by_class[(service, endpoint)][f"{status // 100}xx"] += 1
        if method != "GET":
            if 200 <= status < 300:
                commands[service] += 1
            else:
                rejected[service] += 1
    per_service: dict[str, Any] = {}
    for service in SERVICE_NAMES:
        per_service[service] = {
            "commands": commands[service],
            "per_s": round(commands[service] / wall_s, 1),
            "non_2xx_non_get": rejected[service],
        }
    total = sum(commands.values())
    per_service["all"] = {
        "commands": total,
        "per_s": round(total / wall_s, 1),
        "non_2xx_non_get": sum(rejected.values()),
    }
    latency: dict[str, Any] = {}
    for (service, endpoint), values in sorted(by_class.items()):
        latency.setdefault(service, {})[endpoint] = {
            "calls": len(values),
            **summary(values),
            "max_ms": round(max(values) * 1000, 2),
            "status": dict(sorted(status_by_class[(service, endpoint)].items())),
        }
    return per_service, latency


# -- the stores and the kpi consumers --------------------------------------------------------------


async def events_stored(settings: Settings) -> dict[str, int]:
    conn = await connect(settings.postgres, application_name="bench")
    try:
        counts = {}
        for name in SERVICE_NAMES:
            table = f"{quote_ident(settings.schema_of(name))}.{quote_ident(name + '_events')}"
            counts[name] = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        counts["all"] = sum(counts.values())
        return counts
    finally:
        await conn.close()


async def projection_lag(settings: Settings) -> dict[str, Any]:
    """Per kpi consumer group: processed_at (the consumer's transaction)
    minus the event's recorded_at (the kpi audit trail keeps every event with
    its recorded_at), overall and by source service; and how fast the group
    applied: mean over the span of its processed_at, and its busiest second."""
    schema = quote_ident(settings.schema_of("kpi"))
    conn = await connect(settings.postgres, application_name="bench")
    try:
        rows = await conn.fetch(
            "SELECT p.consumer_group, t.service, p.processed_at, t.recorded_at"
            f" FROM {schema}.processed_events p JOIN {schema}.audit_trail t USING (event_id)"
        )
    finally:
        await conn.close()
    groups: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        groups[r["consumer_group"].removeprefix(settings.schema_prefix)].append(r)
    result: dict[str, Any] = {}
    for group, found in sorted(groups.items()):
        lags = [(r["processed_at"] - r["recorded_at"]).total_seconds() for r in found]
        by_source: dict[str, list[float]] = defaultdict(list)
        for r, lag in zip(found, lags, strict=True):
            by_source[r["service"]].append(lag)
        processed = sorted(r["processed_at"] for r in found)
        span = (processed[-1] - processed[0]).total_seconds()
        per_second: dict[int, int] = defaultdict(int)
        for moment in processed:
            per_second[int(moment.timestamp())] += 1
        started = min(r["recorded_at"] for r in found)
        windows: dict[int, list[float]] = defaultdict(list)
        for r, lag in zip(found, lags, strict=True):
            windows[int((r["recorded_at"] - started).total_seconds() // LAG_WINDOW_S)].append(lag)
        result[group] = {
            "events": len(lags),
            **summary(lags),
            # Lag by when the event was recorded: a backlog grows, a fixed delay stays.
            f"by_{LAG_WINDOW_S}s_window": [
                {"from_s": w * LAG_WINDOW_S, "events": len(v), **summary(v)}
                for w, v in sorted(windows.items())
            ],
            "by_source": {
                source: {"events": len(values), **summary(values)}
                for source, values in sorted(by_source.items())
            },
            "applied_per_s_mean": round(len(lags) / span, 1) if span > 0 else None,
            "applied_in_busiest_second": max(per_second.values()),
        }
    return result


def kpi_caught_up(statuses: dict[str, dict[str, Any]]) -> bool:
    """Every relay has published its store, and every kpi consumer group has
    applied every record of every topic it reads."""
    for status in statuses.values():
        if status["relay"]["position"] != status["relay"]["head"]:
            return False
    for group, info in statuses["kpi"]["consumers"].items():
        stored = info.get("stored_offsets", {})
        reads = " ".join([*stored, *map(str, info.get("assigned", {}))])
        for status in statuses.values():
            relay = status["relay"]
            if f"{relay['topic']}/" not in reads and relay["topic"] not in reads:
                continue
            if not consumer_caught_up(status, statuses["kpi"], group):
                return False
    return True


# -- the run ---------------------------------------------------------------------------------------


def options_of(args: argparse.Namespace) -> DemoOptions:
    sizes = SMALL if args.small else FULL
    return DemoOptions(
        seed=args.seed,
        partners=args.partners or sizes["partners"],
        projects=args.projects or sizes["projects"],
        concurrency=args.concurrency or sizes["concurrency"],
        months=args.months,
    )


async def main(args: argparse.Namespace) -> dict[str, Any]:
    options = options_of(args)
    tmp = Path(tempfile.mkdtemp(prefix="pl-workload-"))
    infra: Infra = await asyncio.to_thread(start_infra, tmp)
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "workload": {
            "partners": options.partners,
            "projects": options.projects,
            "concurrency": options.concurrency,
            "months": options.months,
            "seed": options.seed,
        },
    }
    try:
        result["raw_eventsourcing_saves_per_s"] = round(await raw_save_rate(infra, 1000), 1)
        result["raw_asyncpg_upserts_per_s"] = round(await raw_upsert_rate(infra, 20_000), 1)
        ports = {f"{n}_port": free_port() for n in SERVICE_NAMES}
        settings = infra.settings(**ports, log_level="WARNING")  # type: ignore[arg-type]
        await create_topics(settings)
        ops = auth(settings, "operator", "director")
        env = infra.env(settings)
        procs = {
            name: ServiceProcess(name, env, settings.port_of(name), tmp, headers=ops)
            for name in SERVICE_NAMES
        }
        for proc in procs.values():
            proc.start()
        try:
            await asyncio.gather(*(p.wait_ready() for p in procs.values()))
            pids = {}
            for name, proc in procs.items():
                assert proc.process is not None
                pids[name] = proc.process.pid
            result["idle_rss_mb"] = {name: rss_mb(pid) for name, pid in pids.items()}
            settle()  # the load generator's own collections must not read as latency
            routes: dict[str, list[Route]] = {}
            async with httpx.AsyncClient(timeout=10) as client:
                for name, proc in procs.items():
                    routes[name] = routes_of((await client.get(f"{proc.url}/openapi.json")).json())

            calls = Calls({settings.port_of(n): n for n in SERVICE_NAMES})
            console = Console(stderr=True, width=120)
            cpu_before = {name: sum(cpu_seconds(pid)) for name, pid in pids.items()}
            busy_before = machine_busy_s()
            own_before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            demo_exit = await asyncio.to_thread(
                run_demo, settings, options, console, event_hooks=calls.hooks()
            )
            wall = time.perf_counter() - started
            own_after = resource.getrusage(resource.RUSAGE_SELF)
            busy_after = machine_busy_s()
            cpu_load = {
                name: round(sum(cpu_seconds(pid)) - cpu_before[name], 1)
                for name, pid in pids.items()
            }
            statuses: dict[str, dict[str, Any]] = {}

            async def settled() -> bool:
                fetched = await asyncio.gather(*(p.status() for p in procs.values()))
                statuses.update(zip(procs, fetched, strict=True))
                return kpi_caught_up(statuses)

            await wait_until(settled, within=600, what="kpi projections caught up")
            drained = time.perf_counter() - started - wall

            per_service, latency = analyse(calls, routes, wall)
            result["load"] = {
                "wall_s": round(wall, 1),
                "drain_after_load_s": round(drained, 1),
                "http_calls": len(calls.records),
                "demo_exit_code": demo_exit,
            }
            result["commands_per_s"] = per_service
            result["events_stored"] = await events_stored(settings)
            result["events_stored"]["per_s_of_wall"] = round(
                result["events_stored"]["all"] / wall, 1
            )
            own = (own_after.ru_utime + own_after.ru_stime) - (
                own_before.ru_utime + own_before.ru_stime
            )
            busy = busy_after[0] - busy_before[0]
            result["cpu_during_load"] = {
                "service_s": cpu_load,
                # A service's CPU includes its relay and consumers: per command
                # where it takes commands, and the kpi's per event it applied
                # (it takes almost none).
                "service_ms_per_command": {
                    name: round(1000 * cpu_load[name] / per_service[name]["commands"], 2)
                    for name in SERVICE_NAMES
                    if per_service[name]["commands"] >= 100
                },
                "kpi_ms_per_event_applied": round(
                    1000 * cpu_load["kpi"] / max(result["events_stored"]["all"], 1), 2
                ),
                "load_generator_s": round(own, 1),
                "machine_busy_share": round(busy / (busy_after[1] - busy_before[1]), 3),
            }
            result["latency_by_endpoint"] = latency
            result["command_to_projection"] = await projection_lag(settings)
            result["dead_letters_open"] = {
                name: status.get("dead_letters_open") for name, status in statuses.items()
            }
            result["peak_rss_mb"] = {name: peak_rss_mb(pid) for name, pid in pids.items()}
            result["gc_pauses"] = {name: await gc_pauses(p.url) for name, p in procs.items()}
            raw_save = result["raw_eventsourcing_saves_per_s"]
            result["ratios"] = {
                f"{name}_commands_vs_raw_save": round(per_service[name]["per_s"] / raw_save, 3)
                for name in [*SERVICE_NAMES, "all"]
            }
            result["ratios"]["events_stored_vs_raw_save"] = round(
                result["events_stored"]["per_s_of_wall"] / raw_save, 3
            )
            for group, lag in result["command_to_projection"].items():
                result["ratios"][f"{group}_busiest_second_vs_raw_upsert"] = round(
                    lag["applied_in_busiest_second"] / result["raw_asyncpg_upserts_per_s"], 4
                )
        finally:
            for proc in procs.values():
                proc.stop()
            await drop_schemas(settings)
    finally:
        stop_infra(infra)
    return result


def report(result: dict[str, Any]) -> str:
    """The figures as text (the JSON has them all)."""
    raw_save = result["raw_eventsourcing_saves_per_s"]
    w = result["workload"]
    load = result["load"]
    lines = [
        f"workload: {w['partners']} partners, {w['projects']} projects, {w['months']} months,"
        f" concurrency {w['concurrency']}, seed {w['seed']}",
        f"load wall time {load['wall_s']} s ({load['http_calls']} HTTP calls, demo exit"
        f" {load['demo_exit_code']}), kpi drained {load['drain_after_load_s']} s after",
        f"raw eventsourcing save {raw_save} events/s; raw batched asyncpg upserts"
        f" {result['raw_asyncpg_upserts_per_s']} rows/s",
        "",
        "events stored: "
        + ", ".join(f"{k} {v}" for k, v in result["events_stored"].items() if k != "per_s_of_wall")
        + f" ({result['events_stored']['per_s_of_wall']}/s of wall time)",
        "",
        f"{'commands/s (2xx non-GET)':<28}{'commands':>10}{'per s':>10}{'vs raw':>9}{'non-2xx':>9}",
    ]
    for name, c in result["commands_per_s"].items():
        lines.append(
            f"{name:<28}{c['commands']:>10}{c['per_s']:>10}"
            f"{c['per_s'] / raw_save:>8.1%}{c['non_2xx_non_get']:>9}"
        )
    heading = f"{'latency by endpoint class (ms)':<84}{'calls':>7}"
    lines += ["", heading + "".join(f"{p:>9}" for p in ("p50", "p95", "p99"))]
    for service, endpoints in result["latency_by_endpoint"].items():
        for endpoint, s in endpoints.items():
            lines.append(
                f"{service + ' ' + endpoint:<84}{s['calls']:>7}"
                f"{s['p50_ms']:>9}{s['p95_ms']:>9}{s['p99_ms']:>9}"
            )
    cpu = result["cpu_during_load"]
    lines += [
        "",
        "CPU during the load (s): "
        + ", ".join(f"{n} {cpu['service_s'][n]}" for n in SERVICE_NAMES)
        + f"; load generator {cpu['load_generator_s']}; machine busy"
        f" {cpu['machine_busy_share']:.0%}",
        "CPU per command (ms, with the service's relay, consumers and projections): "
        + ", ".join(f"{n} {v}" for n, v in cpu["service_ms_per_command"].items())
        + f"; kpi {cpu['kpi_ms_per_event_applied']} per event applied",
    ]
    lines += ["", "command -> projection visible (kpi, ms):"]
    for group, lag in result["command_to_projection"].items():
        lines.append(
            f"  {group}: {lag['events']} events, p50 {lag['p50_ms']}, p95 {lag['p95_ms']},"
            f" p99 {lag['p99_ms']}; applied {lag['applied_per_s_mean']}/s on average,"
            f" {lag['applied_in_busiest_second']} in the busiest second"
        )
        for source, s in lag["by_source"].items():
            lines.append(
                f"    from {source}: {s['events']} events, p50 {s['p50_ms']}, p99 {s['p99_ms']}"
            )
        lines.append(
            f"    p50 by {LAG_WINDOW_S} s window of recording: "
            + " ".join(f"{w['p50_ms']:.0f}" for w in lag[f"by_{LAG_WINDOW_S}s_window"])
        )
    lines += [
        "",
        "RSS idle / peak (MB): "
        + ", ".join(
            f"{n} {result['idle_rss_mb'][n]} / {result['peak_rss_mb'][n]}" for n in SERVICE_NAMES
        ),
        f"dead letters open: {result['dead_letters_open']}",
    ]
    return "\n".join(lines)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partners", type=int, help=f"default {FULL['partners']}")
    parser.add_argument("--projects", type=int, help=f"default {FULL['projects']}")
    parser.add_argument("--concurrency", type=int, help=f"default {FULL['concurrency']}")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--small",
        action="store_true",
        help=f"a smoke run: {SMALL['partners']} partners, {SMALL['projects']} projects,"
        f" concurrency {SMALL['concurrency']}",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/workload.json"))
    args = parser.parse_args()
    result = asyncio.run(main(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.write(report(result) + "\n")
    sys.stdout.write(f"full JSON in {args.out}\n")
    failed = result["load"]["demo_exit_code"] != 0
    if failed:
        sys.stdout.write("the load had failed calls (see the demo's report above)\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    cli()
