"""Reactions to `partner.events`: a project's request for procurement approval
opens the three-step chain (R3.1); a major decision of a project opens a
Director decision (R5.1, R5.2).

Opening is idempotent on the request id the partner service chose, so a
redelivered event (or a crash between the command and the consumer's record
of the event id) opens nothing twice. The project's requester is the
requester of the approval, with every segregation rule that implies.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from services.approval.application import ApprovalApplication
from services.approval.consumers.contracts import (
    DirectorDecisionRequestedV1,
    ProcurementApprovalRequestedV1,
)
from shared.consumer import Handler, PoisonEvent, Subscription
from shared.db import DbConn
from shared.domain import Actor, CommandContext, RuleViolation
from shared.envelope import EventEnvelope

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

DECISION_TITLES = {
    "budget_increase": "Budget increase",
    "scope_change": "Scope change",
    "contract_renewal": "Contract renewal",
}


def _read(event: EventEnvelope, model: type[M]) -> M:
    if event.schema_version != 1:
        raise PoisonEvent(f"{event.event_type} v{event.schema_version} is not understood")
    try:
        return model.model_validate(event.payload)
    except ValidationError as exc:
        raise PoisonEvent(f"{event.event_type} payload does not match its contract: {exc}") from exc


def _context(app: ApprovalApplication, event: EventEnvelope) -> CommandContext:
    """The requester acted in the partner service; this service records it as a consequence."""
    return app.context(
        Actor(user_id=event.actor.user_id, role=event.actor.role),
        correlation_id=event.correlation_id,
        causation_id=event.event_id,
    )


def request_subscription(app: ApprovalApplication) -> Subscription:
    async def procurement_requested(conn: DbConn, event: EventEnvelope) -> None:
        p = _read(event, ProcurementApprovalRequestedV1)
        try:
            _, opened = await asyncio.to_thread(
                lambda: app.open_request(
                    _context(app, event),
                    request_id=p.request_id,
                    kind="procurement",
                    project_id=event.aggregate_id,
                    partner_id=p.partner_id,
                    title=p.title,
                    amount=p.amount,
                    currency=p.currency,
                    justification=p.justification,
                    requested_by=p.requested_by,
                    source="partner.events",
                )
            )
        except RuleViolation as exc:
            raise PoisonEvent(f"the request cannot be opened: {exc}") from exc
        if not opened:
            log.info("approval request %s exists already (seen before)", p.request_id)

    async def decision_requested(conn: DbConn, event: EventEnvelope) -> None:
        p = _read(event, DirectorDecisionRequestedV1)
        title = DECISION_TITLES[p.kind]
        try:
            _, opened = await asyncio.to_thread(
                lambda: app.open_request(
                    _context(app, event),
                    request_id=p.decision_id,
                    kind=p.kind,
                    project_id=event.aggregate_id,
                    partner_id=None,
                    title=title,
                    amount=p.new_budget if p.kind == "budget_increase" else p.new_value,
                    currency="",
                    justification=p.reason,
                    requested_by=event.actor.user_id,
                    source="partner.events",
                    new_budget=p.new_budget,
                    new_scope=p.new_scope,
                    new_end_date=p.new_end_date,
                    new_value=p.new_value,
                )
            )
        except RuleViolation as exc:
            raise PoisonEvent(f"the decision cannot be opened: {exc}") from exc
        if not opened:
            log.info("Director decision %s exists already (seen before)", p.decision_id)

    handlers: dict[str, Handler] = {
        "ProcurementApprovalRequested": procurement_requested,
        "DirectorDecisionRequested": decision_requested,
    }
    return Subscription(source="partner", handlers=handlers)
