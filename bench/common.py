"""What the benchmarks share: the machine they ran on, and stopping the
infrastructure they started."""

from __future__ import annotations

import os
import platform
from typing import Any

import httpx

from tests.support.infra import Infra


def machine() -> dict[str, Any]:
    """The machine and the infrastructure (embedded or external) of a run."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgres": "external" if os.environ.get("DATABASE_URL") else "embedded 18",
        "broker": "external" if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else "Tansu 0.6",
    }


def stop_infra(infra: Infra) -> None:
    """Stops the embedded broker and PostgreSQL, where they were started."""
    if infra.broker is not None:
        infra.broker.stop()
    if infra.postgres is not None:
        infra.postgres.stop()


async def gc_pauses(url: str) -> dict[str, float]:
    """The collector pauses a service process has had since it settled
    (`pl_gc_pause_seconds` on its /metrics, shared.heap): how many, their
    total, and how many lasted 25 ms or more."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        text = (await client.get("/metrics")).text
    count = total = under_25ms = 0.0
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith("pl_gc_pause_seconds_count"):
            count += float(value)
        elif name.startswith("pl_gc_pause_seconds_sum"):
            total += float(value)
        elif name.startswith("pl_gc_pause_seconds_bucket") and 'le="0.025"' in name:
            under_25ms += float(value)
    return {
        "collections": count,
        "pause_ms_total": round(total * 1000, 1),
        "pauses_25ms_or_more": count - under_25ms,
    }
