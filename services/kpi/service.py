"""The kpi service: every KPI as a projection of the other services' events."""

from __future__ import annotations

from services.kpi.api.routes import router
from services.kpi.application import KpiApplication
from services.kpi.consumers.partners import PARTNER_EVENTS
from services.kpi.projections import MIGRATIONS
from shared.runtime import ConsumerSpec, ServiceSpec

SPEC = ServiceSpec(
    name="kpi",
    title="Partner Ledger - KPI service",
    description="KPI projections (R6.1, R3.5, R1.2) built from every topic.",
    application=KpiApplication,
    routers=[router],
    migrations=MIGRATIONS,
    consumers=[ConsumerSpec(name="projections", subscriptions=lambda rt: [PARTNER_EVENTS])],
)
