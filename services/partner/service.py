"""The partner service: partners and projects (DESIGN.md section 1)."""

from __future__ import annotations

from services.partner.api.routes import router
from services.partner.application import PartnerApplication
from shared.runtime import ServiceSpec

SPEC = ServiceSpec(
    name="partner",
    title="Partner Ledger - partner service",
    description="Partners (R2.1) and outsourcing projects. Publishes `partner.events`.",
    application=PartnerApplication,
    routers=[router],
)
