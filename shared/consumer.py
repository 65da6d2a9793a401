"""The idempotent consumer: applies events from other services' topics.

Each event's effect, its event id and the partition offset are committed in
one PostgreSQL transaction, so a redelivered event changes nothing. Partition
offsets alone cannot tell a redelivery after the broker lost its topics and
restarted its offsets at zero; event ids can.

- On assignment the consumer seeks to the offsets stored with the effects.
- The relay stamps an epoch on every message; a higher epoch means the topic
  was republished from the event store, so the partition is re-read from the
  start (duplicates fall through the event-id check).
- A position beyond the partition's high watermark means the log got shorter
  (the broker lost it): re-read from the start as well.
- On assignment the consumer first re-reads the record it applied last; if
  another event sits at that offset, the log was replaced while nothing new
  arrived, so it re-reads from the start. (A republished log can have the very
  length of the old one, e.g. when the old one held a duplicate.)
- An event that fails deterministically is parked in `dead_letters`, together
  with every later event of the same aggregate (order per aggregate is kept),
  and the consumer goes on. `redrive()` applies parked events after a fix.
- Transient errors (database or broker down) are retried with backoff; the
  offset never moves past an event that was not applied or parked.
- Offsets are committed to Kafka only with explicit values, and only as a
  courtesy for external lag tools: the database is the source of truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from opentelemetry import trace
from pydantic import BaseModel, ValidationError

from shared import kafka
from shared.db import DbConn, projection_writes_key, quote_ident
from shared.envelope import H_EPOCH, H_EVENT_ID, H_EVENT_TYPE, H_TRACEPARENT, EventEnvelope
from shared.resilience import TRANSIENT, coalesce, run_forever
from shared.settings import Settings
from shared.telemetry import (
    CONSUMED,
    CONSUMER_LAG,
    DEAD_LETTERS,
    context_from_traceparent,
    tracer,
)

log = logging.getLogger(__name__)

Handler = Callable[[DbConn, EventEnvelope], Awaitable[None]]

#: A subscription's handler for every event type of its source (the kpi
#: service's audit trail keeps every event): it runs after the event type's
#: own handler, if any, in the same transaction, so the event is applied by
#: both or, when one fails, by neither.
EVERY_EVENT = "*"


class PoisonEvent(Exception):
    """Raised by a handler for an event it can never apply (parks it)."""


M = TypeVar("M", bound=BaseModel)


def read_payload(event: EventEnvelope, model: type[M], versions: Collection[int] = (1,)) -> M:
    """The part of an event's payload a consumer reads (its tolerant reader
    model, held against the producer's schema of each version in `versions`
    by the contract test). An unknown schema version or a payload that does
    not fit fails the same way on every delivery: the event is parked, never
    retried forever."""
    if event.schema_version not in versions:
        raise PoisonEvent(f"{event.event_type} v{event.schema_version} is not understood")
    try:
        return model.model_validate(event.payload)
    except ValidationError as exc:
        raise PoisonEvent(f"{event.event_type} payload does not match its contract: {exc}") from exc


@dataclass(frozen=True)
class Subscription:
    """The events of one producing service a consumer reacts to."""

    source: str  # producing service: "partner"
    handlers: Mapping[str, Handler]  # event_type (or EVERY_EVENT) -> handler; others pass by


@dataclass
class PartitionState:
    epoch: int | None
    #: (offset, event id) of the record applied last, to be read back first.
    verify: tuple[int, UUID] | None = None
    #: Once the log was found replaced (the broker lost it), relay records of
    #: this epoch or older in it are stale: sends the old relay generation had
    #: in flight, landed in the new log ahead of the republish, some of their
    #: aggregates' earlier events lost with the old log. The relay's next
    #: epoch republishes every event, so they are passed over.
    floor: int = 0


@dataclass
class BatchOutcome:
    applied: int = 0
    duplicates: int = 0
    parked: int = 0
    ignored: int = 0


@dataclass
class _Letter:
    msg: ConsumerRecord[bytes, bytes]
    envelope: EventEnvelope | None
    reason: str
    error: str


@dataclass
class RedriveResult:
    applied: int = 0
    still_parked: int = 0
    errors: list[str] = field(default_factory=list)


class Consumer:
    def __init__(
        self,
        *,
        owner: str,
        name: str,
        settings: Settings,
        subscriptions: Sequence[Subscription],
        pool: asyncpg.Pool,
        schema: str | None = None,
    ) -> None:
        self.owner = owner
        self.settings = settings
        self.group = f"{settings.consumer_group_of(owner)}.{name}"
        #: Where its offsets, processed ids and dead letters live: the
        #: service's schema, or a replay's version schema (shared.replay).
        self.raw_schema = schema or settings.schema_of(owner)
        self.schema = quote_ident(self.raw_schema)
        self.writes_key = projection_writes_key(self.raw_schema)
        self.pool = pool
        self.handlers: dict[tuple[str, str], Handler] = {}
        self.every: dict[str, Handler] = {}  # topic -> its EVERY_EVENT handler
        self.topics: list[str] = []
        for sub in subscriptions:
            topic = settings.topic_of(sub.source)
            self.topics.append(topic)
            for event_type, handler in sub.handlers.items():
                if event_type == EVERY_EVENT:
                    self.every[topic] = handler
                else:
                    self.handlers[(topic, event_type)] = handler
        self.partitions: dict[TopicPartition, PartitionState] = {}
        self.assigned = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        #: aiokafka only logs what the rebalance listener raises: keep it, and
        #: let the main loop restart the consumer with it.
        self._assignment_error: BaseException | None = None

    def handler_for(self, topic: str, event_type: str) -> Handler | None:
        """The event type's handler, then the topic's EVERY_EVENT handler, as one."""
        own = self.handlers.get((topic, event_type))
        every = self.every.get(topic)
        if own is None or every is None:
            return own or every
        first, then = own, every

        async def both(conn: DbConn, event: EventEnvelope) -> None:
            await first(conn, event)
            await then(conn, event)

        return both

    # -- lifecycle -------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        await run_forever(f"consumer {self.group}", lambda: self._run_once(stop), stop)

    async def _run_once(self, stop: asyncio.Event) -> None:
        try:
            await self._run_connected(stop)
        finally:
            await self._close()

    async def _run_connected(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            **kafka.security(self.settings),
            group_id=self.group,
            client_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
            request_timeout_ms=self.settings.kafka_request_timeout_ms,
            max_poll_interval_ms=300_000,
            # A broker that lost its topics may recreate one with other
            # partitions (auto-created by a producer's retry before the relay
            # ensured it, on a broker whose default differs from
            # PL_TOPIC_PARTITIONS): the consumer learns of them within this time.
            metadata_max_age_ms=10_000,
        )
        self._consumer = consumer
        consumer.subscribe(self.topics, listener=_Listener(self))
        await consumer.start()
        while not stop.is_set():
            batches = await consumer.getmany(
                timeout_ms=500, max_records=self.settings.consumer_max_records
            )
            for tp, msgs in batches.items():
                await self._handle_partition(tp, msgs, stop)
            if self._assignment_error is not None:
                error, self._assignment_error = self._assignment_error, None
                raise error
            await self._watch_watermarks()
            if 0 < sum(len(m) for m in batches.values()) < self.settings.consumer_max_records // 10:
                await coalesce(stop, self.settings.wake_coalesce_ms)  # a trickle: gather more

    async def _close(self) -> None:
        self.assigned.clear()
        self.partitions.clear()
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            self._consumer = None

    # -- assignment --------------------------------------------------------------

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self._seek_to_stored(assigned)
        except Exception as exc:
            log.warning("consumer %s: cannot load its offsets (%r); restarting", self.group, exc)
            self._assignment_error = exc

    async def _seek_to_stored(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        rows = await self.pool.fetch(
            "SELECT topic, partition, next_offset, epoch, last_event_id"
            f" FROM {self.schema}.consumer_offsets WHERE consumer_group = $1",
            self.group,
        )
        stored = {TopicPartition(r["topic"], r["partition"]): r for r in rows}
        for tp in assigned:
            row = stored.get(tp)
            if row is not None and row["last_event_id"] is not None and row["next_offset"] > 0:
                last = row["next_offset"] - 1
                consumer.seek(tp, last)
                self.partitions[tp] = PartitionState(
                    epoch=row["epoch"], verify=(last, row["last_event_id"])
                )
            elif row is not None:
                consumer.seek(tp, row["next_offset"])
                self.partitions[tp] = PartitionState(epoch=row["epoch"])
            else:
                consumer.seek(tp, 0)
                self.partitions[tp] = PartitionState(epoch=None)
        log.info("consumer %s assigned %s", self.group, sorted(str(t) for t in assigned))
        self.assigned.set()

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self.partitions.pop(tp, None)

    # -- processing --------------------------------------------------------------

    async def _handle_partition(
        self, tp: TopicPartition, msgs: list[ConsumerRecord[bytes, bytes]], stop: asyncio.Event
    ) -> None:
        state = self.partitions.get(tp)
        if state is None:
            # Revoked while the batch was in flight, or assigned and its stored
            # offset still loading (the listener seeks it; a failed load restarts
            # the consumer): these records were read from a position we did not
            # choose, so they are not applied.
            return
        if state.verify is not None and msgs:
            msgs = self._verify_last_applied(tp, state, msgs)
            if not msgs:
                return
        if state.floor:
            msgs = [m for m in msgs if not 0 < _epoch_of(m) <= state.floor]
            if not msgs:
                return
        if state.epoch is None and msgs:
            state.epoch = _epoch_of(msgs[0])
        assert state.epoch is not None
        current: list[ConsumerRecord[bytes, bytes]] = []
        newer_epoch: int | None = None
        for msg in msgs:
            epoch = _epoch_of(msg)
            if epoch > state.epoch:
                newer_epoch = epoch
                break
            if 0 < epoch < state.epoch:
                continue  # an older relay generation's: the newer one republished it
            current.append(msg)  # same epoch (or not the relay's: parked if unreadable)
        if current:
            await self._apply_with_retry(tp, current, state.epoch, stop)
        if newer_epoch is not None:
            log.warning(
                "consumer %s: %s was republished (epoch %s -> %s); re-reading from the start",
                self.group,
                tp,
                state.epoch,
                newer_epoch,
            )
            state.epoch = newer_epoch
            assert self._consumer is not None
            self._consumer.seek(tp, 0)

    def _verify_last_applied(
        self, tp: TopicPartition, state: PartitionState, msgs: list[ConsumerRecord[bytes, bytes]]
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """The re-read last record still there: the log holds nothing we missed
        before it (the relay publishes in order, so both logs hold every event
        up to it), and its epoch becomes ours; applied again it is a no-op that
        stores that epoch. Another record there: the log was replaced, so
        re-read the partition from the start."""
        assert state.verify is not None
        offset, event_id = state.verify
        state.verify = None
        first = msgs[0]
        if first.offset != offset:  # retention moved the log start: nothing to compare
            return msgs
        if _event_id_of(first) == event_id:
            state.epoch = max(state.epoch or 0, _epoch_of(first))
            return msgs
        log.warning(
            "consumer %s: %s holds another event at offset %s than we applied; re-reading",
            self.group,
            tp,
            offset,
        )
        state.floor = max(state.floor, state.epoch or 0)
        state.epoch = max(state.epoch or 0, _epoch_of(first))
        assert self._consumer is not None
        self._consumer.seek(tp, 0)
        return []

    async def _watch_watermarks(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        assigned = consumer.assignment()
        for tp in list(self.partitions):
            if tp not in assigned:
                continue  # revoked a moment ago
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = await consumer.position(tp)
            except KafkaError:  # IllegalStateError: the partition moved away meanwhile
                continue
            CONSUMER_LAG.labels(self.owner, tp.topic, str(tp.partition)).set(
                max(high - position, 0)
            )
            if position > high:
                log.warning(
                    "consumer %s: %s is shorter (%s) than our position (%s): re-reading",
                    self.group,
                    tp,
                    high,
                    position,
                )
                state = self.partitions[tp]
                state.floor = max(state.floor, state.epoch or 0)
                consumer.seek(tp, 0)

    async def _apply_with_retry(
        self,
        tp: TopicPartition,
        msgs: list[ConsumerRecord[bytes, bytes]],
        epoch: int,
        stop: asyncio.Event,
    ) -> None:
        backoff = 0.1
        while True:
            try:
                outcome = await self.apply(tp, msgs, epoch)
                break
            except TRANSIENT as exc:
                if stop.is_set():
                    raise
                log.warning("consumer %s: %r; retrying batch in %.1fs", self.group, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        for name in ("applied", "duplicates", "parked", "ignored"):
            count = getattr(outcome, name)
            if count:
                CONSUMED.labels(self.owner, self.group, name).inc(count)
        if outcome.parked:
            DEAD_LETTERS.labels(self.owner, self.group).inc(outcome.parked)
        assert self._consumer is not None
        with contextlib.suppress(Exception):  # courtesy commit for lag tools only
            await self._consumer.commit({tp: msgs[-1].offset + 1})

    async def apply(
        self, tp: TopicPartition, msgs: Sequence[ConsumerRecord[bytes, bytes]], epoch: int
    ) -> BatchOutcome:
        """Applies a batch of one partition in one transaction."""
        outcome = BatchOutcome()
        async with self.pool.acquire() as conn, conn.transaction():
            # Held shared: a replay's promotion waits for this batch, and
            # holds the next one back while it swaps the tables.
            await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", self.writes_key)
            parsed: list[tuple[ConsumerRecord[bytes, bytes], EventEnvelope | None, str]] = []
            for msg in msgs:
                try:
                    parsed.append((msg, EventEnvelope.parse_message(msg.value or b""), ""))
                except ValidationError as exc:
                    parsed.append((msg, None, str(exc)))
            ids = [str(env.aggregate_id) for _, env, _ in parsed if env is not None]
            parked: set[str] = {
                r["aggregate_id"]
                for r in await conn.fetch(
                    f"SELECT DISTINCT aggregate_id FROM {self.schema}.dead_letters"
                    " WHERE consumer_group = $1 AND redriven_at IS NULL"
                    " AND aggregate_id = ANY($2::text[])",
                    self.group,
                    ids,
                )
            }
            for msg, envelope, parse_error in parsed:
                if envelope is None:
                    await self._park(conn, _Letter(msg, None, "unreadable envelope", parse_error))
                    outcome.parked += 1
                    continue
                aggregate = str(envelope.aggregate_id)
                if aggregate in parked:
                    reason = "an earlier event of this aggregate is parked"
                    await self._park(conn, _Letter(msg, envelope, reason, ""))
                    outcome.parked += 1
                    continue
                handler = self.handler_for(msg.topic, envelope.event_type)
                if handler is None:
                    outcome.ignored += 1
                    continue
                try:
                    applied = await self._apply_one(conn, msg, envelope, handler)
                except TRANSIENT:
                    raise
                except Exception as exc:
                    log.error(
                        "consumer %s parks %s %s: %r",
                        self.group,
                        envelope.event_type,
                        envelope.event_id,
                        exc,
                    )
                    await self._park(conn, _Letter(msg, envelope, "handler failed", repr(exc)))
                    parked.add(aggregate)
                    outcome.parked += 1
                    continue
                if applied:
                    outcome.applied += 1
                else:
                    outcome.duplicates += 1
            await conn.execute(
                f"INSERT INTO {self.schema}.consumer_offsets AS o"
                " (consumer_group, topic, partition, next_offset, epoch, last_event_id)"
                " VALUES ($1, $2, $3, $4, $5, $6)"
                " ON CONFLICT (consumer_group, topic, partition) DO UPDATE"
                " SET next_offset = EXCLUDED.next_offset, epoch = EXCLUDED.epoch,"
                " last_event_id = EXCLUDED.last_event_id, updated_at = now()"
                " WHERE o.epoch < EXCLUDED.epoch"
                " OR (o.epoch = EXCLUDED.epoch AND o.next_offset < EXCLUDED.next_offset)",
                self.group,
                tp.topic,
                tp.partition,
                msgs[-1].offset + 1,
                epoch,
                _event_id_of(msgs[-1]),
            )
        return outcome

    async def _apply_one(
        self,
        conn: DbConn,
        msg: ConsumerRecord[bytes, bytes],
        envelope: EventEnvelope,
        handler: Handler,
    ) -> bool:
        """Applies one event inside a savepoint; False if it was seen before."""
        parent = context_from_traceparent(kafka.header(msg.headers, H_TRACEPARENT))
        with tracer.start_as_current_span(
            f"apply {envelope.event_type}",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={"messaging.consumer.group.name": self.group},
        ):
            async with conn.transaction():
                first_time = await conn.fetchval(
                    f"INSERT INTO {self.schema}.processed_events"
                    " (consumer_group, event_id, source, position)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
                    self.group,
                    envelope.event_id,
                    msg.topic,
                    msg.offset,
                )
                if not first_time:
                    return False
                await handler(conn, envelope)
                return True

    async def _park(self, conn: DbConn, letter: _Letter) -> None:
        env = letter.envelope
        await conn.execute(
            f"INSERT INTO {self.schema}.dead_letters (consumer_group, topic, partition,"
            ' "offset", event_id, aggregate_id, event_type, reason, error, message, headers)'
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb)",
            self.group,
            letter.msg.topic,
            letter.msg.partition,
            letter.msg.offset,
            env.event_id if env else None,
            str(env.aggregate_id) if env else None,
            env.event_type if env else kafka.header(letter.msg.headers, H_EVENT_TYPE),
            letter.reason,
            letter.error,
            letter.msg.value or b"",
            json.dumps(
                [
                    [k.replace("\x00", ""), v.decode(errors="replace").replace("\x00", "")]
                    for k, v in letter.msg.headers or ()
                ]
            ),
        )

    # -- status and repair -------------------------------------------------------

    async def redrive(self, aggregate_id: str | None = None) -> RedriveResult:
        """Applies parked events in their original order, once each."""
        result = RedriveResult()
        async with self.pool.acquire() as conn:
            aggregates = [
                r["aggregate_id"]
                for r in await conn.fetch(
                    f"SELECT aggregate_id, min(id) AS first FROM {self.schema}.dead_letters"
                    " WHERE consumer_group = $1 AND redriven_at IS NULL"
                    " AND ($2::text IS NULL OR aggregate_id = $2)"
                    " GROUP BY aggregate_id ORDER BY first",
                    self.group,
                    aggregate_id,
                )
            ]
            for aggregate in aggregates:
                while True:
                    row = await conn.fetchrow(
                        f'SELECT id, topic, partition, "offset", message, headers'
                        f" FROM {self.schema}.dead_letters WHERE consumer_group = $1"
                        " AND redriven_at IS NULL AND aggregate_id IS NOT DISTINCT FROM $2"
                        " ORDER BY id LIMIT 1",
                        self.group,
                        aggregate,
                    )
                    if row is None:
                        break
                    try:
                        async with conn.transaction():
                            await conn.execute(
                                "SELECT pg_advisory_xact_lock_shared($1)", self.writes_key
                            )
                            envelope = EventEnvelope.parse_message(bytes(row["message"]))
                            handler = self.handler_for(row["topic"], envelope.event_type)
                            if handler is not None:
                                msg = _stored_record(row)
                                if await self._apply_one(conn, msg, envelope, handler):
                                    result.applied += 1
                            await conn.execute(
                                f"UPDATE {self.schema}.dead_letters SET redriven_at = now()"
                                " WHERE id = $1",
                                row["id"],
                            )
                    except TRANSIENT:
                        raise
                    except Exception as exc:
                        result.errors.append(f"dead letter {row['id']}: {exc!r}")
                        break
            result.still_parked = await conn.fetchval(
                f"SELECT count(*) FROM {self.schema}.dead_letters"
                " WHERE consumer_group = $1 AND redriven_at IS NULL",
                self.group,
            )
        return result

    def status(self) -> dict[str, Any]:
        consumer = self._consumer
        parts = {}
        for tp, state in sorted(self.partitions.items(), key=lambda kv: str(kv[0])):
            parts[f"{tp.topic}/{tp.partition}"] = {
                "epoch": state.epoch,
                "high_watermark": (
                    consumer.highwater(tp) if consumer and tp in consumer.assignment() else None
                ),
            }
        return {"group": self.group, "assigned": parts, "ready": self.assigned.is_set()}


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: Consumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.owner.on_assigned(assigned)


def _epoch_of(msg: ConsumerRecord[bytes, bytes]) -> int:
    """The relay's epoch; 0 for anything else (foreign or malformed records)."""
    raw = kafka.header(msg.headers, H_EPOCH)
    if raw and raw.isascii() and raw.isdigit() and len(raw) < 10:
        return int(raw)
    return 0


def _event_id_of(msg: ConsumerRecord[bytes, bytes]) -> UUID | None:
    raw = kafka.header(msg.headers, H_EVENT_ID)
    try:
        return UUID(raw) if raw else None
    except ValueError:
        return None


def _stored_record(row: asyncpg.Record) -> ConsumerRecord[bytes, bytes]:
    headers = [(k, v.encode()) for k, v in json.loads(row["headers"])]
    return ConsumerRecord(
        topic=row["topic"],
        partition=row["partition"],
        offset=row["offset"],
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=bytes(row["message"]),
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=len(row["message"]),
        headers=headers,
    )


async def read_consumer_offsets(
    conn: DbConn, schema: str, group_prefix: str
) -> dict[str, dict[str, dict[str, int]]]:
    """Stored offsets per group and partition, readable from any process."""
    rows = await conn.fetch(
        f"SELECT consumer_group, topic, partition, next_offset, epoch"
        f" FROM {quote_ident(schema)}.consumer_offsets WHERE consumer_group LIKE $1",
        group_prefix + "%",
    )
    out: dict[str, dict[str, dict[str, int]]] = {}
    for r in rows:
        out.setdefault(r["consumer_group"], {})[f"{r['topic']}/{r['partition']}"] = {
            "next_offset": r["next_offset"],
            "epoch": r["epoch"],
        }
    return out
