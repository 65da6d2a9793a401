"""Workers gather events for a moment after a wake (ADR 0015, issue 9): a
projector woken by a save waits `PL_WAKE_COALESCE_MS`, so a save made
within that window is applied in the same transaction as the first; with the
window at 0 each is applied as it comes. Real PostgreSQL, the partner
service's store and a projector on it; the 0.5 s between the two
registrations (R2.1) is the scenario, not a wait. A first registration,
applied before them, makes sure the projector is idle and listening."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from services.partner.service import SPEC as PARTNER
from shared.db import DbConn
from shared.projector import LocalProjector
from shared.settings import Settings
from tests.support.apps import running
from tests.support.auth import auth
from tests.support.data import registration
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


async def transactions_of_two_registrations(settings: Settings, window_ms: float) -> list[int]:
    """The transaction each of two registrations, 0.5 s apart, was applied in."""
    s = settings.model_copy(update={"wake_coalesce_ms": window_ms, "relay_poll_interval_s": 30.0})
    applied: list[int] = []

    async def record(conn: DbConn, event: Any) -> None:
        applied.append(await conn.fetchval("SELECT txid_current()"))

    async def active() -> bool:
        return probe.active

    def count(n: int) -> Callable[[], Awaitable[bool]]:
        async def done() -> bool:
            return len(applied) == n

        return done

    async def register(n: int) -> None:
        answer = await svc.client.post("/v1/partners", json=registration(n), headers=auth(s))
        assert answer.status_code == 201, answer.text

    async with running(PARTNER, s, relay=False, consumers=False, projectors=False) as svc:
        rt = svc.runtime
        probe = LocalProjector(rt.application, "probe", {"PartnerRegistered": record}, rt.pool)
        stop = asyncio.Event()
        task = asyncio.create_task(probe.run(stop))
        try:
            await wait_until(active, within=10, what="probe active")
            await register(0)
            await wait_until(count(1), within=20, what="the first registration applied")
            await register(1)
            await asyncio.sleep(0.5)
            await register(2)
            await wait_until(count(3), within=20, what="both applied")
        finally:
            stop.set()
            await task
    return applied[1:]


async def test_a_save_within_the_window_is_applied_with_the_first(settings: Settings) -> None:
    first, second = await transactions_of_two_registrations(settings, window_ms=2000)
    assert first == second


async def test_without_a_window_each_save_is_applied_as_it_comes(settings: Settings) -> None:
    first, second = await transactions_of_two_registrations(settings, window_ms=0)
    assert first != second
