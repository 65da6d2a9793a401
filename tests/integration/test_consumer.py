"""The idempotent consumer (DESIGN.md section 2, step 4), on the kpi
projection of partners (R2.1):

- the same event delivered twice changes the projection once;
- an event that fails deterministically is parked with the later events of
  its aggregate, the rest flows on, and a re-drive after the fix applies it once;
- a higher relay epoch makes the consumer re-read the partition from the start
  without counting anything twice.
"""

from __future__ import annotations

import uuid

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from services.kpi.consumers.partners import PARTNER_EVENTS, partner_registered
from services.kpi.service import SPEC as KPI
from shared.consumer import EVERY_EVENT, Consumer, PoisonEvent, Subscription
from shared.db import DbConn
from shared.envelope import H_EPOCH, H_EVENT_ID, EventEnvelope
from shared.settings import Settings
from tests.support.apps import RunningService, running
from tests.support.auth import auth
from tests.support.data import registration
from tests.support.events import envelope, produce
from tests.support.infra import Infra, create_topics, drop_schemas, private_broker
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def registered(n: int, aggregate: uuid.UUID | None = None, **kw: int) -> EventEnvelope:
    body = registration(n)
    payload = {k: body[k] for k in ("name", "unified_social_credit_code", "contact")}
    payload["service_categories"] = body["service_categories"]
    return envelope("PartnerRegistered", aggregate or uuid.uuid4(), payload, **kw)


def group(settings: Settings) -> str:
    return f"{settings.consumer_group_of('kpi')}.projections"


def applied_through(kpi: RunningService, settings: Settings, partition: int, offset: int):  # type: ignore[no-untyped-def]
    """Waits on the consumer's stored offset, never on time."""

    async def check() -> bool:
        stored = await kpi.runtime.pool.fetchval(
            "SELECT next_offset FROM consumer_offsets WHERE consumer_group = $1"
            " AND topic = $2 AND partition = $3",
            group(settings),
            settings.topic_of("partner"),
            partition,
        )
        return stored is not None and stored > offset

    return check


async def total(kpi: RunningService, settings: Settings) -> int:
    response = await kpi.client.get("/v1/kpi/partners/summary", headers=auth(settings))
    assert response.status_code == 200
    value: int = response.json()["total"]
    return value


async def test_same_event_delivered_twice_changes_the_projection_once(settings: Settings) -> None:
    async with running(KPI, settings, relay=False) as kpi:
        event = registered(1)
        offsets = await produce(settings, settings.topic_of("partner"), [event, event])
        await wait_until(applied_through(kpi, settings, 0, offsets[-1]), what="both deliveries")
        assert await total(kpi, settings) == 1
        assert await kpi.runtime.pool.fetchval("SELECT count(*) FROM processed_events") == 1


async def test_poison_event_is_parked_with_its_aggregate_and_redriven_once(
    settings: Settings,
) -> None:
    poisoned, healthy = uuid.uuid4(), uuid.uuid4()
    topic = settings.topic_of("partner")
    async with running(KPI, settings, relay=False) as kpi:
        later = envelope("PartnerRenamed", poisoned, {"name": "新名字有限公司"}, version=2)
        events = [
            registered(1, poisoned, schema_version=2),  # this build cannot read v2
            later,  # a later event of the same aggregate waits behind it
            registered(3, healthy),
            b"{not json",
        ]
        offsets = await produce(settings, topic, events)
        await wait_until(applied_through(kpi, settings, 0, offsets[-1]), what="all four seen")
        parked = await kpi.runtime.pool.fetch(
            "SELECT aggregate_id, event_type, reason FROM dead_letters ORDER BY id"
        )
        assert [r["aggregate_id"] for r in parked[:2]] == [str(poisoned)] * 2
        assert parked[0]["reason"] == "handler failed"
        assert parked[1]["reason"] == "an earlier event of this aggregate is parked"
        assert parked[2]["reason"] == "unreadable envelope"
        assert await total(kpi, settings) == 1  # the healthy aggregate flowed on

        # A later build understands v2: re-drive applies the parked events, once.
        fixed = Consumer(
            owner="kpi",
            name="projections",
            settings=settings,
            subscriptions=[
                Subscription("partner", {"PartnerRegistered": _reads_v1_and_v2}),
            ],
            pool=kpi.runtime.pool,
        )
        result = await fixed.redrive(str(poisoned))
        assert (result.applied, result.errors) == (1, [])  # the rename has no kpi handler
        assert await total(kpi, settings) == 2
        open_letters = await kpi.runtime.pool.fetchval(
            "SELECT count(*) FROM dead_letters WHERE aggregate_id = $1 AND redriven_at IS NULL",
            str(poisoned),
        )
        assert open_letters == 0
        again = await fixed.redrive(str(poisoned))
        assert again.applied == 0
        assert await total(kpi, settings) == 2


async def _reads_v1_and_v2(conn: DbConn, event: EventEnvelope) -> None:
    if event.schema_version not in (1, 2):
        raise PoisonEvent("unknown version")
    await partner_registered(conn, event.model_copy(update={"schema_version": 1}))


async def test_higher_epoch_rereads_the_partition_without_double_counting(
    settings: Settings,
) -> None:
    topic = settings.topic_of("partner")
    first = [registered(n) for n in range(3)]
    async with running(KPI, settings, relay=False) as kpi:
        offsets = await produce(settings, topic, list(first), epoch=1)
        await wait_until(applied_through(kpi, settings, 0, offsets[-1]), what="epoch 1")
        # The relay republished everything under epoch 2 (as after a broker loss),
        # followed by one new event.
        later = registered(9)
        offsets = await produce(settings, topic, [*first, later], epoch=2)
        await wait_until(applied_through(kpi, settings, 0, offsets[-1]), what="epoch 2")
        assert await total(kpi, settings) == 4
        row = await kpi.runtime.pool.fetchrow(
            "SELECT epoch, next_offset FROM consumer_offsets WHERE partition = 0"
        )
        assert dict(row) == {"epoch": 2, "next_offset": offsets[-1] + 1}


async def test_republished_log_as_long_as_the_old_one_is_reread(infra: Infra) -> None:
    """The broker lost the topic; the old log held a duplicate [a, a, b], the
    republished one is [a, b, c]: as long as the old, with the new event c below
    the consumer's position. Only reading back the last applied record shows
    that the log was replaced."""
    broker = private_broker(infra.tmp)
    settings = infra.settings(kafka_bootstrap_servers=broker.bootstrap)
    await create_topics(settings)
    topic = settings.topic_of("partner")
    a, b, c = registered(1), registered(2), registered(3)
    try:
        async with running(KPI, settings, relay=False) as kpi:
            await produce(settings, topic, [a, a, b], epoch=1)
            await wait_until(applied_through(kpi, settings, 0, 2), what="epoch 1")
            assert await total(kpi, settings) == 2
            broker.stop(kill=True)
            broker.start()  # same port, no topics
            await create_topics(settings)
            await produce(settings, topic, [a, b, c], epoch=2)

            async def c_applied() -> bool:
                return await total(kpi, settings) == 3

            await wait_until(c_applied, within=90, what="the event below the old position")
            row = await kpi.runtime.pool.fetchrow(
                "SELECT epoch, next_offset FROM consumer_offsets WHERE partition = 0"
            )
            assert dict(row) == {"epoch": 2, "next_offset": 3}
    finally:
        broker.stop()
        await drop_schemas(settings)


def test_subscription_names_the_events_it_reads() -> None:
    assert set(PARTNER_EVENTS.handlers) == {
        "PartnerRegistered",
        "PartnerQualified",
        "PartnerRejected",
        "PartnerActivated",
        "PartnerStatusChanged",
    }


# -- EVERY_EVENT: one handler for every event type of a source ------------------------------------


def _record(topic: str, offset: int, event: EventEnvelope) -> ConsumerRecord[bytes, bytes]:
    value = event.to_json_bytes()
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=str(event.aggregate_id).encode(),
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=len(value),
        headers=[(H_EVENT_ID, str(event.event_id).encode()), (H_EPOCH, b"1")],
    )


async def test_every_event_handler_runs_after_the_specific_one_in_its_transaction(
    settings: Settings,
) -> None:
    """A subscription's EVERY_EVENT handler sees each event of its source
    once: after the event type's own handler, in the same transaction (a
    failure of either parks the event with neither effect kept), and alone
    for event types nothing else handles; a redelivery changes nothing; a
    re-drive after the fix applies both."""
    failing = {"yes"}

    async def specific(conn: DbConn, event: EventEnvelope) -> None:
        await conn.execute(
            "INSERT INTO seen (handler, event_id) VALUES ('specific', $1)", event.event_id
        )

    async def every(conn: DbConn, event: EventEnvelope) -> None:
        await conn.execute(
            "INSERT INTO seen (handler, event_id) VALUES ('every', $1)", event.event_id
        )
        if event.payload.get("name") == "fails" and failing:
            raise PoisonEvent("cannot keep this one yet")

    topic = settings.topic_of("partner")
    async with running(KPI, settings, relay=False, consumers=False, projectors=False) as kpi:
        pool = kpi.runtime.pool
        await pool.execute(
            "CREATE TABLE seen (n serial PRIMARY KEY, handler text NOT NULL, event_id uuid)"
        )
        consumer = Consumer(
            owner="kpi",
            name="every",
            settings=settings,
            subscriptions=[
                Subscription("partner", {"PartnerRegistered": specific, EVERY_EVENT: every}),
                Subscription("docs", {"DocumentFiled": specific}),
            ],
            pool=pool,
        )
        assert consumer.handler_for(topic, "PartnerNoted") is every
        assert consumer.handler_for(settings.topic_of("docs"), "DocumentRead") is None
        first, other = registered(1), envelope("PartnerNoted", uuid.uuid4(), {"note": "x"})
        broken = envelope("PartnerRegistered", uuid.uuid4(), {"name": "fails"})
        records = [_record(topic, n, e) for n, e in enumerate([first, other, first, broken])]
        outcome = await consumer.apply(TopicPartition(topic, 0), records, epoch=1)
        assert (outcome.applied, outcome.duplicates, outcome.parked, outcome.ignored) == (
            2,
            1,
            1,
            0,
        )
        rows = await pool.fetch("SELECT handler, event_id FROM seen ORDER BY n")
        assert [(r["handler"], r["event_id"]) for r in rows] == [
            ("specific", first.event_id),
            ("every", first.event_id),
            ("every", other.event_id),
        ]

        failing.clear()  # the fix is deployed
        result = await consumer.redrive(str(broken.aggregate_id))
        assert (result.applied, result.still_parked, result.errors) == (1, 0, [])
        rows = await pool.fetch("SELECT handler, event_id FROM seen WHERE n > 3 ORDER BY n")
        assert [(r["handler"], r["event_id"]) for r in rows] == [
            ("specific", broken.event_id),
            ("every", broken.event_id),
        ]


async def test_the_kpi_consumer_keeps_every_event_in_the_audit_trail(settings: Settings) -> None:
    """Through the broker: events the KPIs read and events nothing else reads
    are both in the trail, once each however often they are delivered."""
    async with running(KPI, settings, relay=False) as kpi:
        first, noted = registered(1), envelope("PartnerNoted", uuid.uuid4(), {"note": "x"})
        offsets = await produce(settings, settings.topic_of("partner"), [first, noted, first])
        await wait_until(applied_through(kpi, settings, 0, offsets[-1]), what="three deliveries")
        rows = await kpi.runtime.pool.fetch(
            "SELECT event_id, service, event_type, actor_id FROM audit_trail ORDER BY recorded_at"
        )
        assert [(r["event_id"], r["service"], r["event_type"]) for r in rows] == [
            (first.event_id, "partner", "PartnerRegistered"),
            (noted.event_id, "partner", "PartnerNoted"),
        ]
        assert await total(kpi, settings) == 1
