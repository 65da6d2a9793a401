"""The approval service: three-step procurement approval (R3.1), Director
decisions (R5.1, R5.2) and emergency actions ratified after the fact (R5.3),
each step on the clock (R3.5)."""

from __future__ import annotations

from typing import Final

from services.approval.api.approvals import delegations
from services.approval.api.approvals import router as approvals
from services.approval.api.emergencies import router as emergencies
from services.approval.application import ApprovalApplication
from services.approval.consumers.requests import request_subscription
from services.approval.notices import approval_notices
from services.approval.projections import (
    APPROVAL_STEP,
    EMERGENCY_EXPLANATION,
    MIGRATIONS,
    deadline_handlers,
    view_handlers,
)
from shared.deadlines import OverdueHandler
from shared.eventstore import LedgerApplication
from shared.runtime import ConsumerSpec, ProjectorSpec, ServiceSpec


def _app(app: LedgerApplication) -> ApprovalApplication:
    assert isinstance(app, ApprovalApplication)
    return app


OVERDUE: Final[dict[str, OverdueHandler]] = {
    APPROVAL_STEP: lambda app, d: _app(app).step_overdue(d),
    EMERGENCY_EXPLANATION: lambda app, d: _app(app).explanation_overdue(d),
}

SPEC = ServiceSpec(
    name="approval",
    title="Partner Ledger - approval service",
    description=(
        "Three-step procurement approval: department head, Finance, CEO (R3.1), each step"
        " on the clock with escalation (R3.5); Director decisions on budget, scope and"
        " renewal (R5.1, R5.2); emergency actions explained and ratified after the fact"
        " (R5.3). Publishes `approval.events`; reacts to `partner.events`."
    ),
    application=ApprovalApplication,
    routers=[approvals, delegations, emergencies],
    migrations=MIGRATIONS,
    consumers=[
        ConsumerSpec(
            name="requests",
            subscriptions=lambda rt: [request_subscription(_app(rt.application))],
        )
    ],
    projectors=[
        ProjectorSpec(
            name="views",
            handlers=view_handlers,
            replay_tables=("approval_view", "approval_steps", "emergency_view", "delegation_view"),
        ),
        ProjectorSpec(name="deadlines", handlers=deadline_handlers),
    ],
    overdue=OVERDUE,
    notices=approval_notices,
)
