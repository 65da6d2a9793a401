"""Services in the test process: the real FastAPI app with its lifespan (real
PostgreSQL, real broker), reached through httpx's ASGI transport."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from services.approval.service import SPEC as APPROVAL
from services.docs.service import SPEC as DOCS
from services.kpi.service import SPEC as KPI
from services.partner.service import SPEC as PARTNER
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


@contextlib.asynccontextmanager
async def four_services(
    settings: Settings,
    *,
    relay: bool = False,
    consumers: bool = False,
    projectors: bool = False,
    clock: Clock | None = None,
) -> AsyncIterator[dict[str, RunningService]]:
    """The four services in process, by name (workers off unless asked)."""
    kw: dict[str, Any] = {
        "relay": relay,
        "consumers": consumers,
        "projectors": projectors,
        "clock": clock,
    }
    async with (
        running(PARTNER, settings, **kw) as partner,
        running(APPROVAL, settings, **kw) as approval,
        running(DOCS, settings, **kw) as docs,
        running(KPI, settings, **kw) as kpi,
    ):
        yield {"partner": partner, "approval": approval, "docs": docs, "kpi": kpi}


async def table_counts(svc: RunningService) -> dict[str, int]:
    """Rows of every table of the service's schema (bar the denials on record)."""
    rt = svc.runtime
    async with rt.pool.acquire() as conn:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1"
            " AND table_type = 'BASE TABLE' AND table_name <> 'access_denials'",
            rt.schema,
        )
        return {
            t["table_name"]: await conn.fetchval(
                f'SELECT count(*) FROM {rt.quoted_schema}."{t["table_name"]}"'
            )
            for t in tables
        }


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
