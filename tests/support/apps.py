"""Services in the test process: the real FastAPI app with its lifespan (real
PostgreSQL, real broker), reached through httpx's ASGI transport."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from shared.clock import Clock
from shared.runtime import Runtime, ServiceSpec, Workers, create_app, status_of
from shared.settings import Settings


@dataclass
class RunningService:
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def runtime(self) -> Runtime:
        rt: Runtime = self.app.state.runtime
        return rt

    async def status(self) -> dict[str, Any]:
        return await status_of(self.runtime)


@contextlib.asynccontextmanager
async def running(
    spec: ServiceSpec,
    settings: Settings,
    *,
    relay: bool = True,
    consumers: bool = True,
    projectors: bool = True,
    clock: Clock | None = None,
) -> AsyncIterator[RunningService]:
    workers = Workers(relay=relay, consumers=consumers, projectors=projectors)
    app = create_app(spec, settings, workers=workers, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield RunningService(app, client)


async def settle(svc: RunningService) -> None:
    """Every stored event applied to the service's local projections."""
    for projector in svc.runtime.projectors:
        await projector.catch_up()


async def fire(svc: RunningService) -> int:
    """Records what the service's clock has made overdue, until nothing more
    is due (a closed clock may start the next), projections applied between."""
    await settle(svc)
    engine = svc.runtime.deadlines
    assert engine is not None
    fired = 0
    while n := await engine.fire_due():
        await settle(svc)
        fired += n
    await settle(svc)
    return fired
