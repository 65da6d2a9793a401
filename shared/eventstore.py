"""The event store every service uses: an eventsourcing (9.5) Application on
PostgreSQL, one schema per service.

`POSTGRES_ENABLE_DB_FUNCTIONS` stays off: its insert function skips the table
lock that keeps notification ids in commit order, and the relay relies on that
order. The recorder also writes the idempotency record of a command in the
same transaction as its events, so a retried command is answered from the
record and never applied twice, even across a crash. And it links every event
into the service's hash chain in that transaction (tamper evidence,
shared.audit_chain, docs/adr/0012).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from asyncpg.pgproto.pgproto import UUID as PgUUID
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    JSONTranscoder,
    OperationalError,
    ProgrammingError,
    Recording,
    StoredEvent,
    Transcoding,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg import ClientCursor, Connection
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from shared.audit_chain import CHAIN_TABLE, genesis_link
from shared.catalogue import EventCatalogue
from shared.clock import Clock, IdFactory, SystemClock, random_ids
from shared.domain import (
    Actor,
    CommandContext,
    LedgerAggregate,
    VersionConflict,
    command_context,
)
from shared.envelope import EventEnvelope
from shared.idempotency import IdempotencyKey, IdempotencyKeyReused, IdempotencyRecord
from shared.policy import Policy, load_policy
from shared.settings import Settings

A = TypeVar("A", bound=LedgerAggregate)


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class DriverUUIDAsHex(Transcoding):
    """asyncpg hands out its own UUID subclass; the transcoder matches exact
    types, so a value read by asyncpg must never make an event unstorable.
    Stored like a plain UUID, it reads back as one."""

    type = PgUUID
    name = "uuid_hex"

    def encode(self, obj: UUID) -> str:
        return obj.hex

    def decode(self, data: str) -> UUID:
        return UUID(data)


@dataclass(frozen=True)
class Blob:
    """File content stored with the events that refer to it, in their
    transaction: an event never names content that is not there, and content
    is never kept for an event that was refused (no dual write). `key_id` and
    `nonce` are set when `data` is ciphertext (the contract archive, R4.1).
    Only a service whose migrations create a `contents` table saves blobs."""

    id: UUID
    sha256: str
    size: int
    data: bytes
    key_id: str | None = None
    nonce: bytes | None = None


class LedgerRecorder(PostgresApplicationRecorder):
    """Application recorder that also records idempotency keys, file contents
    and the events' links in the service's hash chain atomically with the
    events (R4.5: everything on record, and evidence that it stayed so).

    A save holds the events table's EXCLUSIVE lock (the library's way of
    keeping notification ids in commit order), so how long it holds it bounds
    every process's saves together. The library waits for the inserted ids
    under the lock and commits after; a thread of a busy process gets the GIL
    back only after other requests' Python, so saves queued behind the lock
    for milliseconds each (about 300 saves/s, whatever the number of
    processes; issue 9). Here the database links the events itself, and a
    save without file contents goes out as one message, which PostgreSQL
    runs as one transaction: the lock is held for the server's work only."""

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        #: The service name (`<service>_events`): the chain's genesis.
        self.service = events_table_name.removesuffix("_events")
        schema = Identifier(datastore.schema)
        chain = SQL("{}.{}").format(schema, Identifier(CHAIN_TABLE))
        events = SQL("{}.{}").format(schema, Identifier(events_table_name))
        # Every event of the save, in notification order, joined to the link
        # before it (the last stored one, or the genesis): link = sha256(prev
        # || sha256(canonical bytes)), the canonical bytes of
        # shared.audit_chain.canonical_parts built here in SQL (a test holds
        # the two equal). Rendered once: composing statements on every save
        # cost more than the rest of the link.
        self._insert_links: bytes = (
            SQL(
                "WITH RECURSIVE saved AS ("
                " SELECT row_number() OVER (ORDER BY e.notification_id) AS n,"
                " e.notification_id, x.event_id, e.originator_id, e.originator_version,"
                " sha256(int8send(e.notification_id) || uuid_send(e.originator_id)"
                " || int8send(e.originator_version)"
                " || int4send(octet_length(convert_to(e.topic, 'UTF8')))"
                " || convert_to(e.topic, 'UTF8')"
                " || int8send(octet_length(e.state)::bigint) || e.state) AS digest"
                " FROM unnest(%(ids)s::uuid[], %(versions)s::bigint[], %(event_ids)s::uuid[])"
                " AS x (originator_id, originator_version, event_id)"
                " JOIN {events} e ON e.originator_id = x.originator_id"
                " AND e.originator_version = x.originator_version),"
                " linked AS ("
                " SELECT s.n, s.notification_id, s.event_id, s.originator_id,"
                " s.originator_version, last.link AS prev, sha256(last.link || s.digest) AS link"
                " FROM saved s, (SELECT coalesce((SELECT link FROM {chain}"
                " ORDER BY notification_id DESC LIMIT 1), %(genesis)s::bytea) AS link) AS last"
                " WHERE s.n = 1"
                " UNION ALL"
                " SELECT s.n, s.notification_id, s.event_id, s.originator_id,"
                " s.originator_version, l.link, sha256(l.link || s.digest)"
                " FROM linked l JOIN saved s ON s.n = l.n + 1)"
                " INSERT INTO {chain} (notification_id, event_id, originator_id,"
                " originator_version, prev, link)"
                " SELECT notification_id, event_id, originator_id, originator_version, prev, link"
                " FROM linked"
            )
            .format(chain=chain, events=events)
            .as_bytes()
        )
        self._insert_stored: bytes = (
            SQL(
                "INSERT INTO {} (originator_id, originator_version, topic, state)"
                " SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[], %s::bytea[])"
                " RETURNING notification_id"
            )
            .format(events)
            .as_bytes()
        )
        self._insert_idempotency: bytes = (
            SQL(
                "INSERT INTO {}.idempotency_keys (principal, key, request_hash,"
                " status_code, aggregate_id, aggregate_version) VALUES (%s, %s, %s, %s, %s, %s)"
            )
            .format(schema)
            .as_bytes()
        )
        self._insert_content: bytes = (
            SQL(
                "INSERT INTO {}.contents (id, sha256, size, key_id, nonce, data)"
                " VALUES (%s, %s, %s, %s, %s, %s)"
            )
            .format(schema)
            .as_bytes()
        )
        self._genesis = genesis_link(self.service)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        blobs: Sequence[Blob] = kwargs.get("blobs") or ()
        record = kwargs.get("idempotency")
        idempotency = (
            self._idempotency_params(record) if isinstance(record, IdempotencyRecord) else None
        )
        stored = (
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
        )
        event_ids: dict[tuple[Any, int], UUID] = kwargs.get("event_ids") or {}
        links = {  # the events named by the keys the insert stores them under
            "ids": stored[0],
            "versions": stored[1],
            "event_ids": [event_ids.get(key) for key in zip(stored[0], stored[1], strict=True)],
            "genesis": self._genesis,
        }
        with self.datastore.get_connection() as conn:
            if blobs:
                return self._insert_with_contents(conn, blobs, idempotency, stored, links)
            return self._insert_in_one_message(conn, idempotency, stored, links)

    def _insert_in_one_message(
        self,
        conn: Connection[DictRow],
        idempotency: tuple[Any, ...] | None,
        stored: tuple[list[Any], ...],
        links: dict[str, Any],
    ) -> list[int]:
        """One query message of several statements: PostgreSQL runs it as
        one transaction (rolled back whole on any error: a version conflict
        or a reused idempotency key raises IntegrityError) and nothing waits
        for the client in between. The values are bound by psycopg on the
        client (`ClientCursor`, quoted for this connection)."""
        with ClientCursor(conn) as cur:
            parts = []
            if idempotency is not None:
                parts.append(cur.mogrify(self._insert_idempotency, idempotency))
            if stored[0]:
                parts += [cur.mogrify(lock) for lock in self.lock_table_statements]
                parts.append(cur.mogrify(self._notify()))
                parts.append(cur.mogrify(self._insert_stored, stored))
                parts.append(cur.mogrify(self._insert_links, links))
            if not parts:
                return []
            cur.execute(";\n".join(parts))
            ids: list[int] = []
            while True:  # one result per statement: the insert's is the one with ids
                if cur.description and cur.description[0].name == "notification_id":
                    ids = [row["notification_id"] for row in cur.fetchall()]
                if not cur.nextset():
                    break
        if len(ids) != len(stored[0]):
            msg = f"got {len(ids)} notification ids for {len(stored[0])} events"
            raise ProgrammingError(msg)
        return ids

    def _insert_with_contents(
        self,
        conn: Connection[DictRow],
        blobs: Sequence[Blob],
        idempotency: tuple[Any, ...] | None,
        stored: tuple[list[Any], ...],
        links: dict[str, Any],
    ) -> list[int]:
        """A save with file contents (up to the upload limit): binary
        parameters in a pipeline rather than megabytes of quoted text. No
        round trip under the lock either, but the statements leave as Python
        issues them, so a thread switch between them holds it longer."""
        with conn.cursor() as inserted:
            with conn.pipeline(), conn.transaction(), conn.cursor() as curs:
                for blob in blobs:
                    curs.execute(
                        self._insert_content,
                        (blob.id, blob.sha256, blob.size, blob.key_id, blob.nonce, blob.data),
                    )
                if idempotency is not None:
                    curs.execute(self._insert_idempotency, idempotency)
                if stored[0]:
                    self._lock_table(curs)
                    curs.execute(self._notify())
                    inserted.execute(self._insert_stored, stored)
                    curs.execute(self._insert_links, links)
            return [row["notification_id"] for row in inserted.fetchall()] if stored[0] else []

    def _notify(self) -> Composed:
        return SQL("NOTIFY {0}").format(Identifier(self.channel_name))

    @staticmethod
    def _idempotency_params(record: IdempotencyRecord) -> tuple[Any, ...]:
        return (
            record.key.principal,
            record.key.key,
            record.key.request_hash,
            record.key.success_status,
            record.aggregate_id,
            record.aggregate_version,
        )


def eventsourcing_env(settings: Settings, service: str) -> dict[str, str]:
    pg = settings.postgres
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "APPLICATION_RECORDER_TOPIC": f"{LedgerRecorder.__module__}:{LedgerRecorder.__qualname__}",
        "POSTGRES_DBNAME": pg.dbname,
        "POSTGRES_HOST": pg.host,
        "POSTGRES_PORT": str(pg.port),
        "POSTGRES_USER": pg.user,
        "POSTGRES_PASSWORD": pg.password,
        "POSTGRES_SCHEMA": settings.schema_of(service),
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        "POSTGRES_POOL_SIZE": "2",
        "POSTGRES_MAX_OVERFLOW": str(settings.db_pool_size - 2),
        "POSTGRES_CONNECT_TIMEOUT": "10",
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_PRE_PING": "y",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "10",
        "CREATE_TABLE": "y",
    }
    if settings.aggregate_cache_size:
        # Long-lived aggregates (a project's report schedule gathers a year of
        # periods) were replayed from their first event on every command: in
        # the workload profile that was 28% of the docs process. A cached
        # aggregate is fast-forwarded with the events stored after its version
        # (one query, so another replica's writes are seen) and handed out as
        # a deep copy, so a command that fails half-way leaves the cache as it
        # was.
        env["AGGREGATE_CACHE_MAXSIZE"] = str(settings.aggregate_cache_size)
        env["AGGREGATE_CACHE_FASTFORWARD"] = "y"
        env["DEEPCOPY_FROM_AGGREGATE_CACHE"] = "y"
    return env


class LedgerApplication(Application[UUID]):
    """Base of each service's application: the only place that saves."""

    SERVICE: ClassVar[str] = ""
    AGGREGATES: ClassVar[tuple[type[LedgerAggregate], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The events table is `<schema>.<SERVICE>_events`.
        cls.name = cls.SERVICE

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        new_id: IdFactory = random_ids,
        policy: Policy | None = None,
    ) -> None:
        if not self.SERVICE:
            raise TypeError(f"{type(self).__name__} must set SERVICE")
        self.settings = settings
        self.policy = policy or load_policy(settings.policy_file)
        self.clock: Clock = clock or SystemClock()
        self.new_id = new_id
        self.catalogue = EventCatalogue(self.SERVICE, self.AGGREGATES)
        super().__init__(env=eventsourcing_env(settings, self.SERVICE))

    @property
    def schema(self) -> str:
        return self.settings.schema_of(self.SERVICE)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())
        transcoder.register(DriverUUIDAsHex())

    def context(
        self,
        actor: Actor,
        *,
        correlation_id: UUID | None = None,
        causation_id: UUID | None = None,
        traceparent: str | None = None,
        idempotency: IdempotencyKey | None = None,
    ) -> CommandContext:
        return CommandContext(
            actor=actor,
            correlation_id=correlation_id or self.new_id(),
            causation_id=causation_id,
            clock=self.clock,
            new_id=self.new_id,
            traceparent=traceparent,
            idempotency=idempotency,
        )

    def save_in(
        self, ctx: CommandContext, *aggregates: LedgerAggregate, blobs: Sequence[Blob] = ()
    ) -> list[Recording[UUID]]:
        """Saves the command's aggregates, with its idempotency record and the
        file contents its events name, in one transaction. The first aggregate
        is the one the command answers with."""
        if ctx.expected_version is not None and aggregates:
            self._check_expected_version(ctx.expected_version, aggregates[0])
        record = None
        if ctx.idempotency is not None and aggregates:
            first = aggregates[0]
            record = IdempotencyRecord(ctx.idempotency, first.id, first.version)
        pending = [e for a in aggregates for e in a.pending_events]
        # Named in the events' links (shared.audit_chain).
        event_ids = {
            (e.originator_id, e.originator_version): e.event_id
            for e in pending
            if isinstance(e, LedgerAggregate.Event)
        }
        try:
            return self.save(
                *aggregates, idempotency=record, blobs=tuple(blobs), event_ids=event_ids
            )
        except IntegrityError:
            # eventsourcing retries an insert whose connection failed; when the
            # first attempt did commit, the retry collides with our own events.
            if pending and self._stored_already(pending):
                return []
            raise

    @staticmethod
    def _check_expected_version(expected: int, aggregate: LedgerAggregate) -> None:
        """The version the command found its aggregate at (before its new
        events) must be the one the caller named; a racing command that found
        the same version loses at the insert instead (IntegrityError)."""
        pending = aggregate.pending_events
        found = pending[0].originator_version - 1 if pending else aggregate.version
        if found != expected:
            raise VersionConflict(expected, found)

    def _stored_already(self, events: list[Any]) -> bool:
        for event in events:
            stored = list(
                self.events.get(
                    event.originator_id,
                    gt=event.originator_version - 1,
                    lte=event.originator_version,
                )
            )
            if not stored or getattr(stored[0], "event_id", None) != event.event_id:
                return False
        return True

    def find_idempotent(self, key: IdempotencyKey) -> IdempotencyRecord | None:
        sql = SQL(
            "SELECT request_hash, status_code, aggregate_id, aggregate_version"
            " FROM {}.idempotency_keys WHERE principal = %s AND key = %s"
        ).format(Identifier(self.schema))
        with self.recorder_datastore().get_connection() as conn, conn.cursor() as curs:
            curs.execute(sql, (key.principal, key.key))
            row = curs.fetchone()
        if row is None:
            return None
        if row["request_hash"] != key.request_hash:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used before with a different request"
            )
        stored = IdempotencyKey(key.principal, key.key, key.request_hash, row["status_code"])
        return IdempotencyRecord(stored, row["aggregate_id"], row["aggregate_version"])

    def recorder_datastore(self) -> Any:
        assert isinstance(self.recorder, LedgerRecorder)
        return self.recorder.datastore

    def record_once(
        self,
        aggregate_id: UUID,
        kind: type[A],
        cause: UUID,
        record: Callable[[A], UUID | None],
    ) -> UUID | None:
        """Records what the service does by itself (an Overdue of a deadline)
        and returns the id `record` gives; `record` is idempotent, so a racing
        change of the aggregate makes it load again and decide afresh."""
        for _ in range(3):
            aggregate = self.get_as(kind, aggregate_id)
            ctx = self.system_context(causation_id=cause)
            with command_context(ctx):
                event_id = record(aggregate)
            if not aggregate.pending_events:
                return event_id
            try:
                self.save_in(ctx, aggregate)
                return event_id
            except IntegrityError:
                continue
        raise RuntimeError(f"{kind.__name__} {aggregate_id} keeps changing")

    def reacting_to(self, event: EventEnvelope) -> CommandContext:
        """For what this service records in reaction to another service's
        event: the person who acted there is the actor, in the same flow."""
        return self.context(
            Actor(user_id=event.actor.user_id, role=event.actor.role),
            correlation_id=event.correlation_id,
            causation_id=event.event_id,
        )

    def get_as(self, kind: type[A], aggregate_id: UUID) -> A:
        """The aggregate, if it is of this kind (else not found: an id of
        another kind of aggregate is no such resource here)."""
        aggregate: object = self.repository.get(aggregate_id)
        if not isinstance(aggregate, kind):
            raise AggregateNotFoundError(aggregate_id)
        return aggregate

    def find_as(self, kind: type[A], aggregate_id: UUID) -> A | None:
        try:
            return self.get_as(kind, aggregate_id)
        except AggregateNotFoundError:
            return None

    def system_context(
        self, *, causation_id: UUID | None = None, correlation_id: UUID | None = None
    ) -> CommandContext:
        """For what the service does by itself: deadlines, reactions to events."""
        return self.context(Actor.SYSTEM, causation_id=causation_id, correlation_id=correlation_id)

    def history(self, aggregate_id: UUID) -> list[EventEnvelope]:
        """Every event of one aggregate, as published (oldest first)."""
        events = list(self.events.get(aggregate_id))
        if not events:
            raise AggregateNotFoundError(aggregate_id)
        return [
            self.catalogue.to_envelope(e) for e in events if isinstance(e, LedgerAggregate.Event)
        ]

    def log_head(self) -> int:
        """Highest notification id in this service's event store (0 if empty)."""
        return self.recorder.max_notification_id() or 0

    def ping(self) -> None:
        with self.recorder_datastore().get_connection() as conn, conn.cursor() as curs:
            curs.execute("SELECT 1")


__all__ = [
    "Blob",
    "IdempotencyKey",
    "IdempotencyKeyReused",
    "IdempotencyRecord",
    "IntegrityError",
    "LedgerApplication",
    "LedgerRecorder",
]
