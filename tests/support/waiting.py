"""Waiting on tracked positions (relay positions, consumer offsets), never on sleeps.

A poll interval exists only because positions live in another process; the
condition waited for is always a stored position, not elapsed time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from shared.settings import Settings

#: (producer, consumer, consumer spec): every flow of events between the services.
FLOWS = (
    ("partner", "kpi", "projections"),
    ("approval", "kpi", "projections"),
    ("docs", "kpi", "projections"),
    ("kpi", "kpi", "projections"),
    ("partner", "approval", "requests"),
    ("approval", "partner", "approvals"),
    ("partner", "docs", "projects"),
)


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, within: float = 60.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


def relay_drained(producer: dict[str, Any]) -> bool:
    relay = producer["relay"]
    return bool(relay["position"] == relay["head"])


def all_flows_quiet(status: Mapping[str, dict[str, Any]], settings: Settings) -> bool:
    """Every relay drained, every consumer at every producer's head (FLOWS),
    from the services' statuses by name."""
    if not all(relay_drained(s) for s in status.values()):
        return False
    return all(
        consumer_caught_up(
            status[producer],
            status[consumer],
            f"{settings.consumer_group_of(consumer)}.{spec}",
        )
        for producer, consumer, spec in FLOWS
    )


def consumer_caught_up(producer: dict[str, Any], consumer: dict[str, Any], group: str) -> bool:
    """Every record the producer's relay had acknowledged is applied by `group`."""
    relay = producer["relay"]
    if relay["position"] != relay["head"]:
        return False
    stored = consumer["consumers"].get(group, {}).get("stored_offsets", {})
    for partition, mark in relay["partitions"].items():
        applied = stored.get(f"{relay['topic']}/{partition}")
        if applied is None or applied["epoch"] != relay["epoch"]:
            return False
        if applied["next_offset"] < mark["high_offset"] + 1:
            return False
    return True
