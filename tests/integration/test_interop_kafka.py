"""Interoperability of the published topics (issue 9), read by a second,
independent Kafka client: confluent-kafka (librdkafka, C), not the services'
aiokafka.

A realistic scenario drives all four services in process (real PostgreSQL,
real broker, relays and consumers on): a partner qualified (R2.1), a project
through the three-signature procurement saga (R3.1) partner -> approval ->
partner, its contract signed (docs opens the report schedule, R4.3), a
weekly report filed (R4.4), a meeting with a resolution (R5.5), an emergency
action explained (R5.3), staff and a self-assessment in kpi (R6.2). Then every
topic the services publish under this run's prefix is read from offset 0 of
every partition by librdkafka, and every record is held against the published
contract (DESIGN.md section 3, docs/events/README.md):

- the value is the envelope (docs/events/envelope.v1.json, every field given,
  no other) and its payload fits docs/events/<service>/<Type>.v<N>.json;
- the key is the aggregate id; the headers event_type, schema_version,
  event_id, pl_source, pl_position, pl_epoch and a W3C traceparent
  (DESIGN.md section 2.3, section 7) agree with the value;
- each event topic holds exactly the events of its service's store, once
  each, at the notification id the header names (DESIGN.md section 2.3);
- `audit.chain` holds chain heads (docs/events/chain-head.v1.json), key =
  service, the last of each equal to the store's chain head (ADR 0012);
- no other topic exists under the prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from shared.audit_chain import chain_topic, read_head
from shared.clock import ManualClock
from shared.domain import LedgerAggregate
from shared.envelope import (
    H_EPOCH,
    H_EVENT_ID,
    H_EVENT_TYPE,
    H_POSITION,
    H_SCHEMA_VERSION,
    H_SOURCE,
    H_TRACEPARENT,
)
from shared.settings import Settings
from tests.support.apps import RunningService, four_services
from tests.support.event_schemas import EVENTS, assert_fits
from tests.support.infra import Infra, create_topics, drop_schemas
from tests.support.partner_flow import PM, SPECIALIST
from tests.support.scenario import (
    FourServices,
    emergency_body,
    meeting_body,
    procurement_saga,
    staff_body,
)
from tests.support.waiting import consumer_caught_up, relay_drained, wait_until

pytestmark = pytest.mark.integration

NAMES = ("partner", "approval", "docs", "kpi")
DIRECTOR, STAFF = "director.zhang", "sp.qian"
TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
SHANGHAI = timedelta(hours=8)


def local(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC) - SHANGHAI


# -- the second client ------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    header_names: tuple[str, ...]


def topics_on_broker(bootstrap: str, prefix: str) -> set[str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(timeout=10)
    return {name for name in metadata.topics if name.startswith(prefix)}


def read_all(
    bootstrap: str, topic: str, *, idle_polls: int = 3, within_s: float = 60.0
) -> list[Record]:
    """Every record of every partition of `topic`, from offset 0, without a
    consumer group (librdkafka, blocking: run in a thread): until nothing came
    for `idle_polls` polls, or for at most `within_s` (a topic that is still
    being written to, such as audit.chain)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"interop-{uuid.uuid4().hex[:8]}",  # never joined: assign() only
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 50,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        assert partitions, f"{topic}: no partitions"
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Record] = []
        idle = 0
        deadline = time.monotonic() + within_s
        while idle < idle_polls and time.monotonic() < deadline:
            batch = consumer.consume(num_messages=500, timeout=0.5)
            got = 0
            for message in batch:
                error = message.error()
                if error is not None:
                    assert error.code() == KafkaError._PARTITION_EOF, error
                    continue
                value = message.value()
                assert value is not None, f"{topic}: a record without a value"
                raw: list[tuple[str, bytes | None]] = list(message.headers() or [])  # type: ignore[arg-type]
                partition, offset, key = message.partition(), message.offset(), message.key()
                assert partition is not None and offset is not None
                assert not isinstance(value, str) and not isinstance(key, str)
                records.append(
                    Record(
                        topic=topic,
                        partition=partition,
                        offset=offset,
                        key=key,
                        value=value,
                        headers={k: v for k, v in raw if v is not None},
                        header_names=tuple(k for k, _ in raw),
                    )
                )
                got += 1
            idle = 0 if got else idle + 1
        return records
    finally:
        consumer.close()


# -- the published schemas ----------------------------------------------------------------------


@cache
def _published(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def problems_of(name: str, instance: Any) -> list[str]:
    return sorted(
        f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
        for e in _published(name).iter_errors(instance)
    )


def check_event_record(service: str, record: Record) -> dict[str, Any]:
    """One record of `<service>.events` against the published contract."""
    envelope: dict[str, Any] = json.loads(record.value)
    problems = problems_of("envelope.v1.json", envelope)
    assert not problems, f"{record.topic}@{record.offset}: envelope: {problems}"
    # Every envelope field given, no other (the model has no extras).
    declared = set(json.loads((EVENTS / "envelope.v1.json").read_text())["properties"])
    assert set(envelope) == declared, (record.topic, set(envelope) ^ declared)
    event_type, version = envelope["event_type"], envelope["schema_version"]
    schema_file = EVENTS / service / f"{event_type}.v{version}.json"
    assert schema_file.is_file(), f"{event_type} v{version} of {service} is not published"
    assert_fits(service, event_type, envelope["payload"], version)
    problems = problems_of(f"{service}/{event_type}.v{version}.json", envelope["payload"])
    assert not problems, f"{event_type}.v{version}: {problems}"

    h = record.headers
    for name in (H_EVENT_TYPE, H_SCHEMA_VERSION, H_EVENT_ID, H_SOURCE, H_POSITION, H_EPOCH):
        assert record.header_names.count(name) == 1, (event_type, name, record.header_names)
    assert h[H_EVENT_TYPE].decode() == event_type
    assert h[H_SCHEMA_VERSION].decode() == str(version)
    assert h[H_EVENT_ID].decode() == envelope["event_id"]
    assert h[H_SOURCE].decode() == service
    assert int(h[H_POSITION].decode()) >= 1
    assert h[H_EPOCH].decode() == "1"  # the broker never lost the topic in this run
    assert TRACEPARENT.match(h[H_TRACEPARENT].decode()), h.get(H_TRACEPARENT)
    assert record.key == envelope["aggregate_id"].encode()
    return envelope


# -- the scenario -------------------------------------------------------------------------------


@dataclass
class Four(FourServices):
    async def quiet(self) -> None:
        """Every consumer of every service applied everything every relay
        published, and every relay published everything stored (twice in a
        row, so reactions to reactions are in too)."""
        stable = 0

        async def check() -> bool:
            nonlocal stable
            status = {n: await self.running[n].status() for n in NAMES}
            done = all(relay_drained(s) for s in status.values())
            for consumer in NAMES:
                for group in status[consumer]["consumers"]:
                    for producer in NAMES:
                        topic = self.settings.topic_of(producer)
                        offsets = status[consumer]["consumers"][group].get("stored_offsets", {})
                        if any(k.startswith(topic + "/") for k in offsets):
                            done = done and consumer_caught_up(
                                status[producer], status[consumer], group
                            )
            stable = stable + 1 if done else 0
            return stable >= 2

        await wait_until(check, within=90, what="every relay drained, every consumer applied")


@contextlib.asynccontextmanager
async def four(settings: Settings, clock: ManualClock) -> AsyncIterator[Four]:
    async with four_services(
        settings, relay=True, consumers=True, projectors=False, clock=clock
    ) as running:
        yield Four(running, settings)


async def scenario(svcs: Four, clock: ManualClock) -> None:
    director = svcs.headers(DIRECTOR, "director")
    pm = svcs.headers(PM, "project_manager")

    saga = await procurement_saga(
        svcs,
        clock,
        lambda: clock.advance(timedelta(hours=1)),
        tick_before_request=False,
        tick_each_signature=True,
    )
    now = clock.now()
    meeting = await svcs.ok(
        "docs",
        "POST",
        "/v1/meetings",
        director,
        meeting_body(now - timedelta(hours=1), [PM, SPECIALIST]),
    )
    await svcs.ok(
        "docs",
        "POST",
        f"/v1/meetings/{meeting['id']}/resolutions/R1/assignment",
        director,
        {"owner": PM, "deadline": (now + timedelta(days=14)).isoformat()},
    )
    emergency = await svcs.ok(
        "approval",
        "POST",
        "/v1/emergencies",
        pm,
        emergency_body(now - timedelta(hours=1), saga.project_id),
    )
    await svcs.explain(emergency["id"], pm)
    for user, role, superior in (
        (DIRECTOR, "director", None),
        (PM, "project_manager", DIRECTOR),
        (STAFF, "specialist", PM),
    ):
        await svcs.ok("kpi", "POST", "/v1/kpi/staff", director, staff_body(user, role, superior))
    await svcs.ok(
        "kpi",
        "POST",
        "/v1/kpi/evaluations/self-assessments",
        svcs.headers(STAFF, "specialist"),
        {"rating": 4, "strengths": "按时交付", "improvements": "加强风险预判", "period": "2026-11"},
    )


def stored_positions(svc: RunningService) -> dict[str, int]:
    """event id -> notification id, for every event of the service's store."""
    app = svc.runtime.application
    out: dict[str, int] = {}
    for n in app.recorder.select_notifications(start=1, limit=1_000_000):
        event = app.mapper.to_domain_event(n)
        assert isinstance(event, LedgerAggregate.Event)
        out[str(app.catalogue.to_envelope(event).event_id)] = n.id
    return out


async def test_a_second_kafka_client_reads_every_topic_and_every_record_fits_the_contract(
    infra: Infra,
) -> None:
    """DESIGN.md sections 2.3 and 3; docs/events/README.md; R3.1, R4.3, R4.4,
    R5.3, R5.5, R6.2 in the scenario; ADR 0012 for audit.chain."""
    settings = infra.settings(chain_head_interval_s=0.5)
    await create_topics(settings)
    clock = ManualClock(local(2026, 11, 23, 9))
    started = time.monotonic()
    try:
        async with four(settings, clock) as svcs:
            await scenario(svcs, clock)
            await svcs.quiet()
            stored = {n: await asyncio.to_thread(stored_positions, svcs.running[n]) for n in NAMES}
            assert all(stored.values()), {n: len(v) for n, v in stored.items()}
            heads: dict[str, tuple[int, str]] = {}
            for name in NAMES:
                async with svcs.running[name].runtime.pool.acquire() as conn:
                    nid, link = await read_head(conn, settings.schema_of(name), name)
                heads[name] = (nid, link.hex())
                assert nid == max(stored[name].values())

            chain = chain_topic(settings)

            async def heads_published() -> bool:
                records = await asyncio.to_thread(
                    read_all, settings.kafka_bootstrap_servers, chain, within_s=3.0
                )
                last = {r.key: json.loads(r.value) for r in records}  # per partition in order
                return all(
                    (
                        last.get(n.encode(), {}).get("notification_id"),
                        last.get(n.encode(), {}).get("link"),
                    )
                    == heads[n]
                    for n in NAMES
                )

            await wait_until(heads_published, within=30, what="every chain head on audit.chain")

            # -- every topic under this run's prefix ---------------------------------------
            topics = await asyncio.to_thread(
                topics_on_broker, settings.kafka_bootstrap_servers, settings.schema_prefix
            )
            assert topics == {settings.topic_of(n) for n in NAMES} | {chain}, topics

            counts: dict[str, int] = {}
            for name in NAMES:
                topic = settings.topic_of(name)
                records = await asyncio.to_thread(read_all, settings.kafka_bootstrap_servers, topic)
                envelopes = [check_event_record(name, r) for r in records]
                ids = Counter(e["event_id"] for e in envelopes)
                assert not [i for i, c in ids.items() if c > 1], f"{topic}: duplicates"
                assert len(records) == len(stored[name]), (topic, len(records), len(stored[name]))
                assert set(ids) == set(stored[name]), topic
                for record, envelope in zip(records, envelopes, strict=True):
                    assert int(record.headers[H_POSITION]) == stored[name][envelope["event_id"]]
                # The aggregate's events in order on one partition (key = aggregate id).
                by_aggregate: dict[str, list[tuple[int, int, int]]] = {}
                for record, envelope in zip(records, envelopes, strict=True):
                    by_aggregate.setdefault(envelope["aggregate_id"], []).append(
                        (record.partition, record.offset, envelope["aggregate_version"])
                    )
                for aggregate, seen in by_aggregate.items():
                    assert len({p for p, _, _ in seen}) == 1, aggregate
                    versions = [v for _, _, v in sorted(seen)]
                    assert versions == list(range(versions[0], versions[0] + len(versions)))
                counts[name] = len(records)

            chain_records = await asyncio.to_thread(
                read_all, settings.kafka_bootstrap_servers, chain, within_s=3.0
            )
            for record in chain_records:
                head = json.loads(record.value)
                problems = problems_of("chain-head.v1.json", head)
                assert not problems, problems
                assert record.key == head["service"].encode()
                assert head["notification_id"] <= heads[head["service"]][0]
            assert {r.key for r in chain_records} == {n.encode() for n in NAMES}
            counts["audit.chain"] = len(chain_records)
            print(f"interop: {counts} in {time.monotonic() - started:.1f}s")
            assert all(counts[n] > 0 for n in NAMES)
    finally:
        await drop_schemas(settings)
