"""The cross-service audit trail (issue 7): every event of every topic, kept
by the kpi consumer (its EVERY_EVENT handler, in the transaction of the
event's other effects), so an auditor can follow one user or one project
across the four services in recorded order, and export what they found.

Which project an event belongs to: a Project's own events belong to it; an
event whose payload names a `project_id` belongs to that project; an
aggregate whose first event named a project (an approval request, an
emergency action, a document, a meeting, a report schedule) belongs to it
with all its later events (`audit_trail_projects`). Partners, standings,
the department, evaluations and delegations span projects: only their
events that name one are in a project's trail.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
import zipfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal
from uuid import UUID

import asyncpg
from pydantic import ConfigDict, Field

from shared.consumer import EVERY_EVENT, Handler
from shared.db import DbConn, Migration
from shared.envelope import EventEnvelope

MIGRATIONS: Final = (
    Migration(
        160,
        "the audit trail: every event of every topic, by actor and by project",
        """
        CREATE TABLE {schema}.audit_trail (
            event_id uuid PRIMARY KEY,
            service text NOT NULL,
            event_type text NOT NULL,
            schema_version int NOT NULL,
            aggregate_type text NOT NULL,
            aggregate_id uuid NOT NULL,
            aggregate_version int NOT NULL,
            occurred_at timestamptz NOT NULL,
            recorded_at timestamptz NOT NULL,
            actor_id text NOT NULL,
            actor_role text NOT NULL,
            correlation_id uuid NOT NULL,
            causation_id uuid,
            project_id uuid,
            payload jsonb NOT NULL,
            kept_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX audit_trail_by_actor ON {schema}.audit_trail
            (actor_id, recorded_at, service, aggregate_id, aggregate_version);
        CREATE INDEX audit_trail_by_project ON {schema}.audit_trail
            (project_id, recorded_at, service, aggregate_id, aggregate_version)
            WHERE project_id IS NOT NULL;
        CREATE TABLE {schema}.audit_trail_projects (
            aggregate_id uuid PRIMARY KEY,
            project_id uuid NOT NULL
        );
        """,
    ),
)

Kind = Literal["user", "project"]
KINDS: Final[tuple[Kind, ...]] = ("user", "project")
#: The trail's order: as recorded, then a stable tie-break.
ORDER: Final = "recorded_at, service, aggregate_id, aggregate_version"


# -- keeping every event -----------------------------------------------------------------------


def _project_named(payload: dict[str, Any]) -> UUID | None:
    raw = payload.get("project_id")
    if not isinstance(raw, str):
        return None
    try:
        return UUID(raw)
    except ValueError:
        return None


async def keep(conn: DbConn, source: str, event: EventEnvelope) -> None:
    """Stores one event in the trail (once: a redelivery finds its id taken)."""
    if source == "partner" and event.aggregate_type == "Project":
        project_id: UUID | None = event.aggregate_id
    else:
        project_id = _project_named(event.payload)
        if project_id is not None and event.aggregate_version == 1:
            await conn.execute(
                "INSERT INTO audit_trail_projects (aggregate_id, project_id) VALUES ($1, $2)"
                " ON CONFLICT (aggregate_id) DO NOTHING",
                event.aggregate_id,
                project_id,
            )
    # An event naming no project takes the one its aggregate's first event
    # named, looked up by the INSERT itself: no answer to wait for, so a
    # replay's pipelined writes (shared.pipelined) go out in one round trip.
    await conn.execute(
        "INSERT INTO audit_trail (event_id, service, event_type, schema_version,"
        " aggregate_type, aggregate_id, aggregate_version, occurred_at, recorded_at, actor_id,"
        " actor_role, correlation_id, causation_id, project_id, payload) VALUES ($1, $2, $3,"
        " $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, COALESCE($14::uuid, (SELECT p.project_id"
        " FROM audit_trail_projects p WHERE p.aggregate_id = $6)), $15::jsonb)"
        " ON CONFLICT (event_id) DO NOTHING",
        event.event_id,
        source,
        event.event_type,
        event.schema_version,
        event.aggregate_type,
        event.aggregate_id,
        event.aggregate_version,
        event.occurred_at,
        event.recorded_at,
        event.actor.user_id,
        event.actor.role,
        event.correlation_id,
        event.causation_id,
        project_id,
        json.dumps(event.payload, ensure_ascii=False),
    )


def trail_handlers(source: str) -> dict[str, Handler]:
    """The EVERY_EVENT handler that keeps each event of `source` in the trail."""

    async def handle(conn: DbConn, event: EventEnvelope) -> None:
        await keep(conn, source, event)

    return {EVERY_EVENT: handle}


# -- reading it --------------------------------------------------------------------------------


class TrailEvent(EventEnvelope):
    """An event as published, with the service that published it and the
    project it belongs to."""

    model_config = ConfigDict(title="Trail event", json_schema_extra={})

    service: str = Field(description="The producing service (its topic is <service>.events)")
    project_id: UUID | None = Field(description="The project the event belongs to, if any")


@dataclass(frozen=True)
class TrailQuery:
    kind: Kind
    subject: str  # a user id, or a project id
    start: datetime | None = None  # recorded at or after
    end: datetime | None = None  # recorded before

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.subject,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
        }


#: The sort key a page continues after: recorded_at, service, aggregate id, version.
After = tuple[datetime, str, UUID, int]

COLUMNS: Final = (
    "event_id, service, event_type, schema_version, aggregate_type, aggregate_id,"
    " aggregate_version, occurred_at, recorded_at, actor_id, actor_role, correlation_id,"
    " causation_id, project_id, payload"
)


async def read_trail(
    conn: DbConn, query: TrailQuery, after: After | None, limit: int
) -> list[TrailEvent]:
    """One page of the trail, in recorded order."""
    column = "actor_id" if query.kind == "user" else "project_id"
    subject: object = query.subject if query.kind == "user" else UUID(query.subject)
    where = [f"{column} = $1"]
    args: list[object] = [subject]
    if query.start is not None:
        args.append(query.start)
        where.append(f"recorded_at >= ${len(args)}")
    if query.end is not None:
        args.append(query.end)
        where.append(f"recorded_at < ${len(args)}")
    if after is not None:
        args.extend(after)
        n = len(args)
        where.append(f"({ORDER}) > (${n - 3}, ${n - 2}::text, ${n - 1}::uuid, ${n}::int)")
    args.append(limit)
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM audit_trail WHERE {' AND '.join(where)}"
        f" ORDER BY {ORDER} LIMIT ${len(args)}",
        *args,
    )
    return [_event(r) for r in rows]


def _event(row: asyncpg.Record) -> TrailEvent:
    return TrailEvent(
        event_id=row["event_id"],
        event_type=row["event_type"],
        schema_version=row["schema_version"],
        aggregate_type=row["aggregate_type"],
        aggregate_id=row["aggregate_id"],
        aggregate_version=row["aggregate_version"],
        occurred_at=row["occurred_at"],
        recorded_at=row["recorded_at"],
        actor={"user_id": row["actor_id"], "role": row["actor_role"]},
        correlation_id=row["correlation_id"],
        causation_id=row["causation_id"],
        payload=json.loads(row["payload"]),
        service=row["service"],
        project_id=row["project_id"],
    )


def sort_key(event: TrailEvent) -> After:
    return (event.recorded_at, event.service, event.aggregate_id, event.aggregate_version)


# -- exports -----------------------------------------------------------------------------------

EXPORT_FORMAT: Final = "partnerledger-audit-export/1"
JSONL: Final = "events.jsonl"
CSV: Final = "events.csv"
MANIFEST: Final = "manifest.json"
CSV_HEADER: Final = (
    "event_id",
    "service",
    "event_type",
    "schema_version",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "occurred_at",
    "recorded_at",
    "actor_user_id",
    "actor_role",
    "correlation_id",
    "causation_id",
    "project_id",
    "payload",
)
#: A spreadsheet would read a cell starting with these as a formula.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
EXPORT_PAGE: Final = 1000


def jsonl_line(event: TrailEvent) -> bytes:
    return (event.model_dump_json() + "\n").encode()


def _cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def csv_row(event: TrailEvent) -> list[str]:
    plain = event.model_dump(mode="json")
    return [
        plain["event_id"],
        plain["service"],
        plain["event_type"],
        str(plain["schema_version"]),
        plain["aggregate_type"],
        plain["aggregate_id"],
        str(plain["aggregate_version"]),
        plain["occurred_at"],
        plain["recorded_at"],
        _cell(plain["actor"]["user_id"]),
        _cell(plain["actor"]["role"]),
        plain["correlation_id"],
        plain["causation_id"] or "",
        plain["project_id"] or "",
        json.dumps(plain["payload"], ensure_ascii=False, sort_keys=True),
    ]


@dataclass
class FileDigest:
    name: str
    records: int = 0
    size: int = 0
    sha: Any = field(default_factory=hashlib.sha256)

    def add(self, data: bytes) -> bytes:
        self.size += len(data)
        self.sha.update(data)
        return data

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "records": self.records,
            "bytes": self.size,
            "sha256": self.sha.hexdigest(),
        }


class _Sink(io.RawIOBase):
    """A write-only stream the zip writes into and the response drains."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.chunks.append(chunk)
        return len(chunk)

    def drain(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


def _info(name: str, moment: datetime) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=moment.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


async def export_zip(
    pool: asyncpg.Pool,
    query: TrailQuery,
    *,
    generated_at: datetime,
    meta: dict[str, Any],
) -> AsyncIterator[bytes]:
    """The trail as a zip, streamed: `events.jsonl` (one envelope per line),
    `events.csv` (the same events, UTF-8 with a byte order mark for
    spreadsheets; the payload as JSON in its last column) and `manifest.json`
    (the query, counts, sizes and SHA-256 of both files). The trail is read
    once, in pages; the CSV waits in a spooled temporary file while the
    JSON Lines stream out, so both files hold the very same events."""
    sink = _Sink()
    jsonl, table = FileDigest(JSONL), FileDigest(CSV)
    first: datetime | None = None
    last: datetime | None = None
    with (
        tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool,
        zipfile.ZipFile(sink, "w", allowZip64=True) as archive,
    ):
        rows = _CsvRows()
        spool.write(b"\xef\xbb\xbf" + rows.encode(CSV_HEADER))
        with archive.open(_info(JSONL, generated_at), "w", force_zip64=True) as entry:
            after: After | None = None
            while True:
                async with pool.acquire() as conn:
                    page = await read_trail(conn, query, after, EXPORT_PAGE)
                for event in page:
                    entry.write(jsonl.add(jsonl_line(event)))
                    spool.write(rows.encode(csv_row(event)))
                    first = first or event.recorded_at
                    last = event.recorded_at
                jsonl.records += len(page)
                table.records += len(page)
                yield sink.drain()
                if len(page) < EXPORT_PAGE:
                    break
                after = sort_key(page[-1])
        spool.seek(0)
        with archive.open(_info(CSV, generated_at), "w", force_zip64=True) as entry:
            while chunk := spool.read(256 * 1024):
                entry.write(table.add(chunk))
                yield sink.drain()
        manifest = {
            "format": EXPORT_FORMAT,
            **meta,
            "generated_at": generated_at.isoformat(),
            "query": query.describe(),
            "events": jsonl.records,
            "first_recorded_at": first.isoformat() if first else None,
            "last_recorded_at": last.isoformat() if last else None,
            "order": ORDER,
            "files": [jsonl.describe(), table.describe()],
        }
        body = json.dumps(manifest, ensure_ascii=False, indent=2).encode() + b"\n"
        archive.writestr(_info(MANIFEST, generated_at), body)
    yield sink.drain()


class _CsvRows:
    """CSV rows (RFC 4180: quoted as needed, CRLF) as UTF-8 bytes, one at a time."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer)

    def encode(self, row: Sequence[str]) -> bytes:
        self.writer.writerow(row)
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return text.encode()
