"""End to end with the real processes, over HTTP and Kafka (issue 2 acceptance):
HTTP in, projection out, under crashes. Waits are on tracked positions
(relay position and consumer offsets from /v1/ops/status), never on sleeps.

- a registration (R2.1) posted to the partner process is counted by the kpi
  process;
- kill -9 of the kpi process during a burst of 1,000 registrations, then a
  restart: the summary counts exactly 1,000;
- the broker stopped and restarted empty during a burst: exactly right;
- the relay process killed again and again during a burst (so also between
  the broker's acknowledgement and its position commit): nothing counted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from partnerledger.embedded import EmbeddedBroker, free_port
from shared.settings import Settings
from tests.support.auth import auth
from tests.support.data import registration
from tests.support.infra import Infra, create_topics, drop_schemas, private_broker
from tests.support.processes import ServiceProcess
from tests.support.waiting import consumer_caught_up, wait_until

pytestmark = pytest.mark.e2e


class Stack:
    def __init__(self, infra: Infra, settings: Settings, log_dir: Path) -> None:
        self.infra = infra
        self.settings = settings
        self.log_dir = log_dir
        self.processes: list[ServiceProcess] = []

    def process(self, name: str, role: str = "all") -> ServiceProcess:
        proc = ServiceProcess(
            name,
            self.infra.env(self.settings),
            self.settings.port_of(name),
            self.log_dir,
            role,
            headers=auth(self.settings, "operator", "director"),
        )
        self.processes.append(proc)
        return proc

    @property
    def group(self) -> str:
        return f"{self.settings.consumer_group_of('kpi')}.projections"

    async def wait_projected(self, partner: ServiceProcess, kpi: ServiceProcess) -> None:
        async def check() -> bool:
            try:
                return consumer_caught_up(await partner.status(), await kpi.status(), self.group)
            except httpx.HTTPError:
                return False

        await wait_until(check, within=120, what="kpi caught up with partner.events")

    async def total(self, kpi: ServiceProcess) -> int:
        async with httpx.AsyncClient(base_url=kpi.url, timeout=10) as client:
            response = await client.get("/v1/kpi/partners/summary", headers=auth(self.settings))
            response.raise_for_status()
            value: int = response.json()["total"]
            return value

    def stop(self) -> None:
        for proc in self.processes:
            proc.stop()


@contextlib.asynccontextmanager
async def stack(infra: Infra, tmp_path: Path, **overrides: object) -> AsyncIterator[Stack]:
    ports = {f"{n}_port": free_port() for n in ("partner", "approval", "docs", "kpi")}
    settings = infra.settings(**ports, **overrides)  # type: ignore[arg-type]
    await create_topics(settings)
    s = Stack(infra, settings, tmp_path / "logs")
    try:
        yield s
    finally:
        s.stop()
        await drop_schemas(settings)


async def burst(
    partner: ServiceProcess,
    settings: Settings,
    count: int,
    *,
    start: int = 0,
    concurrency: int = 16,
    on_progress: Callable[[int], None] | None = None,
) -> list[int]:
    """Registers `count` partners over HTTP; returns every status code."""
    codes: list[int] = []
    numbers: Iterator[int] = iter(range(start, start + count))
    headers = auth(settings)
    async with httpx.AsyncClient(base_url=partner.url, timeout=30) as client:

        async def worker() -> None:
            for n in numbers:
                response = await client.post("/v1/partners", json=registration(n), headers=headers)
                codes.append(response.status_code)
                if on_progress is not None:
                    on_progress(len(codes))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return codes


async def test_http_in_projection_out(infra: Infra, tmp_path: Path) -> None:
    async with stack(infra, tmp_path) as s:
        partner, kpi = s.process("partner").start(), s.process("kpi").start()
        await asyncio.gather(partner.wait_ready(), kpi.wait_ready())
        codes = await burst(partner, s.settings, 5, concurrency=2)
        assert codes == [201] * 5
        await s.wait_projected(partner, kpi)
        assert await s.total(kpi) == 5


async def test_kill_9_of_kpi_during_a_burst_of_1000(infra: Infra, tmp_path: Path) -> None:
    async with stack(infra, tmp_path) as s:
        partner, kpi = s.process("partner").start(), s.process("kpi").start()
        await asyncio.gather(partner.wait_ready(), kpi.wait_ready())
        killed = asyncio.Event()

        def maybe_kill(done: int) -> None:
            if done >= 300 and not killed.is_set():
                killed.set()
                kpi.kill()

        codes = await burst(partner, s.settings, 1000, on_progress=maybe_kill)
        assert killed.is_set()
        assert codes == [201] * 1000
        kpi.stop()
        kpi.start()
        await kpi.wait_ready()
        await s.wait_projected(partner, kpi)
        assert await s.total(kpi) == 1000


async def test_broker_restarted_empty_during_a_burst(infra: Infra, tmp_path: Path) -> None:
    broker: EmbeddedBroker = private_broker(tmp_path)
    try:
        async with stack(infra, tmp_path, kafka_bootstrap_servers=broker.bootstrap) as s:
            partner, kpi = s.process("partner").start(), s.process("kpi").start()
            await asyncio.gather(partner.wait_ready(), kpi.wait_ready())
            restarted = asyncio.Event()

            def restart_broker(done: int) -> None:
                if done >= 200 and not restarted.is_set():
                    restarted.set()
                    broker.stop(kill=True)
                    broker.start()  # same port, memory empty

            codes = await burst(partner, s.settings, 600, on_progress=restart_broker)
            assert restarted.is_set()
            assert codes == [201] * 600  # commands never depend on the broker
            await s.wait_projected(partner, kpi)
            assert (await partner.status())["relay"]["epoch"] >= 2
            assert await s.total(kpi) == 600
    finally:
        broker.stop()


async def test_relay_killed_again_and_again_counts_nothing_twice(
    infra: Infra, tmp_path: Path
) -> None:
    async with stack(infra, tmp_path, relay_batch_size=20) as s:
        api = s.process("partner", role="api").start()
        relay = s.process("partner", role="relay").start()
        kpi = s.process("kpi").start()
        await asyncio.gather(api.wait_ready(), kpi.wait_ready())
        kills = 0

        async def position() -> int:
            value: int = (await api.status())["relay"]["position"]
            return value

        async def keep_killing() -> None:
            # Kill only a relay that is demonstrably publishing (its stored
            # position moved), so kills land inside publish/commit cycles.
            nonlocal kills
            while kills < 4:
                before = await position()

                async def moved(before: int = before) -> bool:
                    return await position() > before

                await wait_until(moved, within=60, what="the relay to publish")
                relay.kill()
                kills += 1
                relay.stop()
                relay.start()

        killer = asyncio.create_task(keep_killing())
        # Commands flow until the fourth kill (at least 500): a kill waits for
        # the relay to publish, and a relay restart takes seconds, longer
        # than a fixed burst may last.
        codes: list[int] = []
        while len(codes) < 500 or not killer.done():
            codes += await burst(api, s.settings, 100, start=len(codes), concurrency=8)
        await killer
        assert kills == 4
        assert codes == [201] * len(codes)
        await s.wait_projected(api, kpi)
        assert await s.total(kpi) == len(codes)
