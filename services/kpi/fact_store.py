"""Where the KPI facts live (ADR 0010): the facts, the events behind them and
which project each aggregate belongs to; written by the facts consumer, each
event in the transaction that stores its position (shared.consumer).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from uuid import UUID

from services.kpi.facts import OPEN_STEP, Fact
from shared.db import DbConn, Migration
from shared.envelope import EventEnvelope
from shared.policy import Policy

MIGRATIONS = (
    Migration(
        120,
        "kpi facts and the events behind them",
        """
        CREATE TABLE {schema}.fact_events (
            event_id uuid PRIMARY KEY,
            source text NOT NULL,
            event_type text NOT NULL,
            aggregate_type text NOT NULL,
            aggregate_id uuid NOT NULL,
            aggregate_version int NOT NULL,
            occurred_at timestamptz NOT NULL,
            recorded_at timestamptz NOT NULL,
            actor_id text NOT NULL,
            actor_role text NOT NULL,
            correlation_id uuid NOT NULL,
            causation_id uuid,
            payload jsonb NOT NULL
        );
        CREATE INDEX fact_events_by_aggregate
            ON {schema}.fact_events (aggregate_id, aggregate_version);
        CREATE TABLE {schema}.facts (
            event_id uuid NOT NULL REFERENCES {schema}.fact_events (event_id),
            seq int NOT NULL,
            kind text NOT NULL,
            subject text NOT NULL,
            at timestamptz NOT NULL,
            day date NOT NULL,
            recorded_at timestamptz NOT NULL,
            recorded_day date NOT NULL,
            version int NOT NULL,
            project_id uuid,
            partner_id uuid,
            person text,
            label text,
            detail text,
            value numeric,
            flag boolean,
            PRIMARY KEY (event_id, seq)
        );
        CREATE INDEX facts_by_kind ON {schema}.facts (kind, subject, version);
        CREATE INDEX facts_by_project ON {schema}.facts (project_id, kind);
        CREATE INDEX facts_by_person ON {schema}.facts (person, kind);
        CREATE INDEX facts_by_day ON {schema}.facts (day);
        CREATE TABLE {schema}.projects (
            project_id uuid PRIMARY KEY,
            partner_id uuid NOT NULL,
            project_manager text NOT NULL,
            title text NOT NULL,
            event_id uuid NOT NULL
        );
        CREATE INDEX projects_by_partner ON {schema}.projects (partner_id);
        CREATE TABLE {schema}.aggregate_projects (
            aggregate_id uuid PRIMARY KEY,
            project_id uuid,
            partner_id uuid
        );
        """,
    ),
)


#: What of an event's payload is kept for drill-down, where the rest is not
#: for every KPI reader: an assessment's words are for the person, their
#: superiors and HR (R6.2, docs/kpi.md), an investigation's findings for
#: whoever reads the incident in the partner service. The figures need none.
_PAYLOAD_KEPT: dict[str, frozenset[str]] = {
    "SelfAssessmentSubmitted": frozenset(
        {"user_id", "period", "due_at", "submitted_at", "on_time"}
    ),
    "SuperiorAssessmentSubmitted": frozenset(
        {"user_id", "period", "assessor", "assessor_role", "due_at", "submitted_at", "on_time"}
    ),
    "InvestigationConcluded": frozenset({"investigation_id", "sanctions"}),
}


def kept_payload(event: EventEnvelope) -> dict[str, object]:
    keep = _PAYLOAD_KEPT.get(event.event_type)
    if keep is None:
        return event.payload
    return {k: v for k, v in event.payload.items() if k in keep}


#: Obligations of a project's own stream that its PM owes (R3.2, R3.3, R6.4),
#: and its reports (R4.3), whose filings and overdues name no person.
_OWED_BY_THE_PM = frozenset({"kickoff", "quarterly_review", "data_leak_report", "report"})


async def _open_step(conn: DbConn, approval: UUID, detail: str | None) -> tuple[str, str | None]:
    """The step a rejection closes: the last one opened (of that level, when
    the rejection names it)."""
    row = await conn.fetchrow(
        "SELECT subject, detail FROM facts WHERE kind = 'obligation_due'"
        " AND label = 'approval_step' AND subject LIKE $1 || ':%'"
        " AND ($2::text IS NULL OR detail = $2) ORDER BY version DESC, seq DESC LIMIT 1",
        str(approval),
        detail,
    )
    if row is None:
        return f"{approval}:{detail or 'unknown'}:0", detail
    return str(row["subject"]), row["detail"]


async def store(
    conn: DbConn, source: str, event: EventEnvelope, facts: Sequence[Fact], policy: Policy
) -> None:
    """Stores an event's facts (once: a redelivered event finds its id taken)."""
    if not facts:
        return
    inserted = await conn.fetchval(
        "INSERT INTO fact_events (event_id, source, event_type, aggregate_type, aggregate_id,"
        " aggregate_version, occurred_at, recorded_at, actor_id, actor_role, correlation_id,"
        " causation_id, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,"
        " $13::jsonb) ON CONFLICT (event_id) DO NOTHING RETURNING true",
        event.event_id,
        source,
        event.event_type,
        event.aggregate_type,
        event.aggregate_id,
        event.aggregate_version,
        event.occurred_at,
        event.recorded_at,
        event.actor.user_id,
        event.actor.role,
        event.correlation_id,
        event.causation_id,
        json.dumps(kept_payload(event), ensure_ascii=False),
    )
    if not inserted:
        return
    owner = await conn.fetchrow(
        "SELECT project_id, partner_id FROM aggregate_projects WHERE aggregate_id = $1",
        event.aggregate_id,
    )
    project_id = owner["project_id"] if owner else None
    partner_id = owner["partner_id"] if owner else None
    recorded_day = policy.clock.local_date(event.recorded_at)
    rows = []
    manager: str | None = None
    for seq, fact in enumerate(facts):
        subject, detail = fact.subject, fact.detail
        if subject == OPEN_STEP:
            subject, detail = await _open_step(conn, event.aggregate_id, detail)
        project = fact.project_id or project_id
        partner = fact.partner_id or partner_id
        person = fact.person
        if person is None and fact.label in _OWED_BY_THE_PM and project is not None:
            # The project's own deadlines are its PM's. ProjectCreated comes
            # first on the project's stream, not on the docs service's (its
            # reports): a report read before it gets its PM once it arrives.
            manager = manager or await conn.fetchval(
                "SELECT project_manager FROM projects WHERE project_id = $1", project
            )
            person = manager
        if (project and not project_id) or (partner and not partner_id):
            project_id, partner_id = project_id or project, partner_id or partner
            await conn.execute(
                "INSERT INTO aggregate_projects (aggregate_id, project_id, partner_id)"
                " VALUES ($1, $2, $3) ON CONFLICT (aggregate_id) DO UPDATE SET"
                " project_id = coalesce(aggregate_projects.project_id, EXCLUDED.project_id),"
                " partner_id = coalesce(aggregate_projects.partner_id, EXCLUDED.partner_id)",
                event.aggregate_id,
                project_id,
                partner_id,
            )
        rows.append(
            (
                event.event_id,
                seq,
                fact.kind,
                subject,
                fact.at,
                fact.day,
                event.recorded_at,
                recorded_day,
                event.aggregate_version,
                project,
                partner,
                person,
                fact.label,
                detail,
                fact.value,
                fact.flag,
            )
        )
    await conn.executemany(
        "INSERT INTO facts (event_id, seq, kind, subject, at, day, recorded_at, recorded_day,"
        " version, project_id, partner_id, person, label, detail, value, flag)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        rows,
    )
    if event.event_type == "ProjectCreated" and source == "partner":
        first = facts[0]
        await conn.execute(
            "INSERT INTO projects (project_id, partner_id, project_manager, title, event_id)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id) DO NOTHING",
            first.project_id,
            first.partner_id,
            first.person,
            first.label or "",
            event.event_id,
        )
        # Whatever arrived first from another topic learns its PM now, so the
        # facts do not depend on how the topics interleave (a lagging
        # consumer, a replay from Kafka).
        await conn.execute(
            "UPDATE facts SET person = $2 WHERE project_id = $1 AND person IS NULL"
            " AND label = ANY($3::text[])",
            first.project_id,
            first.person,
            sorted(_OWED_BY_THE_PM),
        )
