"""The kpi schema's projection tables (Grafana reads them with SQL).

Shaped for dashboards: a time column, dimension columns, one row per thing.
Queries use unqualified names: the service's pool sets `search_path` to its
own schema.
"""

from __future__ import annotations

from shared.db import Migration

MIGRATIONS = (
    Migration(
        100,
        "partners by status",
        """
        CREATE TABLE {schema}.partners (
            partner_id uuid PRIMARY KEY,
            name text NOT NULL,
            unified_social_credit_code text NOT NULL,
            status text NOT NULL,
            registered_at timestamptz NOT NULL,
            status_since timestamptz NOT NULL,
            last_event_id uuid NOT NULL,
            last_version int NOT NULL
        );
        CREATE INDEX partners_by_status ON {schema}.partners (status);
        CREATE INDEX partners_by_registration ON {schema}.partners (registered_at, partner_id);
        """,
    ),
    Migration(
        101,
        "partner counts by status",
        """
        CREATE TABLE {schema}.partner_counts (
            status text PRIMARY KEY,
            partners int NOT NULL CHECK (partners >= 0),
            updated_at timestamptz NOT NULL
        );
        """,
    ),
)
