"""The kpi service: every KPI as a projection of the other services' events."""

from __future__ import annotations

from typing import Final

from services.kpi.api.evaluations import router as evaluations
from services.kpi.api.metrics import router as metrics
from services.kpi.api.routes import router
from services.kpi.api.scorecards import router as scorecards
from services.kpi.api.staff import router as staff
from services.kpi.api.trail import router as trail
from services.kpi.application import TRAINING_YEAR, KpiApplication
from services.kpi.board.routes import router as board
from services.kpi.consumers.facts import fact_handlers
from services.kpi.consumers.partners import PARTNER_EVENTS
from services.kpi.domain.evaluation import SELF_ASSESSMENT, SUPERIOR_ASSESSMENT
from services.kpi.evaluation_projections import MIGRATIONS as EVALUATION_MIGRATIONS
from services.kpi.evaluation_projections import handlers as evaluation_handlers
from services.kpi.fact_store import MIGRATIONS as FACT_MIGRATIONS
from services.kpi.projections import MIGRATIONS
from services.kpi.readings import create_views
from services.kpi.scoring import MIGRATIONS as SCORE_MIGRATIONS
from services.kpi.scoring import score_loop
from services.kpi.staff_projections import MIGRATIONS as STAFF_MIGRATIONS
from services.kpi.staff_projections import deadline_handlers, view_handlers
from services.kpi.standing_notices import standing_notices
from services.kpi.trail import MIGRATIONS as TRAIL_MIGRATIONS
from services.kpi.trail import trail_handlers
from shared.consumer import Subscription
from shared.db import DbConn
from shared.deadlines import OverdueHandler
from shared.eventstore import LedgerApplication
from shared.runtime import ConsumerSpec, ProjectorSpec, Runtime, ServiceSpec


def _app(app: LedgerApplication) -> KpiApplication:
    assert isinstance(app, KpiApplication)
    return app


OVERDUE: Final[dict[str, OverdueHandler]] = {
    TRAINING_YEAR: lambda app, d: _app(app).close_training_year(d),
    SELF_ASSESSMENT: lambda app, d: _app(app).record_evaluation_overdue(d),
    SUPERIOR_ASSESSMENT: lambda app, d: _app(app).record_evaluation_overdue(d),
}


def _subscriptions(rt: Runtime) -> list[Subscription]:
    """One consumer reads every topic: partners by status, the KPI facts, and
    every event into the audit trail (its EVERY_EVENT handler)."""
    return [
        Subscription(
            source="partner",
            handlers={
                **fact_handlers("partner", rt.policy),
                **PARTNER_EVENTS.handlers,
                **trail_handlers("partner"),
            },
        ),
        *(
            Subscription(
                source=source,
                handlers={**fact_handlers(source, rt.policy), **trail_handlers(source)},
            )
            for source in ("approval", "docs", "kpi")
        ),
    ]


async def _startup(rt: Runtime, conn: DbConn) -> None:
    await create_views(conn, rt.policy.time.zone)


SPEC = ServiceSpec(
    name="kpi",
    title="Partner Ledger - KPI service",
    description=(
        "KPI projections (R6.1, R3.5, R1.2) built from every topic, and the department's"
        " staff directory (R2.2, R2.3): roles, reporting line, promotions, rotations and"
        " trainings against the yearly target; staff evaluations (R6.2): monthly"
        " self-assessments and quarterly assessments by the superior, beside each"
        " person's KPI figures. Publishes `kpi.events`."
    ),
    application=KpiApplication,
    routers=[router, staff, metrics, scorecards, evaluations, trail, board],
    migrations=(
        *MIGRATIONS,
        *STAFF_MIGRATIONS,
        *FACT_MIGRATIONS,
        *EVALUATION_MIGRATIONS,
        *SCORE_MIGRATIONS,
        *TRAIL_MIGRATIONS,
    ),
    consumers=[
        ConsumerSpec(
            name="projections",
            subscriptions=_subscriptions,
            replay_tables=(
                "fact_events",
                "facts",
                "projects",
                "aggregate_projects",
                "partners",
                "partner_counts",
                "audit_trail",
                "audit_trail_projects",
            ),
        )
    ],
    projectors=[
        ProjectorSpec(
            name="staff",
            handlers=view_handlers,
            replay_tables=("staff", "staff_changes", "trainings", "training_years"),
        ),
        ProjectorSpec(name="deadlines", handlers=deadline_handlers),
        ProjectorSpec(name="evaluations", handlers=evaluation_handlers),
    ],
    overdue=OVERDUE,
    startup=_startup,
    notices=standing_notices,
    background=[score_loop],
)
