"""Background work that must not stop: the relay and the consumers retry with
backoff until told to stop, loudly when the failure is not an outage (stopping
would silently halt the pipeline; a log line and the metrics make it seen)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from aiokafka.errors import KafkaError
from eventsourcing.persistence import InterfaceError, OperationalError

log = logging.getLogger(__name__)

#: Failures that say "try again later" (database or broker away), not "this is wrong".
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.LockNotAvailableError,
    KafkaError,
    OperationalError,  # eventsourcing's wrapper of psycopg connection failures
    InterfaceError,
)


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def coalesce(stop: asyncio.Event, window_ms: float) -> None:
    """Called by a worker just woken from idle by one event: at a moderate
    rate more are a few milliseconds behind it, and reading them together
    costs one store read, one transaction and one publish instead of one
    each (at 174 commands/s the machine was saturated by such per-event
    overhead; bench/slice.py, ADR 0015). The window adds to the lag of that
    event."""
    if window_ms > 0:
        await sleep_unless(stop, window_ms / 1000)


async def wait_for_wake(
    wake: asyncio.Event, stop: asyncio.Event, *, poll_s: float, coalesce_ms: float
) -> None:
    """The idle wait of a worker that reads its store: until `wake` (set by
    the store's NOTIFY; the worker clears it before each read), `stop`, or
    `poll_s` without either; woken, it gathers for `coalesce_ms`."""
    waiter = asyncio.ensure_future(wake.wait())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiter, stopper}, timeout=poll_s, return_when=asyncio.FIRST_COMPLETED)
        woken = waiter.done()
    finally:
        waiter.cancel()
        stopper.cancel()
    if woken:
        await coalesce(stop, coalesce_ms)


async def run_forever(
    name: str,
    attempt: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    *,
    after_failure: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Runs `attempt` until `stop` is set, again after each failure (0.2 s
    backoff doubling to 5 s, reset by an attempt that ends normally)."""
    backoff = 0.2
    while not stop.is_set():
        try:
            await attempt()
            backoff = 0.2
        except Exception as exc:
            if isinstance(exc, TRANSIENT):
                log.warning("%s down: %r; retry in %.1fs", name, exc, backoff)
            else:
                log.exception("%s failed; retrying in %.1fs", name, backoff)
            if after_failure is not None:
                await after_failure()
            await sleep_unless(stop, backoff)
            backoff = min(backoff * 2, 5.0)
