"""Topics are created by the relay's `ensure_topics` only, with our partition
count (ADR 0014, DESIGN.md section 3): a consumer or producer asking for a
topic that does not exist (after the broker restarted empty, say) must not
make the broker create it with its own default (4 on Tansu), which consumers
already assigned the old partitions may never pick up."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaTimeoutError, UnknownTopicOrPartitionError

from shared import kafka
from shared.settings import Settings

pytestmark = pytest.mark.integration


async def partitions_of(settings: Settings, topic: str) -> int | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return None
        (described,) = await admin.describe_topics([topic])
        return len(described["partitions"])
    finally:
        await admin.close()


async def test_clients_asking_for_a_missing_topic_do_not_create_it(settings: Settings) -> None:
    topic = f"{settings.schema_prefix}absent.events"
    quick = settings.model_copy(update={"kafka_request_timeout_ms": 1500})

    consumer: AIOKafkaConsumer = kafka.make_probe_consumer(quick, "test-absent")
    consumer.subscribe([topic])
    with pytest.raises(UnknownTopicOrPartitionError):
        await consumer.start()  # asks for the topic's metadata until its timeout
    await consumer.stop()
    assert await partitions_of(settings, topic) is None

    producer = kafka.make_producer(quick, "test-absent")
    await producer.start()
    try:
        with pytest.raises((KafkaTimeoutError, UnknownTopicOrPartitionError)):
            await producer.send_and_wait(topic, b"lost nothing: never acknowledged")
        assert await partitions_of(settings, topic) is None

        # Created the one way we create topics, with our count, it takes records.
        assert await kafka.ensure_topics(settings, [topic]) == [topic]
        assert await partitions_of(settings, topic) == settings.topic_partitions
        meta = await producer.send_and_wait(topic, b"now", key=b"k")
        assert meta.offset == 0
    finally:
        await producer.stop()
