"""Every KPI of the policy as SQL over the facts (R6.1, R3.5, R1.2; ADR 0010).

A metric is defined once, by its *items*: one row per thing counted (a
milestone that fell due, a complaint, a review of a document, an obligation of
R3.5), each with the policy-zone day it counts on, its dimensions, its
contribution (`num`/`den` for a ratio, `sample` for a mean or a median) and the
events behind it. Every reading is an aggregation of the items:

- the REST figures group them by period (month, quarter, or to date) and the
  requested dimensions;
- the Grafana views (`kpi_<metric>`) group them by period and every dimension;
- the drill-down lists the items of one figure with their events.

Items SQL reads the facts known by the reading moment through the CTE `f`, and
uses `$2` (the cut: the reading moment; what fell due after it has not fallen
due yet) and `$3` (the cut's day in the policy zone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Aggregate = Literal["ratio", "mean", "median", "count", "sum"]
Period = Literal["month", "quarter", "all"]
PERIODS: Final[tuple[Period, ...]] = ("month", "quarter", "all")

#: The dimensions a figure can be filtered and grouped by.
DIMENSIONS: Final[tuple[str, ...]] = (
    "partner_id",
    "project_id",
    "project_manager",
    "person",
    "label",
    "detail",
)
PROJECT_DIMS: Final = ("partner_id", "project_id", "project_manager")


@dataclass(frozen=True)
class Metric:
    key: str
    requirement: str
    title: str
    title_zh: str
    unit: str
    aggregate: Aggregate
    #: What the figure means, for the API and docs/kpi.md.
    formula: str
    items: str
    dims: tuple[str, ...] = PROJECT_DIMS
    #: What `person`, `label` and `detail` hold for this metric.
    person: str | None = None
    label: str | None = None
    detail: str | None = None
    #: A higher value is better (for boards: colours, arrows).
    higher_is_better: bool = True


def _latest(kind: str, alias: str) -> str:
    return (
        f"{alias} AS (SELECT DISTINCT ON (subject) * FROM f WHERE kind = '{kind}'"
        " ORDER BY subject, version DESC, seq DESC)"
    )


def _first(kind: str, alias: str) -> str:
    return (
        f"{alias} AS (SELECT DISTINCT ON (subject) * FROM f WHERE kind = '{kind}'"
        " ORDER BY subject, version, seq)"
    )


ON_TIME_DELIVERY = Metric(
    key="on_time_delivery",
    requirement="R6.1",
    title="On-time delivery rate",
    title_zh="按时交付率",
    unit="ratio",
    aggregate="ratio",
    formula="milestones delivered on or before their due date / milestones that fell due"
    " in the period (delivered or not), of projects under contract; a rejected delivery"
    " does not count until redelivered; an undelivered milestone due after its project"
    " closed is not owed",
    items=f"""
    WITH {_latest("milestone_due", "due")},
    last AS (SELECT DISTINCT ON (subject) * FROM f
             WHERE kind IN ('milestone_delivered', 'milestone_rejected')
             ORDER BY subject, version DESC, seq DESC),
    signed AS (SELECT DISTINCT project_id FROM f WHERE kind = 'contract_signed'),
    closed AS (SELECT project_id, min(day) AS day FROM f WHERE kind = 'project_closed'
               GROUP BY project_id)
    SELECT due.day, due.project_id, due.partner_id, NULL::text AS person,
           NULL::text AS label, NULL::text AS detail,
           coalesce(last.kind = 'milestone_delivered' AND last.day <= due.day, false)::int::numeric
               AS num,
           1::numeric AS den, NULL::numeric AS sample,
           array_remove(ARRAY[due.event_id, last.event_id], NULL) AS event_ids
    FROM due JOIN signed USING (project_id) LEFT JOIN last USING (subject)
    LEFT JOIN closed ON closed.project_id = due.project_id
    WHERE due.at <= $2
      AND (closed.day IS NULL OR closed.day >= due.day
           OR last.kind IS NOT DISTINCT FROM 'milestone_delivered')
    """,
)

COMPLAINT_RATE = Metric(
    key="complaint_rate",
    requirement="R6.1",
    title="Complaint rate",
    title_zh="投诉率",
    unit="ratio",
    aggregate="ratio",
    formula="complaints received in the period / milestones delivered in the period"
    " (each milestone counted once, on its first delivery)",
    higher_is_better=False,
    items="""
    SELECT day, project_id, partner_id, NULL::text AS person, NULL::text AS label,
           NULL::text AS detail, 1::numeric AS num, 0::numeric AS den, NULL::numeric AS sample,
           ARRAY[event_id] AS event_ids
    FROM f WHERE kind = 'complaint_received'
    UNION ALL
    (SELECT DISTINCT ON (subject) day, project_id, partner_id, NULL, NULL, NULL,
            0, 1, NULL, ARRAY[event_id]
     FROM f WHERE kind = 'milestone_delivered' ORDER BY subject, version, seq)
    """,
)

SATISFACTION = Metric(
    key="satisfaction",
    requirement="R6.1",
    title="Customer satisfaction",
    title_zh="客户满意度",
    unit="score 1-5",
    aggregate="mean",
    formula="mean survey score (1-5) of the surveys recorded in the period",
    items="""
    SELECT day, project_id, partner_id, NULL::text AS person, NULL::text AS label,
           NULL::text AS detail, NULL::numeric AS num, NULL::numeric AS den, value AS sample,
           ARRAY[event_id] AS event_ids
    FROM f WHERE kind = 'satisfaction'
    """,
)

TASK_COMPLETION = Metric(
    key="task_completion",
    requirement="R6.1",
    title="Task completion rate",
    title_zh="任务完成率",
    unit="ratio",
    aggregate="ratio",
    formula="tasks completed by their due date / tasks that fell due in the period,"
    " per specialist (the task's latest assignee)",
    dims=(*PROJECT_DIMS, "person"),
    person="specialist",
    items=f"""
    WITH {_latest("task_due", "due")}, {_latest("task_completed", "done")}
    SELECT due.day, due.project_id, due.partner_id, due.person, NULL::text AS label,
           NULL::text AS detail,
           coalesce(done.day <= due.day, false)::int::numeric AS num, 1::numeric AS den,
           NULL::numeric AS sample,
           array_remove(ARRAY[due.event_id, done.event_id], NULL) AS event_ids
    FROM due LEFT JOIN done USING (subject)
    WHERE due.at <= $2
    """,
)

DOCUMENT_ACCURACY = Metric(
    key="document_accuracy",
    requirement="R6.1",
    title="Document accuracy",
    title_zh="文档准确率",
    unit="ratio",
    aggregate="ratio",
    formula="documents accepted at their first review (no correction asked) / documents"
    " reviewed, per filer, on the day of that first review",
    dims=(*PROJECT_DIMS, "person", "label"),
    person="filer",
    label="document type",
    items="""
    WITH r AS (SELECT DISTINCT ON (split_part(subject, ':', 1)) * FROM f
               WHERE kind = 'document_reviewed'
               ORDER BY split_part(subject, ':', 1), version, seq)
    SELECT day, project_id, partner_id, person, label, NULL::text AS detail,
           flag::int::numeric AS num, 1::numeric AS den, NULL::numeric AS sample,
           ARRAY[event_id] AS event_ids
    FROM r
    """,
)

TASK_RESPONSE_HOURS = Metric(
    key="task_response_hours",
    requirement="R6.1",
    title="Response speed (tasks)",
    title_zh="响应速度（任务）",
    unit="hours",
    aggregate="median",
    formula="median hours from a task's assignment to its acknowledgement, per specialist,"
    " on the day it was acknowledged",
    dims=(*PROJECT_DIMS, "person"),
    person="specialist",
    higher_is_better=False,
    items=f"""
    WITH {_first("task_acknowledged", "ack")}
    SELECT ack.day, ack.project_id, ack.partner_id, ack.person, NULL::text AS label,
           NULL::text AS detail, NULL::numeric AS num, NULL::numeric AS den,
           round((extract(epoch FROM ack.at - asg.at) / 3600)::numeric, 4) AS sample,
           ARRAY[asg.event_id, ack.event_id] AS event_ids
    FROM ack JOIN LATERAL (
        SELECT * FROM f WHERE kind = 'task_assigned' AND subject = ack.subject
        AND version <= ack.version ORDER BY version DESC LIMIT 1) asg ON true
    """,
)

COMPLAINT_RESPONSE_HOURS = Metric(
    key="complaint_response_hours",
    requirement="R6.1",
    title="Response speed (complaints)",
    title_zh="响应速度（投诉）",
    unit="hours",
    aggregate="median",
    formula="median hours from a complaint's receipt to its first response, per project,"
    " on the day of the response",
    dims=(*PROJECT_DIMS, "label"),
    label="complaint severity",
    higher_is_better=False,
    items=f"""
    WITH {_first("complaint_responded", "r")}
    SELECT r.day, r.project_id, r.partner_id, NULL::text AS person, c.label,
           NULL::text AS detail, NULL::numeric AS num, NULL::numeric AS den,
           round((extract(epoch FROM r.at - c.at) / 3600)::numeric, 4) AS sample,
           ARRAY[c.event_id, r.event_id] AS event_ids
    FROM r JOIN f c ON c.kind = 'complaint_received' AND c.subject = r.subject
    """,
)

FAILURE_RATE = Metric(
    key="failure_rate",
    requirement="R6.1",
    title="Project failure rate",
    title_zh="项目失败率",
    unit="ratio",
    aggregate="ratio",
    formula="projects closed failed or terminated / projects closed in the period",
    dims=(*PROJECT_DIMS, "label"),
    label="outcome",
    higher_is_better=False,
    items="""
    SELECT day, project_id, partner_id, NULL::text AS person, label, NULL::text AS detail,
           (label IN ('failed', 'terminated'))::int::numeric AS num, 1::numeric AS den,
           NULL::numeric AS sample, ARRAY[event_id] AS event_ids
    FROM f WHERE kind = 'project_closed'
    """,
)

COST_SPENT = Metric(
    key="cost_spent",
    requirement="R6.1",
    title="Actual cost",
    title_zh="实际成本",
    unit="CNY",
    aggregate="sum",
    formula="sum of the costs incurred in the period (see /v1/kpi/cost-control for the rate"
    " against the approved budget)",
    dims=(*PROJECT_DIMS, "label"),
    label="cost category",
    higher_is_better=False,
    items="""
    SELECT day, project_id, partner_id, NULL::text AS person, label, NULL::text AS detail,
           value AS num, NULL::numeric AS den, NULL::numeric AS sample,
           ARRAY[event_id] AS event_ids
    FROM f WHERE kind = 'cost'
    """,
)

#: R5.4's meetings are expected by the calendar, not announced by an event:
#: every full week (Monday to Sunday, policy zone) and every full quarter since
#: the department recorded its first fact, up to the last one that has ended.
_CALENDAR_OBLIGATIONS = """
    SELECT (w.start + 6) AS day, NULL::uuid AS project_id, NULL::uuid AS partner_id,
           NULL::text AS person, 'weekly_department_meeting' AS label, NULL::text AS detail,
           (m.event_id IS NOT NULL)::int::numeric AS num, 1::numeric AS den,
           NULL::numeric AS sample, array_remove(ARRAY[m.event_id], NULL) AS event_ids
    FROM (SELECT generate_series(date_trunc('week', s.first + 6), $3::date - 7,
                                 interval '7 days')::date AS start
          FROM (SELECT min(recorded_day) AS first FROM f) s) w
    LEFT JOIN LATERAL (
        SELECT event_id FROM f WHERE kind = 'meeting' AND label = 'weekly_department'
        AND day >= w.start AND day < w.start + 7 ORDER BY day, version LIMIT 1) m ON true
    UNION ALL
    SELECT (q.start + interval '3 months' - interval '1 day')::date, NULL, NULL, NULL,
           'quarterly_strategy_meeting', NULL, (m.event_id IS NOT NULL)::int, 1, NULL,
           array_remove(ARRAY[m.event_id], NULL)
    FROM (SELECT generate_series(
                     date_trunc('quarter', s.first + interval '3 months' - interval '1 day'),
                     $3::date - interval '3 months', interval '3 months')::date AS start
          FROM (SELECT min(recorded_day) AS first FROM f) s) q
    LEFT JOIN LATERAL (
        SELECT event_id FROM f WHERE kind = 'meeting' AND label = 'quarterly_strategy'
        AND day >= q.start AND day < q.start + interval '3 months'
        ORDER BY day, version LIMIT 1) m ON true
"""

COMPLIANCE = Metric(
    key="compliance",
    requirement="R3.5",
    title="Process compliance",
    title_zh="流程合规率",
    unit="ratio",
    aggregate="ratio",
    formula="obligations met on time / obligations that fell due in the period (approval"
    " steps, kickoffs, quarterly reviews, minutes, reports, emergency explanations,"
    " resolution owners and resolutions, data-leak reports, trainings, staff evaluations,"
    " weekly department"
    " and quarterly strategy meetings); an obligation met before it falls due counts once"
    " met; one breached or still open after its due moment counts as missed; one cancelled"
    " (a resolution handed over) or falling due after its project or report schedule closed"
    " is not owed, unless it was met or breached before",
    dims=(*PROJECT_DIMS, "person", "label", "detail"),
    person="who owes it (assignee, chair, owner, PM, staff member)",
    label="obligation type (approval_step, kickoff, quarterly_review, minutes, report, ...)",
    detail="approval level, report kind, meeting kind",
    items=f"""
    WITH {_first("obligation_due", "due")},
    met AS (SELECT DISTINCT ON (subject, label) * FROM f WHERE kind = 'obligation_met'
            ORDER BY subject, label, version, seq),
    br AS (SELECT DISTINCT ON (subject, label) * FROM f WHERE kind = 'obligation_breached'
           ORDER BY subject, label, version, seq),
    cancelled AS (SELECT DISTINCT subject, label FROM f WHERE kind = 'obligation_cancelled'),
    ended AS (SELECT project_id, label, min(at) AS at FROM f WHERE kind = 'obligations_ended'
              GROUP BY project_id, label)
    SELECT due.day, due.project_id, due.partner_id,
           -- a breach is charged to whom owed it, never to whom signed it late
           CASE WHEN br.event_id IS NOT NULL THEN coalesce(due.person, br.person)
                ELSE coalesce(due.person, met.person) END AS person,
           due.label, coalesce(due.detail, met.detail) AS detail,
           (br.event_id IS NULL AND met.event_id IS NOT NULL
            AND coalesce(met.flag, met.at <= due.at))::int::numeric AS num,
           1::numeric AS den, NULL::numeric AS sample,
           array_remove(ARRAY[due.event_id, met.event_id, br.event_id], NULL) AS event_ids
    FROM due LEFT JOIN met USING (subject, label) LEFT JOIN br USING (subject, label)
    WHERE (due.at <= $2 OR met.event_id IS NOT NULL OR br.event_id IS NOT NULL)
      AND (met.event_id IS NOT NULL OR br.event_id IS NOT NULL OR NOT (
          EXISTS (SELECT 1 FROM cancelled c WHERE c.subject = due.subject AND c.label = due.label)
          OR EXISTS (SELECT 1 FROM ended e WHERE e.project_id = due.project_id
                     AND (e.label IS NULL OR e.label = due.label) AND e.at < due.at)))
    UNION ALL
    {_CALENDAR_OBLIGATIONS}
    """,
)

APPROVAL_CYCLE_HOURS = Metric(
    key="approval_cycle_hours",
    requirement="R3.1",
    title="Approval cycle time",
    title_zh="审批周期",
    unit="hours",
    aggregate="mean",
    formula="mean hours from a step's opening to its decision (approved, returned or"
    " rejected), per approval level, on the day of the decision",
    dims=(*PROJECT_DIMS, "person", "label"),
    person="approver",
    label="approval level (department_head, finance, ceo, director)",
    higher_is_better=False,
    # A rejection (ProcurementRejected, DirectorDecisionRejected) names no
    # opening: it is the step's met fact without an on-time flag, timed from
    # the opening event of the step it closed.
    items="""
    SELECT day, project_id, partner_id, person, label, NULL::text AS detail,
           NULL::numeric AS num, NULL::numeric AS den, value AS sample,
           ARRAY[event_id] AS event_ids
    FROM f WHERE kind = 'approval_cycle'
    UNION ALL
    SELECT r.day, r.project_id, r.partner_id, r.person, r.detail, NULL, NULL, NULL,
           round((extract(epoch FROM r.at - (o.payload->>'opened_at')::timestamptz) / 3600)
                 ::numeric, 4),
           ARRAY[o.event_id, r.event_id]
    FROM f r
    JOIN f d ON d.kind = 'obligation_due' AND d.label = 'approval_step' AND d.subject = r.subject
    JOIN fact_events o ON o.event_id = d.event_id AND o.event_type = 'ApprovalStepOpened'
    WHERE r.kind = 'obligation_met' AND r.label = 'approval_step' AND r.flag IS NULL
    """,
)

INCIDENTS = Metric(
    key="incidents",
    requirement="R6.4",
    title="Incidents",
    title_zh="安全事件",
    unit="count",
    aggregate="count",
    formula="incidents detected in the period, by category and severity",
    dims=(*PROJECT_DIMS, "label", "detail"),
    label="category (availability, security, data_leak, quality, other)",
    detail="severity",
    higher_is_better=False,
    items="""
    SELECT day, project_id, partner_id, NULL::text AS person, label, detail,
           1::numeric AS num, NULL::numeric AS den, NULL::numeric AS sample,
           ARRAY[event_id] AS event_ids
    FROM f WHERE kind = 'incident'
    """,
)

DATA_LEAKS = Metric(
    key="data_leaks",
    requirement="R6.4",
    title="Data leaks",
    title_zh="数据泄露",
    unit="count",
    aggregate="count",
    formula="data leaks detected in the period",
    dims=(*PROJECT_DIMS, "detail"),
    detail="severity",
    higher_is_better=False,
    items="""
    SELECT day, project_id, partner_id, NULL::text AS person, label, detail,
           1::numeric AS num, NULL::numeric AS den, NULL::numeric AS sample,
           ARRAY[event_id] AS event_ids
    FROM f WHERE kind = 'incident' AND label = 'data_leak'
    """,
)

INCIDENT_REPORT_HOURS = Metric(
    key="incident_report_hours",
    requirement="R6.4",
    title="Time to report an incident",
    title_zh="事件报告时长",
    unit="hours",
    aggregate="mean",
    formula="mean hours from an incident's detection to its report, by the day of detection",
    dims=(*PROJECT_DIMS, "label", "detail"),
    label="category",
    detail="severity",
    higher_is_better=False,
    items="""
    SELECT day, project_id, partner_id, NULL::text AS person, label, detail,
           NULL::numeric AS num, NULL::numeric AS den, value AS sample,
           ARRAY[event_id] AS event_ids
    FROM f WHERE kind = 'incident'
    """,
)

INVESTIGATIONS_OPEN = Metric(
    key="investigations_open",
    requirement="R6.4",
    title="Investigations open",
    title_zh="进行中的调查",
    unit="count",
    aggregate="count",
    formula="investigations opened and not concluded by the reading moment, by the day"
    " they were opened",
    higher_is_better=False,
    items="""
    SELECT o.day, o.project_id, o.partner_id, NULL::text AS person, NULL::text AS label,
           o.detail, 1::numeric AS num, NULL::numeric AS den, NULL::numeric AS sample,
           ARRAY[o.event_id] AS event_ids
    FROM f o WHERE o.kind = 'investigation_opened' AND NOT EXISTS (
        SELECT 1 FROM f c WHERE c.kind = 'investigation_concluded' AND c.subject = o.subject)
    """,
)

SANCTIONS = Metric(
    key="sanctions",
    requirement="R6.4",
    title="Sanctions",
    title_zh="处分",
    unit="count",
    aggregate="count",
    formula="sanctions decided by concluded investigations in the period",
    dims=(*PROJECT_DIMS, "person", "label", "detail"),
    person="the staff member sanctioned",
    label="level (warning, serious_warning, demotion)",
    detail="subject kind (staff, partner)",
    higher_is_better=False,
    items="""
    SELECT day, project_id, partner_id, person, label, detail,
           1::numeric AS num, NULL::numeric AS den, NULL::numeric AS sample,
           ARRAY[event_id] AS event_ids
    FROM f WHERE kind = 'sanction'
    """,
)

METRICS: Final[dict[str, Metric]] = {
    m.key: m
    for m in (
        ON_TIME_DELIVERY,
        COMPLAINT_RATE,
        SATISFACTION,
        TASK_COMPLETION,
        DOCUMENT_ACCURACY,
        TASK_RESPONSE_HOURS,
        COMPLAINT_RESPONSE_HOURS,
        FAILURE_RATE,
        COST_SPENT,
        COMPLIANCE,
        APPROVAL_CYCLE_HOURS,
        INCIDENTS,
        DATA_LEAKS,
        INCIDENT_REPORT_HOURS,
        INVESTIGATIONS_OPEN,
        SANCTIONS,
    )
}

_VALUE: Final[dict[Aggregate, str]] = {
    "ratio": "round(sum(num) / nullif(sum(den), 0), 6)",
    "mean": "round(avg(sample), 4)",
    "median": "round(percentile_cont(0.5) WITHIN GROUP (ORDER BY sample)::numeric, 4)",
    "count": "sum(num)",
    "sum": "sum(num)",
}

#: The items with their project's partner and PM: the facts of a project carry
#: only its id, the project's registration says whose it is.
FACTS_CTE = (
    "moment AS (SELECT $1::timestamptz AS as_of, $2::timestamptz AS cut, $3::date AS cut_day),"
    # Not materialized: a metric reads `f` several times, by kind and subject,
    # and a materialized CTE has no index, so each of those reads scanned every
    # fact (a LATERAL per item made it quadratic: 200 s for one reading at 85k
    # facts). Inlined, each read uses the facts' indexes.
    " f AS NOT MATERIALIZED (SELECT * FROM facts"
    " WHERE $1::timestamptz IS NULL OR recorded_at <= $1::timestamptz)"
)


def with_dimensions(metric: Metric) -> str:
    return (
        f"WITH {FACTS_CTE}, items AS ({metric.items}),"
        " d AS (SELECT i.day, i.project_id, coalesce(i.partner_id, p.partner_id) AS partner_id,"
        " p.project_manager, i.person, i.label, i.detail, i.num, i.den, i.sample, i.event_ids"
        " FROM items i LEFT JOIN projects p ON p.project_id = i.project_id)"
    )


def period_expr(period: Period) -> str:
    if period == "all":
        return "NULL::date"
    return f"date_trunc('{period}', day)::date"


def value_expr(metric: Metric) -> str:
    return _VALUE[metric.aggregate]
