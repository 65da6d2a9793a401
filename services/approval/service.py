"""The approval service: procurement approvals and Director decisions."""

from __future__ import annotations

from services.approval.application import ApprovalApplication
from shared.runtime import ServiceSpec

SPEC = ServiceSpec(
    name="approval",
    title="Partner Ledger - approval service",
    description="Three-step procurement approval (R3.1) and Director decisions (R5.1-R5.3).",
    application=ApprovalApplication,
)
