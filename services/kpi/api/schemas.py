"""Response bodies of the KPI read API."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field


class PartnerSummary(BaseModel):
    """Partners by status, from the projection of `partner.events`."""

    total: int = Field(ge=0)
    by_status: dict[str, int]
    last_registered_at: datetime | None


class PartnerRow(BaseModel):
    partner_id: UUID
    name: str
    unified_social_credit_code: str
    status: str
    registered_at: datetime
    status_since: datetime


class PartnerPage(BaseModel):
    items: list[PartnerRow]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end")
