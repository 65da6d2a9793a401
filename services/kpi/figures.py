"""A person's KPI figures for a period (R6.1, R6.2, R6.4): what an evaluation
shows beside the assessment.

Specialist figures are theirs by name (tasks, documents filed, obligations
they owe); a PM's are also those of the projects they manage (delivery,
complaints, satisfaction, failures, incidents). Sanctions are the staff
member's own.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from services.kpi.metrics import METRICS
from services.kpi.readings import Moment, Selection, explain, figures
from shared.db import DbConn
from shared.policy import Policy

#: The person's own figures (the `person` dimension).
OWN = (
    "task_completion",
    "document_accuracy",
    "task_response_hours",
    "compliance",
    "approval_cycle_hours",
    "sanctions",
)
#: The figures of the projects a PM manages (the `project_manager` dimension).
MANAGED = (
    "on_time_delivery",
    "complaint_rate",
    "satisfaction",
    "complaint_response_hours",
    "failure_rate",
    "incidents",
    "data_leaks",
)


async def person_figures(
    conn: DbConn,
    user_id: str,
    period_start: date,
    period_end: date,
    as_of: datetime | None = None,
    *,
    policy: Policy,
    now: datetime,
) -> dict[str, Any]:
    """Each figure over the whole period (value None without a denominator),
    the compliance breaches and the sanctions with the ids of their events."""
    moment = Moment.of(policy, now, as_of)
    days = (period_start, period_end)
    out: dict[str, Any] = {"period_start": period_start, "period_end": period_end}
    for key, dimension in [
        *((k, "person") for k in OWN),
        *((k, "project_manager") for k in MANAGED),
    ]:
        selection = Selection(period="all", filters={dimension: user_id}, days=days)
        rows = await figures(conn, METRICS[key], moment, selection)
        row = rows[0] if rows else None
        out[key] = {
            "value": row["value"] if row else None,
            "numerator": row["numerator"] if row else None,
            "denominator": row["denominator"] if row else None,
            "items": row["items"] if row else 0,
            "by": dimension,
        }
    breaches, _, _ = await explain(
        conn,
        METRICS["compliance"],
        moment,
        Selection(period="all", filters={"person": user_id}, days=days),
        missed=True,
    )
    out["compliance_breaches"] = [
        {
            "day": b["day"],
            "obligation": b["label"],
            "detail": b["detail"],
            "event_ids": b["event_ids"],
        }
        for b in breaches
    ]
    sanctions, _, _ = await explain(
        conn,
        METRICS["sanctions"],
        moment,
        Selection(period="all", filters={"person": user_id}, days=days),
    )
    out["sanctions_list"] = [
        {"day": s["day"], "level": s["label"], "event_ids": s["event_ids"]} for s in sanctions
    ]
    return out
