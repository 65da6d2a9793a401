"""Local projection of the staff evaluations (R6.2, R3.5): one row per
person and period owed, its status and, once written, the assessment; and
the deadline engine's clocks of the two obligations.

The clocks are driven like the training years (staff_projections.py), by
the directory's own events:

- a person who joins as (or becomes) a PM or specialist owes from the
  period containing that day on, both kinds (`first_owed`: never a period
  whose due time had passed when it was recorded);
- a period closed (submitted, or recorded overdue) starts the next one, so
  each period is on the clock once, also when the engine catches up after a
  pause; a submission starts its own clock if the chain has not reached it
  yet (a month written early), so its next period follows as well;
- leaving or becoming the Director on a day stops what is owed for the
  periods ending on or after it: their clocks exist as cancelled (the
  period containing the day is created cancelled), so a closing earlier
  period does not restart them; becoming a PM or specialist again reopens.

Derived state, rebuilt by replaying the event store; the evaluation rows and
their clocks change in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from services.kpi.domain.evaluation import (
    EVALUATED_ROLES,
    EVALUATION_KINDS,
    Period,
    deadline_ref,
    due_at,
    evaluation_id,
    first_owed,
)
from shared import deadlines
from shared.db import DbConn, Migration
from shared.policy import Policy
from shared.projector import ProjectionHandler

MIGRATIONS = (
    Migration(
        140,
        "staff evaluations: obligations, assessments, overdue",
        """
        CREATE TABLE {schema}.evaluations (
            evaluation_id uuid PRIMARY KEY,
            user_id text NOT NULL,
            kind text NOT NULL CHECK (kind IN ('self', 'superior')),
            period text NOT NULL,
            period_start date NOT NULL,
            period_end date NOT NULL,
            due_at timestamptz NOT NULL,
            status text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'overdue', 'on_time', 'late', 'cancelled')),
            deadline_id uuid NOT NULL,
            opened_at timestamptz NOT NULL,
            closed_at timestamptz,
            name text,
            role text,
            superior text,
            assessor text,
            rating int,
            strengths text,
            improvements text,
            comment text,
            submitted_at timestamptz,
            on_time boolean,
            overdue_event_id uuid,
            overdue_at timestamptz,
            owed_by text,
            UNIQUE (user_id, period)
        );
        CREATE INDEX evaluations_by_period ON {schema}.evaluations (period_end, user_id, period);
        CREATE INDEX evaluations_open ON {schema}.evaluations (due_at)
            WHERE status IN ('pending', 'overdue');
        CREATE INDEX evaluations_superior ON {schema}.evaluations (superior);
        CREATE INDEX evaluations_assessor ON {schema}.evaluations (assessor);
        """,
    ),
)


def handlers(policy: Policy) -> Mapping[str, ProjectionHandler]:
    async def open_period(
        conn: DbConn, event: Any, user_id: str, period: Period, *, reopen: bool = False
    ) -> None:
        """The period's clock and row exist (as pending unless they did)."""
        eid = evaluation_id(user_id, period)
        ref = deadline_ref(period, user_id)
        due = due_at(policy, period)
        await deadlines.start(
            conn,
            period.deadline_kind,
            eid,
            due,
            ref=ref,
            started_by=event.event_id,
            started_at=event.timestamp,
        )
        clock = deadlines.deadline_id(period.deadline_kind, eid, ref)
        await conn.execute(
            "INSERT INTO evaluations (evaluation_id, user_id, kind, period, period_start,"
            " period_end, due_at, deadline_id, opened_at)"
            " SELECT $1::uuid, $2::text, $3::text, $4::text, $5::date, $6::date, due_at, id,"
            " started_at FROM deadlines WHERE id = $7"
            " ON CONFLICT (evaluation_id) DO NOTHING",
            eid,
            user_id,
            period.kind,
            period.key,
            period.start,
            period.end,
            clock,
        )
        if reopen:
            # Owed again (a Director rotated back within the period).
            await conn.execute(
                "UPDATE deadlines SET status = 'pending', closed_at = NULL"
                " WHERE id = $1 AND status = 'cancelled'",
                clock,
            )
            await conn.execute(
                "UPDATE evaluations SET status = 'pending', closed_at = NULL"
                " WHERE evaluation_id = $1 AND status = 'cancelled'",
                eid,
            )

    async def start_owing(conn: DbConn, event: Any, user_id: str, since: date) -> None:
        for kind in EVALUATION_KINDS:
            period = first_owed(policy, kind, since, event.timestamp)
            await open_period(conn, event, user_id, period, reopen=True)

    async def stop_owing(conn: DbConn, event: Any, user_id: str, day: date) -> None:
        for kind in EVALUATION_KINDS:
            await open_period(conn, event, user_id, Period.of(kind, day))
        rows = await conn.fetch(
            "UPDATE evaluations SET status = 'cancelled', closed_at = $3"
            " WHERE user_id = $1 AND status = 'pending' AND period_end >= $2"
            " RETURNING deadline_id",
            user_id,
            day,
            event.timestamp,
        )
        await conn.execute(
            "UPDATE deadlines SET status = 'cancelled', closed_at = $2"
            " WHERE id = ANY($1::uuid[]) AND status = 'pending'",
            [r["deadline_id"] for r in rows],
            event.timestamp,
        )

    # -- the directory: who owes -----------------------------------------------------------

    async def joined(conn: DbConn, event: Any) -> None:
        if event.role in EVALUATED_ROLES:
            await start_owing(conn, event, event.user_id, event.joined_on)

    async def role_changed(conn: DbConn, event: Any) -> None:
        was, becomes = event.from_role in EVALUATED_ROLES, event.to_role in EVALUATED_ROLES
        if becomes and not was:
            await start_owing(conn, event, event.user_id, event.effective_on)
        elif was and not becomes:
            await stop_owing(conn, event, event.user_id, event.effective_on)

    async def left(conn: DbConn, event: Any) -> None:
        if event.role in EVALUATED_ROLES:
            await stop_owing(conn, event, event.user_id, event.left_on)

    # -- the evaluations ---------------------------------------------------------------------

    def period_of(event: Any) -> Period:
        return Period.parse(event.period)

    async def opened(conn: DbConn, event: Any) -> None:
        period = period_of(event)
        await open_period(conn, event, event.user_id, period)
        await conn.execute(
            "UPDATE evaluations SET name = $2, role = $3, superior = $4 WHERE evaluation_id = $1",
            event.originator_id,
            event.name,
            event.role,
            event.superior,
        )

    async def submitted(conn: DbConn, event: Any) -> None:
        period = period_of(event)
        assessor = getattr(event, "assessor", event.user_id)
        await conn.execute(
            "UPDATE evaluations SET status = $2, on_time = $3, assessor = $4, rating = $5,"
            " strengths = $6, improvements = $7, comment = $8, submitted_at = $9,"
            " closed_at = coalesce(closed_at, $9) WHERE evaluation_id = $1",
            event.originator_id,
            "on_time" if event.on_time else "late",
            event.on_time,
            assessor,
            event.rating,
            event.strengths,
            event.improvements,
            event.comment,
            event.submitted_at,
        )
        await deadlines.meet(
            conn,
            period.deadline_kind,
            event.originator_id,
            event.submitted_at,
            ref=deadline_ref(period, event.user_id),
        )
        await open_period(conn, event, event.user_id, period.next())

    async def overdue(conn: DbConn, event: Any) -> None:
        period = period_of(event)
        await deadlines.missed(conn, event)
        await conn.execute(
            "UPDATE evaluations SET status = CASE WHEN status IN ('pending', 'cancelled')"
            " THEN 'overdue' ELSE status END, overdue_event_id = $2, overdue_at = $3,"
            " owed_by = $4, assessor = coalesce(assessor, $4),"
            " closed_at = coalesce(closed_at, $3) WHERE evaluation_id = $1",
            event.originator_id,
            event.event_id,
            event.timestamp,
            event.owed_by,
        )
        await open_period(conn, event, event.user_id, period.next())

    return {
        "StaffJoined": joined,
        "StaffRoleChanged": role_changed,
        "StaffLeft": left,
        "EvaluationOpened": opened,
        "SelfAssessmentSubmitted": submitted,
        "SuperiorAssessmentSubmitted": submitted,
        "SelfAssessmentOverdue": overdue,
        "SuperiorAssessmentOverdue": overdue,
    }
