"""Local projections of the kpi service's own events (the staff directory,
R2.2, R2.3): who is in the department in which role under whom, the
trainings held, each person's training count per year against the target,
and the clock that closes each person's training year (R3.5). Derived state,
rebuilt by replaying the event store."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from services.kpi.application import TRAINING_YEAR, training_ref
from shared import deadlines
from shared.db import DbConn, Migration
from shared.policy import Policy
from shared.projector import ProjectionHandler

MIGRATIONS = (
    Migration(
        110,
        "staff directory, trainings, training years",
        """
        CREATE TABLE {schema}.staff (
            user_id text PRIMARY KEY,
            name text NOT NULL,
            role text NOT NULL,
            superior text,
            joined_on date NOT NULL,
            left_on date,
            updated_at timestamptz NOT NULL
        );
        CREATE INDEX staff_superior ON {schema}.staff (superior) WHERE left_on IS NULL;
        CREATE TABLE {schema}.staff_changes (
            event_id uuid PRIMARY KEY,
            user_id text NOT NULL,
            change text NOT NULL,
            from_role text,
            to_role text,
            from_superior text,
            superior text,
            effective_on date NOT NULL,
            reason text NOT NULL,
            evaluation_ref text,
            recorded_at timestamptz NOT NULL
        );
        CREATE INDEX staff_changes_user ON {schema}.staff_changes (user_id, recorded_at);
        CREATE TABLE {schema}.trainings (
            training_id uuid PRIMARY KEY,
            title text NOT NULL,
            held_on date NOT NULL,
            hours numeric NOT NULL,
            attendees text[] NOT NULL,
            recorded_at timestamptz NOT NULL
        );
        CREATE INDEX trainings_held ON {schema}.trainings (held_on);
        CREATE TABLE {schema}.training_years (
            user_id text NOT NULL,
            year int NOT NULL,
            attended int NOT NULL DEFAULT 0,
            target int,
            met boolean,
            closed_event_id uuid,
            PRIMARY KEY (user_id, year)
        );
        """,
    ),
)


def _year_end(policy: Policy, year: int) -> Any:
    return policy.clock.end_of_day(date(year, 12, 31))


def view_handlers(policy: Policy) -> Mapping[str, ProjectionHandler]:
    async def change(conn: DbConn, event: Any, kind: str, **values: Any) -> None:
        await conn.execute(
            "INSERT INTO staff_changes (event_id, user_id, change, from_role, to_role,"
            " from_superior, superior, effective_on, reason, evaluation_ref, recorded_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
            event.event_id,
            event.user_id,
            kind,
            values.get("from_role"),
            values.get("to_role"),
            values.get("from_superior"),
            values.get("superior"),
            values["effective_on"],
            values.get("reason", ""),
            values.get("evaluation_ref"),
            event.timestamp,
        )

    async def joined(conn: DbConn, event: Any) -> None:
        await conn.execute(
            "INSERT INTO staff (user_id, name, role, superior, joined_on, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            event.user_id,
            event.name,
            event.role,
            event.superior,
            event.joined_on,
            event.timestamp,
        )
        await change(
            conn, event, "joined", to_role=event.role, superior=event.superior,
            effective_on=event.joined_on,
        )  # fmt: skip

    async def role_changed(conn: DbConn, event: Any) -> None:
        await conn.execute(
            "UPDATE staff SET role = $2, superior = $3, updated_at = $4 WHERE user_id = $1",
            event.user_id,
            event.to_role,
            event.superior,
            event.timestamp,
        )
        await change(
            conn, event, event.change, from_role=event.from_role, to_role=event.to_role,
            superior=event.superior, effective_on=event.effective_on, reason=event.reason,
            evaluation_ref=event.evaluation_ref,
        )  # fmt: skip

    async def line_changed(conn: DbConn, event: Any) -> None:
        await conn.execute(
            "UPDATE staff SET superior = $2, updated_at = $3 WHERE user_id = $1",
            event.user_id,
            event.superior,
            event.timestamp,
        )
        await change(
            conn, event, "reporting_line", from_superior=event.from_superior,
            superior=event.superior, effective_on=event.effective_on, reason=event.reason,
        )  # fmt: skip

    async def left(conn: DbConn, event: Any) -> None:
        await conn.execute(
            "UPDATE staff SET left_on = $2, updated_at = $3 WHERE user_id = $1",
            event.user_id,
            event.left_on,
            event.timestamp,
        )
        await change(conn, event, "left", effective_on=event.left_on, reason=event.reason)

    async def training_held(conn: DbConn, event: Any) -> None:
        await conn.execute(
            "INSERT INTO trainings (training_id, title, held_on, hours, attendees, recorded_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            event.training_id,
            event.title,
            event.held_on,
            event.hours,
            list(event.attendees),
            event.timestamp,
        )
        for user in event.attendees:
            await conn.execute(
                "INSERT INTO training_years (user_id, year, attended) VALUES ($1, $2, 1)"
                " ON CONFLICT (user_id, year) DO UPDATE"
                " SET attended = training_years.attended + 1",
                user,
                event.held_on.year,
            )

    async def year_closed(conn: DbConn, event: Any) -> None:
        await conn.execute(
            "INSERT INTO training_years (user_id, year, attended, target, met, closed_event_id)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, year) DO UPDATE"
            " SET target = $4, met = $5, closed_event_id = $6",
            event.user_id,
            event.year,
            event.attended,
            event.target,
            event.met,
            event.event_id,
        )

    return {
        "StaffJoined": joined,
        "StaffRoleChanged": role_changed,
        "StaffReportingLineChanged": line_changed,
        "StaffLeft": left,
        "TrainingHeld": training_held,
        "TrainingYearClosed": year_closed,
    }


def deadline_handlers(policy: Policy) -> Mapping[str, ProjectionHandler]:
    """Each person's training year is on the clock from joining; closing a
    year starts the next while they stay; leaving stops it (R2.3, R3.5)."""

    async def start_year(conn: DbConn, event: Any, user_id: str, year: int) -> None:
        await deadlines.start(
            conn,
            TRAINING_YEAR,
            event.originator_id,
            _year_end(policy, year),
            ref=training_ref(year, user_id),
            started_by=event.event_id,
            started_at=event.timestamp,
        )

    async def joined(conn: DbConn, event: Any) -> None:
        await start_year(conn, event, event.user_id, event.joined_on.year)

    async def year_closed(conn: DbConn, event: Any) -> None:
        if event.met:
            # The engine marks every clock it fires overdue; a met year is not.
            await conn.execute(
                "UPDATE deadlines SET status = 'met', met_at = $2, overdue_event_id = NULL,"
                " closed_at = coalesce(closed_at, $2) WHERE id = $1",
                event.deadline_id,
                event.timestamp,
            )
        else:
            await deadlines.missed(conn, event)
        # The next year starts now; if the person left in it, their departure
        # cancelled its clock already and this start does nothing.
        await start_year(conn, event, event.user_id, event.year + 1)

    async def left(conn: DbConn, event: Any) -> None:
        # Nothing is owed for the year they leave in (nor later): its clock
        # stops, and exists as cancelled so that closing an earlier year does
        # not start it. A year that ended before the departure keeps its
        # clock: it still closes (R3.5), also when the engine fires it late.
        await start_year(conn, event, event.user_id, event.left_on.year)
        await conn.execute(
            "UPDATE deadlines SET status = 'cancelled', closed_at = $2"
            " WHERE aggregate_id = $1 AND kind = $3 AND status = 'pending'"
            " AND substring(ref from 6) = $4 AND split_part(ref, '#', 1)::int >= $5",
            event.originator_id,
            event.timestamp,
            TRAINING_YEAR,
            event.user_id,
            event.left_on.year,
        )

    return {
        "StaffJoined": joined,
        "TrainingYearClosed": year_closed,
        "StaffLeft": left,
    }
