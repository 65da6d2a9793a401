"""Benchmark of the kpi service's readings (issue 9, R6.1): every KPI figure
and one scoring run over a synthetic year of facts.

The kpi schema is migrated as the service does it, then filled by COPY with
the facts a year of N projects leaves (50 partners; per project: its
registration, contract, two budget versions, ten costs, eight milestones due
and delivered, thirty tasks assigned, acknowledged and completed, two
complaints received and answered, three reports due and filed), so the
queries meet the row counts of the realistic workload without its hour of
HTTP. Then it times each metric's monthly and quarterly figures by partner
(what Grafana and `GET /v1/kpis/...` read), the scorecard variables, a
scoring run's computation (every 30 s in the service) and the gauges.

The facts are not the event pipeline's output (bench/workload.py measures
that); they exercise the same tables, indexes and SQL.

Usage: .venv/bin/python -m bench.kpi_readings [--projects 650]
       [--out bench/results/kpi_readings.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import machine, stop_infra
from services.kpi import gauges
from services.kpi.domain.scorecard import load_scorecard
from services.kpi.metrics import METRICS
from services.kpi.readings import Moment, Selection, figures
from services.kpi.scoring import compute, partner_variables
from services.kpi.service import SPEC as KPI
from shared.clock import SystemClock
from shared.db import connect
from shared.policy import load_policy
from shared.runtime import prepare_schema
from tests.support.infra import Infra, start_infra

PARTNERS = 50
YEAR_START = datetime(2026, 1, 5, 2, tzinfo=UTC)
SHANGHAI = timedelta(hours=8)


@dataclass
class Synthetic:
    """The rows of the kpi tables for `projects` projects."""

    projects: int
    seed: int = 2026
    events: list[tuple[Any, ...]] = field(default_factory=list)
    facts: list[tuple[Any, ...]] = field(default_factory=list)
    registered: list[tuple[Any, ...]] = field(default_factory=list)

    def build(self) -> Synthetic:
        rnd = random.Random(self.seed)
        partners = [uuid.UUID(int=rnd.getrandbits(128)) for _ in range(PARTNERS)]
        for index in range(self.projects):
            project = uuid.UUID(int=rnd.getrandbits(128))
            self._project(rnd, index, project, partners[index % PARTNERS])
        return self

    def _add(
        self, project: uuid.UUID, partner: uuid.UUID, kind: str, subject: str, at: datetime,
        version: int = 1, *, person: str | None = None, label: str | None = None,
        value: int | None = None,
    ) -> uuid.UUID:  # fmt: skip
        event_id = uuid.uuid4()
        source = ("bench", kind, "Synthetic", project, version, at, at)
        actor = ("bench", "bench", uuid.uuid4(), None, "{}")
        self.events.append((event_id, *source, *actor))
        day = (at + SHANGHAI).date()
        when = (at, day, at, day, version)
        dims = (project, partner, person, label, None, value, None)
        self.facts.append((event_id, 0, kind, subject, *when, *dims))
        return event_id

    def _project(
        self, rnd: random.Random, index: int, project: uuid.UUID, partner: uuid.UUID
    ) -> None:
        def add(kind: str, subject: str, at: datetime, version: int = 1, **kw: Any) -> uuid.UUID:
            return self._add(project, partner, kind, subject, at, version, **kw)

        start = YEAR_START + timedelta(days=rnd.randint(0, 60))
        registered = add("project", str(project), start)
        self.registered.append((project, partner, f"pm{index % 40}", f"P{index}", registered))
        add("contract_signed", str(project), start + timedelta(days=3))
        add("approved_budget", str(project), start + timedelta(days=2), value=100_000)
        add("approved_budget", str(project), start + timedelta(days=90), 2, value=120_000)
        for month in range(10):
            at = start + timedelta(days=30 * month + 5)
            add("cost", f"{project}:c{month}", at, value=rnd.randint(1_000, 15_000))
        for m in range(8):
            due = start + timedelta(days=35 * m + 20)
            add("milestone_due", f"{project}:m{m}", due)
            add("milestone_delivered", f"{project}:m{m}", due + timedelta(days=rnd.randint(-3, 4)))
        for k in range(30):
            at = start + timedelta(days=rnd.randint(5, 290), hours=rnd.randint(0, 8))
            person, task = f"specialist{rnd.randint(1, 200)}", f"task-{project}-{k}"
            add("task_assigned", task, at, person=person)
            add("task_acknowledged", task, at + timedelta(hours=rnd.randint(1, 30)), 2)
            add("task_completed", task, at + timedelta(days=rnd.randint(1, 12)), 3, person=person)
        for c in range(2):
            at = start + timedelta(days=rnd.randint(10, 280))
            add("complaint_received", f"complaint-{project}-{c}", at, label="minor")
            add("complaint_responded", f"complaint-{project}-{c}", at + timedelta(hours=5), 2)
        for q in range(3):
            due = start + timedelta(days=90 * q + 60)
            add("obligation_due", f"{project}:r{q}", due, label="report")
            add("obligation_met", f"{project}:r{q}", due - timedelta(days=1), label="report")


async def timed(what: Any) -> float:
    started = time.perf_counter()
    await what
    return round(time.perf_counter() - started, 3)


async def run(infra: Infra, projects: int) -> dict[str, Any]:
    settings = infra.settings(prefix=f"b{uuid.uuid4().hex[:8]}_")
    app = await prepare_schema(KPI, settings, SystemClock())
    await asyncio.to_thread(app.close)
    data = await asyncio.to_thread(Synthetic(projects).build)
    conn = await connect(settings.postgres, application_name="bench-kpi")
    try:
        await conn.execute(f"SET search_path = {settings.schema_of('kpi')}")
        await conn.copy_records_to_table("fact_events", records=data.events)
        await conn.copy_records_to_table("facts", records=data.facts)
        await conn.copy_records_to_table("projects", records=data.registered)
        await conn.execute("ANALYZE")
        config = load_scorecard(settings.scorecard_file)
        moment = Moment.of(load_policy(), datetime(2026, 11, 29, tzinfo=UTC))
        readings: dict[str, float] = {}
        for period in ("month", "quarter"):
            for key in sorted(METRICS):
                selection = Selection(period=period)
                reading = figures(conn, METRICS[key], moment, selection, ["partner_id"])
                readings[f"{key}/{period}"] = await timed(reading)
        variables = {
            period: await timed(partner_variables(conn, moment, period))
            for period in ("month", "quarter")
        }
        scoring = await timed(compute(conn, config, moment))
        standings = [s.name for s in config.standings]
        gauge_s = await timed(gauges.refresh(conn, moment, config.active, standings))
    finally:
        await conn.close()
    slowest = sorted(readings.items(), key=lambda kv: kv[1], reverse=True)[:5]
    return {
        "facts": len(data.facts),
        "projects": projects,
        "readings_s": readings,
        "readings_total_s": round(sum(readings.values()), 2),
        "slowest_readings_s": dict(slowest),
        "scorecard_variables_s": variables,
        "scoring_compute_s": scoring,
        "gauges_refresh_s": gauge_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=650)
    parser.add_argument("--out", type=Path, default=Path("bench/results/kpi_readings.json"))
    args = parser.parse_args()
    infra = start_infra(Path(tempfile.mkdtemp(prefix="pl-kpi-readings-")))
    try:
        result = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            **asyncio.run(run(infra, args.projects)),
        }
    finally:
        stop_infra(infra)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{result['facts']:,} facts: {len(result['readings_s'])} readings in"
        f" {result['readings_total_s']} s (slowest {result['slowest_readings_s']});"
        f" scoring computation {result['scoring_compute_s']} s,"
        f" gauges {result['gauges_refresh_s']} s"
    )


if __name__ == "__main__":
    main()
