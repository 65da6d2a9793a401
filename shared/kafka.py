"""Kafka plumbing: clients configured for both Tansu (dev) and Kafka (prod).

Tansu facts that shape this module (TOOLCHAIN.md and our own probes):
- no idempotent or transactional producer: `enable_idempotence` stays off and
  exactly-once is the consumers' job (event ids), not the broker's;
- ListOffsets(latest) answers the last *batch's* base offset + 1, so end
  offsets are never used for correctness; the high watermark carried by fetch
  responses is right and is what we read;
- a fetch beyond the end of a partition waits instead of failing with
  OFFSET_OUT_OF_RANGE, so a log that got shorter is detected by comparing our
  position with the high watermark;
- topics live in memory only, and unknown topics are auto-created on metadata
  requests that allow it, with the broker's default partition count (4 on
  Tansu 0.6). aiokafka allows it on every metadata request and has no option
  to say otherwise, so this module makes its requests say no (below): after
  a broker restart, a consumer's or a producer's metadata refresh would
  otherwise recreate a topic with the broker's count before the relay creates
  it with ours, and consumers already assigned the old partitions do not
  always learn of the extra one (seen in the broker-restart fault test).
  Topics are created by `ensure_topics` only (ADR 0014).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import aiokafka.admin.client
import aiokafka.client
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.metadata import MetadataRequest

from shared.settings import Settings

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]


class MetadataRequestWithoutAutoCreate(MetadataRequest):  # type: ignore[misc]
    """A metadata request that never asks the broker to create the topics it
    names, unless the caller says so explicitly."""

    def __init__(
        self, topics: list[str] | None = None, allow_auto_topic_creation: bool | None = None
    ) -> None:
        super().__init__(topics, bool(allow_auto_topic_creation))


def never_auto_create_topics() -> None:
    """Makes every aiokafka client of this process send the request above: its
    client and admin modules build their metadata requests from the name they
    imported (aiokafka is pinned; tests/integration/test_topic_creation.py
    proves the effect on the real broker)."""
    aiokafka.client.MetadataRequest = MetadataRequestWithoutAutoCreate
    aiokafka.admin.client.MetadataRequest = MetadataRequestWithoutAutoCreate


never_auto_create_topics()


def header(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return value.decode(errors="replace") if value is not None else None
    return None


def security(settings: Settings) -> dict[str, Any]:
    """The connection options every client of ours passes: plain for the
    embedded broker, TLS and SASL (SCRAM) for a Kafka such as Strimzi's."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        options["ssl_context"] = create_ssl_context(cafile=cafile)
    if protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None  # the settings validate it
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def make_producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        **security(settings),
        client_id=client_id,
        enable_idempotence=False,
        acks="all",
        linger_ms=2,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        retry_backoff_ms=200,
    )


def make_probe_consumer(settings: Settings, client_id: str) -> AIOKafkaConsumer:
    """A consumer without group, for reading single records and watermarks."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        **security(settings),
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )


async def ensure_topics(settings: Settings, topics: Iterable[str]) -> list[str]:
    """Creates the topics that do not exist; returns the ones created."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        **security(settings),
        client_id="partnerledger-admin",
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        created: list[str] = []
        for topic in missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            topic, num_partitions=settings.topic_partitions, replication_factor=1
                        )
                    ]
                )
                created.append(topic)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        await admin.close()


async def broker_reachable(settings: Settings, within_s: float = 3.0) -> bool:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        **security(settings),
        client_id="partnerledger-health",
        request_timeout_ms=int(within_s * 1000),
    )
    try:
        async with asyncio.timeout(within_s):
            await admin.start()
            await admin.list_topics()
        return True
    except Exception:  # any failure means "not reachable" for a health probe
        return False
    finally:
        with contextlib.suppress(Exception):  # closing a half-open client may fail
            await admin.close()


def tp(topic: str, partition: int) -> TopicPartition:
    return TopicPartition(topic, partition)
