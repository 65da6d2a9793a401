"""The docs service's local projections of its own events:

- `views`: documents with their versions, reviews and reads (R4.5), report
  periods per project (R4.3), meetings and their resolutions (R4.2, R5.5);
- `deadlines`: the clocks its events start and stop (report periods, minutes,
  resolution owners, resolution deadlines), fired by shared.deadlines.

Both are derived state, rebuilt by replaying the event store. The `projects`
table is not: the `partner.events` consumer writes it (services.docs.consumers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shared import deadlines
from shared.db import DbConn, Migration
from shared.policy import Policy
from shared.projector import ProjectionHandler

REPORT: Final = "report"
MINUTES: Final = "minutes"
RESOLUTION_OWNER: Final = "resolution_owner"
RESOLUTION: Final = "resolution"

MIGRATIONS = (
    Migration(
        100,
        "projects, documents, report periods, meetings, resolutions",
        """
        CREATE TABLE {schema}.projects (
            project_id uuid PRIMARY KEY,
            name text NOT NULL,
            partner_id uuid,
            project_manager text NOT NULL,
            specialists text[] NOT NULL DEFAULT '{{}}',
            status text NOT NULL,
            contract_number text,
            signed_on date,
            starts_on date,
            ends_on date,
            closed_at timestamptz,
            updated_at timestamptz NOT NULL
        );
        CREATE TABLE {schema}.document_view (
            document_id uuid PRIMARY KEY,
            project_id uuid,
            name text NOT NULL,
            doc_type text NOT NULL,
            period text NOT NULL,
            period_start date NOT NULL,
            period_end date NOT NULL,
            meeting_id uuid,
            encrypted boolean NOT NULL,
            contract_number text,
            versions int NOT NULL,
            latest_sha256 text NOT NULL,
            latest_size bigint NOT NULL,
            filed_by text NOT NULL,
            last_filed_by text NOT NULL,
            filed_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            review text,
            reads int NOT NULL DEFAULT 0,
            denials int NOT NULL DEFAULT 0,
            version int NOT NULL
        );
        CREATE INDEX document_view_filed ON {schema}.document_view (filed_at, document_id);
        CREATE INDEX document_view_project ON {schema}.document_view (project_id, doc_type);
        CREATE TABLE {schema}.document_versions (
            document_id uuid NOT NULL,
            version int NOT NULL,
            content_id uuid NOT NULL,
            sha256 text NOT NULL,
            size bigint NOT NULL,
            media_type text NOT NULL,
            file_name text NOT NULL,
            filed_by text NOT NULL,
            filed_role text NOT NULL,
            filed_at timestamptz NOT NULL,
            note text NOT NULL,
            review text,
            reviewed_by text,
            reviewed_at timestamptz,
            reasons text[] NOT NULL DEFAULT '{{}}',
            PRIMARY KEY (document_id, version)
        );
        CREATE INDEX document_versions_filer ON {schema}.document_versions (filed_by);
        CREATE TABLE {schema}.document_reads (
            event_id uuid PRIMARY KEY,
            document_id uuid NOT NULL,
            version int,
            user_id text NOT NULL,
            role text NOT NULL,
            outcome text NOT NULL,
            at timestamptz NOT NULL
        );
        CREATE INDEX document_reads_document ON {schema}.document_reads (document_id, at);
        CREATE TABLE {schema}.schedule_view (
            project_id uuid PRIMARY KEY,
            project_name text NOT NULL,
            project_manager text NOT NULL,
            first_day date NOT NULL,
            state text NOT NULL,
            opened_at timestamptz NOT NULL,
            closed_at timestamptz
        );
        CREATE TABLE {schema}.report_periods (
            project_id uuid NOT NULL,
            kind text NOT NULL,
            period text NOT NULL,
            period_start date,
            period_end date,
            due_at timestamptz NOT NULL,
            status text NOT NULL,
            document_id uuid,
            filed_by text,
            filed_at timestamptz,
            overdue_event_id uuid,
            updated_at timestamptz NOT NULL,
            PRIMARY KEY (project_id, kind, period)
        );
        CREATE INDEX report_periods_due ON {schema}.report_periods (due_at, project_id);
        CREATE INDEX report_periods_status ON {schema}.report_periods (status, due_at);
        CREATE TABLE {schema}.meeting_view (
            meeting_id uuid PRIMARY KEY,
            kind text NOT NULL,
            title text NOT NULL,
            project_id uuid,
            held_at timestamptz NOT NULL,
            chaired_by text NOT NULL,
            attendees text[] NOT NULL,
            source text NOT NULL,
            minutes_due_at timestamptz NOT NULL,
            minutes_status text NOT NULL,
            minutes_document_id uuid,
            minutes_filed_at timestamptz,
            recorded_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            version int NOT NULL
        );
        CREATE INDEX meeting_view_held ON {schema}.meeting_view (held_at, meeting_id);
        CREATE TABLE {schema}.resolution_view (
            meeting_id uuid NOT NULL,
            resolution_id text NOT NULL,
            project_id uuid,
            text text NOT NULL,
            owner text,
            deadline timestamptz,
            assignment int NOT NULL DEFAULT 0,
            status text NOT NULL,
            owner_due_at timestamptz NOT NULL,
            owner_overdue boolean NOT NULL DEFAULT false,
            overdue boolean NOT NULL DEFAULT false,
            assigned_at timestamptz,
            completed_at timestamptz,
            on_time boolean,
            note text,
            recorded_at timestamptz NOT NULL,
            PRIMARY KEY (meeting_id, resolution_id)
        );
        CREATE INDEX resolution_view_owner ON {schema}.resolution_view (owner, status);
        """,
    ),
)


# -- documents -------------------------------------------------------------------------------


async def document_filed(conn: DbConn, event: Any) -> None:
    await conn.execute(
        "INSERT INTO document_view (document_id, project_id, name, doc_type, period,"
        " period_start, period_end, meeting_id, encrypted, contract_number, versions,"
        " latest_sha256, latest_size, filed_by, last_filed_by, filed_at, updated_at, version)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11, $12, $13, $13, $14, $14, $15)"
        " ON CONFLICT DO NOTHING",
        event.originator_id,
        event.project_id,
        event.name,
        event.doc_type,
        event.period,
        event.period_start,
        event.period_end,
        event.meeting_id,
        event.encrypted,
        event.contract_number,
        event.sha256,
        event.size,
        event.filed_by,
        event.filed_at,
        event.originator_version,
    )
    await _version(conn, event, 1)


async def _version(conn: DbConn, event: Any, version: int) -> None:
    await conn.execute(
        "INSERT INTO document_versions (document_id, version, content_id, sha256, size,"
        " media_type, file_name, filed_by, filed_role, filed_at, note)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
        event.originator_id,
        version,
        event.content_id,
        event.sha256,
        event.size,
        event.media_type,
        event.file_name,
        event.filed_by,
        event.actor_role,
        event.filed_at,
        event.note,
    )


async def document_revised(conn: DbConn, event: Any) -> None:
    await conn.execute(
        "UPDATE document_view SET versions = $2, latest_sha256 = $3, latest_size = $4,"
        " last_filed_by = $5, review = NULL, updated_at = $6, version = $7"
        " WHERE document_id = $1",
        event.originator_id,
        event.version,
        event.sha256,
        event.size,
        event.filed_by,
        event.timestamp,
        event.originator_version,
    )
    await _version(conn, event, event.version)


async def document_reviewed(conn: DbConn, event: Any) -> None:
    await conn.execute(
        "UPDATE document_versions SET review = $3, reviewed_by = $4, reviewed_at = $5,"
        " reasons = $6 WHERE document_id = $1 AND version = $2",
        event.originator_id,
        event.version,
        event.outcome,
        event.reviewer,
        event.reviewed_at,
        list(event.reasons),
    )
    await conn.execute(
        "UPDATE document_view SET review = CASE WHEN versions = $2 THEN $3 ELSE review END,"
        " updated_at = $4, version = $5 WHERE document_id = $1",
        event.originator_id,
        event.version,
        event.outcome,
        event.timestamp,
        event.originator_version,
    )


def _read(outcome: str, user: str, role: str | None) -> ProjectionHandler:
    async def handle(conn: DbConn, event: Any) -> None:
        column = "reads" if outcome == "read" else "denials"
        await conn.execute(
            f"UPDATE document_view SET {column} = {column} + 1, version = $2"
            " WHERE document_id = $1",
            event.originator_id,
            event.originator_version,
        )
        await conn.execute(
            "INSERT INTO document_reads (event_id, document_id, version, user_id, role, outcome,"
            " at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            event.event_id,
            event.originator_id,
            event.version,
            getattr(event, user),
            getattr(event, role) if role else event.actor_role,
            outcome,
            event.timestamp,
        )

    return handle


# -- report schedules ------------------------------------------------------------------------


async def schedule_opened(conn: DbConn, event: Any) -> None:
    await conn.execute(
        "INSERT INTO schedule_view (project_id, project_name, project_manager, first_day, state,"
        " opened_at) VALUES ($1, $2, $3, $4, 'open', $5) ON CONFLICT DO NOTHING",
        event.project_id,
        event.project_name,
        event.project_manager,
        event.first_day,
        event.timestamp,
    )


async def schedule_closed(conn: DbConn, event: Any) -> None:
    await conn.execute(
        "UPDATE schedule_view SET state = 'closed', closed_at = $2 WHERE project_id = $1",
        event.project_id,
        event.closed_at,
    )


async def period_opened(conn: DbConn, event: Any) -> None:
    await conn.execute(
        "INSERT INTO report_periods (project_id, kind, period, period_start, period_end, due_at,"
        " status, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'open', $7)"
        " ON CONFLICT (project_id, kind, period) DO UPDATE SET period_start = $4,"
        " period_end = $5",
        event.project_id,
        event.kind,
        event.period,
        event.period_start,
        event.period_end,
        event.due_at,
        event.timestamp,
    )


def _period_filed(status: str) -> ProjectionHandler:
    async def handle(conn: DbConn, event: Any) -> None:
        await conn.execute(
            "INSERT INTO report_periods (project_id, kind, period, due_at, status, document_id,"
            " filed_by, filed_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            " ON CONFLICT (project_id, kind, period) DO UPDATE SET status = $5,"
            " document_id = $6, filed_by = $7, filed_at = $8, updated_at = $9",
            event.project_id,
            event.kind,
            event.period,
            event.due_at,
            status,
            event.document_id,
            event.filed_by,
            event.filed_at,
            event.timestamp,
        )

    return handle


async def period_overdue(conn: DbConn, event: Any) -> None:
    await conn.execute(
        "INSERT INTO report_periods (project_id, kind, period, due_at, status, overdue_event_id,"
        " updated_at) VALUES ($1, $2, $3, $4, 'overdue', $5, $6)"
        " ON CONFLICT (project_id, kind, period) DO UPDATE SET status = 'overdue',"
        " overdue_event_id = $5, updated_at = $6",
        event.project_id,
        event.kind,
        event.period,
        event.due_at,
        event.event_id,
        event.timestamp,
    )


# -- meetings and resolutions ----------------------------------------------------------------


async def meeting_held(conn: DbConn, event: Any) -> None:
    await conn.execute(
        "INSERT INTO meeting_view (meeting_id, kind, title, project_id, held_at, chaired_by,"
        " attendees, source, minutes_due_at, minutes_status, recorded_at, updated_at, version)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'due', $10, $10, $11)"
        " ON CONFLICT DO NOTHING",
        event.originator_id,
        event.kind,
        event.title,
        event.project_id,
        event.held_at,
        event.chaired_by,
        list(event.attendees),
        event.source,
        event.minutes_due_at,
        event.timestamp,
        event.originator_version,
    )


async def _meeting(conn: DbConn, event: Any, sets: str, *args: Any) -> None:
    await conn.execute(
        f"UPDATE meeting_view SET updated_at = $2, version = $3, {sets} WHERE meeting_id = $1",
        event.originator_id,
        event.timestamp,
        event.originator_version,
        *args,
    )


async def minutes_filed(conn: DbConn, event: Any) -> None:
    await _meeting(
        conn,
        event,
        "minutes_status = $4, minutes_document_id = $5, minutes_filed_at = $6",
        "filed" if event.on_time else "filed_late",
        event.document_id,
        event.filed_at,
    )


async def minutes_overdue(conn: DbConn, event: Any) -> None:
    await _meeting(
        conn,
        event,
        "minutes_status = CASE WHEN minutes_status = 'due' THEN 'overdue' ELSE minutes_status END",
    )


async def resolution_recorded(conn: DbConn, event: Any) -> None:
    await _meeting(conn, event, "title = title")
    await conn.execute(
        "INSERT INTO resolution_view (meeting_id, resolution_id, project_id, text, status,"
        " owner_due_at, recorded_at) VALUES ($1, $2, $3, $4, 'unassigned', $5, $6)"
        " ON CONFLICT DO NOTHING",
        event.originator_id,
        event.resolution_id,
        event.project_id,
        event.text,
        event.owner_due_at,
        event.timestamp,
    )


async def _resolution(conn: DbConn, event: Any, sets: str, *args: Any) -> None:
    await _meeting(conn, event, "title = title")
    await conn.execute(
        f"UPDATE resolution_view SET {sets} WHERE meeting_id = $1 AND resolution_id = $2",
        event.originator_id,
        event.resolution_id,
        *args,
    )


async def resolution_assigned(conn: DbConn, event: Any) -> None:
    await _resolution(
        conn,
        event,
        "owner = $3, deadline = $4, assignment = $5, status = 'open', assigned_at = $6,"
        " overdue = false",
        event.owner,
        event.deadline,
        event.assignment,
        event.assigned_at,
    )


async def resolution_owner_overdue(conn: DbConn, event: Any) -> None:
    await _resolution(conn, event, "owner_overdue = true")


async def resolution_completed(conn: DbConn, event: Any) -> None:
    await _resolution(
        conn,
        event,
        "status = 'done', completed_at = $3, on_time = $4, note = $5",
        event.completed_at,
        event.on_time,
        event.note,
    )


async def resolution_overdue(conn: DbConn, event: Any) -> None:
    await _resolution(conn, event, "overdue = true")


def view_handlers(policy: Policy) -> Mapping[str, ProjectionHandler]:
    return {
        "DocumentFiled": document_filed,
        "DocumentRevised": document_revised,
        "DocumentReviewed": document_reviewed,
        "DocumentRead": _read("read", "reader", "reader_role"),
        "ContractDocumentRead": _read("read", "reader", None),
        "ContractAccessDenied": _read("denied", "user_id", "role"),
        "ReportScheduleOpened": schedule_opened,
        "ReportScheduleClosed": schedule_closed,
        "ReportPeriodOpened": period_opened,
        "ReportFiled": _period_filed("filed"),
        "ReportFiledLate": _period_filed("filed_late"),
        "ReportOverdue": period_overdue,
        "MeetingHeld": meeting_held,
        "MinutesFiled": minutes_filed,
        "MinutesOverdue": minutes_overdue,
        "ResolutionRecorded": resolution_recorded,
        "ResolutionAssigned": resolution_assigned,
        "ResolutionOwnerOverdue": resolution_owner_overdue,
        "ResolutionCompleted": resolution_completed,
        "ResolutionOverdue": resolution_overdue,
    }


# -- deadlines ------------------------------------------------------------------------------


def _ref(event: Any) -> str:
    return f"{event.kind}:{event.period}"


async def _period_opened(conn: DbConn, event: Any) -> None:
    await deadlines.start(
        conn,
        REPORT,
        event.originator_id,
        event.due_at,
        ref=_ref(event),
        started_by=event.event_id,
        started_at=event.timestamp,
    )


async def _report_filed(conn: DbConn, event: Any) -> None:
    await deadlines.meet(conn, REPORT, event.originator_id, event.timestamp, ref=_ref(event))


async def _schedule_closed(conn: DbConn, event: Any) -> None:
    await deadlines.cancel_all(conn, event.originator_id, event.timestamp)


async def _meeting_held(conn: DbConn, event: Any) -> None:
    await deadlines.start(
        conn,
        MINUTES,
        event.originator_id,
        event.minutes_due_at,
        started_by=event.event_id,
        started_at=event.timestamp,
    )


async def _minutes_filed(conn: DbConn, event: Any) -> None:
    await deadlines.meet(conn, MINUTES, event.originator_id, event.timestamp)


async def _resolution_recorded(conn: DbConn, event: Any) -> None:
    await deadlines.start(
        conn,
        RESOLUTION_OWNER,
        event.originator_id,
        event.owner_due_at,
        ref=event.resolution_id,
        started_by=event.event_id,
        started_at=event.timestamp,
    )


async def _resolution_assigned(conn: DbConn, event: Any) -> None:
    await deadlines.meet(
        conn, RESOLUTION_OWNER, event.originator_id, event.timestamp, ref=event.resolution_id
    )
    if event.assignment > 1:
        # A new owner or deadline replaces the previous clock of the resolution.
        await conn.execute(
            "UPDATE deadlines SET status = 'cancelled', closed_at = $2"
            " WHERE id = $1 AND status = 'pending'",
            deadlines.deadline_id(
                RESOLUTION,
                event.originator_id,
                f"{event.resolution_id}#{event.assignment - 1}",
            ),
            event.timestamp,
        )
    await deadlines.start(
        conn,
        RESOLUTION,
        event.originator_id,
        event.deadline,
        ref=f"{event.resolution_id}#{event.assignment}",
        started_by=event.event_id,
        started_at=event.timestamp,
    )


async def _resolution_completed(conn: DbConn, event: Any) -> None:
    await deadlines.meet(
        conn,
        RESOLUTION,
        event.originator_id,
        event.timestamp,
        ref=f"{event.resolution_id}#{event.assignment}",
    )


def deadline_handlers(policy: Policy) -> Mapping[str, ProjectionHandler]:
    """Which events start, meet or miss which clock."""
    return {
        "ReportPeriodOpened": _period_opened,
        "ReportFiled": _report_filed,
        "ReportFiledLate": _report_filed,
        "ReportOverdue": deadlines.missed,
        "ReportScheduleClosed": _schedule_closed,
        "MeetingHeld": _meeting_held,
        "MinutesFiled": _minutes_filed,
        "MinutesOverdue": deadlines.missed,
        "ResolutionRecorded": _resolution_recorded,
        "ResolutionAssigned": _resolution_assigned,
        "ResolutionOwnerOverdue": deadlines.missed,
        "ResolutionCompleted": _resolution_completed,
        "ResolutionOverdue": deadlines.missed,
    }
