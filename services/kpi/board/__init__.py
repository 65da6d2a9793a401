"""The KPI board: one static page at `/` of the kpi service (issue 6)."""
