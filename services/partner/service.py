"""The partner service: partners (R2.1) and outsourcing projects, with the
policy's deadlines (R3.2 kickoff, R3.3 quarterly review, requalification) and
the notices they cause (services.partner.notices)."""

from __future__ import annotations

from typing import Final

from services.partner.api.partners import router as partners
from services.partner.api.projects import router as projects
from services.partner.application import PartnerApplication
from services.partner.consumers.approvals import approval_subscription
from services.partner.notices import notice_rules
from services.partner.projections import (
    KICKOFF,
    MIGRATIONS,
    QUARTERLY_REVIEW,
    REQUALIFICATION,
    deadline_handlers,
    view_handlers,
)
from shared.deadlines import OverdueHandler
from shared.eventstore import LedgerApplication
from shared.runtime import ConsumerSpec, ProjectorSpec, ServiceSpec


def _app(app: LedgerApplication) -> PartnerApplication:
    assert isinstance(app, PartnerApplication)
    return app


OVERDUE: Final[dict[str, OverdueHandler]] = {
    KICKOFF: lambda app, d: _app(app).kickoff_overdue(d),
    QUARTERLY_REVIEW: lambda app, d: _app(app).review_overdue(d),
    REQUALIFICATION: lambda app, d: _app(app).requalification_overdue(d),
}


SPEC = ServiceSpec(
    name="partner",
    title="Partner Ledger - partner service",
    description=(
        "Partners (R2.1) and outsourcing projects: procurement approval (R3.1), contract,"
        " kickoff (R3.2), milestones, tasks, quarterly reviews (R3.3), complaints,"
        " incidents (R6.4), costs, major decisions (R5.1, R5.2), final acceptance (R3.4)"
        " and closure. Publishes `partner.events`; reacts to `approval.events`."
    ),
    application=PartnerApplication,
    routers=[partners, projects],
    migrations=MIGRATIONS,
    consumers=[
        ConsumerSpec(
            name="approvals",
            subscriptions=lambda rt: [approval_subscription(_app(rt.application))],
        )
    ],
    projectors=[
        ProjectorSpec(
            name="views", handlers=view_handlers, replay_tables=("partner_view", "project_view")
        ),
        ProjectorSpec(name="deadlines", handlers=deadline_handlers),
    ],
    overdue=OVERDUE,
    notices=notice_rules,
)
