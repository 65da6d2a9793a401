"""The docs service: named documents, the encrypted contract archive, minutes."""

from __future__ import annotations

from services.docs.application import DocsApplication
from shared.runtime import ServiceSpec

SPEC = ServiceSpec(
    name="docs",
    title="Partner Ledger - docs service",
    description="Documents named per R4.4, encrypted contracts (R4.1), minutes and reports.",
    application=DocsApplication,
)
