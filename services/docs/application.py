"""The docs service's event store (R4.1-R4.5, R5.5).

Documents, meetings and report schedules arrive with the docs issue; the
store, its relay and the `docs.events` topic exist from the start.
"""

from __future__ import annotations

from shared.eventstore import LedgerApplication


class DocsApplication(LedgerApplication):
    SERVICE = "docs"
    AGGREGATES = ()
