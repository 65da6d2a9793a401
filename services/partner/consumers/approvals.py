"""Reactions to `approval.events`: procurement outcomes move projects (R3.1),
Director decisions change budget, scope or contract end (R5.1, R5.2).

Each reaction is a command of the partner application. It runs before the
consumer records the event id, and the aggregate ignores an outcome it has
applied already, so a redelivery (or a crash between the two) changes
nothing. An outcome for no project of ours (raised directly by another system)
is passed by.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from services.partner.application import PartnerApplication
from services.partner.consumers.contracts import (
    DirectorDecisionApprovedV1,
    DirectorDecisionRejectedV1,
    ProcurementApprovedV1,
    ProcurementRejectedV1,
)
from shared.consumer import Handler, Subscription, read_payload
from shared.db import DbConn
from shared.domain import CommandContext
from shared.envelope import EventEnvelope

log = logging.getLogger(__name__)


def approval_subscription(app: PartnerApplication) -> Subscription:
    async def react(
        event: EventEnvelope,
        project_id: UUID | None,
        command: Callable[[CommandContext, UUID], bool],
    ) -> None:
        if project_id is None:
            return
        try:
            moved = await asyncio.to_thread(command, app.reacting_to(event), project_id)
        except AggregateNotFoundError:
            log.info("%s %s is for no project of ours; passed by", event.event_type, project_id)
            return
        if not moved:
            log.info("%s %s changed nothing (seen before)", event.event_type, event.event_id)

    async def approved(conn: DbConn, event: EventEnvelope) -> None:
        p = read_payload(event, ProcurementApprovedV1)
        await react(
            event,
            p.project_id,
            lambda ctx, project: app.record_procurement_outcome(
                ctx,
                project,
                request_id=p.request_id,
                approved=True,
                decided_at=p.approved_at,
                amount=p.amount,
            ),
        )

    async def rejected(conn: DbConn, event: EventEnvelope) -> None:
        p = read_payload(event, ProcurementRejectedV1)
        await react(
            event,
            p.project_id,
            lambda ctx, project: app.record_procurement_outcome(
                ctx,
                project,
                request_id=p.request_id,
                approved=False,
                decided_at=p.rejected_at,
                step=p.step,
                reason=p.reason,
            ),
        )

    async def decision_approved(conn: DbConn, event: EventEnvelope) -> None:
        p = read_payload(event, DirectorDecisionApprovedV1)
        await react(
            event,
            p.project_id,
            lambda ctx, project: app.record_decision(
                ctx, project, decision_id=p.decision_id, kind=p.kind, approved=True, reason=""
            ),
        )

    async def decision_rejected(conn: DbConn, event: EventEnvelope) -> None:
        p = read_payload(event, DirectorDecisionRejectedV1)
        await react(
            event,
            p.project_id,
            lambda ctx, project: app.record_decision(
                ctx,
                project,
                decision_id=p.decision_id,
                kind=p.kind,
                approved=False,
                reason=p.reason,
            ),
        )

    handlers: dict[str, Handler] = {
        "ProcurementApproved": approved,
        "ProcurementRejected": rejected,
        "DirectorDecisionApproved": decision_approved,
        "DirectorDecisionRejected": decision_rejected,
    }
    return Subscription(source="approval", handlers=handlers)
