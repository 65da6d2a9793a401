"""The kpi service's aggregates: the staff directory (R2.2, R2.3)."""
