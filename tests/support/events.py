"""Commands and raw Kafka messages for tests that drive the pipeline by hand."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from services.partner.application import PartnerApplication
from services.partner.domain.partner import Contact
from shared import kafka
from shared.domain import Actor
from shared.envelope import (
    H_EPOCH,
    H_EVENT_ID,
    H_EVENT_TYPE,
    H_SCHEMA_VERSION,
    ActorRef,
    EventEnvelope,
)
from shared.settings import Settings
from tests.support.data import registration


def register(app: PartnerApplication, n: int, traceparent: str | None = None) -> uuid.UUID:
    body = registration(n)
    partner = app.register_partner(
        app.context(Actor("alice", "director"), traceparent=traceparent),
        name=body["name"],
        unified_social_credit_code=body["unified_social_credit_code"],
        contact=Contact(**body["contact"]),
        service_categories=body["service_categories"],
    )
    return partner.id


def envelope(
    event_type: str,
    aggregate_id: uuid.UUID,
    payload: dict[str, Any],
    *,
    version: int = 1,
    schema_version: int = 1,
) -> EventEnvelope:
    now = datetime.now(UTC)
    return EventEnvelope(
        event_id=uuid.uuid4(),
        event_type=event_type,
        schema_version=schema_version,
        aggregate_type="Partner",
        aggregate_id=aggregate_id,
        aggregate_version=version,
        occurred_at=now,
        recorded_at=now,
        actor=ActorRef(user_id="alice", role="director"),
        correlation_id=uuid.uuid4(),
        payload=payload,
    )


async def produce(
    settings: Settings,
    topic: str,
    messages: list[EventEnvelope | bytes],
    *,
    epoch: int = 1,
    partition: int = 0,
) -> list[int]:
    """Publishes to one partition, as a relay would; returns the offsets."""
    producer: AIOKafkaProducer = kafka.make_producer(settings, "test-producer")
    await producer.start()
    try:
        offsets = []
        for message in messages:
            if isinstance(message, EventEnvelope):
                value, key = message.to_json_bytes(), str(message.aggregate_id).encode()
                headers = [
                    (H_EVENT_TYPE, message.event_type.encode()),
                    (H_SCHEMA_VERSION, str(message.schema_version).encode()),
                    (H_EVENT_ID, str(message.event_id).encode()),
                ]
            else:
                value, key, headers = message, b"garbage", []
            headers.append((H_EPOCH, str(epoch).encode()))
            meta = await producer.send_and_wait(
                topic, value=value, key=key, headers=headers, partition=partition
            )
            offsets.append(meta.offset)
        return offsets
    finally:
        await producer.stop()


async def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every record of a topic (all partitions), via a group-less consumer."""
    consumer = kafka.make_probe_consumer(settings, "test-reader")
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        records: list[Any] = []
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(*tps, timeout_ms=300)
            got = [r for msgs in batch.values() for r in msgs]
            records.extend(got)
            idle = 0 if got else idle + 1
        return records
    finally:
        await consumer.stop()
