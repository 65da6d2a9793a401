"""Partner scorecards over HTTP (R6.1, R1.2): scores per period and formula
version, overall scores, standings and their history."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from services.kpi.api.metrics import CanRead
from services.kpi.application import KpiApplication
from services.kpi.domain.standing import standing_id
from services.kpi.scoring import STANDING_PERIOD, rescore
from shared.auth import DIRECTOR, Principal
from shared.envelope import EventEnvelope
from shared.http import require_roles, runtime_of
from shared.problems import PROBLEM_RESPONSES, Problem

router = APIRouter(prefix="/v1/kpi/scorecards", tags=["kpi"], responses=PROBLEM_RESPONSES)

CanRescore = Annotated[
    Principal, Depends(require_roles(DIRECTOR, action="rescore the partner scorecards"))
]
PeriodKind = Literal["month", "quarter"]


class StandingOut(BaseModel):
    name: str
    min: float
    label_zh: str


class PeriodScoreOut(BaseModel):
    period_start: date
    score: float


class ScorecardRow(BaseModel):
    partner_id: UUID
    name: str | None
    overall: float
    standing: str
    standing_zh: str
    latest_period: date
    scored_periods: int = Field(ge=1)
    by_version: dict[str, float] = Field(description="Overall score under every version")
    periods: list[PeriodScoreOut]


class Scorecards(BaseModel):
    active_version: str
    version: str
    versions: list[str]
    period: str
    standing_period: str = Field(description="The period kind whose overall decides standing")
    standings: list[StandingOut]
    decay_factor: float
    decay_periods: int
    items: list[ScorecardRow]


class CriterionOut(BaseModel):
    value: float | None
    weight: float
    weight_used: float
    skipped: str | None


class PeriodDetail(BaseModel):
    period_start: date
    score: float
    criteria: dict[str, CriterionOut]
    variables: dict[str, float | None]


class VersionDetail(BaseModel):
    version: str
    description: str
    overall: float | None
    standing: str | None
    periods: list[PeriodDetail]


class StandingChange(BaseModel):
    event_id: UUID
    event_type: str
    occurred_at: datetime
    payload: dict[str, Any]


class PartnerScorecard(BaseModel):
    partner_id: UUID
    name: str | None
    period: str
    active_version: str
    versions: list[VersionDetail] = Field(description="Side by side, every configured version")
    history: list[StandingChange] = Field(description="PartnerStanding events, oldest first")


class RescoreResult(BaseModel):
    scores: int
    standings_changed: int
    warnings: int


def _app(request: Request) -> KpiApplication:
    app = runtime_of(request).application
    assert isinstance(app, KpiApplication)
    return app


@router.get("", response_model=Scorecards, summary="Partner scorecards and standings")
async def list_scorecards(
    request: Request,
    principal: CanRead,
    period: PeriodKind = STANDING_PERIOD,
    version: Annotated[str | None, Query(max_length=40)] = None,
    standing: Annotated[str | None, Query(max_length=40)] = None,
) -> Scorecards:
    config = _app(request).scorecard
    chosen = version or config.active
    if chosen not in config.versions:
        raise Problem(
            404,
            "Not found",
            f"no scorecard version {chosen!r}; versions: {', '.join(config.versions)}",
            kind="not-found",
        )
    async with runtime_of(request).pool.acquire() as conn:
        overall_rows = await conn.fetch(
            "SELECT o.*, p.name FROM partner_overall o"
            " LEFT JOIN partners p USING (partner_id) WHERE o.period = $1"
            " ORDER BY o.overall DESC, p.name, o.partner_id",
            period,
        )
        score_rows = await conn.fetch(
            "SELECT partner_id, period_start, score FROM partner_scores"
            " WHERE formula_version = $1 AND period = $2 ORDER BY period_start",
            chosen,
            period,
        )
    by_version: dict[UUID, dict[str, float]] = {}
    for r in overall_rows:
        by_version.setdefault(r["partner_id"], {})[r["formula_version"]] = float(r["overall"])
    periods: dict[UUID, list[PeriodScoreOut]] = {}
    for r in score_rows:
        periods.setdefault(r["partner_id"], []).append(
            PeriodScoreOut(period_start=r["period_start"], score=float(r["score"]))
        )
    items = [
        ScorecardRow(
            partner_id=r["partner_id"],
            name=r["name"],
            overall=float(r["overall"]),
            standing=r["standing"],
            standing_zh=r["standing_zh"],
            latest_period=r["latest_period"],
            scored_periods=r["scored_periods"],
            by_version=by_version[r["partner_id"]],
            periods=periods.get(r["partner_id"], []),
        )
        for r in overall_rows
        if r["formula_version"] == chosen and (standing is None or r["standing"] == standing)
    ]
    return Scorecards(
        active_version=config.active,
        version=chosen,
        versions=list(config.versions),
        period=period,
        standing_period=STANDING_PERIOD,
        standings=[
            StandingOut(name=s.name, min=s.min, label_zh=s.label_zh) for s in config.standings
        ],
        decay_factor=config.decay.factor,
        decay_periods=config.decay.periods,
        items=items,
    )


@router.post(
    "/rescore",
    response_model=RescoreResult,
    summary="Rescore every partner now (it also runs by itself every few seconds)",
)
async def rescore_now(request: Request, principal: CanRescore) -> RescoreResult:
    run = await rescore(runtime_of(request))
    return RescoreResult(
        scores=run.scores, standings_changed=run.standings_changed, warnings=run.warnings
    )


@router.get(
    "/{partner_id}",
    response_model=PartnerScorecard,
    summary="One partner's scores per period under every version, and its standing history",
)
async def partner_scorecard(
    request: Request, principal: CanRead, partner_id: UUID, period: PeriodKind = STANDING_PERIOD
) -> PartnerScorecard:
    app = _app(request)
    config = app.scorecard
    async with runtime_of(request).pool.acquire() as conn:
        name = await conn.fetchval("SELECT name FROM partners WHERE partner_id = $1", partner_id)
        scores = await conn.fetch(
            "SELECT * FROM partner_scores WHERE partner_id = $1 AND period = $2"
            " ORDER BY formula_version, period_start",
            partner_id,
            period,
        )
        overall = {
            r["formula_version"]: r
            for r in await conn.fetch(
                "SELECT * FROM partner_overall WHERE partner_id = $1 AND period = $2",
                partner_id,
                period,
            )
        }
    if name is None and not scores:
        raise Problem(404, "Not found", f"no partner {partner_id} is known here", kind="not-found")
    versions = []
    for version in config.versions.values():
        mine = [r for r in scores if r["formula_version"] == version.name]
        total = overall.get(version.name)
        versions.append(
            VersionDetail(
                version=version.name,
                description=version.description,
                overall=float(total["overall"]) if total else None,
                standing=total["standing"] if total else None,
                periods=[
                    PeriodDetail(
                        period_start=r["period_start"],
                        score=float(r["score"]),
                        criteria=json.loads(r["criteria"]),
                        variables=json.loads(r["variables"]),
                    )
                    for r in mine
                ],
            )
        )
    history = [
        StandingChange(
            event_id=e.event_id,
            event_type=e.event_type,
            occurred_at=e.occurred_at,
            payload=e.payload,
        )
        for e in await _history(app, partner_id)
    ]
    return PartnerScorecard(
        partner_id=partner_id,
        name=name,
        period=period,
        active_version=config.active,
        versions=versions,
        history=history,
    )


async def _history(app: KpiApplication, partner_id: UUID) -> list[EventEnvelope]:
    """The partner's standing events; none before it was first scored."""
    try:
        return await asyncio.to_thread(app.history, standing_id(partner_id))
    except AggregateNotFoundError:
        return []
