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

from services.approval.application import ApprovalApplication
from services.approval.consumers.contracts import (
    DirectorDecisionRequestedV1,
    ProcurementApprovalRequestedV1,
)
from shared.consumer import Handler, PoisonEvent, Subscription, read_payload
from shared.db import DbConn
from shared.domain import RuleViolation
from shared.envelope import EventEnvelope

log = logging.getLogger(__name__)


DECISION_TITLES = {
    "budget_increase": "Budget increase",
    "scope_change": "Scope change",
    "contract_renewal": "Contract renewal",
}


def request_subscription(app: ApprovalApplication) -> Subscription:
    async def procurement_requested(conn: DbConn, event: EventEnvelope) -> None:
        p = read_payload(event, ProcurementApprovalRequestedV1)
        try:
            _, opened = await asyncio.to_thread(
                lambda: app.open_request(
                    app.reacting_to(event),
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
        p = read_payload(event, DirectorDecisionRequestedV1)
        title = DECISION_TITLES[p.kind]
        try:
            _, opened = await asyncio.to_thread(
                lambda: app.open_request(
                    app.reacting_to(event),
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
