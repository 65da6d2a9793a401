"""The approval service's local projections of its own events:

- `views`: requests with their open step (the lists, filters and inboxes of
  the API), one row per step and round (time spent per level, R3.5), emergency
  actions and delegations;
- `deadlines`: the clocks its events start and stop (R3.1 step limits, R5.3
  emergency explanations), fired by shared.deadlines.

Both are derived state, rebuilt by replaying the event store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shared import deadlines
from shared.db import DbConn, Migration
from shared.policy import Policy
from shared.projector import ProjectionHandler

APPROVAL_STEP: Final = "approval_step"
EMERGENCY_EXPLANATION: Final = "emergency_explanation"

MIGRATIONS = (
    Migration(
        100,
        "approval requests, steps, emergency actions, delegations",
        """
        CREATE TABLE {schema}.approval_view (
            request_id uuid PRIMARY KEY,
            kind text NOT NULL,
            project_id uuid,
            partner_id uuid,
            title text NOT NULL,
            amount numeric,
            currency text NOT NULL,
            requested_by text NOT NULL,
            source text NOT NULL,
            state text NOT NULL,
            step text,
            round int,
            assignee_role text,
            assignee text,
            escalated_to text,
            step_opened_at timestamptz,
            due_at timestamptz,
            overdue boolean NOT NULL DEFAULT false,
            opened_at timestamptz NOT NULL,
            closed_at timestamptz,
            updated_at timestamptz NOT NULL,
            version int NOT NULL
        );
        CREATE INDEX approval_view_opened ON {schema}.approval_view (opened_at, request_id);
        CREATE INDEX approval_view_open_step
            ON {schema}.approval_view (assignee_role, state) WHERE state IN ('pending', 'returned');
        CREATE INDEX approval_view_project ON {schema}.approval_view (project_id);
        CREATE TABLE {schema}.approval_steps (
            request_id uuid NOT NULL,
            step text NOT NULL,
            round int NOT NULL,
            assignee_role text NOT NULL,
            assignee text,
            opened_at timestamptz NOT NULL,
            due_at timestamptz NOT NULL,
            overdue boolean NOT NULL DEFAULT false,
            escalated_to text,
            decision text,
            decided_by text,
            delegate_of text,
            decided_at timestamptz,
            PRIMARY KEY (request_id, step, round)
        );
        CREATE INDEX approval_steps_signer ON {schema}.approval_steps (decided_by);
        CREATE TABLE {schema}.emergency_view (
            action_id uuid PRIMARY KEY,
            project_id uuid,
            recorded_by text NOT NULL,
            state text NOT NULL,
            acted_at timestamptz NOT NULL,
            explanation_due_at timestamptz NOT NULL,
            explained_at timestamptz,
            overdue boolean NOT NULL DEFAULT false,
            decided_at timestamptz,
            recorded_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            version int NOT NULL
        );
        CREATE INDEX emergency_view_recorded ON {schema}.emergency_view (recorded_at, action_id);
        CREATE TABLE {schema}.delegation_view (
            grant_id uuid PRIMARY KEY,
            delegator text NOT NULL,
            delegate text NOT NULL,
            role text NOT NULL,
            starts_at timestamptz NOT NULL,
            ends_at timestamptz NOT NULL,
            reason text NOT NULL,
            revoked_at timestamptz,
            granted_at timestamptz NOT NULL
        );
        CREATE INDEX delegation_view_delegate ON {schema}.delegation_view (delegate, ends_at);
        CREATE INDEX delegation_view_delegator ON {schema}.delegation_view (delegator, ends_at);
        """,
    ),
)


async def _touch(conn: DbConn, event: Any, sets: str = "", *args: Any) -> None:
    extra = f", {sets}" if sets else ""
    await conn.execute(
        f"UPDATE approval_view SET updated_at = $2, version = $3{extra} WHERE request_id = $1",
        event.originator_id,
        event.timestamp,
        event.originator_version,
        *args,
    )


async def _step_decided(
    conn: DbConn, event: Any, step: str | None, round_: int | None, decision: str, by: str
) -> None:
    await conn.execute(
        "UPDATE approval_steps SET decision = $4, decided_by = $5, delegate_of = $6,"
        " decided_at = $7 WHERE request_id = $1 AND decision IS NULL"
        " AND ($2::text IS NULL OR step = $2) AND ($3::int IS NULL OR round = $3)",
        event.originator_id,
        step,
        round_,
        decision,
        by,
        getattr(event, "delegate_of", None),
        event.timestamp,
    )


# -- requests -------------------------------------------------------------------------------


async def requested(conn: DbConn, event: Any) -> None:
    await conn.execute(
        "INSERT INTO approval_view (request_id, kind, project_id, partner_id, title, amount,"
        " currency, requested_by, source, state, opened_at, updated_at, version)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $10, $11)"
        " ON CONFLICT DO NOTHING",
        event.originator_id,
        event.kind,
        event.project_id,
        event.partner_id,
        event.title,
        event.amount,
        event.currency,
        event.requested_by,
        event.source,
        event.timestamp,
        event.originator_version,
    )


async def step_opened(conn: DbConn, event: Any) -> None:
    await _touch(
        conn,
        event,
        "state = 'pending', step = $4, round = $5, assignee_role = $6, assignee = $7,"
        " escalated_to = NULL, step_opened_at = $8, due_at = $9, overdue = false",
        event.step,
        event.round,
        event.assignee_role,
        event.assignee,
        event.opened_at,
        event.due_at,
    )
    await conn.execute(
        "INSERT INTO approval_steps (request_id, step, round, assignee_role, assignee, opened_at,"
        " due_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        event.originator_id,
        event.step,
        event.round,
        event.assignee_role,
        event.assignee,
        event.opened_at,
        event.due_at,
    )


async def step_approved(conn: DbConn, event: Any) -> None:
    await _touch(conn, event)
    await _step_decided(conn, event, event.step, event.round, "approved", event.approver)


async def returned(conn: DbConn, event: Any) -> None:
    await _touch(conn, event, "state = 'returned'")
    await _step_decided(conn, event, event.step, event.round, "returned", event.returned_by)


async def resubmitted(conn: DbConn, event: Any) -> None:
    await _touch(conn, event)


async def step_overdue(conn: DbConn, event: Any) -> None:
    await _touch(conn, event, "overdue = true")
    await conn.execute(
        "UPDATE approval_steps SET overdue = true WHERE request_id = $1 AND step = $2"
        " AND round = $3",
        event.originator_id,
        event.step,
        event.round,
    )


async def step_escalated(conn: DbConn, event: Any) -> None:
    await _touch(conn, event, "escalated_to = $4", event.escalated_to)
    await conn.execute(
        "UPDATE approval_steps SET escalated_to = $4 WHERE request_id = $1 AND step = $2"
        " AND round = $3",
        event.originator_id,
        event.step,
        event.round,
        event.escalated_to,
    )


async def approved(conn: DbConn, event: Any) -> None:
    await _touch(conn, event, "state = 'approved', closed_at = $4", event.timestamp)


async def rejected(conn: DbConn, event: Any) -> None:
    await _touch(conn, event, "state = 'rejected', closed_at = $4", event.timestamp)
    by = getattr(event, "rejected_by", None) or event.actor_id
    await _step_decided(conn, event, None, None, "rejected", by)


# -- emergency actions and delegations ---------------------------------------------------------


async def emergency_recorded(conn: DbConn, event: Any) -> None:
    await conn.execute(
        "INSERT INTO emergency_view (action_id, project_id, recorded_by, state, acted_at,"
        " explanation_due_at, recorded_at, updated_at, version)"
        " VALUES ($1, $2, $3, 'awaiting_explanation', $4, $5, $6, $6, $7) ON CONFLICT DO NOTHING",
        event.originator_id,
        event.project_id,
        event.recorded_by,
        event.acted_at,
        event.explanation_due_at,
        event.timestamp,
        event.originator_version,
    )


def _emergency(sets: str, *values: str) -> ProjectionHandler:
    async def handle(conn: DbConn, event: Any) -> None:
        await conn.execute(
            f"UPDATE emergency_view SET updated_at = $2, version = $3, {sets} WHERE action_id = $1",
            event.originator_id,
            event.timestamp,
            event.originator_version,
            *(getattr(event, v) for v in values),
        )

    return handle


async def delegation_granted(conn: DbConn, event: Any) -> None:
    await conn.execute(
        "INSERT INTO delegation_view (grant_id, delegator, delegate, role, starts_at, ends_at,"
        " reason, granted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        event.grant_id,
        event.actor_id,  # the approver delegates their own signature
        event.delegate,
        event.role,
        event.starts_at,
        event.ends_at,
        event.reason,
        event.timestamp,
    )


async def delegation_revoked(conn: DbConn, event: Any) -> None:
    await conn.execute(
        "UPDATE delegation_view SET revoked_at = $2 WHERE grant_id = $1",
        event.grant_id,
        event.timestamp,
    )


def view_handlers(policy: Policy) -> Mapping[str, ProjectionHandler]:
    return {
        "ApprovalRequested": requested,
        "ApprovalStepOpened": step_opened,
        "ApprovalStepApproved": step_approved,
        "ApprovalReturned": returned,
        "ApprovalResubmitted": resubmitted,
        "ApprovalStepOverdue": step_overdue,
        "ApprovalStepEscalated": step_escalated,
        "ProcurementApproved": approved,
        "DirectorDecisionApproved": approved,
        "ProcurementRejected": rejected,
        "DirectorDecisionRejected": rejected,
        "EmergencyActionRecorded": emergency_recorded,
        "EmergencyExplanationFiled": _emergency(
            "state = 'explained', explained_at = $4", "filed_at"
        ),
        "EmergencyExplanationOverdue": _emergency("overdue = true"),
        "EmergencyActionRatified": _emergency("state = 'ratified', decided_at = $4", "decided_at"),
        "EmergencyActionRejected": _emergency("state = 'rejected', decided_at = $4", "decided_at"),
        "DelegationGranted": delegation_granted,
        "DelegationRevoked": delegation_revoked,
    }


# -- deadlines ------------------------------------------------------------------------------


def step_ref(step: str, round_: int) -> str:
    return f"{step}#{round_}"


def deadline_handlers(policy: Policy) -> Mapping[str, ProjectionHandler]:
    """Which events start, meet or miss which clock."""

    async def opened(conn: DbConn, event: Any) -> None:
        await deadlines.start(
            conn,
            APPROVAL_STEP,
            event.originator_id,
            event.due_at,
            ref=step_ref(event.step, event.round),
            started_by=event.event_id,
            started_at=event.timestamp,
        )

    async def decided(conn: DbConn, event: Any) -> None:
        await deadlines.meet(
            conn,
            APPROVAL_STEP,
            event.originator_id,
            event.timestamp,
            ref=step_ref(event.step, event.round),
        )

    async def ended(conn: DbConn, event: Any) -> None:
        # A rejection decides the open step, whichever round it is in.
        await conn.execute(
            "UPDATE deadlines SET met_at = coalesce(met_at, $2),"
            " status = CASE WHEN status = 'pending' THEN 'met' ELSE status END,"
            " closed_at = coalesce(closed_at, $2)"
            " WHERE aggregate_id = $1 AND kind = $3 AND met_at IS NULL",
            event.originator_id,
            event.timestamp,
            APPROVAL_STEP,
        )

    async def emergency_recorded(conn: DbConn, event: Any) -> None:
        await deadlines.start(
            conn,
            EMERGENCY_EXPLANATION,
            event.originator_id,
            event.explanation_due_at,
            started_by=event.event_id,
            started_at=event.timestamp,
        )

    async def explained(conn: DbConn, event: Any) -> None:
        await deadlines.meet(conn, EMERGENCY_EXPLANATION, event.originator_id, event.timestamp)

    return {
        "ApprovalStepOpened": opened,
        "ApprovalStepApproved": decided,
        "ApprovalReturned": decided,
        "ProcurementRejected": ended,
        "DirectorDecisionRejected": ended,
        "ApprovalStepOverdue": deadlines.missed,
        "EmergencyActionRecorded": emergency_recorded,
        "EmergencyExplanationFiled": explained,
        "EmergencyExplanationOverdue": deadlines.missed,
    }
