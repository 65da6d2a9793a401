"""Partner scorecards (R6.1, R1.2): the KPI figures of each partner, each month
and quarter, scored by every formula version of config/scorecard.toml.

Scores are derived data: each run recomputes them from the facts (a replay of
the events) and replaces the stored ones in one transaction, so changing or
adding a formula version rescores all history, side by side with the others.
The active version's overall monthly score decides the partner's standing; a
change of standing is an event of the PartnerStanding stream (kpi.events), and
so is the warning about a project created for a partner in Probation.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from services.kpi import gauges
from services.kpi.application import KpiApplication
from services.kpi.domain.scorecard import (
    COUNT_VARIABLES,
    ScorecardConfig,
    overall,
    score_period,
    standing_of,
)
from services.kpi.metrics import FACTS_CTE, METRICS
from services.kpi.readings import Moment, Selection, figures
from shared.db import DbConn, Migration, lock_key
from shared.resilience import TRANSIENT, sleep_unless
from shared.runtime import Runtime

log = logging.getLogger(__name__)

MIGRATIONS = (
    Migration(
        150,
        "partner scorecards",
        """
        CREATE TABLE {schema}.partner_scores (
            formula_version text NOT NULL,
            period text NOT NULL,
            period_start date NOT NULL,
            partner_id uuid NOT NULL,
            score numeric NOT NULL CHECK (score BETWEEN 0 AND 100),
            criteria jsonb NOT NULL,
            variables jsonb NOT NULL,
            PRIMARY KEY (formula_version, period, partner_id, period_start)
        );
        CREATE TABLE {schema}.partner_overall (
            formula_version text NOT NULL,
            period text NOT NULL,
            partner_id uuid NOT NULL,
            overall numeric NOT NULL,
            standing text NOT NULL,
            standing_zh text NOT NULL,
            latest_period date NOT NULL,
            scored_periods int NOT NULL,
            scored_at timestamptz NOT NULL,
            PRIMARY KEY (formula_version, period, partner_id)
        );
        """,
    ),
)

#: The period kind whose overall score decides the standing: months follow a
#: partner most closely; the decay keeps one bad month from deciding alone.
STANDING_PERIOD: Final = "month"

#: variable -> (metric, what of its figure).
_FROM_FIGURES: Final[dict[str, tuple[str, str]]] = {
    "on_time_delivery": ("on_time_delivery", "value"),
    "milestones_due": ("on_time_delivery", "denominator"),
    "complaint_rate": ("complaint_rate", "value"),
    "complaints": ("complaint_rate", "numerator"),
    "milestones_delivered": ("complaint_rate", "denominator"),
    "satisfaction": ("satisfaction", "value"),
    "compliance": ("compliance", "value"),
    "obligations": ("compliance", "denominator"),
    "complaint_response_hours": ("complaint_response_hours", "value"),
    "failure_rate": ("failure_rate", "value"),
    "incidents": ("incidents", "value"),
    "data_leaks": ("data_leaks", "value"),
}

#: The partner's cost control to each period's end: actual cost / approved
#: budget over its projects under contract (R6.1). Periods come from the caller
#: (those in which the partner has figures), not from other partners' facts.
_COST_CONTROL = f"""
WITH {FACTS_CTE},
asked AS (SELECT * FROM unnest($4::uuid[], $5::date[], $6::date[]) AS a(partner_id, start, last)),
contracted AS (SELECT DISTINCT p.project_id, p.partner_id FROM projects p
               JOIN f ON f.kind = 'contract_signed' AND f.project_id = p.project_id),
budgets AS (
    SELECT a.partner_id, a.start, sum(b.value) AS budget
    FROM asked a JOIN contracted p ON p.partner_id = a.partner_id
    JOIN LATERAL (SELECT value FROM f WHERE kind = 'approved_budget'
                  AND project_id = p.project_id AND day <= a.last
                  ORDER BY version DESC, seq DESC LIMIT 1) b ON true
    GROUP BY a.partner_id, a.start),
costs AS (
    SELECT a.partner_id, a.start, sum(c.value) AS actual
    FROM asked a JOIN contracted p ON p.partner_id = a.partner_id
    JOIN f c ON c.kind = 'cost' AND c.project_id = p.project_id AND c.day <= a.last
    GROUP BY a.partner_id, a.start)
SELECT b.partner_id, b.start, coalesce(c.actual, 0) / nullif(b.budget, 0) AS rate
FROM budgets b LEFT JOIN costs c USING (partner_id, start)
"""


def _period_end(start: date, period: str) -> date:
    months = 1 if period == "month" else 3
    month = start.month - 1 + months
    return date(start.year + month // 12, month % 12 + 1, 1) - timedelta(days=1)


async def partner_variables(
    conn: DbConn, moment: Moment, period: str
) -> dict[tuple[UUID, date], dict[str, float | None]]:
    """The scorecard's variables for every partner and period with figures."""
    assert period in ("month", "quarter")
    out: dict[tuple[UUID, date], dict[str, float | None]] = defaultdict(dict)
    selection = Selection(period="month" if period == "month" else "quarter")
    for metric_key in sorted({m for m, _ in _FROM_FIGURES.values()}):
        rows = await figures(conn, METRICS[metric_key], moment, selection, ["partner_id"])
        for row in rows:
            if row["partner_id"] is None:
                continue
            key = (row["partner_id"], row["period_start"])
            for variable, (source, field) in _FROM_FIGURES.items():
                if source == metric_key:
                    out[key][variable] = row[field]
    keys = sorted(out)
    costs = await conn.fetch(
        _COST_CONTROL,
        *moment.args(),
        [k[0] for k in keys],
        [k[1] for k in keys],
        [_period_end(k[1], period) for k in keys],
    )
    for cost in costs:
        if cost["rate"] is not None:
            out[(cost["partner_id"], cost["start"])]["cost_control"] = float(cost["rate"])
    return {key: _complete(values) for key, values in out.items()}


def _complete(values: dict[str, float | None]) -> dict[str, float | None]:
    """Counts are 0 when nothing happened; ratios stay absent (None)."""
    return {
        **{name: 0.0 for name in COUNT_VARIABLES},
        **{k: (v if v is not None or k not in COUNT_VARIABLES else 0.0) for k, v in values.items()},
    }


@dataclass(frozen=True)
class Overall:
    partner_id: UUID
    version: str
    period: str
    overall: float
    standing: str
    standing_zh: str
    latest_period: date
    scored_periods: int


@dataclass
class ScoreRun:
    scores: int = 0
    standings_changed: int = 0
    warnings: int = 0


async def compute(
    conn: DbConn, config: ScorecardConfig, moment: Moment
) -> tuple[list[tuple[Any, ...]], list[Overall]]:
    """Every version's period scores and overall scores, as of `moment`."""
    score_rows: list[tuple[Any, ...]] = []
    overalls: list[Overall] = []
    for period in ("month", "quarter"):
        variables = await partner_variables(conn, moment, period)
        for version in config.versions.values():
            by_partner: dict[UUID, list[tuple[date, float]]] = defaultdict(list)
            for (partner_id, start), values in sorted(variables.items(), key=lambda kv: kv[0][1]):
                result = score_period(version, values)
                if result is None:
                    continue  # no activity: skipped, never a zero
                by_partner[partner_id].append((start, result.score))
                score_rows.append(
                    (
                        version.name,
                        period,
                        start,
                        partner_id,
                        result.score,
                        json.dumps(_criteria(result), ensure_ascii=False),
                        json.dumps(values),
                    )
                )
            for partner_id, scores in by_partner.items():
                value = overall(scores, config.decay)
                if value is None:
                    continue
                standing = standing_of(config, value)
                overalls.append(
                    Overall(
                        partner_id=partner_id,
                        version=version.name,
                        period=period,
                        overall=round(value, 2),
                        standing=standing.name,
                        standing_zh=standing.label_zh,
                        latest_period=max(s for s, _ in scores),
                        scored_periods=len(scores),
                    )
                )
    return score_rows, overalls


def _criteria(result: Any) -> dict[str, Any]:
    return {
        c.key: {
            "value": c.value,
            "weight": c.weight,
            "weight_used": round(c.weight_used, 4),
            "skipped": c.skipped,
        }
        for c in result.criteria
    }


async def store_scores(
    conn: DbConn, score_rows: list[tuple[Any, ...]], overalls: list[Overall], now: datetime
) -> None:
    """Replaces the stored scores with a run's, in one transaction: readers
    see one run or the next, never a mix."""
    async with conn.transaction():
        # Runs of two replicas (or a manual one) take turns.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key("kpi", "scores"))
        await conn.execute("DELETE FROM partner_scores")
        await conn.execute("DELETE FROM partner_overall")
        await conn.executemany(
            "INSERT INTO partner_scores (formula_version, period, period_start, partner_id,"
            " score, criteria, variables) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)",
            score_rows,
        )
        await conn.executemany(
            "INSERT INTO partner_overall (formula_version, period, partner_id, overall,"
            " standing, standing_zh, latest_period, scored_periods, scored_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [
                (
                    o.version,
                    o.period,
                    o.partner_id,
                    o.overall,
                    o.standing,
                    o.standing_zh,
                    o.latest_period,
                    o.scored_periods,
                    now,
                )
                for o in overalls
            ],
        )


#: One scoring run at a time across replicas and the manual endpoint: a run
#: computed on older facts must not store or publish after a newer one.
_RUN_LOCK: Final = lock_key("kpi", "scoring-run")


async def rescore(rt: Runtime) -> ScoreRun:
    """One scoring run: scores stored, standings recorded, Probation warnings
    and the gauges refreshed, all from one reading moment, runs in turn."""
    async with rt.pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _RUN_LOCK)
        try:
            return await _rescore(rt, conn)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _RUN_LOCK)


async def _rescore(rt: Runtime, conn: DbConn) -> ScoreRun:
    app = rt.application
    assert isinstance(app, KpiApplication)
    config = app.scorecard
    now = rt.clock.now()
    moment = Moment.of(rt.policy, now)
    run = ScoreRun()
    score_rows, overalls = await compute(conn, config, moment)
    await store_scores(conn, score_rows, overalls, now)
    run.scores = len(score_rows)
    projects = await conn.fetch(
        "SELECT p.project_id, p.partner_id, p.title, p.project_manager, f.recorded_at"
        " FROM projects p JOIN facts f ON f.event_id = p.event_id AND f.kind = 'project'"
    )
    probation = config.standings[-1].name
    for o in overalls:
        if o.version != config.active or o.period != STANDING_PERIOD:
            continue
        changed = await asyncio.to_thread(
            app.assess_standing,
            o.partner_id,
            standing=o.standing,
            standing_zh=o.standing_zh,
            overall=o.overall,
            formula_version=o.version,
            period_kind=o.period,
            latest_period=o.latest_period.isoformat(),
        )
        run.standings_changed += int(changed)
    in_probation = {
        o.partner_id
        for o in overalls
        if o.version == config.active and o.period == STANDING_PERIOD and o.standing == probation
    }
    for row in projects:
        if row["partner_id"] not in in_probation:
            continue
        warned = await asyncio.to_thread(
            app.warn_probation_project,
            row["partner_id"],
            project_id=row["project_id"],
            title=row["title"],
            project_manager=row["project_manager"],
            created_at=row["recorded_at"],
            probation=probation,
        )
        run.warnings += int(warned)
    await gauges.refresh(conn, moment, config.active, [s.name for s in config.standings])
    return run


async def score_loop(rt: Runtime) -> None:
    """Rescoring every `score_interval_s`: scores follow the facts within
    that interval; a failed run is logged and the next one tries again."""
    while not rt.stop.is_set():
        try:
            await rescore(rt)
        except TRANSIENT as exc:
            log.warning("scoring: %r; next run in %ss", exc, rt.settings.score_interval_s)
        except Exception:
            # Not a request: nobody is answered "ok". The run is lost, the next
            # one recomputes everything, and the error is in the log in full.
            log.exception("scoring run failed; next run in %ss", rt.settings.score_interval_s)
        await sleep_unless(rt.stop, rt.settings.score_interval_s)
