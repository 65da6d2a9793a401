"""Grafana dashboards as code (deploy/grafana/; R6.1, R3.5, R6.4, R2.3).

Five dashboards for the managers, built with grafana-foundation-sdk over the
kpi schema's projections: the `kpi_<metric>` views (services/kpi/readings.py),
the partners, projects, facts, staff and trainings tables. Every panel reads
the PostgreSQL datasource of deploy/grafana/provisioning by its fixed uid.

    python -m services.kpi.grafana --out deploy/grafana/dashboards
    partnerledger grafana            # the same, through the CLI

The output is deterministic (sorted keys, fixed uids and panel ids): the JSON
under deploy/grafana/dashboards/ is generated, never edited by hand, and a unit
test regenerates it byte for byte. tests/integration/test_grafana_panels.py
runs every panel's SQL, with Grafana's macros and variables expanded, against
the real schema filled by a scenario.

Conventions of the SQL:

- tables are qualified with `${schema}` (a constant variable: the kpi schema,
  `Settings.schema_of("kpi")`), so Grafana's database user needs no search_path;
- `${zone}` is the policy zone (config/policy.toml): a period starts on a
  policy-zone day, and the dashboard's time range is read in that zone;
- a view holds month and quarter rows of the same items: every query picks one
  with `${period}`, and keeps the periods that overlap the time range;
- ratios over several rows are sum(numerator) / sum(denominator), means are
  weighted by their items; medians cannot be re-aggregated, so they are shown
  as the view's rows;
- the multi-value variables have the custom All value `'__all'` (Grafana
  inserts a custom All value unformatted): `'__all' IN (${partner})` is true
  for All, which also keeps the rows of no partner (department meetings,
  trainings); a selection is a quoted list;
- macro arguments hold no parentheses (Grafana's macro parser stops at the
  first `)`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Self

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from services.kpi.metrics import METRICS

DATASOURCE_TYPE: Final = "grafana-postgresql-datasource"
#: Fixed in deploy/grafana/provisioning/datasources/postgres.yaml.
DATASOURCE_UID: Final = "partnerledger-kpi"
DATASOURCE: Final = model.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)
#: The kpi schema of a default deployment (no PL_SCHEMA_PREFIX).
DEFAULT_SCHEMA: Final = "kpi"
#: The policy zone of config/policy.toml ([time] zone).
DEFAULT_ZONE: Final = "Asia/Shanghai"
#: The custom All value of the multi-value variables (inserted as is).
ALL: Final = "'__all'"
TAGS: Final = ["partnerledger", "kpi"]

Format = Literal["table", "time_series"]


# -- the PostgreSQL query (the SDK has no builder for it) -----------------------------


class SqlQuery(cogvariants.Dataquery):
    """A raw SQL target of Grafana's PostgreSQL datasource."""

    def __init__(self, ref_id: str, raw_sql: str, fmt: Format) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format = fmt

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": DATASOURCE.to_json(),
            "editorMode": "code",
            "format": self.format,
            "rawQuery": True,
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }


class Sql(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, raw_sql: str, fmt: Format = "table", ref_id: str = "A") -> None:
        self._query = SqlQuery(ref_id, _tidy(raw_sql), fmt)

    def build(self) -> cogvariants.Dataquery:
        return self._query


def _tidy(sql: str) -> str:
    """One statement, its lines stripped of the Python indentation."""
    return "\n".join(line.strip() for line in sql.strip().splitlines() if line.strip())


# -- SQL pieces -----------------------------------------------------------------------


def t(name: str) -> str:
    """A table or view of the kpi schema."""
    return f"${{schema}}.{name}"


def view(metric: str) -> str:
    if metric not in METRICS:
        raise KeyError(f"no KPI {metric!r} in services/kpi/metrics.py")
    return t(f"kpi_{metric}")


def any_of(column: str, variable: str) -> str:
    """`column` is one of the variable's values, or the variable is All."""
    return f"({ALL} IN (${{{variable}}}) OR {column}::text IN (${{{variable}}}))"


#: The rows of the selected period kind whose period overlaps the time range
#: (read in the policy zone).
IN_RANGE: Final = (
    "period = '${period}' AND period_start BETWEEN"
    " date_trunc('${period}', $__timeFrom()::timestamptz AT TIME ZONE '${zone}')::date"
    " AND ($__timeTo()::timestamptz AT TIME ZONE '${zone}')::date"
)
#: The start of a period as an instant (the policy zone's midnight).
TIME: Final = "(period_start::timestamp AT TIME ZONE '${zone}') AS time"
RATIO: Final = "round(sum(numerator) / nullif(sum(denominator), 0), 4)"
MEAN: Final = "round(sum(value * items) / nullif(sum(items), 0), 2)"


def where(*clauses: str) -> str:
    return " AND ".join(clauses)


def series(metric: str, label: str, value: str, *clauses: str, joins: str = "") -> str:
    """A time series per period: one line per `label`."""
    return f"""
        SELECT {TIME}, {label} AS metric, {value} AS value
        FROM {view(metric)} v {joins}
        WHERE {where(IN_RANGE, *clauses)}
        GROUP BY 1, 2 ORDER BY 1, 2
    """


def figure(metric: str, value: str, *clauses: str) -> str:
    """One number over the selected range."""
    return f"SELECT {value} AS value FROM {view(metric)} WHERE {where(IN_RANGE, *clauses)}"


# -- panels ---------------------------------------------------------------------------


def bilingual(zh: str, en: str) -> str:
    return f"{zh} / {en}"


def metric_title(key: str, suffix_zh: str = "", suffix_en: str = "") -> str:
    m = METRICS[key]
    return bilingual(m.title_zh + suffix_zh, m.title + suffix_en)


def metric_note(key: str) -> str:
    m = METRICS[key]
    return f"{m.requirement}: {m.formula}."


UNITS: Final[dict[str, str]] = {
    "ratio": "percentunit",
    "hours": "h",
    "CNY": "currencyCNY",
    "count": "none",
    "score 1-5": "none",
}


def unit_of(key: str) -> str:
    return UNITS[METRICS[key].unit]


AnyPanel = stat.Panel | table.Panel | timeseries.Panel


@dataclass
class Board:
    """A dashboard being built: panels numbered in order, laid out left to right."""

    uid: str
    title: str
    description: str
    variables: list[cogbuilder.Builder[model.VariableModel]]
    panels: list[AnyPanel] = field(default_factory=list)

    def add(self, panel: AnyPanel) -> Self:
        self.panels.append(panel)
        return self

    def stat(self, title: str, description: str, sql: str, unit: str, decimals: int = 2) -> Self:
        panel = (
            stat.Panel()
            .title(title)
            .description(description)
            .datasource(DATASOURCE)
            .with_target(Sql(sql))
            .unit(unit)
            .decimals(decimals)
            .no_value("-")
            .height(5)
            .span(6)
            .graph_mode(common.BigValueGraphMode.NONE)
            .reduce_options(
                common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)
            )
        )
        return self.add(panel)

    def series(self, title: str, description: str, sql: str, unit: str, *, span: int = 12) -> Self:
        panel = (
            timeseries.Panel()
            .title(title)
            .description(description)
            .datasource(DATASOURCE)
            .with_target(Sql(sql, "time_series"))
            .unit(unit)
            .height(9)
            .span(span)
            .draw_style(common.GraphDrawStyle.LINE)
            .show_points(common.VisibilityMode.ALWAYS)
            .span_nulls(True)
            .legend(
                common_builders.VizLegendOptions()
                .display_mode(common.LegendDisplayMode.TABLE)
                .placement(common.LegendPlacement.BOTTOM)
                .show_legend(True)
                .calcs(["lastNotNull", "mean"])
            )
        )
        return self.add(panel)

    def table(
        self,
        title: str,
        description: str,
        sql: str,
        *,
        span: int = 12,
        height: int = 9,
        units: Sequence[tuple[str, str]] = (),
    ) -> Self:
        panel = (
            table.Panel()
            .title(title)
            .description(description)
            .datasource(DATASOURCE)
            .with_target(Sql(sql))
            .height(height)
            .span(span)
            .show_header(True)
            .no_value("-")
        )
        for column, unit in units:
            panel = panel.override_by_name(
                column, [model.DynamicConfigValue(id_val="unit", value=unit)]
            )
        return self.add(panel)

    def build(self, schema: str, zone: str) -> dashboard_builders.Dashboard:
        board = (
            dashboard_builders.Dashboard(self.title)
            .uid(self.uid)
            .description(self.description)
            .tags([*TAGS, self.uid.removeprefix("pl-")])
            .timezone(zone)
            .time("now-6M/M", "now")
            .refresh("5m")
            .readonly()
            .tooltip(model.DashboardCursorSync.CROSSHAIR)
            .annotation(
                dashboard_builders.AnnotationQuery()
                .name("Annotations & Alerts")
                .datasource(model.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
                .built_in(1)
                .enable(True)
                .hide(True)
                .icon_color("rgba(0, 211, 255, 1)")
                .type("dashboard")
            )
            .with_variable(constant("schema", schema, "PostgreSQL schema of the kpi service"))
            .with_variable(constant("zone", zone, "Policy time zone (config/policy.toml)"))
        )
        for variable in self.variables:
            board = board.with_variable(variable)
        for number, panel in enumerate(self.panels, start=1):
            board = board.with_panel(panel.id(number))
        return board


# -- variables ------------------------------------------------------------------------


def constant(name: str, value: str, description: str) -> dashboard_builders.ConstantVariable:
    return dashboard_builders.ConstantVariable(name).value(value).description(description)


def _option(text: str, value: str, selected: bool = False) -> model.VariableOption:
    return model.VariableOption(selected=selected, text=text, value=value)


def choice(
    name: str, label: str, options: Sequence[tuple[str, str]], *, multi: bool = False
) -> dashboard_builders.CustomVariable:
    """A fixed list (text, value); multi-value ones start at All."""
    variable = (
        dashboard_builders.CustomVariable(name)
        .label(label)
        .values(", ".join(f"{text} : {value}" for text, value in options))
        .multi(multi)
        .include_all(multi)
    )
    opts = [_option(text, value) for text, value in options]
    if multi:
        variable = variable.all_value(ALL)
        opts = [_option("All", "$__all", True), *opts]
        current = _option("All", "$__all", True)
    else:
        opts[0] = _option(options[0][0], options[0][1], True)
        current = opts[0]
    return variable.options(opts).current(current)


def query_variable(name: str, label: str, sql: str) -> dashboard_builders.QueryVariable:
    """Values from the schema (`__value`, `__text`), several at once, All by default."""
    return (
        dashboard_builders.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(_tidy(sql))
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.DISABLED)
        .multi(True)
        .include_all(True)
        .all_value(ALL)
        .current(_option("All", "$__all", True))
    )


def period_variable() -> dashboard_builders.CustomVariable:
    return choice(
        "period", "周期 Period", [("月度 Monthly", "month"), ("季度 Quarterly", "quarter")]
    )


def partner_variable() -> dashboard_builders.QueryVariable:
    return query_variable(
        "partner",
        "合作伙伴 Partner",
        f"SELECT partner_id::text AS __value, name AS __text FROM {t('partners')}"
        " ORDER BY name, partner_id",
    )


def project_manager_variable() -> dashboard_builders.QueryVariable:
    return query_variable(
        "project_manager",
        "项目经理 Project manager",
        f"SELECT DISTINCT project_manager AS __value, project_manager AS __text"
        f" FROM {t('projects')} WHERE {any_of('partner_id', 'partner')} ORDER BY 1",
    )


def person_variable() -> dashboard_builders.QueryVariable:
    return query_variable(
        "person",
        "人员 Person",
        f"""
        SELECT p.person AS __value, coalesce(s.name || ' (' || p.person || ')', p.person) AS __text
        FROM (SELECT user_id AS person FROM {t("staff")}
              UNION SELECT person FROM {t("facts")}
              WHERE kind IN ('task_due', 'task_acknowledged', 'document_reviewed')
              AND person IS NOT NULL) p
        LEFT JOIN {t("staff")} s ON s.user_id = p.person
        ORDER BY 2, 1
        """,
    )


CATEGORIES: Final = (
    ("可用性 availability", "availability"),
    ("安全 security", "security"),
    ("数据泄露 data_leak", "data_leak"),
    ("质量 quality", "quality"),
    ("其他 other", "other"),
)


def category_variable() -> dashboard_builders.CustomVariable:
    return choice("category", "事件类别 Category", CATEGORIES, multi=True)


# -- 1. partner scorecards (R6.1, R1.2, R2.1) -----------------------------------------------


def _partner_figures(metric: str, alias: str, value: str) -> str:
    return (
        f"{alias} AS (SELECT partner_id, {value} FROM {view(metric)}"
        f" WHERE {IN_RANGE} GROUP BY partner_id)"
    )


SUMS: Final = "sum(numerator) AS n, sum(denominator) AS d"
WEIGHTED: Final = "sum(value * items) AS s, sum(items) AS n"

PARTNER_NAME: Final = "coalesce(p.name, '(' || coalesce(v.partner_id::text, 'none') || ')')"
JOIN_PARTNER: Final = f"LEFT JOIN {t('partners')} p ON p.partner_id = v.partner_id"


def partner_score_panels() -> list[AnyPanel]:
    """Where the partner scores' panels go (the partner evaluation's scorecard,
    R6.1, R2.1): panels returned here are added to the partner scorecards
    dashboard after the KPI panels; list their columns in
    tests/integration/test_grafana_panels.py. None yet: the KPI panels above
    stand on the views alone."""
    return []


def partner_scorecards() -> Board:
    board = Board(
        uid="pl-partner-scorecards",
        title=bilingual("合作伙伴评分卡", "Partner scorecards"),
        description=(
            "R6.1, R1.2, R2.1: each partner's on-time delivery, complaint rate, customer"
            " satisfaction, project failure rate, process compliance and incidents over the"
            " selected range, and the partners by status."
        ),
        variables=[period_variable(), partner_variable()],
    )
    board.stat(
        bilingual("合作中的合作伙伴", "Active partners"),
        "R2.1: partners whose status is active (all partners, now).",
        f"SELECT coalesce(sum(partners), 0) AS value FROM {t('partner_counts')}"
        " WHERE status = 'active'",
        "none",
        decimals=0,
    )
    board.table(
        bilingual("合作伙伴状态", "Partners by status"),
        "R2.1: how many partners are in each status (candidate, qualified, active,"
        " probation, suspended, terminated, rejected), now.",
        f"SELECT status, partners FROM {t('partner_counts')} WHERE partners > 0 ORDER BY status",
        span=6,
        height=5,
    )
    board.stat(
        metric_title("on_time_delivery", "（所选范围）", " (selected range)"),
        metric_note("on_time_delivery"),
        figure("on_time_delivery", RATIO, any_of("partner_id", "partner")),
        "percentunit",
    )
    board.stat(
        metric_title("complaint_rate", "（所选范围）", " (selected range)"),
        metric_note("complaint_rate"),
        figure("complaint_rate", RATIO, any_of("partner_id", "partner")),
        "percentunit",
    )
    board.table(
        bilingual("合作伙伴评分卡（所选范围）", "Partner scorecard (selected range)"),
        "R6.1, R3.5, R6.4: per partner over the selected range: on-time delivery, complaint"
        " rate, mean customer satisfaction (1-5), project failure rate, process compliance"
        " (the partner's projects' obligations) and incidents. Empty: nothing fell due.",
        f"""
        WITH {_partner_figures("on_time_delivery", "otd", SUMS)},
        {_partner_figures("complaint_rate", "cr", SUMS)},
        {_partner_figures("satisfaction", "sat", WEIGHTED)},
        {_partner_figures("failure_rate", "fr", SUMS)},
        {_partner_figures("compliance", "cmp", SUMS)},
        {_partner_figures("incidents", "inc", "sum(numerator) AS n")}
        SELECT p.name AS partner, p.status,
               round(otd.n / nullif(otd.d, 0), 4) AS on_time_delivery,
               round(cr.n / nullif(cr.d, 0), 4) AS complaint_rate,
               round(sat.s / nullif(sat.n, 0), 2) AS satisfaction,
               round(fr.n / nullif(fr.d, 0), 4) AS failure_rate,
               round(cmp.n / nullif(cmp.d, 0), 4) AS compliance,
               coalesce(inc.n, 0) AS incidents
        FROM {t("partners")} p
        LEFT JOIN otd USING (partner_id) LEFT JOIN cr USING (partner_id)
        LEFT JOIN sat USING (partner_id) LEFT JOIN fr USING (partner_id)
        LEFT JOIN cmp USING (partner_id) LEFT JOIN inc USING (partner_id)
        WHERE {any_of("p.partner_id", "partner")}
        ORDER BY p.name, p.partner_id
        """,
        span=24,
        height=10,
        units=[
            ("on_time_delivery", "percentunit"),
            ("complaint_rate", "percentunit"),
            ("failure_rate", "percentunit"),
            ("compliance", "percentunit"),
        ],
    )
    partner_filter = any_of("v.partner_id", "partner")
    for key, value in (
        ("on_time_delivery", RATIO),
        ("complaint_rate", RATIO),
        ("satisfaction", MEAN),
        ("compliance", RATIO),
    ):
        board.series(
            metric_title(key, "（按合作伙伴）", " by partner"),
            metric_note(key),
            series(key, PARTNER_NAME, value, partner_filter, joins=JOIN_PARTNER),
            unit_of(key),
        )
    for panel in partner_score_panels():
        board.add(panel)
    return board


# -- 2. project delivery (R6.1, R1.2) ----------------------------------------------------------

PROJECT_FILTERS: Final = (
    any_of("partner_id", "partner"),
    any_of("project_manager", "project_manager"),
)
V_PROJECT_FILTERS: Final = (
    any_of("v.partner_id", "partner"),
    any_of("v.project_manager", "project_manager"),
)
PR_FILTERS: Final = (
    any_of("pr.partner_id", "partner"),
    any_of("pr.project_manager", "project_manager"),
)


def _project_figures(metric: str, alias: str, value: str) -> str:
    return (
        f"{alias} AS (SELECT project_id, {value} FROM {view(metric)}"
        f" WHERE {where(IN_RANGE, *PROJECT_FILTERS)} GROUP BY project_id)"
    )


def project_delivery() -> Board:
    board = Board(
        uid="pl-project-delivery",
        title=bilingual("项目交付", "Project delivery"),
        description=(
            "R6.1, R1.2: the project managers' KPIs: on-time delivery, complaint rate,"
            " customer satisfaction, project failure rate, actual cost and cost control"
            " against the approved budget, per project and project manager."
        ),
        variables=[period_variable(), partner_variable(), project_manager_variable()],
    )
    for key, value, unit, decimals in (
        ("on_time_delivery", RATIO, "percentunit", 2),
        ("complaint_rate", RATIO, "percentunit", 2),
        ("failure_rate", RATIO, "percentunit", 2),
        ("cost_spent", "coalesce(sum(numerator), 0)", "currencyCNY", 0),
    ):
        board.stat(
            metric_title(key, "（所选范围）", " (selected range)"),
            metric_note(key),
            figure(key, value, *PROJECT_FILTERS),
            unit,
            decimals=decimals,
        )
    join_project = f"LEFT JOIN {t('projects')} pr ON pr.project_id = v.project_id"
    project_name = "coalesce(pr.title, '(no project)')"
    board.series(
        metric_title("on_time_delivery", "（按项目）", " by project"),
        metric_note("on_time_delivery"),
        series("on_time_delivery", project_name, RATIO, *V_PROJECT_FILTERS, joins=join_project),
        "percentunit",
    )
    board.series(
        metric_title("cost_spent", "（按类别）", " by category"),
        metric_note("cost_spent"),
        series("cost_spent", "coalesce(label, '(none)')", "sum(numerator)", *V_PROJECT_FILTERS),
        "currencyCNY",
    )
    board.table(
        bilingual("项目交付明细（所选范围）", "Delivery by project (selected range)"),
        "R6.1: per project over the selected range: milestones that fell due and those"
        " delivered on time, milestones delivered and complaints received, mean customer"
        " satisfaction.",
        f"""
        WITH {_project_figures("on_time_delivery", "otd", SUMS)},
        {_project_figures("complaint_rate", "cr", SUMS)},
        {_project_figures("satisfaction", "sat", WEIGHTED)}
        SELECT pr.title AS project, pa.name AS partner, pr.project_manager,
               otd.d AS milestones_due, otd.n AS delivered_on_time,
               round(otd.n / nullif(otd.d, 0), 4) AS on_time_delivery,
               cr.d AS milestones_delivered, cr.n AS complaints,
               round(cr.n / nullif(cr.d, 0), 4) AS complaint_rate,
               round(sat.s / nullif(sat.n, 0), 2) AS satisfaction
        FROM {t("projects")} pr
        LEFT JOIN {t("partners")} pa ON pa.partner_id = pr.partner_id
        LEFT JOIN otd USING (project_id) LEFT JOIN cr USING (project_id)
        LEFT JOIN sat USING (project_id)
        WHERE {where(*PR_FILTERS)}
        ORDER BY pr.title, pr.project_id
        """,
        span=24,
        units=[("on_time_delivery", "percentunit"), ("complaint_rate", "percentunit")],
    )
    board.table(
        bilingual("成本控制（至今）", "Cost control (to date)"),
        "R6.1, R6.3: per project to date: the approved budget (procurement approval or"
        " a later Director decision), the actual cost (the closing totals once closed) and the"
        " cost control rate = actual / budget; not limited by the time range.",
        f"""
        WITH b AS (SELECT DISTINCT ON (project_id) project_id, value AS budget
                   FROM {t("facts")} WHERE kind = 'approved_budget'
                   ORDER BY project_id, version DESC, seq DESC),
        c AS (SELECT project_id, sum(value) AS spent FROM {t("facts")}
              WHERE kind = 'cost' AND day <= (now() AT TIME ZONE '${{zone}}')::date
              GROUP BY project_id),
        cl AS (SELECT project_id, label AS outcome, value AS costs_total
               FROM {t("facts")} WHERE kind = 'project_closed')
        SELECT pr.title AS project, pa.name AS partner, pr.project_manager, b.budget,
               coalesce(cl.costs_total, c.spent, 0) AS actual,
               round(coalesce(cl.costs_total, c.spent, 0) / nullif(b.budget, 0), 4)
                   AS cost_control_rate,
               cl.outcome
        FROM {t("projects")} pr
        LEFT JOIN {t("partners")} pa ON pa.partner_id = pr.partner_id
        LEFT JOIN b USING (project_id) LEFT JOIN c USING (project_id)
        LEFT JOIN cl USING (project_id)
        WHERE {where(*PR_FILTERS)}
        ORDER BY pr.title, pr.project_id
        """,
        units=[
            ("budget", "currencyCNY"),
            ("actual", "currencyCNY"),
            ("cost_control_rate", "percentunit"),
        ],
    )
    board.table(
        metric_title("complaint_response_hours", "（中位数）", " (median)"),
        metric_note("complaint_response_hours")
        + " Medians are shown per period, project and severity as computed.",
        f"""
        SELECT v.period_start, pr.title AS project, v.label AS severity,
               v.items AS responses, v.value AS median_hours
        FROM {view("complaint_response_hours")} v
        LEFT JOIN {t("projects")} pr ON pr.project_id = v.project_id
        WHERE {where(IN_RANGE, *V_PROJECT_FILTERS)}
        ORDER BY v.period_start, pr.title, v.label
        """,
        units=[("median_hours", "h")],
    )
    return board


# -- 3. process compliance (R3.5) ---------------------------------------------------------------


def process_compliance() -> Board:
    board = Board(
        uid="pl-process-compliance",
        title=bilingual("流程合规", "Process compliance"),
        description=(
            "R3.5: every process node has a time limit; a missed one counts against"
            " compliance. Obligations: approval steps (R3.1), kickoffs (R3.2), quarterly"
            " reviews (R3.3), minutes (R4.2), reports (R4.3), emergency explanations (R5.3),"
            " department and strategy meetings (R5.4), resolutions (R5.5), data-leak"
            " reports (R6.4), trainings (R2.3)."
        ),
        variables=[period_variable(), partner_variable(), project_manager_variable()],
    )
    scope = (IN_RANGE, *PROJECT_FILTERS)
    board.stat(
        metric_title("compliance", "（所选范围）", " (selected range)"),
        metric_note("compliance"),
        f"SELECT {RATIO} AS value FROM {view('compliance')} WHERE {where(*scope)}",
        "percentunit",
    )
    board.stat(
        bilingual("未按时完成的事项", "Obligations missed"),
        "R3.5: obligations that fell due in the selected range and were not met on time.",
        f"SELECT coalesce(sum(denominator - numerator), 0) AS value FROM {view('compliance')}"
        f" WHERE {where(*scope)}",
        "none",
        decimals=0,
    )
    board.stat(
        bilingual("到期事项", "Obligations due"),
        "R3.5: obligations that fell due in the selected range.",
        f"SELECT coalesce(sum(denominator), 0) AS value FROM {view('compliance')}"
        f" WHERE {where(*scope)}",
        "none",
        decimals=0,
    )
    board.stat(
        metric_title("approval_cycle_hours", "（所选范围）", " (selected range)"),
        metric_note("approval_cycle_hours"),
        figure("approval_cycle_hours", MEAN, *PROJECT_FILTERS),
        "h",
    )
    board.series(
        metric_title("compliance", "（按事项类型）", " by obligation type"),
        metric_note("compliance"),
        series("compliance", "coalesce(label, '(none)')", RATIO, *V_PROJECT_FILTERS),
        "percentunit",
    )
    board.series(
        metric_title("approval_cycle_hours", "（按审批级别）", " by approval level"),
        metric_note("approval_cycle_hours"),
        series("approval_cycle_hours", "coalesce(label, '(none)')", MEAN, *V_PROJECT_FILTERS),
        "h",
    )
    board.table(
        bilingual("合规明细（按事项类型）", "Compliance by obligation type"),
        "R3.5: per obligation type over the selected range: due, met on time, missed.",
        f"""
        SELECT label AS obligation, sum(denominator) AS due, sum(numerator) AS met,
               sum(denominator - numerator) AS missed, {RATIO} AS compliance
        FROM {view("compliance")} WHERE {where(*scope)}
        GROUP BY label ORDER BY label
        """,
        units=[("compliance", "percentunit")],
    )
    board.table(
        bilingual("合规明细（按责任人）", "Compliance by person"),
        "R3.5: per person who owes the obligation (approver, chair, owner, PM, staff"
        " member) over the selected range; '(unassigned)': nobody named.",
        f"""
        SELECT coalesce(person, '(unassigned)') AS person, sum(denominator) AS due,
               sum(numerator) AS met, sum(denominator - numerator) AS missed,
               {RATIO} AS compliance
        FROM {view("compliance")} WHERE {where(*scope)}
        GROUP BY 1 ORDER BY 1
        """,
        units=[("compliance", "percentunit")],
    )
    board.table(
        bilingual("逾期记录", "Deadlines missed"),
        "R3.5: every deadline recorded as missed (an ...Overdue event) in the time range.",
        f"""
        SELECT f.at AS time, f.label AS obligation, f.detail, f.person,
               pr.title AS project, pa.name AS partner
        FROM {t("facts")} f
        LEFT JOIN {t("projects")} pr ON pr.project_id = f.project_id
        LEFT JOIN {t("partners")} pa ON pa.partner_id = coalesce(f.partner_id, pr.partner_id)
        WHERE f.kind = 'obligation_breached' AND $__timeFilter(f.at)
        AND {any_of("coalesce(f.partner_id, pr.partner_id)", "partner")}
        AND {any_of("pr.project_manager", "project_manager")}
        ORDER BY f.at, f.subject
        """,
        span=24,
    )
    return board


# -- 4. staff KPIs (R6.1 specialists, R2.2, R2.3) ---------------------------------------------

PERSON: Final = any_of("person", "person")


def staff_kpis() -> Board:
    board = Board(
        uid="pl-staff-kpis",
        title=bilingual("人员绩效", "Staff KPIs"),
        description=(
            "R6.1: the specialists' KPIs (task completion, document accuracy, response"
            " speed); R2.2, R2.3: the department's staffing and the trainings attended"
            " against the yearly target."
        ),
        variables=[period_variable(), person_variable()],
    )
    board.stat(
        bilingual("在岗人数", "Head count"),
        "R2.2, R2.3: people in the department now.",
        f"SELECT count(*) AS value FROM {t('staff')}"
        f" WHERE left_on IS NULL AND {any_of('user_id', 'person')}",
        "none",
        decimals=0,
    )
    board.table(
        bilingual("人员结构", "Staff by role"),
        "R2.3: 1 Director, X project managers, X specialists: the department now.",
        f"SELECT role, count(*) AS staff FROM {t('staff')} WHERE left_on IS NULL"
        " GROUP BY role ORDER BY role",
        span=6,
        height=5,
    )
    board.stat(
        metric_title("task_completion", "（所选范围）", " (selected range)"),
        metric_note("task_completion"),
        figure("task_completion", RATIO, PERSON),
        "percentunit",
    )
    board.stat(
        metric_title("document_accuracy", "（所选范围）", " (selected range)"),
        metric_note("document_accuracy"),
        figure("document_accuracy", RATIO, PERSON),
        "percentunit",
    )
    who = "coalesce(person, '(unassigned)')"
    board.series(
        metric_title("task_completion", "（按人员）", " by specialist"),
        metric_note("task_completion"),
        series("task_completion", who, RATIO, PERSON),
        "percentunit",
    )
    board.series(
        metric_title("document_accuracy", "（按人员）", " by filer"),
        metric_note("document_accuracy"),
        series("document_accuracy", who, RATIO, PERSON),
        "percentunit",
    )
    board.table(
        bilingual("专员绩效（所选范围）", "Specialist KPIs (selected range)"),
        "R6.1: per person over the selected range: tasks that fell due and the completion"
        " rate, document versions reviewed and the accuracy at first review.",
        f"""
        WITH tc AS (SELECT person, {SUMS} FROM {view("task_completion")}
                    WHERE {where(IN_RANGE, PERSON)} GROUP BY person),
        da AS (SELECT person, {SUMS} FROM {view("document_accuracy")}
               WHERE {where(IN_RANGE, PERSON)} GROUP BY person)
        SELECT person, s.name, s.role, tc.d AS tasks_due,
               round(tc.n / nullif(tc.d, 0), 4) AS task_completion,
               da.d AS documents_reviewed, round(da.n / nullif(da.d, 0), 4) AS document_accuracy
        FROM tc FULL JOIN da USING (person)
        LEFT JOIN {t("staff")} s ON s.user_id = person
        ORDER BY person
        """,
        units=[("task_completion", "percentunit"), ("document_accuracy", "percentunit")],
    )
    board.table(
        metric_title("task_response_hours", "（中位数）", " (median)"),
        metric_note("task_response_hours")
        + " Medians are shown per period, person and project as computed.",
        f"""
        SELECT v.period_start, v.person, pr.title AS project, v.items AS tasks,
               v.value AS median_hours
        FROM {view("task_response_hours")} v
        LEFT JOIN {t("projects")} pr ON pr.project_id = v.project_id
        WHERE {where(IN_RANGE, any_of("v.person", "person"))}
        ORDER BY v.period_start, v.person, pr.title
        """,
        units=[("median_hours", "h")],
    )
    board.table(
        bilingual("年度培训", "Trainings this year"),
        "R2.3: trainings attended in the year the time range ends in; the prorated target"
        " and whether it was met are set when the year closes (R3.5).",
        f"""
        SELECT s.user_id AS person, s.name, s.role, coalesce(y.attended, 0) AS attended,
               y.target, y.met
        FROM {t("staff")} s
        LEFT JOIN {t("training_years")} y ON y.user_id = s.user_id
        AND y.year = extract(year FROM $__timeTo()::timestamptz AT TIME ZONE '${{zone}}')::int
        WHERE s.left_on IS NULL AND {any_of("s.user_id", "person")}
        ORDER BY s.role, s.user_id
        """,
    )
    board.table(
        bilingual("培训记录", "Trainings held"),
        "R2.3: the trainings held in the time range and how many attended.",
        f"""
        WITH tr AS (SELECT *, held_on::timestamp AT TIME ZONE '${{zone}}' AS held_at
                    FROM {t("trainings")})
        SELECT held_on, title, hours, cardinality(attendees) AS attendees
        FROM tr WHERE $__timeFilter(held_at)
        AND ({ALL} IN (${{person}}) OR attendees && ARRAY[${{person}}]::text[])
        ORDER BY held_on, title
        """,
    )
    return board


# -- 5. incidents (R6.4) ---------------------------------------------------------------------------

CATEGORY: Final = any_of("label", "category")


def incidents() -> Board:
    board = Board(
        uid="pl-incidents",
        title=bilingual("安全事件", "Incidents"),
        description=(
            "R6.4: incidents by category and severity, data leaks (reported at once, within"
            " the policy's hours), internal investigations and the sanctions they decided."
        ),
        variables=[period_variable(), partner_variable(), category_variable()],
    )
    partner = any_of("partner_id", "partner")
    board.stat(
        metric_title("incidents", "（所选范围）", " (selected range)"),
        metric_note("incidents"),
        figure("incidents", "coalesce(sum(numerator), 0)", partner, CATEGORY),
        "none",
        decimals=0,
    )
    board.stat(
        metric_title("data_leaks", "（所选范围）", " (selected range)"),
        metric_note("data_leaks"),
        figure("data_leaks", "coalesce(sum(numerator), 0)", partner),
        "none",
        decimals=0,
    )
    board.stat(
        metric_title("investigations_open"),
        metric_note("investigations_open") + " Not limited by the time range.",
        f"SELECT coalesce(sum(numerator), 0) AS value FROM {view('investigations_open')}"
        f" WHERE period = '${{period}}' AND {partner}",
        "none",
        decimals=0,
    )
    board.stat(
        bilingual("数据泄露按时报告率", "Data leaks reported on time"),
        "R6.4, R3.5: data leaks reported within the policy's hours of their detection.",
        figure("compliance", RATIO, "label = 'data_leak_report'", partner),
        "percentunit",
    )
    board.series(
        metric_title("incidents", "（按类别）", " by category"),
        metric_note("incidents"),
        series("incidents", "coalesce(label, '(none)')", "sum(numerator)", partner, CATEGORY),
        "none",
    )
    board.series(
        metric_title("incident_report_hours", "（按严重程度）", " by severity"),
        metric_note("incident_report_hours"),
        series("incident_report_hours", "coalesce(detail, '(none)')", MEAN, partner, CATEGORY),
        "h",
    )
    board.table(
        bilingual("事件列表", "Incident list"),
        "R6.4: the incidents detected in the time range, newest first, with the hours"
        " from detection to report and whether the report was late.",
        f"""
        SELECT f.at AS time, pa.name AS partner, pr.title AS project, f.label AS category,
               f.detail AS severity, f.value AS hours_to_report, f.flag AS reported_late
        FROM {t("facts")} f
        LEFT JOIN {t("projects")} pr ON pr.project_id = f.project_id
        LEFT JOIN {t("partners")} pa ON pa.partner_id = coalesce(f.partner_id, pr.partner_id)
        WHERE f.kind = 'incident' AND $__timeFilter(f.at)
        AND {any_of("coalesce(f.partner_id, pr.partner_id)", "partner")}
        AND {any_of("f.label", "category")}
        ORDER BY f.at DESC, f.subject
        """,
        span=16,
        units=[("hours_to_report", "h")],
    )
    board.table(
        metric_title("sanctions", "（所选范围）", " (selected range)"),
        metric_note("sanctions"),
        f"""
        SELECT label AS level, detail AS subject_kind, sum(numerator) AS sanctions
        FROM {view("sanctions")} WHERE {where(IN_RANGE, partner)}
        GROUP BY label, detail ORDER BY label, detail
        """,
        span=8,
    )
    return board


# -- output ---------------------------------------------------------------------------------------

BOARDS: Final[tuple[Callable[[], Board], ...]] = (
    partner_scorecards,
    project_delivery,
    process_compliance,
    staff_kpis,
    incidents,
)


def dashboards(schema: str = DEFAULT_SCHEMA, zone: str = DEFAULT_ZONE) -> dict[str, Any]:
    """File name -> dashboard JSON (as plain data)."""
    out: dict[str, Any] = {}
    for make in BOARDS:
        board = make()
        data = json.loads(json.dumps(board.build(schema, zone).build(), cls=JSONEncoder))
        out[f"{board.uid.removeprefix('pl-')}.json"] = data
    return out


def render(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(target: Path, schema: str = DEFAULT_SCHEMA, zone: str = DEFAULT_ZONE) -> list[Path]:
    """Writes every dashboard; removes JSON files no dashboard makes any more."""
    target.mkdir(parents=True, exist_ok=True)
    files = dashboards(schema, zone)
    for stale in sorted(target.glob("*.json")):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, data in sorted(files.items()):
        path = target / name
        path.write_text(render(data), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate the Grafana dashboards (JSON).")
    parser.add_argument("--out", type=Path, default=Path("deploy/grafana/dashboards"))
    parser.add_argument("--schema", default=DEFAULT_SCHEMA, help="the kpi service's schema")
    parser.add_argument("--zone", default=DEFAULT_ZONE, help="the policy's time zone")
    args = parser.parse_args(argv)
    for path in write(args.out, args.schema, args.zone):
        print(path)  # noqa: T201


if __name__ == "__main__":
    main()
