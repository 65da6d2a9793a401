"""Issue 8: several replicas of a service are safe (ADR 0011), shown with the
real processes: two replicas each of the partner, approval and kpi services,
same settings, one database and one broker, as two pods of a Deployment.

- one relay is active per service (PostgreSQL advisory lock), the other on
  standby: GET /v1/ops/status says `active_here` on exactly one replica;
- commands sent to both partner replicas are published exactly once: the topic
  holds every stored event once (no duplicate event id, no missing position);
- the two kpi replicas' consumers share the partitions through their group
  (disjoint assignments covering every partition) and count exactly;
- the deadline engine runs on both approval replicas and records each overdue
  clock once (FOR UPDATE SKIP LOCKED plus the aggregate's idempotence);
- kill -9 of the replica whose relay is active: the other takes the lock over
  and publishes what comes next, still exactly once.

Waits are on tracked positions and statuses, never on sleeps.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from partnerledger.embedded import free_port
from shared.envelope import H_EVENT_ID, H_EVENT_TYPE, H_POSITION
from shared.kafka import header
from shared.settings import Settings
from tests.support.auth import auth
from tests.support.data import registration
from tests.support.events import read_topic
from tests.support.infra import Infra, create_topics, drop_schemas
from tests.support.processes import ServiceProcess
from tests.support.waiting import consumer_caught_up, relay_drained, wait_until

pytestmark = pytest.mark.e2e

SERVICES = ("partner", "approval", "kpi")
BEFORE_KILL = 120  # registrations, half to each partner replica
AFTER_KILL = 40  # to the surviving replica
EMERGENCIES = 12  # emergency actions already past their explanation deadline (R5.3)


class Cluster:
    """Two processes per service with the same settings, as two pods."""

    def __init__(self, infra: Infra, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.replicas: dict[str, list[ServiceProcess]] = {}
        operator = auth(settings, "operator", "director")
        for name in SERVICES:
            self.replicas[name] = []
            for replica in ("a", "b"):
                port = free_port()
                env = {**infra.env(settings), f"PL_{name.upper()}_PORT": str(port)}
                process = ServiceProcess(name, env, port, log_dir / replica, headers=operator)
                self.replicas[name].append(process)

    @property
    def all(self) -> list[ServiceProcess]:
        return [p for group in self.replicas.values() for p in group]

    async def statuses(self, name: str) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(p.status() for p in self.replicas[name])))

    def stop(self) -> None:
        for process in self.all:
            process.stop()


def holds(check: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
    """A check that treats a replica not answering (yet) as not done."""

    async def guarded() -> bool:
        try:
            return await check()
        except httpx.HTTPError:
            return False

    return guarded


def active_relays(statuses: Sequence[dict[str, Any]]) -> list[bool]:
    return [bool(s["relay"]["active_here"]) for s in statuses]


async def register(process: ServiceProcess, settings: Settings, numbers: range) -> list[int]:
    headers = auth(settings, "pm.wang", "project_manager")
    async with httpx.AsyncClient(base_url=process.url, timeout=30) as client:

        async def one(n: int) -> int:
            response = await client.post("/v1/partners", json=registration(n), headers=headers)
            return response.status_code

        codes: list[int] = []
        for start in range(numbers.start, numbers.stop, 8):
            batch = range(start, min(start + 8, numbers.stop))
            codes += await asyncio.gather(*(one(n) for n in batch))
        return codes


async def record_late_emergencies(process: ServiceProcess, settings: Settings, count: int) -> None:
    """Emergency actions taken two days ago: their 24 h explanation clock has
    run out the moment it starts (policy emergency.explanation_hours)."""
    acted = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    headers = auth(settings, "pm.wang", "project_manager")
    async with httpx.AsyncClient(base_url=process.url, timeout=30) as client:
        for n in range(count):
            body = {
                "project_id": str(uuid.uuid4()),
                "what_happened": f"生产数据库服务器宕机 {n}",
                "action_taken": "临时调配两名工程师抢修",
                "resources_changed": ["工程师 x2"],
                "acted_at": acted,
            }
            response = await client.post("/v1/emergencies", json=body, headers=headers)
            assert response.status_code == 201, response.text


async def kpi_total(process: ServiceProcess, settings: Settings) -> int:
    async with httpx.AsyncClient(base_url=process.url, timeout=10) as client:
        response = await client.get("/v1/kpi/partners/summary", headers=auth(settings))
        response.raise_for_status()
        total: int = response.json()["total"]
        return total


async def published_exactly_once(settings: Settings, service: str, head: int) -> list[Any]:
    """Every stored event of the service on its topic once: positions 1..head,
    each event id once."""
    deadline = time.monotonic() + 30
    while True:  # read_topic stops at the first quiet second: a loaded broker may pause
        records = await read_topic(settings, settings.topic_of(service))
        positions = Counter(int(header(r.headers, H_POSITION) or 0) for r in records)
        if len(positions) >= head or time.monotonic() > deadline:
            break
    ids = Counter(header(r.headers, H_EVENT_ID) for r in records)
    duplicates = {i: n for i, n in ids.items() if n > 1}
    assert duplicates == {}, f"{service}: published more than once: {duplicates}"
    assert set(positions) == set(range(1, head + 1)), f"{service}: positions missing"
    assert len(records) == head
    return records


async def frozen_objects(process: ServiceProcess) -> float:
    """What the process froze once built (shared.heap, issue 9), from its
    /metrics, which also carry its collector pauses."""
    async with httpx.AsyncClient(base_url=process.url, timeout=10) as client:
        metrics = (await client.get("/metrics")).text
    assert 'pl_gc_pause_seconds_count{generation="0"}' in metrics
    frozen = next(
        (
            line.split()[1]
            for line in metrics.splitlines()
            if line.startswith("pl_gc_frozen_objects ")
        ),
        None,
    )
    assert frozen is not None, "no pl_gc_frozen_objects on /metrics"
    return float(frozen)


async def test_two_replicas_share_the_work_and_publish_once(infra: Infra, tmp_path: Path) -> None:
    settings = infra.settings()
    await create_topics(settings)
    cluster = Cluster(infra, settings, tmp_path / "logs")
    partner, approval, kpi = (cluster.replicas[name] for name in SERVICES)
    group = f"{settings.consumer_group_of('kpi')}.projections"
    try:
        for process in cluster.all:
            process.start()
        await asyncio.gather(*(p.wait_ready() for p in cluster.all))
        for process in cluster.all:
            assert await frozen_objects(process) > 50_000, process.name  # shared.heap

        # One relay per service holds the lock; its twin stands by.
        for name in SERVICES:

            async def one_active(name: str = name) -> bool:
                return sorted(active_relays(await cluster.statuses(name))) == [False, True]

            await wait_until(holds(one_active), within=30, what=f"one {name} relay")

        # The two kpi consumers split the partitions of the four topics.
        partitions = {
            f"{settings.topic_of(s)}/{p}"
            for s in ("partner", "approval", "docs", "kpi")
            for p in range(settings.topic_partitions)
        }

        async def shared() -> bool:
            a, b = (set(s["consumers"][group]["assigned"]) for s in await cluster.statuses("kpi"))
            return bool(a) and bool(b) and not a & b and a | b == partitions

        await wait_until(holds(shared), within=60, what="kpi replicas sharing partitions")

        # Commands to both partner replicas, and late emergencies to both
        # approval replicas (their deadline engines race for the clocks).
        half = BEFORE_KILL // 2
        codes = await asyncio.gather(
            register(partner[0], settings, range(0, half)),
            register(partner[1], settings, range(half, BEFORE_KILL)),
            record_late_emergencies(approval[0], settings, EMERGENCIES // 2),
            record_late_emergencies(approval[1], settings, EMERGENCIES - EMERGENCIES // 2),
        )
        assert codes[0] + codes[1] == [201] * BEFORE_KILL

        async def projected() -> bool:
            producer = (await cluster.statuses("partner"))[0]
            return consumer_caught_up(producer, (await cluster.statuses("kpi"))[0], group)

        await wait_until(holds(projected), within=60, what="kpi caught up")
        assert [await kpi_total(p, settings) for p in kpi] == [BEFORE_KILL, BEFORE_KILL]
        (status, _) = await cluster.statuses("partner")
        await published_exactly_once(settings, "partner", status["relay"]["head"])

        # Each overdue clock recorded once, whichever engine took it.
        async def all_overdue() -> bool:
            first = (await cluster.statuses("approval"))[0]
            return first["deadlines"].get("overdue") == EMERGENCIES and relay_drained(first)

        await wait_until(holds(all_overdue), within=60, what="explanations overdue")
        (status, _) = await cluster.statuses("approval")
        records = await published_exactly_once(settings, "approval", status["relay"]["head"])
        overdue = [
            r for r in records if header(r.headers, H_EVENT_TYPE) == "EmergencyExplanationOverdue"
        ]
        assert len(overdue) == EMERGENCIES
        assert len({r.key for r in overdue}) == EMERGENCIES, "one per emergency action"
        fired = [
            line
            for p in approval
            for line in p.log_path.read_text().splitlines()
            if '"msg": "deadline emergency_explanation of' in line
        ]
        assert len(fired) == EMERGENCIES, "each clock fired by one engine, once"

        # kill -9 the replica whose relay is active; the other takes over.
        statuses = await cluster.statuses("partner")
        assert all(relay_drained(s) for s in statuses), "killed between batches, not within"
        active = active_relays(statuses).index(True)
        partner[active].kill()
        survivor = partner[1 - active]

        async def took_over() -> bool:
            return bool((await survivor.status())["relay"]["active_here"])

        await wait_until(holds(took_over), within=30, what="the standby relay taking over")
        codes = [await register(survivor, settings, range(BEFORE_KILL, BEFORE_KILL + AFTER_KILL))]
        assert codes == [[201] * AFTER_KILL]

        async def projected_after() -> bool:
            producer = await survivor.status()
            return consumer_caught_up(producer, (await cluster.statuses("kpi"))[1], group)

        await wait_until(holds(projected_after), within=60, what="kpi caught up again")
        assert [await kpi_total(p, settings) for p in kpi] == [BEFORE_KILL + AFTER_KILL] * 2
        head = (await survivor.status())["relay"]["head"]
        assert head >= BEFORE_KILL + AFTER_KILL
        await published_exactly_once(settings, "partner", head)
    finally:
        cluster.stop()
        await drop_schemas(settings)
