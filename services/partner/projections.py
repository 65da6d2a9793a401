"""The partner service's local projections of its own events:

- `views`: the partner and project lists the API filters and pages through
  (details come from the aggregates themselves, always current);
- `deadlines`: the clocks its events start and stop (R3.2 kickoff, R3.3
  quarterly review, R2.1 requalification), fired by shared.deadlines.

Both are derived state, rebuilt by replaying the event store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shared import deadlines
from shared.db import DbConn, Migration
from shared.policy import Policy, Quarter
from shared.projector import ProjectionHandler

KICKOFF: Final = "kickoff"
QUARTERLY_REVIEW: Final = "quarterly_review"
REQUALIFICATION: Final = "requalification"

MIGRATIONS = (
    Migration(
        100,
        "partner and project lists",
        """
        CREATE TABLE {schema}.partner_view (
            partner_id uuid PRIMARY KEY,
            name text NOT NULL,
            unified_social_credit_code text NOT NULL,
            status text NOT NULL,
            blacklisted boolean NOT NULL DEFAULT false,
            requalification_required boolean NOT NULL DEFAULT false,
            valid_until date,
            service_categories text[] NOT NULL,
            registered_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            version int NOT NULL
        );
        CREATE INDEX partner_view_status ON {schema}.partner_view (status, registered_at);
        CREATE TABLE {schema}.project_view (
            project_id uuid PRIMARY KEY,
            title text NOT NULL,
            partner_id uuid NOT NULL,
            project_manager text NOT NULL,
            specialists text[] NOT NULL,
            status text NOT NULL,
            budget numeric NOT NULL,
            currency text NOT NULL,
            created_at timestamptz NOT NULL,
            contract_signed_on date,
            outcome text,
            updated_at timestamptz NOT NULL,
            version int NOT NULL
        );
        CREATE INDEX project_view_created ON {schema}.project_view (created_at, project_id);
        CREATE INDEX project_view_partner ON {schema}.project_view (partner_id);
        CREATE INDEX project_view_pm ON {schema}.project_view (project_manager);
        """,
    ),
)

#: Project status after each event that changes it.
PROJECT_STATUS_AFTER: Final = {
    "ProcurementApprovalRequested": "awaiting_approval",
    "ProcurementApprovalGranted": "approved",
    "ProcurementApprovalDenied": "procurement_rejected",
    "ContractSigned": "contracted",
    "KickoffHeld": "in_progress",
    "FinalAcceptanceRecorded": "accepted",
    "ProjectClosed": "closed",
}


async def _touch(
    conn: DbConn, table: str, key: str, event: Any, sets: str = "", *args: Any
) -> None:
    extra = f", {sets}" if sets else ""
    await conn.execute(
        f"UPDATE {table} SET updated_at = $2, version = $3{extra} WHERE {key} = $1",
        event.originator_id,
        event.timestamp,
        event.originator_version,
        *args,
    )


# -- views --------------------------------------------------------------------------------


async def partner_registered(conn: DbConn, event: Any) -> None:
    await conn.execute(
        "INSERT INTO partner_view (partner_id, name, unified_social_credit_code, status,"
        " service_categories, registered_at, updated_at, version)"
        " VALUES ($1, $2, $3, 'candidate', $4, $5, $5, $6) ON CONFLICT DO NOTHING",
        event.originator_id,
        event.name,
        event.unified_social_credit_code,
        event.service_categories,
        event.timestamp,
        event.originator_version,
    )


async def partner_evaluated(conn: DbConn, event: Any) -> None:
    await _touch(conn, "partner_view", "partner_id", event)


async def partner_qualified(conn: DbConn, event: Any) -> None:
    await _touch(
        conn,
        "partner_view",
        "partner_id",
        event,
        "status = $4, valid_until = $5, requalification_required = false",
        event.status,
        event.valid_until,
    )


async def partner_rejected(conn: DbConn, event: Any) -> None:
    await _touch(conn, "partner_view", "partner_id", event, "status = 'rejected'")


async def partner_activated(conn: DbConn, event: Any) -> None:
    await _touch(conn, "partner_view", "partner_id", event, "status = $4", event.status)


async def partner_status_changed(conn: DbConn, event: Any) -> None:
    await _touch(
        conn,
        "partner_view",
        "partner_id",
        event,
        "status = $4, blacklisted = $5",
        event.to_status,
        event.blacklisted,
    )


async def requalification_overdue(conn: DbConn, event: Any) -> None:
    await _touch(conn, "partner_view", "partner_id", event, "requalification_required = true")


async def project_created(conn: DbConn, event: Any) -> None:
    await conn.execute(
        "INSERT INTO project_view (project_id, title, partner_id, project_manager, specialists,"
        " status, budget, currency, created_at, updated_at, version)"
        " VALUES ($1, $2, $3, $4, $5, 'planned', $6, $7, $8, $8, $9) ON CONFLICT DO NOTHING",
        event.originator_id,
        event.title,
        event.partner_id,
        event.project_manager,
        event.specialists,
        event.budget,
        event.currency,
        event.timestamp,
        event.originator_version,
    )


async def project_changed(conn: DbConn, event: Any) -> None:
    status = PROJECT_STATUS_AFTER.get(event.EVENT_TYPE)
    if event.EVENT_TYPE == "ContractSigned":
        await _touch(
            conn,
            "project_view",
            "project_id",
            event,
            "status = $4, contract_signed_on = $5",
            status,
            event.signed_on,
        )
    elif event.EVENT_TYPE == "ProjectClosed":
        await _touch(
            conn,
            "project_view",
            "project_id",
            event,
            "status = $4, outcome = $5",
            status,
            event.outcome,
        )
    elif event.EVENT_TYPE == "BudgetChanged":
        await _touch(conn, "project_view", "project_id", event, "budget = $4", event.new_budget)
    elif status is not None:
        await _touch(conn, "project_view", "project_id", event, "status = $4", status)
    else:
        await _touch(conn, "project_view", "project_id", event)


PROJECT_EVENT_TYPES: Final = (
    *PROJECT_STATUS_AFTER,
    "BudgetChanged",
    "ScopeChanged",
    "ContractRenewed",
    "MilestoneDelivered",
    "MilestoneAccepted",
    "MilestoneRejected",
    "ReviewHeld",
    "KickoffOverdue",
    "QuarterlyReviewOverdue",
)


def view_handlers(policy: Policy) -> Mapping[str, ProjectionHandler]:
    handlers: dict[str, ProjectionHandler] = {
        "PartnerRegistered": partner_registered,
        "PartnerEvaluated": partner_evaluated,
        "PartnerQualified": partner_qualified,
        "PartnerRejected": partner_rejected,
        "PartnerActivated": partner_activated,
        "PartnerStatusChanged": partner_status_changed,
        "RequalificationOverdue": requalification_overdue,
        "ProjectCreated": project_created,
    }
    handlers.update({t: project_changed for t in PROJECT_EVENT_TYPES})
    return handlers


# -- deadlines ------------------------------------------------------------------------------


def deadline_handlers(policy: Policy) -> Mapping[str, ProjectionHandler]:
    """Which events start, meet, miss or cancel which clock."""

    async def start_review(conn: DbConn, event: Any, quarter: Quarter) -> None:
        await deadlines.start(
            conn,
            QUARTERLY_REVIEW,
            event.originator_id,
            policy.review_due(quarter),
            ref=str(quarter),
            started_by=event.event_id,
            started_at=event.timestamp,
        )

    async def contract_signed(conn: DbConn, event: Any) -> None:
        await deadlines.start(
            conn,
            KICKOFF,
            event.originator_id,
            event.kickoff_due_at,
            started_by=event.event_id,
            started_at=event.timestamp,
        )
        # R3.3: the quarter of signing is exempt; every later quarter needs a review.
        await start_review(conn, event, Quarter.of(event.signed_on).next())

    async def kickoff_held(conn: DbConn, event: Any) -> None:
        await deadlines.meet(conn, KICKOFF, event.originator_id, event.timestamp)

    async def kickoff_overdue(conn: DbConn, event: Any) -> None:
        await deadlines.mark_overdue(
            conn, KICKOFF, event.originator_id, event.event_id, event.timestamp
        )

    async def review_held(conn: DbConn, event: Any) -> None:
        quarter = Quarter.parse(event.quarter)
        await deadlines.meet(
            conn, QUARTERLY_REVIEW, event.originator_id, event.timestamp, ref=str(quarter)
        )
        await start_review(conn, event, quarter.next())

    async def review_overdue(conn: DbConn, event: Any) -> None:
        quarter = Quarter.parse(event.quarter)
        await deadlines.mark_overdue(
            conn,
            QUARTERLY_REVIEW,
            event.originator_id,
            event.event_id,
            event.timestamp,
            ref=str(quarter),
        )
        await start_review(conn, event, quarter.next())

    async def accepted(conn: DbConn, event: Any) -> None:
        await deadlines.cancel_all(
            conn, event.originator_id, event.timestamp, kind=QUARTERLY_REVIEW
        )

    async def closed(conn: DbConn, event: Any) -> None:
        await deadlines.cancel_all(conn, event.originator_id, event.timestamp)

    async def qualified(conn: DbConn, event: Any) -> None:
        # A new qualification replaces the clock of the previous one.
        await deadlines.cancel_all(conn, event.originator_id, event.timestamp, kind=REQUALIFICATION)
        await deadlines.start(
            conn,
            REQUALIFICATION,
            event.originator_id,
            policy.clock.end_of_day(event.valid_until),
            # one clock per qualification, even when a renewal keeps the same date
            ref=f"{event.valid_until.isoformat()}@{event.originator_version}",
            started_by=event.event_id,
            started_at=event.timestamp,
        )

    async def requalification_missed(conn: DbConn, event: Any) -> None:
        await conn.execute(
            "UPDATE deadlines SET status = 'overdue', overdue_event_id = $2,"
            " closed_at = coalesce(closed_at, $3) WHERE id = $1",
            event.deadline_id,
            event.event_id,
            event.timestamp,
        )

    async def partner_status_changed(conn: DbConn, event: Any) -> None:
        if event.to_status == "terminated":
            await deadlines.cancel_all(conn, event.originator_id, event.timestamp)

    return {
        "ContractSigned": contract_signed,
        "KickoffHeld": kickoff_held,
        "KickoffOverdue": kickoff_overdue,
        "ReviewHeld": review_held,
        "QuarterlyReviewOverdue": review_overdue,
        "FinalAcceptanceRecorded": accepted,
        "ProjectClosed": closed,
        "PartnerQualified": qualified,
        "RequalificationOverdue": requalification_missed,
        "PartnerStatusChanged": partner_status_changed,
    }
