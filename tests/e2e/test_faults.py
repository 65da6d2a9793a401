"""Issue 9: faults during load, with the real service processes over HTTP and
Kafka (DESIGN.md section 2: "a crash never loses an event", at-least-once
delivery, idempotent consumers, replay; section 4: the broker keeps topics in
memory and the relays republish after it restarted empty).

One stack for the module, on a PostgreSQL and a broker of its own (the tests
stop and restart both): the partner service split into an API process (with
its local projections), a relay-only process and a consumers-only process;
approval, docs and kpi as one process each. Load (tests/support/load.py):
project sagas across partner, approval and docs, emergencies, department
meetings with minutes, staff joining, every command with an Idempotency-Key
and retried while its service is away. Each test injects one fault while
the load runs, waits until commands are accepted again, stops the load, waits
until every relay is drained and every consumer has applied every topic
(tracked positions, never sleeps), then proves, for everything done so far:

- every command answered 2xx has its events in its service's event store;
- every stored event is on its topic (positions 1..head of the relay's
  current epoch, each with the stored event's id; at least once);
- nothing is counted twice: the kpi partner count equals the registrations
  stored; docs holds exactly one kickoff meeting per KickoffHeld and one
  report schedule per ContractSigned (R3.2, R4.3); approval opened one
  request per ProcurementApprovalRequested, and partner applied one
  ProcurementApprovalGranted per ProcurementApproved (R3.1);
- the kpi projection (facts, fact_events, projects, aggregate_projects and
  every kpi_<metric> view, R6.1/R3.5) equals, row for row, a rebuild from
  the four event stores (tests/support/replay.py).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.structs import ConsumerRecord

from partnerledger.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from services.approval.service import SPEC as APPROVAL
from services.docs.domain.meeting import meeting_id_for
from services.docs.domain.schedule import schedule_id
from services.docs.service import SPEC as DOCS
from services.kpi.service import SPEC as KPI
from services.partner.service import SPEC as PARTNER
from shared.clock import SystemClock
from shared.db import connect, ensure_database, quote_ident
from shared.envelope import H_EPOCH, H_EVENT_ID, H_POSITION, EventEnvelope
from shared.eventstore import LedgerApplication
from shared.kafka import header
from shared.policy import load_policy
from shared.runtime import ServiceSpec
from shared.settings import Settings, parse_database_url
from tests.support.auth import auth
from tests.support.events import read_topic
from tests.support.infra import TEST_DATABASE, Infra, create_topics
from tests.support.load import DEPARTMENT, Accepted, Load, seed_department
from tests.support.processes import ServiceProcess
from tests.support.replay import (
    SOURCES,
    differences,
    drop_schema,
    rebuild_kpi,
    snapshot,
    stored_notifications,
)
from tests.support.waiting import all_flows_quiet, wait_until

pytestmark = [pytest.mark.e2e]

SPECS: dict[str, ServiceSpec] = {
    "partner": PARTNER,
    "approval": APPROVAL,
    "docs": DOCS,
    "kpi": KPI,
}
#: Commands accepted before a fault (the load is flowing) and after it
#: (the stack recovered).
BEFORE, AFTER = 6, 6


@dataclass
class Stack:
    tmp: Path
    postgres: EmbeddedPostgres
    broker: EmbeddedBroker
    settings: Settings
    #: HTTP processes by service, plus "partner-relay" and "partner-consumers".
    processes: dict[str, ServiceProcess]
    accepted: list[Accepted] = field(default_factory=list)
    numbers: itertools.count[int] | None = None

    def load(self) -> Load:
        urls = {name: self.processes[name].url for name in SPECS}
        load = Load(self.settings, urls, accepted=self.accepted)
        if self.numbers is not None:
            load.numbers = self.numbers
        self.numbers = load.numbers
        return load

    async def statuses(self) -> dict[str, dict[str, Any]] | None:
        """GET /v1/ops/status of each service; None while one does not answer."""
        try:
            found = await asyncio.gather(*(self.processes[n].status() for n in SPECS))
        except httpx.HTTPError:
            return None
        return dict(zip(SPECS, found, strict=True))

    async def quiet(self) -> bool:
        """Every relay drained, every consumer at every producer's head."""
        status = await self.statuses()
        return status is not None and all_flows_quiet(status, self.settings)

    async def settled(self) -> dict[str, dict[str, Any]]:
        """Quiet, and still quiet with the same heads a moment later (the
        consumers that record commands in reaction, e.g. docs, are done)."""
        for _ in range(20):
            try:
                await wait_until(self.quiet, within=60, what="every relay drained, every consumer")
            except AssertionError:
                raise AssertionError(f"not quiet: {await self.statuses()}") from None
            first = await self.statuses()
            await wait_until(self.quiet, within=60, what="quiet again")
            second = await self.statuses()
            if first and second and heads(first) == heads(second):
                return second
        raise AssertionError("the services kept recording events")

    async def ready(self) -> None:
        await asyncio.gather(*(self.processes[n].wait_ready() for n in SPECS))

    def restart(self, name: str) -> None:
        process = self.processes[name]
        process.stop()
        process.start()


def heads(statuses: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {name: int(s["relay"]["head"]) for name, s in statuses.items()}


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("faults")
    postgres = EmbeddedPostgres(tmp / "pg")
    postgres.start()
    broker = EmbeddedBroker(free_port(), tmp / "broker.log")
    processes: dict[str, ServiceProcess] = {}
    try:
        database_url = postgres.uri(TEST_DATABASE)
        await ensure_database(parse_database_url(database_url))
        broker.start()
        infra = Infra(database_url, broker.bootstrap, tmp)
        ports = {f"{n}_port": free_port() for n in SPECS}
        settings = infra.settings(**ports)  # type: ignore[arg-type]
        await create_topics(settings)
        env = infra.env(settings)
        operator = auth(settings, "operator", "director")
        logs = tmp / "logs"
        # The partner service as separate pods: API (with its local
        # projections), relay only, consumers only (shared/runtime.py roles).
        api_env = {**env, "PL_RUN_RELAY": "false", "PL_RUN_CONSUMERS": "false"}
        port = settings.port_of("partner")
        processes["partner"] = ServiceProcess("partner", api_env, port, logs, headers=operator)
        for role in ("relay", "consumers"):
            processes[f"partner-{role}"] = ServiceProcess("partner", env, 0, logs, role=role)
        for name in ("approval", "docs", "kpi"):
            processes[name] = ServiceProcess(
                name, env, settings.port_of(name), logs, headers=operator
            )
        for process in processes.values():
            process.start()
        s = Stack(tmp, postgres, broker, settings, processes)
        await s.ready()
        await seed_department(settings, processes["kpi"].url)
        yield s
    finally:
        for process in processes.values():
            process.stop()
        broker.stop()
        postgres.stop()


# -- the checks -----------------------------------------------------------------------------------


async def open_applications(settings: Settings) -> dict[str, LedgerApplication]:
    """Each service's application on its store (read only here)."""
    policy = load_policy(settings.policy_file)
    apps: dict[str, LedgerApplication] = {}
    for name, spec in SPECS.items():
        apps[name] = await asyncio.to_thread(
            spec.application, settings, clock=SystemClock(), policy=policy
        )
    return apps


async def stored_versions(settings: Settings, service: str) -> dict[uuid.UUID, int]:
    """Aggregate id -> its highest stored version, straight from the store table."""
    schema = quote_ident(settings.schema_of(service))
    conn = await connect(settings.postgres, application_name="faults-check")
    try:
        rows = await conn.fetch(
            "SELECT originator_id, max(originator_version) AS version"
            f" FROM {schema}.{service}_events GROUP BY originator_id"
        )
    finally:
        await conn.close()
    return {uuid.UUID(str(r["originator_id"])): r["version"] for r in rows}


def department_id(envelopes: list[EventEnvelope]) -> uuid.UUID:
    ids = {e.aggregate_id for e in envelopes if e.aggregate_type == "Department"}
    assert len(ids) == 1, ids
    return ids.pop()


async def every_2xx_is_stored(stack: Stack, envelopes: dict[str, list[EventEnvelope]]) -> None:
    """Every command answered 2xx has its events in its service's store."""
    missing: list[str] = []
    for service in SPECS:
        versions = await stored_versions(stack.settings, service)
        for done in stack.accepted:
            if done.service != service:
                continue
            aggregate = done.aggregate_id
            if aggregate == DEPARTMENT:
                aggregate = department_id(envelopes["kpi"])
            stored = versions.get(aggregate)
            if stored is None or (done.version is not None and stored < done.version):
                missing.append(f"{done} (stored version {stored})")
    assert missing == [], f"answered 2xx but not in the store: {missing}"


async def every_event_is_on_its_topic(
    stack: Stack,
    statuses: dict[str, dict[str, Any]],
    stored: dict[str, dict[int, EventEnvelope]],
) -> None:
    """Every stored position (notification id, up to the head) on its topic
    in the relay's current epoch, with the id of the event stored there
    (duplicates allowed: at least once)."""
    await asyncio.gather(*(on_its_topic(stack, s, statuses[s]["relay"], stored[s]) for s in SPECS))


async def on_its_topic(
    stack: Stack, service: str, relay: dict[str, Any], envelopes: dict[int, EventEnvelope]
) -> None:
    stored = {n: e.event_id for n, e in envelopes.items()}
    assert max(stored, default=0) == relay["head"], (service, relay["head"])
    epoch = str(relay["epoch"])
    deadline = time.monotonic() + 30
    while True:  # read_topic stops at the first quiet second: a loaded broker may pause
        records: list[ConsumerRecord[bytes, bytes]] = await read_topic(
            stack.settings, stack.settings.topic_of(service)
        )
        on_topic: dict[int, set[uuid.UUID]] = {}
        for r in records:
            position = int(header(r.headers, H_POSITION) or 0)
            # Events stored after the snapshot may be there too: not compared.
            if header(r.headers, H_EPOCH) == epoch and position <= relay["head"]:
                on_topic.setdefault(position, set()).add(uuid.UUID(header(r.headers, H_EVENT_ID)))
        if len(on_topic) >= len(stored) or time.monotonic() > deadline:
            break
    assert set(on_topic) == set(stored), f"{service}: positions missing on the topic"
    wrong = {p: ids for p, ids in on_topic.items() if ids != {stored[p]}}
    assert wrong == {}, f"{service}: another event than the stored one at {wrong}"


async def kpi_partner_diagnosis(stack: Stack, partner: list[EventEnvelope]) -> str:
    """Where the registrations the kpi service did not count went."""
    schema = quote_ident(stack.settings.schema_of("kpi"))
    conn = await connect(stack.settings.postgres, application_name="faults-diag")
    try:
        known = {
            r["partner_id"] for r in await conn.fetch(f"SELECT partner_id FROM {schema}.partners")
        }
        lines = []
        for n, e in enumerate(partner, start=1):
            if e.event_type != "PartnerRegistered" or e.aggregate_id in known:
                continue
            processed = await conn.fetch(
                f"SELECT * FROM {schema}.processed_events WHERE event_id = $1", e.event_id
            )
            letters = await conn.fetch(
                f'SELECT event_type, reason, error, topic, partition, "offset"'
                f" FROM {schema}.dead_letters WHERE aggregate_id = $1",
                str(e.aggregate_id),
            )
            lines.append(f"#{n} {e.event_id} {e.aggregate_id}: {processed}; parked {letters}")
        offsets = await conn.fetch(f"SELECT * FROM {schema}.consumer_offsets ORDER BY 1, 2, 3")
        lines.append(f"offsets {offsets}")
        return "\n".join(lines)
    finally:
        await conn.close()


async def counted_once(stack: Stack, envelopes: dict[str, list[EventEnvelope]]) -> None:
    """What the consumers derived, once per source event."""
    by_type = {s: Counter(e.event_type for e in envelopes[s]) for s in SOURCES}
    async with httpx.AsyncClient(base_url=stack.processes["kpi"].url, timeout=10) as client:
        response = await client.get("/v1/kpi/partners/summary", headers=auth(stack.settings))
        response.raise_for_status()
        total = response.json()["total"]
    if total != by_type["partner"]["PartnerRegistered"]:
        diagnosis = await kpi_partner_diagnosis(stack, envelopes["partner"])
        raise AssertionError(f"kpi counts {total} partners:\n{diagnosis}")

    partner, docs, approval = envelopes["partner"], envelopes["docs"], envelopes["approval"]
    kickoffs = {meeting_id_for(e.event_id) for e in partner if e.event_type == "KickoffHeld"}
    meetings = [
        e.aggregate_id
        for e in docs
        if e.event_type == "MeetingHeld" and e.payload["source"] == "partner.events"
    ]
    assert sorted(meetings) == sorted(kickoffs), "one kickoff meeting per KickoffHeld (R3.2)"
    contracts = {schedule_id(e.aggregate_id) for e in partner if e.event_type == "ContractSigned"}
    schedules = [e.aggregate_id for e in docs if e.event_type == "ReportScheduleOpened"]
    assert sorted(schedules) == sorted(contracts), "one schedule per ContractSigned (R4.3)"

    asked = by_type["partner"]["ProcurementApprovalRequested"]
    opened = [
        e for e in approval if e.aggregate_type == "ApprovalRequest" and e.aggregate_version == 1
    ]
    assert len(opened) == asked, "one approval request per ProcurementApprovalRequested (R3.1)"
    granted = by_type["partner"]["ProcurementApprovalGranted"]
    assert granted == by_type["approval"]["ProcurementApproved"], "one grant per approval"
    # The scenario reached every step it meant to.
    assert kickoffs and contracts and granted, by_type


async def projection_equals_replay(stack: Stack, envelopes: dict[str, list[EventEnvelope]]) -> None:
    """The live kpi projection equals a rebuild from the event stores, row for row."""
    settings = stack.settings
    schema = f"{settings.schema_prefix}kpi_replay_{uuid.uuid4().hex[:6]}"
    conn = await connect(settings.postgres, application_name="faults-live")
    try:
        live = await snapshot(conn, settings.schema_of("kpi"))
    finally:
        await conn.close()
    try:
        await rebuild_kpi(settings, envelopes, load_policy(settings.policy_file), schema)
        conn = await connect(settings.postgres, application_name="faults-replay")
        try:
            rebuilt = await snapshot(conn, schema)
        finally:
            await conn.close()
    finally:
        await drop_schema(settings, schema)
    assert differences(live, rebuilt) == {}
    assert live.rows == rebuilt.rows


async def nothing_lost_nothing_twice(stack: Stack) -> dict[str, dict[str, Any]]:
    """The whole check after recovery; returns the settled statuses."""
    for _ in range(5):
        statuses = await stack.settled()
        apps = await open_applications(stack.settings)
        try:
            stored = {name: await stored_notifications(app) for name, app in apps.items()}
        finally:
            for app in apps.values():
                await asyncio.to_thread(app.close)
        if {n: max(e, default=0) for n, e in stored.items()} == heads(statuses):
            break
    else:
        raise AssertionError("the stores kept growing after the load stopped")
    envelopes = {name: list(events.values()) for name, events in stored.items()}
    await every_2xx_is_stored(stack, envelopes)
    await every_event_is_on_its_topic(stack, statuses, stored)
    await counted_once(stack, envelopes)
    await projection_equals_replay(stack, envelopes)
    parked = {n: s["dead_letters_open"] for n, s in statuses.items()}
    assert parked == dict.fromkeys(SPECS, 0), f"parked events: {parked}"
    return statuses


async def under_load(stack: Stack, fault: Callable[[Load], Awaitable[None]]) -> Load:
    """Runs the load, injects the fault once commands flow, and stops the
    load once commands are accepted again after it."""
    load = stack.load()
    load.start()
    try:
        await load.more(BEFORE, within=90)
        await fault(load)
        await load.more(AFTER, within=120)
        # A procurement approved over Kafka after the fault (partner -> approval
        # -> partner), then contract signed: the sagas flow again.
        await load.more(1, command="contract", within=120)
    finally:
        await load.finish()
        await load.close()
    assert load.refused == [], load.refused
    return load


async def retried(load: Load, count: int = 3) -> None:
    """Waits until the load saw commands fail `count` more times (the fault
    is observable from outside)."""

    def failures() -> int:
        return sum(load.retries.values())

    target = failures() + count

    async def seen() -> bool:
        return failures() >= target

    await wait_until(seen, within=60, what="commands failing")


# -- the faults -----------------------------------------------------------------------------------


@pytest.mark.timeout(90)
@pytest.mark.parametrize("service", list(SPECS))
async def test_kill_9_of_a_service_process_loses_no_accepted_command(
    stack: Stack, service: str
) -> None:
    """kill -9 of each service's (API) process under load, then a restart:
    commands to it fail meanwhile, every 2xx survives (DESIGN.md section 2,
    steps 2-4; section 6 Idempotency-Key)."""

    async def kill(load: Load) -> None:
        stack.processes[service].kill()  # commands to it fail until it is back
        stack.restart(service)
        await stack.processes[service].wait_ready()

    await under_load(stack, kill)
    await nothing_lost_nothing_twice(stack)


@pytest.mark.timeout(90)
async def test_kill_9_of_the_relay_only_process(stack: Stack) -> None:
    """kill -9 of the partner relay's own process while it publishes
    (DESIGN.md section 2 step 3: the position is stored only after the
    broker's acknowledgement, so a crash republishes, never skips)."""
    partner = stack.processes["partner"]

    async def position() -> tuple[int, int]:
        relay = (await partner.status())["relay"]
        return int(relay["position"]), int(relay["head"])

    async def kill(load: Load) -> None:
        before, _ = await position()

        async def publishing() -> bool:
            return (await position())[0] > before

        await wait_until(publishing, within=60, what="the relay publishing")
        stack.processes["partner-relay"].kill()
        stopped, _ = await position()

        async def piling_up() -> bool:  # commands go on; nothing is published
            return (await position())[1] > stopped

        await wait_until(piling_up, within=60, what="events stored while the relay is down")
        stack.restart("partner-relay")

        async def moving() -> bool:
            return (await position())[0] > stopped

        await wait_until(moving, within=60, what="the restarted relay publishing")

    await under_load(stack, kill)
    await nothing_lost_nothing_twice(stack)


@pytest.mark.timeout(90)
async def test_kill_9_of_the_consumers_only_process(stack: Stack) -> None:
    """kill -9 of the partner consumers' own process (ProcurementApproved
    from approval.events): on restart it seeks to the offsets stored with
    the effects, so nothing is applied twice (DESIGN.md section 2 step 4)."""
    group = f"{stack.settings.consumer_group_of('partner')}.approvals"

    async def applied() -> int:
        stored = (await stack.processes["partner"].status())["consumers"]
        offsets = stored.get(group, {}).get("stored_offsets", {})
        return sum(int(o["next_offset"]) for o in offsets.values())

    async def kill(load: Load) -> None:
        before = await applied()

        async def consuming() -> bool:
            return await applied() > before

        await wait_until(consuming, within=60, what="the partner consumers applying")
        stack.processes["partner-consumers"].kill()
        await load.more(3, service="approval", within=60)  # decisions go on meanwhile
        stack.restart("partner-consumers")

    await under_load(stack, kill)
    await nothing_lost_nothing_twice(stack)


@pytest.mark.timeout(120)
async def test_postgres_restarted_under_load(stack: Stack) -> None:
    """PostgreSQL stopped and started again on the same data directory under
    load: commands fail meanwhile; pools, the relays' advisory locks and the
    consumers reconnect; nothing accepted is lost and nothing counted twice."""

    async def restart(load: Load) -> None:
        stack.postgres.stop()
        await retried(load)
        stack.postgres.start()
        await stack.ready()

    await under_load(stack, restart)
    await nothing_lost_nothing_twice(stack)


@pytest.mark.timeout(120)
async def test_broker_restarted_empty_under_load(stack: Stack) -> None:
    """The broker stopped and started empty on the same port (Tansu keeps
    topics in memory, so a restart is a new, empty log: DESIGN.md section 4):
    every relay notices, creates its topic again with our partition count (no
    client lets the broker auto-create it with its own, ADR 0014), raises its
    epoch and republishes its store; consumers re-read without counting twice.
    Last in the module: a failure here leaves the stack in a state that would
    fail every later check."""
    before = await stack.settled()
    epochs = {name: int(s["relay"]["epoch"]) for name, s in before.items()}
    published: dict[str, bool] = {}

    async def restart(load: Load) -> None:
        statuses = await stack.statuses()
        assert statuses is not None
        published.update({n: int(s["relay"]["position"]) > 0 for n, s in statuses.items()})
        stack.broker.stop(kill=True)
        await load.more(3, within=60)  # commands never depend on the broker
        stack.broker.start()

    await under_load(stack, restart)
    after = await nothing_lost_nothing_twice(stack)
    # A relay that had published lost it with the broker and republished as a
    # new epoch; one that had published nothing yet (the service saw no
    # command before the fault, e.g. this test run alone) had nothing to lose.
    assert published["partner"], published  # the load starts with partner commands
    raised = {name: int(s["relay"]["epoch"]) > epochs[name] for name, s in after.items()}
    assert {n: raised[n] for n in SPECS if published[n]} == {
        n: True for n in SPECS if published[n]
    }, (published, epochs, after)
