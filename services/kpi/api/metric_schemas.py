"""Response bodies of the KPI figures API (services/kpi/api/metrics.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field


class MetricInfo(BaseModel):
    key: str
    requirement: str = Field(description="The requirement of MISSION.md the figure serves")
    title: str
    title_zh: str
    unit: str
    aggregate: str = Field(description="ratio, mean, median, count or sum of the items")
    formula: str
    dimensions: list[str]
    person: str | None = Field(description="What the `person` dimension holds, if any")
    label: str | None
    detail: str | None
    higher_is_better: bool


class FigureRow(BaseModel):
    period_start: date | None = Field(description="First day of the period; null for period=all")
    group: dict[str, str | None] = Field(default_factory=dict)
    numerator: float | None
    denominator: float | None
    items: int = Field(ge=0, description="How many items the figure aggregates")
    value: float | None = Field(description="Null when there is no denominator (no figure)")

    @classmethod
    def from_row(cls, row: dict[str, Any], groups: list[str]) -> FigureRow:
        return cls(
            period_start=row["period_start"],
            group={g: None if row[g] is None else str(row[g]) for g in groups},
            numerator=row["numerator"],
            denominator=row["denominator"],
            items=row["items"],
            value=row["value"],
        )


class Figures(BaseModel):
    metric: MetricInfo
    period: str
    as_of: datetime | None = Field(description="Read as recorded by then; null: everything")
    cut: datetime = Field(description="What had fallen due by this moment counts")
    group_by: list[str]
    filters: dict[str, str]
    rows: list[FigureRow]


class Item(BaseModel):
    period_start: date | None
    day: date
    partner_id: UUID | None
    project_id: UUID | None
    project_manager: str | None
    person: str | None
    label: str | None
    detail: str | None
    numerator: float | None
    denominator: float | None
    sample: float | None
    event_ids: list[UUID]


class ActorOut(BaseModel):
    user_id: str
    role: str


class EventOut(BaseModel):
    event_id: UUID
    source: str
    event_type: str
    aggregate_type: str
    aggregate_id: UUID
    aggregate_version: int
    occurred_at: datetime
    recorded_at: datetime
    actor: ActorOut
    payload: dict[str, Any]


class Explanation(BaseModel):
    metric: MetricInfo
    period: str
    period_start: date | None
    as_of: datetime | None
    cut: datetime
    figure: FigureRow | None
    items: list[Item]
    events: list[EventOut]
    truncated: bool = Field(description="More items exist than `limit`")


class CostControlRow(BaseModel):
    project_id: UUID
    partner_id: UUID
    project_manager: str
    title: str
    budget: float | None
    actual: float
    rate: float | None = Field(description="actual / budget; null without a budget")
    saving: float | None = Field(description="1 - rate")
    outcome: str | None = Field(description="completed, failed or terminated once closed")
    closed_on: date | None
    bonus_eligible: bool = Field(
        description="R6.3: closed completed with a saving of at least the policy's percentage"
    )
    event_ids: list[UUID]


class CostControlPage(BaseModel):
    as_of: datetime | None
    cut: datetime
    bonus_threshold_percent: float
    items: list[CostControlRow]
