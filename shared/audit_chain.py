"""Tamper evidence: a hash chain over each service's stored events (R4.5, R1.1).

Every event a service stores gets a link in `<schema>.event_chain`, written by
the recorder (`shared.eventstore.LedgerRecorder`) in the transaction that
stores the event, in notification order:

    link(n) = SHA-256( link(n-1) || SHA-256(canonical bytes of event n) )
    link(0) = SHA-256( service name )                      (the genesis)

The canonical bytes are exactly what is stored (`canonical_parts`): the
notification id, originator id and version, topic and the state bytes as the
library stored them (hashed as stored, whatever the transcoder did to them).
The recorder serialises inserts with the events table's EXCLUSIVE lock, so
reading the previous link inside the transaction is race-free.

`verify_chain` recomputes the chain from the stored rows in batches (constant
memory) and names the first event that was modified, deleted, inserted or
reordered; with the heads published on `audit.chain` (`ChainHeadPublisher`,
read back by `read_published_heads`) it also catches a chain that was
recomputed after the fact, which the database alone cannot show: whoever can
write the tables can recompute links too (docs/adr/0012).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import struct
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared import kafka
from shared.clock import Clock
from shared.db import DbConn, connect, quote_ident
from shared.resilience import sleep_unless
from shared.settings import Settings

log = logging.getLogger(__name__)

CHAIN_TABLE = "event_chain"
ORIGIN_TABLE = "event_chain_origin"
LINK_BYTES = 32
#: The topic name without the test prefix (`Settings.schema_prefix`).
CHAIN_TOPIC = "audit.chain"

ProblemKind = Literal["modified", "deleted", "inserted", "reordered", "rewritten"]


# -- the format ----------------------------------------------------------------


def genesis_link(service: str) -> bytes:
    """The link before a service's first event: SHA-256 of the service name."""
    return hashlib.sha256(service.encode()).digest()


def canonical_parts(
    notification_id: int,
    originator_id: UUID | str,
    originator_version: int,
    topic: str,
    state: bytes,
) -> tuple[bytes, ...]:
    """The canonical bytes of one stored event, in parts (the state is not
    copied): notification id (8 bytes, big-endian), originator id (16),
    originator version (8), topic length (4) and UTF-8 topic, state length (8)
    and the state bytes as stored. Never change this: every stored link
    depends on it (a new format needs a new chain, docs/adr/0012)."""
    oid = originator_id if isinstance(originator_id, UUID) else UUID(str(originator_id))
    topic_bytes = topic.encode()
    return (
        struct.pack(">q", notification_id),
        oid.bytes,
        struct.pack(">qI", originator_version, len(topic_bytes)),
        topic_bytes,
        struct.pack(">Q", len(state)),
        state,
    )


def event_digest(
    notification_id: int,
    originator_id: UUID | str,
    originator_version: int,
    topic: str,
    state: bytes,
) -> bytes:
    """SHA-256 of the event's canonical bytes."""
    digest = hashlib.sha256()
    for part in canonical_parts(notification_id, originator_id, originator_version, topic, state):
        digest.update(part)
    return digest.digest()


def chain_link(
    prev: bytes,
    notification_id: int,
    originator_id: UUID | str,
    originator_version: int,
    topic: str,
    state: bytes,
) -> bytes:
    """SHA-256 of the previous link followed by the digest of the event's
    canonical bytes (the recorder has the database compute this last step:
    `sha256(prev || digest)`)."""
    digest = event_digest(notification_id, originator_id, originator_version, topic, state)
    return hashlib.sha256(prev + digest).digest()


def event_id_from_state(state: bytes) -> UUID | None:
    """The event id inside a stored state, if it still reads as JSON (for
    events without a link, and for the backfill); None otherwise."""
    try:
        value: Any = json.loads(state).get("event_id")
        if isinstance(value, dict):
            value = value.get("_data_")
        return UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def events_table(schema: str, service: str) -> str:
    """`<schema>.<service>_events`, quoted (the eventsourcing library's name)."""
    return f"{quote_ident(schema)}.{quote_ident(service + '_events')}"


def chain_topic(settings: Settings) -> str:
    return f"{settings.schema_prefix}{CHAIN_TOPIC}"


# -- existing stores: the backfill ---------------------------------------------


async def backfill_chain(conn: DbConn, schema: str, service: str, *, batch: int = 2000) -> int:
    """Links the events stored before the chain existed (first start after the
    upgrade), in batches; returns how many it linked.

    Runs at start under the schema lock, before this process saves anything.
    The first run fixes `backfill_through` (the head at that moment, taken
    under the events table's lock, so every event up to it has committed); a
    run that was interrupted resumes; once complete it never runs again, so an
    event inserted behind the recorder's back is never linked by a restart.
    """
    q = quote_ident(schema)
    events = events_table(schema, service)
    origin = await conn.fetchrow(f"SELECT backfill_through, backfilled_at FROM {q}.{ORIGIN_TABLE}")
    if origin is None:
        async with conn.transaction():
            await conn.execute(f"LOCK TABLE {events} IN EXCLUSIVE MODE")
            if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {q}.{CHAIN_TABLE})"):
                # Links without an origin: the origin row was removed. Linking
                # now could vouch for rows nobody recorded; verify says what
                # happened.
                log.error("%s: the event chain has links but no origin; not backfilling", service)
                return 0
            through = await conn.fetchval(f"SELECT coalesce(max(notification_id), 0) FROM {events}")
            await conn.execute(
                f"INSERT INTO {q}.{ORIGIN_TABLE} (backfill_through) VALUES ($1)", through
            )
        origin = await conn.fetchrow(
            f"SELECT backfill_through, backfilled_at FROM {q}.{ORIGIN_TABLE}"
        )
        assert origin is not None
    if origin["backfilled_at"] is not None:
        return 0
    through = origin["backfill_through"]
    linked = 0
    while True:
        async with conn.transaction():
            last = await conn.fetchrow(
                f"SELECT notification_id, link FROM {q}.{CHAIN_TABLE}"
                " ORDER BY notification_id DESC LIMIT 1"
            )
            after = last["notification_id"] if last else 0
            prev = bytes(last["link"]) if last else genesis_link(service)
            rows = await conn.fetch(
                "SELECT notification_id, originator_id, originator_version, topic, state"
                f" FROM {events} WHERE notification_id > $1 AND notification_id <= $2"
                " ORDER BY notification_id LIMIT $3",
                after,
                through,
                batch,
            )
            if not rows:
                await conn.execute(f"UPDATE {q}.{ORIGIN_TABLE} SET backfilled_at = now()")
                break
            links = []
            for r in rows:
                state = bytes(r["state"])
                link = chain_link(
                    prev,
                    r["notification_id"],
                    r["originator_id"],
                    r["originator_version"],
                    r["topic"],
                    state,
                )
                links.append(
                    (
                        r["notification_id"],
                        event_id_from_state(state),
                        r["originator_id"],
                        r["originator_version"],
                        prev,
                        link,
                    )
                )
                prev = link
            await conn.executemany(
                f"INSERT INTO {q}.{CHAIN_TABLE} (notification_id, event_id, originator_id,"
                " originator_version, prev, link) VALUES ($1, $2, $3, $4, $5, $6)",
                links,
            )
            linked += len(links)
    if linked:
        log.info("%s: linked %s events stored before the chain existed", service, linked)
    return linked


# -- verification ---------------------------------------------------------------


@dataclass(frozen=True)
class ChainProblem:
    """The first place where the stored events and their chain disagree."""

    kind: ProblemKind
    notification_id: int
    event_id: UUID | None
    originator_id: UUID | None
    originator_version: int | None
    topic: str | None
    detail: str

    def describe(self) -> str:
        who = f"event {self.event_id}" if self.event_id else "an event"
        where = f"notification {self.notification_id}"
        what = (
            f" (aggregate {self.originator_id} version {self.originator_version}"
            f"{', ' + self.topic if self.topic else ''})"
            if self.originator_id
            else ""
        )
        return f"{self.kind.upper()}: {who} at {where}{what}: {self.detail}"


@dataclass(frozen=True)
class ChainReport:
    service: str
    events: int  # stored events read
    links: int  # links verified
    head_notification_id: int  # the last verified link (0: none)
    head_link: bytes
    backfill_through: int | None  # events up to here were linked by the backfill
    anchors_checked: int  # published heads compared
    problem: ChainProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        if self.problem is not None:
            return f"{self.service}: {self.problem.describe()}"
        anchors = f", {self.anchors_checked} published heads match" if self.anchors_checked else ""
        return (
            f"{self.service}: OK, {self.events} events, {self.links} links{anchors};"
            f" head #{self.head_notification_id} {self.head_link.hex()}"
        )


@dataclass(frozen=True)
class Anchor:
    """A head published on `audit.chain`: the link at a notification id then."""

    notification_id: int
    link: bytes
    at: datetime | None = None


@dataclass
class _Row:
    notification_id: int
    event: asyncpg.Record | None
    link: asyncpg.Record | None


class _Walk:
    """Recomputes the chain row by row, in notification order."""

    def __init__(self, conn: DbConn, schema: str, service: str, anchors: Sequence[Anchor]) -> None:
        self.conn = conn
        self.q = quote_ident(schema)
        self.events_table = events_table(schema, service)
        self.expected_prev = genesis_link(service)
        self.last_nid = 0  # the last verified link
        self.events = 0
        self.links = 0
        # A head of an empty store vouches for nothing.
        self.anchors = sorted(
            (a for a in anchors if a.notification_id > 0), key=lambda a: a.notification_id
        )
        self.next_anchor = 0
        self.anchor_ok: Anchor | None = None

    async def step(self, row: _Row) -> ChainProblem | None:
        e, c, n = row.event, row.link, row.notification_id
        if e is not None:
            self.events += 1
        if (
            e is None
            or c is None
            or (e["originator_id"], e["originator_version"])
            != (c["originator_id"], c["originator_version"])
            or bytes(c["prev"]) != self.expected_prev
        ):
            return await self._misplaced(n, e, c)
        prev = self.expected_prev
        state = bytes(e["state"])
        computed = chain_link(
            prev, n, e["originator_id"], e["originator_version"], e["topic"], state
        )
        if computed != bytes(c["link"]):
            return self._problem(
                "modified",
                n,
                c,
                "its stored bytes no longer hash to its link (the event, or its link,"
                " was changed after it was stored)",
                topic=e["topic"],
            )
        if problem := self._passed_anchors(n, computed, c):
            return problem
        self.expected_prev = computed
        self.last_nid = n
        self.links += 1
        return None

    def finish(self) -> ChainProblem | None:
        """Heads published beyond the end of the chain: its tail was removed."""
        if self.next_anchor < len(self.anchors):
            anchor = self.anchors[self.next_anchor]
            return ChainProblem(
                "deleted",
                anchor.notification_id,
                None,
                None,
                None,
                None,
                f"a head published {_when(anchor)}names notification {anchor.notification_id},"
                f" but the chain ends at {self.last_nid}: events at the end were removed",
            )
        return None

    # -- the first problem, named -------------------------------------------------

    def _problem(
        self,
        kind: ProblemKind,
        n: int,
        rec: asyncpg.Record,
        detail: str,
        *,
        event_id: UUID | None = None,
        topic: str | None = None,
    ) -> ChainProblem:
        """`rec`: the link (or, without one, the event) the problem is about."""
        return ChainProblem(
            kind,
            n,
            event_id if event_id is not None else rec.get("event_id"),
            rec["originator_id"],
            rec["originator_version"],
            topic if topic is not None else rec.get("topic"),
            detail,
        )

    async def _misplaced(
        self, n: int, e: asyncpg.Record | None, c: asyncpg.Record | None
    ) -> ChainProblem:
        """An event without its link, a link without its event, another event
        where the link says, or a link that does not follow the last one."""
        if c is None:
            assert e is not None
            return await self._unlinked(n, e)
        if e is None:
            return await self._missing(n, c)
        if (e["originator_id"], e["originator_version"]) != (
            c["originator_id"],
            c["originator_version"],
        ):
            return await self._displaced(n, e, c)
        return await self._out_of_sequence(n, c, bytes(c["prev"]))

    async def _chained_at(self, oid: UUID, version: int) -> int | None:
        value: int | None = await self.conn.fetchval(
            f"SELECT notification_id FROM {self.q}.{CHAIN_TABLE}"
            " WHERE originator_id = $1 AND originator_version = $2 LIMIT 1",
            oid,
            version,
        )
        return value

    async def _stored_at(self, oid: UUID, version: int) -> int | None:
        value: int | None = await self.conn.fetchval(
            f"SELECT notification_id FROM {self.events_table}"
            " WHERE originator_id = $1 AND originator_version = $2",
            oid,
            version,
        )
        return value

    async def _unlinked(self, n: int, e: asyncpg.Record) -> ChainProblem:
        state = bytes(e["state"])
        event_id = event_id_from_state(state)
        chained = await self._chained_at(e["originator_id"], e["originator_version"])
        if chained is not None:
            return self._problem(
                "reordered",
                n,
                e,
                f"it was stored and linked at notification {chained} and now sits at {n}",
                event_id=event_id,
            )
        return self._problem(
            "inserted",
            n,
            e,
            "it has no link: it was written behind the event store's back",
            event_id=event_id,
        )

    async def _missing(self, n: int, c: asyncpg.Record) -> ChainProblem:
        stored = await self._stored_at(c["originator_id"], c["originator_version"])
        if stored is not None:
            return self._problem(
                "reordered", n, c, f"it was linked at notification {n} and now sits at {stored}"
            )
        return self._problem(
            "deleted", n, c, "its link is there, the event is not: the event was deleted"
        )

    async def _displaced(self, n: int, e: asyncpg.Record, c: asyncpg.Record) -> ChainProblem:
        stored = await self._stored_at(c["originator_id"], c["originator_version"])
        if stored is not None:
            return self._problem(
                "reordered",
                n,
                c,
                f"it was linked at notification {n} and now sits at {stored}; at {n} sits"
                f" aggregate {e['originator_id']} version {e['originator_version']}",
            )
        return self._problem(
            "modified",
            n,
            c,
            f"the row at notification {n} is no longer this event: it now says aggregate"
            f" {e['originator_id']} version {e['originator_version']}",
        )

    async def _out_of_sequence(self, n: int, c: asyncpg.Record, prev: bytes) -> ChainProblem:
        follows: int | None = await self.conn.fetchval(
            f"SELECT notification_id FROM {self.q}.{CHAIN_TABLE} WHERE link = $1 LIMIT 1", prev
        )
        before = f"notification {self.last_nid}" if self.last_nid else "the genesis"
        if follows is None:
            return self._problem(
                "deleted",
                n,
                c,
                f"its link follows one that is no longer there: an event and its link were"
                f" deleted between {before} and this one",
            )
        if follows > n:
            return self._problem(
                "reordered",
                n,
                c,
                f"it was linked after notification {follows} but now sits before it, at {n}",
            )
        inserted = await self.conn.fetchrow(
            f"SELECT c.notification_id, c.event_id, e.originator_id, e.originator_version,"
            f" e.topic FROM {self.q}.{CHAIN_TABLE} c LEFT JOIN {self.events_table} e"
            " USING (notification_id) WHERE c.notification_id > $1"
            " ORDER BY c.notification_id LIMIT 1",
            follows,
        )
        assert inserted is not None
        return ChainProblem(
            "inserted",
            inserted["notification_id"],
            inserted["event_id"],
            inserted["originator_id"],
            inserted["originator_version"],
            inserted["topic"],
            f"it was put into the chain between notification {follows} and {n}"
            f" (the link at {n} follows {follows} directly)",
        )

    def _passed_anchors(self, n: int, link: bytes, c: asyncpg.Record) -> ChainProblem | None:
        while self.next_anchor < len(self.anchors):
            anchor = self.anchors[self.next_anchor]
            if anchor.notification_id > n:
                return None
            self.next_anchor += 1
            if anchor.notification_id == n and anchor.link == link:
                self.anchor_ok = anchor
                continue
            since = (
                f"after notification {self.anchor_ok.notification_id} (which still matches its"
                f" published head)"
                if self.anchor_ok
                else "at or before it"
            )
            if anchor.notification_id < n:
                detail = (
                    f"a head published {_when(anchor)}names notification"
                    f" {anchor.notification_id}, which is no longer in the chain"
                )
            else:
                detail = f"the link here differs from the head published {_when(anchor)}for it"
            return self._problem(
                "rewritten",
                anchor.notification_id,
                c,
                f"{detail}: the chain was recomputed after events were changed {since}",
            )
        return None


def _when(anchor: Anchor) -> str:
    return f"at {anchor.at.isoformat()} " if anchor.at else ""


async def _batches(
    conn: DbConn, schema: str, service: str, batch: int
) -> AsyncIterator[list[_Row]]:
    """Events and links merged by notification id, `batch` rows per query
    (keyset pagination on both primary keys: constant memory)."""
    q = quote_ident(schema)
    events = events_table(schema, service)
    after = 0
    while True:
        ev = await conn.fetch(
            "SELECT notification_id, originator_id, originator_version, topic, state"
            f" FROM {events} WHERE notification_id > $1 ORDER BY notification_id LIMIT $2",
            after,
            batch,
        )
        ln = await conn.fetch(
            "SELECT notification_id, event_id, originator_id, originator_version, prev, link"
            f" FROM {q}.{CHAIN_TABLE} WHERE notification_id > $1 ORDER BY notification_id"
            " LIMIT $2",
            after,
            batch,
        )
        if not ev and not ln:
            return
        bounds = [rows[-1]["notification_id"] for rows in (ev, ln) if len(rows) == batch]
        upto = min(bounds) if bounds else None
        by_nid: dict[int, _Row] = {}
        for r in ev:
            nid = r["notification_id"]
            if upto is None or nid <= upto:
                by_nid[nid] = _Row(nid, r, None)
        for r in ln:
            nid = r["notification_id"]
            if upto is None or nid <= upto:
                by_nid.setdefault(nid, _Row(nid, None, None)).link = r
        yield [by_nid[k] for k in sorted(by_nid)]
        if upto is None:
            return
        after = upto


async def verify_chain(
    conn: DbConn,
    schema: str,
    service: str,
    *,
    anchors: Iterable[Anchor] = (),
    batch: int = 1000,
) -> ChainReport:
    """Recomputes a service's chain from its stored events and reports OK, or
    the first event that was modified, deleted, inserted or reordered (R4.5:
    everything on record stays as recorded; R1.1: the record can be shown to
    an auditor as intact). `anchors` are heads published earlier: a link that
    differs from one is a chain recomputed after a change ("rewritten").

    Reads one consistent snapshot (repeatable read, read only) in batches.
    """
    walk = _Walk(conn, schema, service, list(anchors))
    q = quote_ident(schema)
    problem: ChainProblem | None = None
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        origin = await conn.fetchrow(f"SELECT backfill_through FROM {q}.{ORIGIN_TABLE}")
        async for rows in _batches(conn, schema, service, batch):
            for row in rows:
                problem = await walk.step(row)
                if problem is not None:
                    break
            if problem is not None:
                break
        if problem is None:
            problem = walk.finish()
    return ChainReport(
        service=service,
        events=walk.events,
        links=walk.links,
        head_notification_id=walk.last_nid,
        head_link=walk.expected_prev,
        backfill_through=origin["backfill_through"] if origin else None,
        anchors_checked=walk.next_anchor,
        problem=problem,
    )


async def schema_has_chain(conn: DbConn, schema: str, service: str) -> bool:
    """Whether the service's event store and chain exist (it has been started)."""
    found = await conn.fetchval(
        "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
        f"{quote_ident(schema)}.{CHAIN_TABLE}",
        events_table(schema, service),
    )
    return bool(found)


async def verify_services(
    settings: Settings,
    services: Sequence[str],
    *,
    published: bool = False,
    batch: int = 1000,
) -> dict[str, ChainReport | None]:
    """What `partnerledger audit verify` runs: one report per service (None:
    the service has no event store in this database yet)."""
    anchors = await read_published_heads(settings, services) if published else {}
    conn = await connect(settings.postgres, application_name="partnerledger-audit")
    reports: dict[str, ChainReport | None] = {}
    try:
        for service in services:
            schema = settings.schema_of(service)
            if not await schema_has_chain(conn, schema, service):
                reports[service] = None
                continue
            reports[service] = await verify_chain(
                conn, schema, service, anchors=anchors.get(service, ()), batch=batch
            )
    finally:
        await conn.close()
    return reports


# -- the head, published ------------------------------------------------------------


class ChainHead(BaseModel):
    """A service's chain head as published on `audit.chain` (key: the service
    name). A copy kept outside the database vouches for every event up to
    `notification_id`: `partnerledger audit verify --published` recomputes the
    chain and compares its link there."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        title="Partner Ledger event chain head",
        json_schema_extra={"$id": "https://partnerledger.example/events/chain-head.v1.json"},
    )

    service: str = Field(min_length=1, max_length=50, examples=["partner"])
    notification_id: int = Field(
        ge=0, description="The last linked event's notification id (0: nothing stored yet)."
    )
    link: str = Field(
        pattern="^[0-9a-f]{64}$",
        description="SHA-256 chain link at notification_id, hex (docs/adr/0012).",
    )
    at: AwareDatetime = Field(description="When the head was read.")


def chain_head_json_schema() -> dict[str, Any]:
    return ChainHead.model_json_schema()


async def read_head(conn: DbConn, schema: str, service: str) -> tuple[int, bytes]:
    """The stored head: the last link (the genesis while nothing is stored)."""
    row = await conn.fetchrow(
        f"SELECT notification_id, link FROM {quote_ident(schema)}.{CHAIN_TABLE}"
        " ORDER BY notification_id DESC LIMIT 1"
    )
    if row is None:
        return 0, genesis_link(service)
    return row["notification_id"], bytes(row["link"])


class ChainHeadPublisher:
    """Publishes the service's chain head on `audit.chain` every
    `chain_head_interval_s`, while this process's relay is the active one (one
    publisher per service)."""

    def __init__(
        self,
        service: str,
        settings: Settings,
        pool: asyncpg.Pool,
        clock: Clock,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        self.service = service
        self.settings = settings
        self.pool = pool
        self.clock = clock
        self.active = active
        self.topic = chain_topic(settings)
        self.published = 0
        self.last: ChainHead | None = None
        self._producer: AIOKafkaProducer | None = None

    async def publish_once(self) -> ChainHead:
        async with self.pool.acquire() as conn:
            nid, link = await read_head(conn, self.settings.schema_of(self.service), self.service)
        head = ChainHead(
            service=self.service, notification_id=nid, link=link.hex(), at=self.clock.now()
        )
        if self._producer is None:
            await kafka.ensure_topics(self.settings, [self.topic])
            producer = kafka.make_producer(self.settings, f"{self.service}-chain-head")
            await producer.start()
            self._producer = producer
        await self._producer.send_and_wait(
            self.topic, value=head.model_dump_json().encode(), key=self.service.encode()
        )
        self.published += 1
        self.last = head
        return head

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.settings.chain_head_interval_s
        try:
            while not stop.is_set():
                if not self.active():
                    # Standby (or the relay not connected yet): look again soon.
                    await sleep_unless(stop, min(interval, 1.0))
                    continue
                try:
                    await self.publish_once()
                except Exception as exc:  # the next round tries again; logged, not fatal
                    log.warning("chain head of %s not published: %r", self.service, exc)
                    await self.close()
                await sleep_unless(stop, interval)
        finally:
            await self.close()

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception as exc:  # closing a broken client
                log.debug("chain head producer of %s: %r", self.service, exc)


async def read_published_heads(
    settings: Settings, services: Sequence[str], *, idle_polls: int = 3
) -> dict[str, list[Anchor]]:
    """Every head still on `audit.chain` for the given services."""
    topic = chain_topic(settings)
    wanted = {s.encode(): s for s in services}
    found: dict[str, dict[tuple[int, bytes], Anchor]] = {s: {} for s in services}
    consumer = kafka.make_probe_consumer(settings, "partnerledger-audit")
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return {s: [] for s in services}
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        idle = 0
        while idle < idle_polls:
            batch = await consumer.getmany(*tps, timeout_ms=300)
            records = [r for msgs in batch.values() for r in msgs]
            idle = 0 if records else idle + 1
            for record in records:
                service = wanted.get(record.key or b"")
                if service is None:
                    continue
                try:
                    head = ChainHead.model_validate_json(record.value)
                except ValueError:
                    log.warning("unreadable chain head at %s/%s", record.partition, record.offset)
                    continue
                link = bytes.fromhex(head.link)
                found[service].setdefault(
                    (head.notification_id, link), Anchor(head.notification_id, link, head.at)
                )
            if all([await _at_end(consumer, tp) for tp in tps]):
                break
    finally:
        await consumer.stop()
    return {s: list(v.values()) for s, v in found.items()}


async def _at_end(consumer: Any, tp: TopicPartition) -> bool:
    """Read up to the high watermark a fetch reported (Tansu's end offsets are
    per batch, kafka.py); unknown yet: not at the end."""
    high = consumer.highwater(tp)
    return high is not None and bool(await consumer.position(tp) >= high)
