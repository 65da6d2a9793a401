"""Reactions to `partner.events`:

- a project created: its registered name (the `项目名称` of R4.4) and staff,
  kept in the `projects` table in the consumer's transaction;
- a contract signed: the contract's metadata (R4.1) and the project's report
  schedule (R4.3) from the contract's start;
- a kickoff, mid-term review or final acceptance: a project meeting whose
  minutes fall due (R3.2, R3.3, R3.4, R4.2);
- a project closed: its schedule closes.

Each command is idempotent on ids derived from the event (the schedule per
project, the meeting per source event), so a redelivery records nothing twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import date

from services.docs.application import DocsApplication
from services.docs.consumers.contracts import (
    ContractRenewedV1,
    ContractSignedV1,
    FinalAcceptanceRecordedV1,
    KickoffHeldV1,
    ProjectClosedV1,
    ProjectCreatedV1,
    ReviewHeldV1,
)
from services.docs.domain.meeting import MeetingKind
from shared.consumer import Handler, PoisonEvent, Subscription, read_payload
from shared.db import DbConn
from shared.domain import RuleViolation
from shared.envelope import EventEnvelope


async def _project(conn: DbConn, project_id: uuid.UUID) -> tuple[str, str] | None:
    row = await conn.fetchrow(
        "SELECT name, project_manager FROM projects WHERE project_id = $1", project_id
    )
    return (row["name"], row["project_manager"]) if row else None


def project_subscription(app: DocsApplication) -> Subscription:
    async def created(conn: DbConn, event: EventEnvelope) -> None:
        p = read_payload(event, ProjectCreatedV1)
        await conn.execute(
            "INSERT INTO projects (project_id, name, partner_id, project_manager, specialists,"
            " status, updated_at) VALUES ($1, $2, $3, $4, $5, 'planned', $6)"
            " ON CONFLICT (project_id) DO NOTHING",
            event.aggregate_id,
            p.title,
            p.partner_id,
            p.project_manager,
            p.specialists,
            event.recorded_at,
        )

    async def signed(conn: DbConn, event: EventEnvelope) -> None:
        p = read_payload(event, ContractSignedV1)
        await conn.execute(
            "UPDATE projects SET status = 'contracted', contract_number = $2, signed_on = $3,"
            " starts_on = $4, ends_on = $5, updated_at = $6 WHERE project_id = $1",
            event.aggregate_id,
            p.contract_number,
            p.signed_on,
            p.starts_on,
            p.ends_on,
            event.recorded_at,
        )
        project = await _project(conn, event.aggregate_id)
        if project is None:
            raise PoisonEvent(f"contract signed for project {event.aggregate_id} never created")
        name, manager = project
        first_day = max(p.signed_on, p.starts_on)
        try:
            await asyncio.to_thread(
                lambda: app.open_schedule(
                    app.reacting_to(event),
                    project_id=event.aggregate_id,
                    project_name=name,
                    project_manager=manager,
                    first_day=first_day,
                )
            )
        except RuleViolation as exc:
            raise PoisonEvent(f"the report schedule cannot be opened: {exc}") from exc

    async def renewed(conn: DbConn, event: EventEnvelope) -> None:
        p = read_payload(event, ContractRenewedV1)
        await conn.execute(
            "UPDATE projects SET ends_on = $2, updated_at = $3 WHERE project_id = $1",
            event.aggregate_id,
            p.new_end_date,
            event.recorded_at,
        )

    async def closed(conn: DbConn, event: EventEnvelope) -> None:
        p = read_payload(event, ProjectClosedV1)
        await conn.execute(
            "UPDATE projects SET status = 'closed', closed_at = $2, updated_at = $2"
            " WHERE project_id = $1",
            event.aggregate_id,
            event.recorded_at,
        )
        await asyncio.to_thread(
            lambda: app.close_schedule(
                app.reacting_to(event),
                event.aggregate_id,
                reason=f"project closed ({p.outcome}): {p.reason}",
            )
        )

    def meeting(kind: MeetingKind, title: str, held_on: Callable[[EventEnvelope], date]) -> Handler:
        async def handle(conn: DbConn, event: EventEnvelope) -> None:
            day = held_on(event)
            project = await _project(conn, event.aggregate_id)
            chair = project[1] if project else event.actor.user_id
            name = project[0] if project else str(event.aggregate_id)
            try:
                await asyncio.to_thread(
                    lambda: app.record_project_meeting(
                        app.reacting_to(event),
                        source_event_id=event.event_id,
                        kind=kind,
                        project_id=event.aggregate_id,
                        held_on=day,
                        title=f"{name} {title}",
                        chaired_by=chair,
                        reported_at=event.recorded_at,
                    )
                )
            except RuleViolation as exc:
                raise PoisonEvent(f"the meeting cannot be recorded: {exc}") from exc

        return handle

    handlers: dict[str, Handler] = {
        "ProjectCreated": created,
        "ContractSigned": signed,
        "ContractRenewed": renewed,
        "ProjectClosed": closed,
        "KickoffHeld": meeting(
            "kickoff", "启动会", lambda e: read_payload(e, KickoffHeldV1).held_on
        ),
        "ReviewHeld": meeting(
            "midterm_review", "中期评审", lambda e: read_payload(e, ReviewHeldV1).held_on
        ),
        "FinalAcceptanceRecorded": meeting(
            "acceptance", "验收", lambda e: read_payload(e, FinalAcceptanceRecordedV1).accepted_on
        ),
    }
    return Subscription(source="partner", handlers=handlers)
