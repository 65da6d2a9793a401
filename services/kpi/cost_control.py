"""Cost control per project to date (R6.1) and the PM's bonus flag (R6.3).

Cost control rate = actual cost / approved budget: the amount the procurement
approval granted, or the latest budget a Director decision approved (R5.2); a
PM's raise within the threshold and changes of plan before the approval are
not approvals, and a project never approved has no rate. Cost saving = 1 -
rate. At closure the project's own cost total (ProjectClosed) is the actual.
A PM is eligible for the bonus when the project closed *completed* with a
saving of at least the policy's percentage: a failed or terminated project saves money by not
delivering, which R6.3 does not reward.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from uuid import UUID

from services.kpi.metrics import FACTS_CTE
from services.kpi.readings import Moment
from shared.db import DbConn

_SQL = f"""
WITH {FACTS_CTE},
b AS (SELECT DISTINCT ON (project_id) project_id, value AS budget, event_id FROM f
      WHERE kind = 'approved_budget' ORDER BY project_id, version DESC, seq DESC),
c AS (SELECT project_id, sum(value) AS actual, array_agg(event_id ORDER BY day, event_id) AS ids
      FROM f WHERE kind = 'cost' AND day <= $3 GROUP BY project_id),
cl AS (SELECT project_id, label AS outcome, day AS closed_on, value AS costs_total, event_id
       FROM f WHERE kind = 'project_closed' AND day <= $3)
SELECT p.project_id, p.partner_id, p.project_manager, p.title, b.budget,
       coalesce(cl.costs_total, c.actual, 0) AS actual, cl.outcome, cl.closed_on,
       array_remove(ARRAY[p.event_id, b.event_id, cl.event_id], NULL)
           || coalesce(c.ids, ARRAY[]::uuid[]) AS event_ids
FROM projects p
LEFT JOIN b USING (project_id) LEFT JOIN c USING (project_id) LEFT JOIN cl USING (project_id)
WHERE EXISTS (SELECT 1 FROM f pf WHERE pf.kind = 'project' AND pf.event_id = p.event_id)
  AND ($4::uuid IS NULL OR p.partner_id = $4) AND ($5::uuid IS NULL OR p.project_id = $5)
  AND ($6::text IS NULL OR p.project_manager = $6)
ORDER BY p.title, p.project_id
"""


async def cost_control(
    conn: DbConn, moment: Moment, bonus_percent: float, filters: Mapping[str, UUID | str]
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        _SQL,
        *moment.args(),
        filters.get("partner_id"),
        filters.get("project_id"),
        filters.get("project_manager"),
    )
    threshold = Decimal(str(bonus_percent)) / 100
    out = []
    for r in rows:
        budget: Decimal | None = r["budget"]
        actual: Decimal = r["actual"]
        rate = actual / budget if budget else None
        saving = 1 - rate if rate is not None else None
        out.append(
            {
                "project_id": r["project_id"],
                "partner_id": r["partner_id"],
                "project_manager": r["project_manager"],
                "title": r["title"],
                "budget": float(budget) if budget is not None else None,
                "actual": float(actual),
                "rate": round(float(rate), 6) if rate is not None else None,
                "saving": round(float(saving), 6) if saving is not None else None,
                "outcome": r["outcome"],
                "closed_on": r["closed_on"],
                "bonus_eligible": r["outcome"] == "completed"
                and saving is not None
                and saving >= threshold,
                "event_ids": list(dict.fromkeys(r["event_ids"])),
            }
        )
    return out
