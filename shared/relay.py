"""The outbox relay: publishes a service's stored events to its Kafka topic.

The application's notification log is the outbox (no dual write: the command
transaction stores only events). The relay reads the log in notification
order, publishes each event as an envelope (key = aggregate id), waits for the
broker's acknowledgement and only then advances its position, stored in the
same database. Delivery is therefore at-least-once; consumers deduplicate on
the event id.

One relay per service is active at a time (a PostgreSQL advisory lock held on
a dedicated session); other replicas wait on standby.

The broker may lose a topic (Tansu keeps topics in memory). The relay notices
when an acknowledged offset goes backwards or when the record it published
last is no longer where it left it, then raises its epoch and republishes the
whole log. Consumers that see the higher epoch re-read the partition from the
start; their event-id check makes the second delivery a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError
from eventsourcing.persistence import Notification
from opentelemetry import propagate, trace

from shared import kafka
from shared.db import DbConn, connect, lock_key, quote_ident
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
from shared.eventstore import LedgerApplication
from shared.resilience import run_forever, sleep_unless, wait_for_wake
from shared.telemetry import (
    EVENTS_PUBLISHED,
    RELAY_EPOCH,
    RELAY_LAG,
    RELAY_POSITION,
    RELAY_RESETS,
    context_from_traceparent,
    kafka_injects_traceparent,
    tracer,
)

log = logging.getLogger(__name__)


@dataclass
class PartitionMark:
    """The last record the relay saw acknowledged in a partition."""

    offset: int
    event_id: UUID


@dataclass
class RelayState:
    position: int = 0
    epoch: int = 1
    marks: dict[int, PartitionMark] = field(default_factory=dict)


@dataclass(frozen=True)
class Outgoing:
    notification_id: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    event_id: UUID
    traceparent: str | None
    event_type: str


class LogReplaced(Exception):
    """The broker no longer holds what we published: republish from scratch."""


class Relay:
    def __init__(self, app: LedgerApplication) -> None:
        self.app = app
        self.settings = app.settings
        self.service = app.SERVICE
        self.topic = self.settings.topic_of(self.service)
        self.schema = quote_ident(self.settings.schema_of(self.service))
        self.state = RelayState()
        self.active = False
        self.published = 0
        self._wake = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._producer: AIOKafkaProducer | None = None
        self._next_check = 0.0
        self._inject = not kafka_injects_traceparent()

    # -- lifecycle -------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Runs until `stop` is set; survives broker and database outages."""
        await run_forever(
            f"relay {self.service}", lambda: self._run_active(stop), stop, after_failure=self._close
        )
        await self._close()

    async def open(self) -> bool:
        """Connects and tries to become this topic's active relay (an advisory
        lock on a dedicated session); False while another replica holds it."""
        if self._conn is None:
            self._conn = await connect(
                self.settings.postgres, application_name=f"{self.service}-relay"
            )
        got = await self._conn.fetchval(
            "SELECT pg_try_advisory_lock($1)", lock_key("relay", self.topic)
        )
        if not got:
            return False
        self.active = True
        log.info("relay %s active for %s", self.service, self.topic)
        await self._conn.add_listener(f"{self.service}_events", self._on_notify)
        self._producer = kafka.make_producer(self.settings, f"{self.service}-relay")
        await self._producer.start()
        await kafka.ensure_topics(self.settings, [self.topic])
        self.state = await self._load_state()
        self._next_check = 0.0
        return True

    async def drain(self) -> int:
        """Publishes until nothing is left; returns how many were published."""
        total = 0
        while moved := await self.step():
            total += moved
        return total

    async def _run_active(self, stop: asyncio.Event) -> None:
        while not await self.open():
            await sleep_unless(stop, 2.0)
            if stop.is_set():
                return
        while not stop.is_set():
            # Cleared before the read: an event stored while it runs wakes us
            # again, so a short read needs no second, empty one to confirm.
            self._wake.clear()
            if await self.step() >= self.settings.relay_batch_size:
                continue  # a full batch: more is waiting
            await wait_for_wake(
                self._wake,
                stop,
                poll_s=self.settings.relay_poll_interval_s,
                coalesce_ms=self.settings.wake_coalesce_ms,
            )

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def close(self) -> None:
        """Stops publishing and gives up the lock (another replica takes over)."""
        await self._close()

    async def _close(self) -> None:
        self.active = False
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    # -- one step --------------------------------------------------------------

    async def step(self) -> int:
        """Publishes the next batch; returns how many events it published."""
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.settings.relay_reset_check_interval_s
            if await self._log_was_replaced():
                await self._start_new_epoch("the last record we published is gone")
        batch = await asyncio.to_thread(self._read_batch, self.state.position)
        if len(batch) < self.settings.relay_batch_size:
            # A short read reached the head: no second query to know the lag.
            head = batch[-1].notification_id if batch else self.state.position
        else:
            head = await asyncio.to_thread(self.app.log_head)
        lag = RELAY_LAG.labels(self.service)
        lag.set(max(head - self.state.position, 0))
        if not batch:
            return 0
        try:
            acked = await self.publish(batch)
        except LogReplaced as exc:
            await self._start_new_epoch(str(exc))
            return 0
        await self.commit(batch[-1].notification_id, acked)
        lag.set(max(head - batch[-1].notification_id, 0))  # 0 after a short read
        self.published += len(batch)
        return len(batch)

    def _read_batch(self, after: int) -> list[Outgoing]:
        notifications = self.app.recorder.select_notifications(
            start=after, limit=self.settings.relay_batch_size, inclusive_of_start=False
        )
        return [self._outgoing(n) for n in notifications]

    def _outgoing(self, notification: Notification) -> Outgoing:
        event = self.app.mapper.to_domain_event(notification)
        assert isinstance(event, LedgerAggregate.Event)
        envelope = self.app.catalogue.to_envelope(event)
        headers = [
            (H_EVENT_TYPE, envelope.event_type.encode()),
            (H_SCHEMA_VERSION, str(envelope.schema_version).encode()),
            (H_EVENT_ID, str(envelope.event_id).encode()),
            (H_SOURCE, self.service.encode()),
            (H_POSITION, str(notification.id).encode()),
        ]
        return Outgoing(
            notification_id=notification.id,
            key=str(envelope.aggregate_id).encode(),
            value=envelope.to_json_bytes(),
            headers=headers,
            event_id=envelope.event_id,
            traceparent=event.traceparent,
            event_type=envelope.event_type,
        )

    async def publish(self, batch: Sequence[Outgoing]) -> dict[int, PartitionMark]:
        """Sends a batch and waits for every acknowledgement."""
        assert self._producer is not None
        futures = []
        for item in batch:
            headers = [*item.headers, (H_EPOCH, str(self.state.epoch).encode())]
            parent = context_from_traceparent(item.traceparent)
            with tracer.start_as_current_span(
                f"publish {item.event_type}",
                context=parent,
                kind=trace.SpanKind.PRODUCER,
                attributes={"messaging.destination.name": self.topic},
            ):
                if self._inject:
                    carrier: dict[str, str] = {}
                    propagate.inject(carrier)
                    if "traceparent" in carrier:
                        headers.append((H_TRACEPARENT, carrier["traceparent"].encode()))
                futures.append(
                    await self._producer.send(
                        self.topic, value=item.value, key=item.key, headers=headers
                    )
                )
        results = await asyncio.gather(*futures)
        acked: dict[int, PartitionMark] = {}
        for item, meta in zip(batch, results, strict=True):
            previous = acked.get(meta.partition) or self.state.marks.get(meta.partition)
            if previous is not None and meta.offset <= previous.offset:
                raise LogReplaced(
                    f"partition {meta.partition} acknowledged offset {meta.offset}"
                    f" after {previous.offset}"
                )
            acked[meta.partition] = PartitionMark(meta.offset, item.event_id)
        EVENTS_PUBLISHED.labels(self.service, self.topic).inc(len(batch))
        return acked

    async def commit(self, position: int, acked: dict[int, PartitionMark]) -> None:
        """Advances the position, only ever after the broker acknowledged."""
        assert self._conn is not None
        async with self._conn.transaction():
            await self._conn.execute(
                f"UPDATE {self.schema}.relay_state SET position = $2, updated_at = now()"
                " WHERE topic = $1",
                self.topic,
                position,
            )
            await self._conn.executemany(
                f"INSERT INTO {self.schema}.relay_partitions (topic, partition, high_offset,"
                " event_id) VALUES ($1, $2, $3, $4) ON CONFLICT (topic, partition) DO UPDATE"
                " SET high_offset = EXCLUDED.high_offset, event_id = EXCLUDED.event_id",
                [(self.topic, p, m.offset, m.event_id) for p, m in acked.items()],
            )
        self.state.position = position
        self.state.marks.update(acked)
        RELAY_POSITION.labels(self.service).set(position)

    # -- broker loss -----------------------------------------------------------

    async def _load_state(self) -> RelayState:
        assert self._conn is not None
        await self._conn.execute(
            f"INSERT INTO {self.schema}.relay_state (topic) VALUES ($1) ON CONFLICT DO NOTHING",
            self.topic,
        )
        row = await self._conn.fetchrow(
            f"SELECT position, epoch FROM {self.schema}.relay_state WHERE topic = $1", self.topic
        )
        assert row is not None
        marks = {
            r["partition"]: PartitionMark(r["high_offset"], r["event_id"])
            for r in await self._conn.fetch(
                f"SELECT partition, high_offset, event_id FROM {self.schema}.relay_partitions"
                " WHERE topic = $1",
                self.topic,
            )
        }
        RELAY_EPOCH.labels(self.service).set(row["epoch"])
        RELAY_POSITION.labels(self.service).set(row["position"])
        return RelayState(position=row["position"], epoch=row["epoch"], marks=marks)

    async def _log_was_replaced(self) -> bool:
        """True when the topic or a record we published is gone. A topic that
        is gone (the broker restarted empty) is created again, with our
        partition count, even by a relay with nothing to publish: clients
        never auto-create topics (ADR 0014) and consumers wait for it."""
        probe = kafka.make_probe_consumer(self.settings, f"{self.service}-relay-probe")
        await probe.start()
        try:
            if self.topic not in await probe.topics():
                if not self.state.marks:  # nothing of this epoch was lost with it
                    await kafka.ensure_topics(self.settings, [self.topic])
                    return False
                log.warning("relay %s: topic %s is gone", self.service, self.topic)
                return True
            return bool(self.state.marks) and await self._marks_moved(probe)
        finally:
            await probe.stop()

    async def _marks_moved(self, probe: AIOKafkaConsumer) -> bool:
        """Reads back the last record published to each partition."""
        tps = [TopicPartition(self.topic, p) for p in self.state.marks]
        probe.assign(tps)
        for tp in tps:
            probe.seek(tp, self.state.marks[tp.partition].offset)
        found: dict[int, UUID | None] = {}
        deadline = time.monotonic() + 2.0
        while len(found) < len(tps) and time.monotonic() < deadline:
            try:
                records = await probe.getmany(*tps, timeout_ms=300, max_records=len(tps))
            except OffsetOutOfRangeError as exc:
                # Kafka (unlike Tansu) says so when the record is gone.
                log.warning("relay %s: %r: the log was replaced", self.service, exc)
                return True
            for tp, msgs in records.items():
                for msg in msgs:
                    mark = self.state.marks[tp.partition]
                    if msg.offset == mark.offset and tp.partition not in found:
                        raw = kafka.header(msg.headers, H_EVENT_ID)
                        found[tp.partition] = UUID(raw) if raw else None
            for tp in tps:
                high = probe.highwater(tp)
                mark = self.state.marks[tp.partition]
                if tp.partition not in found and high is not None and high <= mark.offset:
                    found[tp.partition] = None  # the partition is shorter now
                probe.seek(tp, self.state.marks[tp.partition].offset)
        for partition, event_id in found.items():
            if event_id != self.state.marks[partition].event_id:
                log.warning(
                    "relay %s: partition %s of %s no longer holds event %s at offset %s",
                    self.service,
                    partition,
                    self.topic,
                    self.state.marks[partition].event_id,
                    self.state.marks[partition].offset,
                )
                return True
        return False

    async def _start_new_epoch(self, reason: str) -> None:
        assert self._conn is not None
        async with self._conn.transaction():
            epoch = await self._conn.fetchval(
                f"UPDATE {self.schema}.relay_state SET epoch = epoch + 1, position = 0,"
                " updated_at = now() WHERE topic = $1 RETURNING epoch",
                self.topic,
            )
            await self._conn.execute(
                f"DELETE FROM {self.schema}.relay_partitions WHERE topic = $1", self.topic
            )
        self.state = RelayState(position=0, epoch=epoch, marks={})
        await kafka.ensure_topics(self.settings, [self.topic])
        RELAY_RESETS.labels(self.service, self.topic).inc()
        RELAY_EPOCH.labels(self.service).set(epoch)
        log.warning(
            "relay %s: broker lost %s (%s); republishing the event store as epoch %s",
            self.service,
            self.topic,
            reason,
            epoch,
        )

    # -- status ----------------------------------------------------------------

    def status(self, head: int) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "active": self.active,
            "position": self.state.position,
            "head": head,
            "lag": max(head - self.state.position, 0),
            "epoch": self.state.epoch,
            "partitions": {
                str(p): {"high_offset": m.offset, "event_id": str(m.event_id)}
                for p, m in sorted(self.state.marks.items())
            },
        }


async def read_relay_status(conn: DbConn, schema: str, topic: str) -> dict[str, Any]:
    """The relay's stored state, readable from any replica or the CLI."""
    q = quote_ident(schema)
    row = await conn.fetchrow(
        f"SELECT position, epoch FROM {q}.relay_state WHERE topic = $1", topic
    )
    parts = await conn.fetch(
        f"SELECT partition, high_offset FROM {q}.relay_partitions WHERE topic = $1", topic
    )
    return {
        "topic": topic,
        "position": row["position"] if row else 0,
        "epoch": row["epoch"] if row else 1,
        "partitions": {str(r["partition"]): {"high_offset": r["high_offset"]} for r in parts},
    }
