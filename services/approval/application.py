"""The approval service's event store (R3.1, R5.1-R5.3).

The approval aggregates arrive with the approval issue; the store, its relay
and the `approval.events` topic exist from the start.
"""

from __future__ import annotations

from shared.eventstore import LedgerApplication


class ApprovalApplication(LedgerApplication):
    SERVICE = "approval"
    AGGREGATES = ()
