"""Every KPI over HTTP (R6.1, R3.5, R1.2): figures by period and dimension,
"as of" any past moment, and the events behind any figure."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from services.kpi.api.metric_schemas import (
    CostControlPage,
    CostControlRow,
    Explanation,
    FigureRow,
    Figures,
    MetricInfo,
)
from services.kpi.cost_control import cost_control
from services.kpi.metrics import DIMENSIONS, METRICS, Metric, Period
from services.kpi.readings import Moment, Selection, explain, figures
from shared.auth import AUDITOR, CEO, DEPARTMENT, DEPT_HEAD, FINANCE, Principal
from shared.http import require_roles, runtime_of
from shared.problems import PROBLEM_RESPONSES, Problem

router = APIRouter(prefix="/v1/kpi", tags=["kpi"], responses=PROBLEM_RESPONSES)

#: The department and its management read every figure; a partner does not.
CanRead = Annotated[
    Principal,
    Depends(require_roles(*DEPARTMENT, DEPT_HEAD, FINANCE, CEO, AUDITOR, action="read KPIs")),
]

#: The years a reading may name: wide enough for any record, narrow enough
#: that period arithmetic never leaves the calendar.
FIRST_YEAR, LAST_YEAR = 2000, 2100
_PERIOD_TEXT = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?|-Q([1-4]))$")


def _bad(field: str, message: str) -> Problem:
    return Problem(
        422,
        "Invalid request",
        message,
        kind="validation",
        errors=[{"field": f"query.{field}", "message": message, "type": "value_error"}],
    )


def parse_period_start(text: str, field: str) -> date:
    """`2026-03`, `2026-Q1` or a day `2026-03-15`: the first day it names."""
    match = _PERIOD_TEXT.match(text)
    if match is None:
        raise _bad(field, f"{text!r}: give a month 2026-03, a quarter 2026-Q1 or a day 2026-03-15")
    year, month, day, quarter = match.groups()
    if not FIRST_YEAR <= int(year) <= LAST_YEAR:
        raise _bad(field, f"{text!r}: years {FIRST_YEAR}-{LAST_YEAR} are kept here")
    try:
        if quarter:
            return date(int(year), 3 * int(quarter) - 2, 1)
        return date(int(year), int(month), int(day or 1))
    except ValueError:
        raise _bad(field, f"{text!r} is not a date") from None


def _metric(key: str) -> Metric:
    metric = METRICS.get(key)
    if metric is None:
        raise Problem(
            404,
            "Not found",
            f"no KPI {key!r}; GET /v1/kpi/metrics lists them",
            kind="not-found",
        )
    return metric


def _info(metric: Metric) -> MetricInfo:
    return MetricInfo(
        key=metric.key,
        requirement=metric.requirement,
        title=metric.title,
        title_zh=metric.title_zh,
        unit=metric.unit,
        aggregate=metric.aggregate,
        formula=metric.formula,
        dimensions=list(metric.dims),
        person=metric.person,
        label=metric.label,
        detail=metric.detail,
        higher_is_better=metric.higher_is_better,
    )


class _Filters:
    """The dimension filters every reading accepts."""

    def __init__(
        self,
        partner_id: Annotated[UUID | None, Query()] = None,
        project_id: Annotated[UUID | None, Query()] = None,
        project_manager: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
        person: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
        label: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
        detail: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    ) -> None:
        values: dict[str, str | UUID | None] = {
            "partner_id": partner_id,
            "project_id": project_id,
            "project_manager": project_manager,
            "person": person,
            "label": label,
            "detail": detail,
        }
        self.values = {k: v for k, v in values.items() if v is not None}

    def check(self, metric: Metric) -> dict[str, str | UUID]:
        for name in self.values:
            if name not in metric.dims:
                raise _bad(
                    name,
                    f"{metric.key} has no dimension {name!r}; it has {', '.join(metric.dims)}",
                )
        return self.values


Filters = Annotated[_Filters, Depends()]
AsOf = Annotated[
    AwareDatetime | None,
    Query(description="Read as recorded by this moment (ISO 8601 with offset)"),
]
PeriodQ = Annotated[Period, Query(description="month, quarter (policy time zone) or all")]


def _moment(request: Request, as_of: datetime | None) -> Moment:
    if as_of is not None and not FIRST_YEAR <= as_of.astimezone(UTC).year < LAST_YEAR:
        raise _bad("as_of", f"as_of must lie within {FIRST_YEAR}-{LAST_YEAR - 1}")
    rt = runtime_of(request)
    return Moment.of(rt.policy, rt.clock.now(), as_of)


@router.get("/metrics", response_model=list[MetricInfo], summary="Every KPI and its formula")
async def list_metrics(principal: CanRead) -> list[MetricInfo]:
    return [_info(m) for m in METRICS.values()]


@router.get("/metrics/{key}", response_model=Figures, summary="A KPI by period and dimension")
async def read_figures(
    request: Request,
    principal: CanRead,
    key: str,
    filters: Filters,
    as_of: AsOf = None,
    period: PeriodQ = "month",
    from_: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    to: Annotated[str | None, Query(max_length=10)] = None,
    group_by: Annotated[list[str] | None, Query(max_length=6)] = None,
) -> Figures:
    metric = _metric(key)
    groups = list(dict.fromkeys(group_by or []))
    for name in groups:
        if name not in metric.dims:
            raise _bad("group_by", f"{metric.key} groups by {', '.join(metric.dims)}, not {name!r}")
    start = parse_period_start(from_, "from") if from_ else None
    end = parse_period_start(to, "to") if to else None
    if start and end and start > end:
        raise _bad("from", "from is after to")
    if (
        start
        and end
        and period == "month"
        and (end.year - start.year) * 12 + end.month - start.month > 240
    ):
        raise _bad("to", "at most 20 years in one reading")
    moment = _moment(request, as_of)
    selection = Selection(period=period, start=start, end=end, filters=filters.check(metric))
    async with runtime_of(request).pool.acquire() as conn:
        rows = await figures(conn, metric, moment, selection, groups)
    return Figures(
        metric=_info(metric),
        period=period,
        as_of=as_of,
        cut=moment.cut,
        group_by=groups,
        filters={k: str(v) for k, v in selection.filters.items()} if selection.filters else {},
        rows=[FigureRow.from_row(r, groups) for r in rows],
    )


@router.get(
    "/metrics/{key}/explain",
    response_model=Explanation,
    summary="The items and events behind one figure",
)
async def explain_figure(
    request: Request,
    principal: CanRead,
    key: str,
    filters: Filters,
    as_of: AsOf = None,
    period: PeriodQ = "month",
    period_start: Annotated[str | None, Query(max_length=10)] = None,
    missed: Annotated[
        bool, Query(description="Only items that count against the figure (breaches)")
    ] = False,
    order: Annotated[
        Literal["asc", "desc"], Query(description="Oldest (asc) or newest (desc) first")
    ] = "asc",
    limit: Annotated[int, Query(ge=1, le=2000)] = 500,
) -> Explanation:
    metric = _metric(key)
    start: date | None = None
    if period != "all":
        if period_start is None:
            raise _bad("period_start", "name the period: period_start=2026-03 (or period=all)")
        start = parse_period_start(period_start, "period_start")
        if start.day != 1 or (period == "quarter" and (start.month - 1) % 3):
            raise _bad("period_start", f"{period_start} is not the start of a {period}")
    moment = _moment(request, as_of)
    selection = Selection(period=period, start=start, end=start, filters=filters.check(metric))
    async with runtime_of(request).pool.acquire() as conn:
        items, events, truncated = await explain(
            conn, metric, moment, selection, limit, missed=missed, newest_first=order == "desc"
        )
        figure = await figures(conn, metric, moment, selection)
    value = figure[0] if figure else None
    return Explanation(
        metric=_info(metric),
        period=period,
        period_start=start,
        as_of=as_of,
        cut=moment.cut,
        figure=FigureRow.from_row(value, []) if value else None,
        items=items,
        events=events,
        truncated=truncated,
    )


@router.get(
    "/cost-control",
    response_model=CostControlPage,
    summary="Cost control per project to date, and the PM bonus flag (R6.1, R6.3)",
)
async def read_cost_control(
    request: Request,
    principal: CanRead,
    as_of: AsOf = None,
    partner_id: Annotated[UUID | None, Query()] = None,
    project_id: Annotated[UUID | None, Query()] = None,
    project_manager: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
) -> CostControlPage:
    rt = runtime_of(request)
    moment = _moment(request, as_of)
    threshold = rt.policy.rewards.cost_saving_bonus_percent
    async with rt.pool.acquire() as conn:
        rows = await cost_control(
            conn,
            moment,
            threshold,
            {
                k: v
                for k, v in {
                    "partner_id": partner_id,
                    "project_id": project_id,
                    "project_manager": project_manager,
                }.items()
                if v is not None
            },
        )
    return CostControlPage(
        as_of=as_of,
        cut=moment.cut,
        bonus_threshold_percent=threshold,
        items=[CostControlRow(**r) for r in rows],
    )


__all__ = ["DIMENSIONS", "router"]
