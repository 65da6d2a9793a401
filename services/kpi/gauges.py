"""Prometheus gauges of the headline KPIs (R6.1, R3.5, R1.2), refreshed with
each scoring run, for alerting beside Grafana's SQL dashboards.

The current month and quarter in the policy zone, every partner together; a
figure without a denominator is NaN (no figure), never 0.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Final

from prometheus_client import Gauge

from services.kpi.metrics import METRICS, Period
from services.kpi.readings import Moment, Selection, figures
from shared.db import DbConn

HEADLINE: Final = (
    "on_time_delivery",
    "complaint_rate",
    "satisfaction",
    "task_completion",
    "document_accuracy",
    "failure_rate",
    "compliance",
    "incidents",
    "data_leaks",
    "investigations_open",
)

KPI_VALUE = Gauge(
    "pl_kpi_value",
    "A KPI of the current period, every partner together (NaN: no denominator)",
    ["metric", "period"],
)
KPI_ITEMS = Gauge(
    "pl_kpi_items", "Items behind the KPI of the current period", ["metric", "period"]
)
PARTNER_OVERALL = Gauge(
    "pl_partner_overall_score",
    "A partner's overall scorecard score (active version)",
    ["partner_id"],
)
PARTNERS_BY_STANDING = Gauge(
    "pl_partners_by_standing", "Partners per scorecard standing (active version)", ["standing"]
)


def _period_start(day: date, period: Period) -> date:
    month = day.month if period == "month" else 3 * ((day.month - 1) // 3) + 1
    return date(day.year, month, 1)


async def refresh(conn: DbConn, moment: Moment, active_version: str, standings: list[str]) -> None:
    for period in ("month", "quarter"):
        start = _period_start(moment.cut_day, period)
        selection = Selection(period=period, start=start, end=start)
        for key in HEADLINE:
            rows = await figures(conn, METRICS[key], moment, selection)
            row = rows[0] if rows else None
            value = row["value"] if row else None
            KPI_VALUE.labels(key, period).set(math.nan if value is None else value)
            KPI_ITEMS.labels(key, period).set(row["items"] if row else 0)
    scored = await conn.fetch(
        "SELECT partner_id, overall, standing FROM partner_overall"
        " WHERE formula_version = $1 AND period = 'month'",
        active_version,
    )
    PARTNER_OVERALL.clear()
    for r in scored:
        PARTNER_OVERALL.labels(str(r["partner_id"])).set(float(r["overall"]))
    for standing in standings:
        PARTNERS_BY_STANDING.labels(standing).set(sum(r["standing"] == standing for r in scored))
