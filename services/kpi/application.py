"""The kpi service's own event store.

Its aggregates (staff evaluations, R6.2) come with the KPI issue; the store,
its relay and the `kpi.events` topic exist from the start so that other
services can rely on the topic.
"""

from __future__ import annotations

from shared.eventstore import LedgerApplication


class KpiApplication(LedgerApplication):
    SERVICE = "kpi"
    AGGREGATES = ()
