"""Reading the KPIs: figures by period and dimension, the items and events
behind one figure, and the Grafana views (services/kpi/metrics.py defines them).

Every reading names its moment: `as_of` (what had been recorded by then; None
for everything recorded) and the cut (what had fallen due by then: `as_of`,
or the service clock's now).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from services.kpi.metrics import (
    DIMENSIONS,
    METRICS,
    Metric,
    Period,
    period_expr,
    value_expr,
    with_dimensions,
)
from shared.db import DbConn
from shared.policy import Policy


@dataclass(frozen=True)
class Moment:
    """When a reading is taken: `as_of` filters what was recorded, `cut`
    decides what has fallen due."""

    as_of: datetime | None
    cut: datetime
    cut_day: date

    @classmethod
    def of(cls, policy: Policy, now: datetime, as_of: datetime | None = None) -> Moment:
        cut = min(as_of, now) if as_of is not None else now
        return cls(as_of=as_of, cut=cut, cut_day=policy.clock.local_date(cut))

    def args(self) -> list[Any]:
        return [self.as_of, self.cut, self.cut_day]


@dataclass(frozen=True)
class Selection:
    """Which items a reading covers: periods from `start` to `end` (period
    starts, inclusive) and dimension filters."""

    period: Period = "month"
    start: date | None = None
    end: date | None = None
    filters: Mapping[str, str | UUID] | None = None
    #: Only items counted on these days (inclusive), e.g. an evaluation's period.
    days: tuple[date, date] | None = None


def _period_start(period: Period, day: date) -> date:
    """The first day of the month or quarter that `day` is in."""
    step = 1 if period == "month" else 3
    return date(day.year, ((day.month - 1) // step) * step + 1, 1)


def _where(selection: Selection, args: list[Any]) -> str:
    clauses: list[str] = []
    period = period_expr(selection.period)
    if selection.start is not None and selection.period != "all":
        # From the period `start` is in (a day, or a month for quarters), as
        # the rows listed by `figures`: never an empty row for a period with items.
        args.append(_period_start(selection.period, selection.start))
        clauses.append(f"{period} >= ${len(args)}")
    if selection.end is not None and selection.period != "all":
        args.append(selection.end)
        clauses.append(f"{period} <= ${len(args)}")
    if selection.days is not None:
        args.extend(selection.days)
        clauses.append(f"day BETWEEN ${len(args) - 1} AND ${len(args)}")
    for name, value in (selection.filters or {}).items():
        if name not in DIMENSIONS:
            raise ValueError(f"unknown dimension {name!r}")
        args.append(value)
        cast = "::uuid" if name in ("partner_id", "project_id") else "::text"
        clauses.append(f"{name} = ${len(args)}{cast}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


def figures_sql(
    metric: Metric, selection: Selection, group_by: Sequence[str], args: list[Any]
) -> str:
    for name in group_by:
        if name not in metric.dims:
            raise ValueError(f"{metric.key} cannot be grouped by {name!r}")
    dims = "".join(f", {d}" for d in group_by)
    where = _where(selection, args)
    return (
        f"{with_dimensions(metric)}"
        f" SELECT {period_expr(selection.period)} AS period_start{dims},"
        " sum(num) AS numerator, sum(den) AS denominator, count(*) AS items,"
        f" {value_expr(metric)} AS value FROM d{where}"
        f" GROUP BY 1{dims} ORDER BY 1{dims}"
    )


def _periods(period: Period, start: date, end: date) -> list[date]:
    step = 1 if period == "month" else 3
    current = _period_start(period, start)
    out: list[date] = []
    while current <= end:
        out.append(current)
        month = current.month - 1 + step
        current = date(current.year + month // 12, month % 12 + 1, 1)
    return out


def _number(value: Any) -> float | None:
    if value is None:
        return None
    return float(value) if isinstance(value, Decimal | float | int) else None


async def figures(
    conn: DbConn,
    metric: Metric,
    moment: Moment,
    selection: Selection,
    group_by: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """One row per period (and group): numerator, denominator, items, value.
    Without grouping, every period of the selected range has a row, an empty
    one with value None: no denominator is no figure, never 0 or 100%."""
    args = moment.args()
    rows = await conn.fetch(figures_sql(metric, selection, group_by, args), *args)
    out = [
        {
            "period_start": r["period_start"],
            **{d: r[d] for d in group_by},
            "numerator": _number(r["numerator"]),
            "denominator": _number(r["denominator"]),
            "items": r["items"],
            "value": _number(r["value"]),
        }
        for r in rows
    ]
    if group_by or selection.period == "all" or not (selection.start and selection.end):
        return out
    seen = {row["period_start"]: row for row in out}
    empty_count = 0.0 if metric.aggregate in ("count", "sum") else None
    return [
        seen.get(start)
        or {
            "period_start": start,
            "numerator": None,
            "denominator": None,
            "items": 0,
            "value": empty_count,
        }
        for start in _periods(selection.period, selection.start, selection.end)
    ]


def against(metric: Metric) -> str:
    """SQL: the item pulls the figure the wrong way. A miss where higher is
    better (a late delivery, a breach), a hit where lower is (a complaint, a
    failed project); for means, medians and counts every item is shown."""
    if metric.aggregate != "ratio":
        return "true"
    return "num < den" if metric.higher_is_better else "num > 0"


async def explain(
    conn: DbConn,
    metric: Metric,
    moment: Moment,
    selection: Selection,
    limit: int = 500,
    *,
    missed: bool = False,
    newest_first: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """The items behind a figure (only those against it, with `missed`) and
    their events; whether the list was cut at `limit`."""
    args = moment.args()
    where = _where(selection, args)
    if missed:
        where = f"{where} AND ({against(metric)})" if where else f" WHERE {against(metric)}"
    args.append(limit + 1)
    direction = "DESC" if newest_first else ""
    rows = await conn.fetch(
        f"{with_dimensions(metric)} SELECT {period_expr(selection.period)} AS period_start, *"
        f" FROM d{where} ORDER BY day {direction}, event_ids LIMIT ${len(args)}",
        *args,
    )
    truncated = len(rows) > limit
    items = [
        {
            "period_start": r["period_start"],
            "day": r["day"],
            **{d: r[d] for d in DIMENSIONS},
            "numerator": _number(r["num"]),
            "denominator": _number(r["den"]),
            "sample": _number(r["sample"]),
            "event_ids": list(r["event_ids"]),
        }
        for r in rows[:limit]
    ]
    ids = sorted({e for item in items for e in item["event_ids"]}, key=str)
    events = [
        {
            "event_id": r["event_id"],
            "source": r["source"],
            "event_type": r["event_type"],
            "aggregate_type": r["aggregate_type"],
            "aggregate_id": r["aggregate_id"],
            "aggregate_version": r["aggregate_version"],
            "occurred_at": r["occurred_at"],
            "recorded_at": r["recorded_at"],
            "actor": {"user_id": r["actor_id"], "role": r["actor_role"]},
            "payload": json.loads(r["payload"]),
        }
        for r in await conn.fetch(
            "SELECT * FROM fact_events WHERE event_id = ANY($1::uuid[])"
            " ORDER BY recorded_at, aggregate_id, aggregate_version",
            ids,
        )
    ]
    return items, events, truncated


# -- Grafana views -------------------------------------------------------------------


def view_sql(metric: Metric, zone: str) -> str:
    """`kpi_<metric>`: every figure by month and quarter and every dimension,
    as of now; the same SQL as the API with the moment filled in."""
    quoted_zone = zone.replace("'", "''")
    parts = []
    for period in ("month", "quarter"):
        args: list[Any] = []
        sql = figures_sql(metric, Selection(period=period), metric.dims, args)
        dims = ", ".join(
            d if d in metric.dims else f"NULL::{'uuid' if d.endswith('_id') else 'text'} AS {d}"
            for d in DIMENSIONS
        )
        parts.append(
            f"SELECT '{period}'::text AS period, period_start, {dims},"
            f" numerator, denominator, items, value FROM ({sql}) {period}_rows"
        )
    body = " UNION ALL ".join(parts)
    assert not re.search(r"\$[4-9]|\$\d\d", body), "a view binds only $1-$3"
    body = (
        body.replace("$1::timestamptz", "NULL::timestamptz")
        .replace("$2", "now()")
        .replace("$3", f"(now() AT TIME ZONE '{quoted_zone}')::date")
    )
    return f"CREATE VIEW kpi_{metric.key} AS {body}"


async def create_views(conn: DbConn, zone: str) -> None:
    """(Re)creates the views for the code and policy zone of this start; one
    transaction, so a reader sees the old views or the new ones."""
    async with conn.transaction():
        for metric in METRICS.values():
            await conn.execute(f"DROP VIEW IF EXISTS kpi_{metric.key}")
            await conn.execute(view_sql(metric, zone))
