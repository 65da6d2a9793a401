"""Where a replay's events come from (shared.replay): a producing service's
store, decoded by that service's own process exactly as its relay decodes it
(`--dump-events`; services never import each other), or the topics."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from shared import kafka
from shared.domain import LedgerAggregate
from shared.envelope import H_EVENT_ID, EventEnvelope
from shared.eventstore import LedgerApplication
from shared.settings import Settings


class ReplayError(Exception):
    """A replay that cannot go on (bad target, version, or promotion refused)."""


def dump_events(app: LedgerApplication, out: IO[bytes], after: int = 0, batch: int = 2000) -> int:
    """Writes the stored events after notification `after` as lines of
    `<notification id>\\t<envelope JSON>`, preceded by `#head\\t<id>`; the
    envelope is the very bytes the relay publishes. Returns how many."""
    head = app.recorder.max_notification_id() or 0
    out.write(b"#head\t%d\n" % head)
    position, written = after, 0
    while True:
        notifications = app.recorder.select_notifications(
            start=position, limit=batch, inclusive_of_start=False
        )
        if not notifications:
            break
        lines = []
        for notification in notifications:
            event = app.mapper.to_domain_event(notification)
            if isinstance(event, LedgerAggregate.Event):
                value = app.catalogue.to_envelope(event).to_json_bytes()
                lines.append(b"%d\t%s\n" % (notification.id, value))
            position = notification.id
        out.write(b"".join(lines))
        written += len(lines)
    out.flush()
    return written


def dump_command(source: str, after: int) -> list[str]:
    """How a producing service's process is asked for its events: services
    never import each other, each decodes its own store."""
    return [sys.executable, "-m", f"services.{source}", "--dump-events", "--after", str(after)]


# -- the consumer side: what a batch is made of -------------------------------------------


@dataclass
class Item:
    """One event to apply: where it came from and its parsed envelope
    (None when it cannot be parsed: the exact path parks it)."""

    topic: str
    partition: int
    position: int  # notification id (stores) or offset (kafka)
    value: bytes
    envelope: EventEnvelope | None

    @property
    def source_key(self) -> str:
        return f"{self.topic}/{self.partition}"

    def record(self) -> ConsumerRecord[bytes, bytes]:
        headers = [(H_EVENT_ID, str(self.envelope.event_id).encode())] if self.envelope else []
        return ConsumerRecord(
            topic=self.topic,
            partition=self.partition,
            offset=self.position,
            timestamp=0,
            timestamp_type=0,
            key=None,
            value=self.value,
            checksum=None,
            serialized_key_size=0,
            serialized_value_size=len(self.value),
            headers=headers,
        )


def _parse(value: bytes) -> EventEnvelope | None:
    try:
        return EventEnvelope.parse_message(value)
    except ValidationError:
        return None


class _StoreStream:
    """One producer's `--dump-events` process, read line by line."""

    def __init__(self, source: str, topic: str, after: int) -> None:
        self.source = source
        self.topic = topic
        self.after = after
        self.head = 0
        self.buffer: deque[Item] = deque()
        self.done = False
        self._rest = b""
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *dump_command(self.source, self.after),
            stdout=asyncio.subprocess.PIPE,
            env=dict(os.environ),
            limit=4 * 1024 * 1024,
        )
        assert self._proc.stdout is not None
        first = await self._proc.stdout.readline()
        if not first.startswith(b"#head\t"):
            self._proc.kill()
            await self._proc.wait()
            raise ReplayError(f"the {self.source} service did not dump its events")
        self.head = int(first.split(b"\t", 1)[1])

    @property
    def expected(self) -> int:
        return max(self.head - self.after, 0)

    async def fill(self) -> None:
        """Reads what the dump has written (up to a megabyte): line by line
        from the stream costs more than parsing the lines."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        chunk = await proc.stdout.read(1 << 20)
        if not chunk:
            self.done = True
            if await proc.wait() != 0:
                raise ReplayError(f"dumping the {self.source} store failed")
            if self._rest:
                raise ReplayError(f"the {self.source} dump ended in the middle of a line")
            return
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()  # what follows the last newline: the next line's start
        for line in lines:
            position, _, value = line.partition(b"\t")
            if not position.isdigit():
                raise ReplayError(f"the {self.source} dump wrote an unreadable line")
            self.buffer.append(Item(self.topic, 0, int(position), value, _parse(value)))

    async def close(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()


async def store_batches(
    settings: Settings,
    positions: Mapping[str, int],
    batch_size: int,
    on_total: Callable[[int], None],
) -> AsyncIterator[list[Item]]:
    """The producers' events merged by recording time (as they happened),
    each store in its own order; `positions` maps source -> notification id
    already applied."""
    streams = [_StoreStream(s, settings.topic_of(s), after) for s, after in positions.items()]
    try:
        # Started together: each process spends its first seconds importing.
        await asyncio.gather(*(stream.start() for stream in streams))
        on_total(sum(s.expected for s in streams))
        while True:
            for stream in streams:
                if not stream.buffer and not stream.done:
                    await stream.fill()
            live = [s for s in streams if s.buffer]
            if not live:
                return
            if len(live) == 1 and all(s.done for s in streams if s is not live[0]):
                # The only store left: its order is the order, no merging.
                only = live[0].buffer
                yield [only.popleft() for _ in range(min(batch_size, len(only)))]
                continue
            batch: list[Item] = []
            while len(batch) < batch_size:
                ready = [s for s in live if s.buffer]
                if len(ready) < len(live) and any(not s.done for s in live if not s.buffer):
                    break  # a stream needs more lines before the order is known
                if not ready:
                    break
                stream = min(ready, key=_head_time)
                batch.append(stream.buffer.popleft())
            if batch:
                yield batch
    finally:
        for stream in streams:
            await stream.close()


def _head_time(stream: _StoreStream) -> float:
    envelope = stream.buffer[0].envelope
    return envelope.recorded_at.timestamp() if envelope else float("-inf")


async def kafka_batches(
    settings: Settings,
    topics: Sequence[str],
    positions: Mapping[str, int],
    batch_size: int,
    on_total: Callable[[int], None],
) -> AsyncIterator[list[Item]]:
    """Every partition of `topics` from the start (or the next offset in
    `positions`, keyed `topic/partition`) to its end as of now."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        **kafka.security(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )
    await consumer.start()
    try:
        known = await consumer.topics()
        parts = [
            TopicPartition(t, p)
            for t in topics
            if t in known
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        if not parts:
            on_total(0)
            return
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        total = 0
        for tp in parts:
            start = max(positions.get(f"{tp.topic}/{tp.partition}", 0), starts[tp])
            consumer.seek(tp, start)
            total += max(ends[tp] - start, 0)
        on_total(total)
        # The end is what the partition held when this call began (listed, or
        # the high watermark of its first fetch where that is further): a
        # busy topic never keeps the replay, or a promotion's lock, waiting.
        targets = dict(ends)
        watermarked: set[TopicPartition] = set()
        while True:
            for tp in parts:
                if tp not in watermarked and (high := consumer.highwater(tp)) is not None:
                    targets[tp] = max(targets[tp], high)
                    watermarked.add(tp)
            positions_now = {tp: await consumer.position(tp) for tp in parts}
            todo = [tp for tp in parts if positions_now[tp] < targets[tp]]
            if not todo:
                return
            fetched = await consumer.getmany(*todo, timeout_ms=500, max_records=batch_size)
            batch = [
                Item(
                    tp.topic,
                    tp.partition,
                    msg.offset + 1,
                    msg.value or b"",
                    _parse(msg.value or b""),
                )
                for tp, msgs in fetched.items()
                for msg in msgs
                if msg.offset < targets[tp] or tp not in watermarked
            ]
            if batch:
                yield batch
    finally:
        await consumer.stop()
