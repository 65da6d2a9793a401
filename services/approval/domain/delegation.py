"""Delegations: an approver out of office hands their signature to a colleague
with the same role for a period (R3.1). One aggregate per delegator, so the
check at decision time reads the store itself (never a lagging projection).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Final

from typing_extensions import TypedDict

from shared.domain import LedgerAggregate, RuleViolation

DELEGATIONS_NAMESPACE: Final = uuid.UUID("6f1c2a0e-8d4b-5e7a-9c3f-1b2d4e6f8a90")
#: Out of office, not a standing transfer of authority.
MAX_PERIOD: Final = timedelta(days=92)


def delegations_id(delegator: str) -> uuid.UUID:
    return uuid.uuid5(DELEGATIONS_NAMESPACE, delegator)


class Grant(TypedDict):
    grant_id: uuid.UUID
    delegate: str
    role: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    revoked_at: datetime | None


class Delegations(LedgerAggregate):
    AGGREGATE_TYPE = "Delegations"

    class Created(LedgerAggregate.Created):
        """An approver's book of delegations was opened (with their first one)."""

        EVENT_TYPE = "DelegationsOpened"
        delegator: str

    class Granted(LedgerAggregate.Event):
        """The approver delegated their signature to a colleague with the same role."""

        EVENT_TYPE = "DelegationGranted"
        grant_id: uuid.UUID
        delegate: str
        role: str
        starts_at: datetime
        ends_at: datetime
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.grants[self.grant_id] = Grant(
                grant_id=self.grant_id,
                delegate=self.delegate,
                role=self.role,
                starts_at=self.starts_at,
                ends_at=self.ends_at,
                reason=self.reason,
                revoked_at=None,
            )

    class Revoked(LedgerAggregate.Event):
        """The approver took their delegation back before it ended."""

        EVENT_TYPE = "DelegationRevoked"
        grant_id: uuid.UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.grants[self.grant_id]["revoked_at"] = self.timestamp

    def __init__(self, *, delegator: str) -> None:
        self.delegator = delegator
        self.grants: dict[uuid.UUID, Grant] = {}

    @classmethod
    def open(cls, *, delegator: str) -> Delegations:
        return cls._create_in_context(
            cls.Created, id=delegations_id(delegator), delegator=delegator
        )

    def grant(
        self,
        *,
        grant_id: uuid.UUID,
        delegate: str,
        role: str,
        starts_at: datetime,
        ends_at: datetime,
        reason: str,
        now: datetime,
    ) -> None:
        if delegate == self.delegator:
            raise RuleViolation("R3.1", "a delegation goes to another person")
        if ends_at <= starts_at:
            raise RuleViolation("R3.1", "a delegation ends after it starts")
        if ends_at <= now:
            raise RuleViolation("R3.1", "a delegation that has ended already delegates nothing")
        if ends_at - starts_at > MAX_PERIOD:
            raise RuleViolation(
                "R3.1", f"a delegation covers an absence of at most {MAX_PERIOD.days} days"
            )
        self.trigger_event(
            self.Granted,
            grant_id=grant_id,
            delegate=delegate,
            role=role,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason,
        )

    def revoke(self, *, grant_id: uuid.UUID, now: datetime) -> None:
        grant = self.grants.get(grant_id)
        if grant is None:
            raise RuleViolation("R3.1", f"no delegation {grant_id} of {self.delegator}")
        if grant["revoked_at"] is not None:
            raise RuleViolation("R3.1", "the delegation is revoked already")
        if grant["ends_at"] <= now:
            raise RuleViolation("R3.1", "the delegation has ended already")
        self.trigger_event(self.Revoked, grant_id=grant_id)

    def active_for(self, delegate: str, role: str, at: datetime) -> Grant | None:
        """The delegation that lets `delegate`, holding `role`, sign for the delegator now."""
        for grant in self.grants.values():
            if (
                grant["delegate"] == delegate
                and grant["role"] == role
                and grant["revoked_at"] is None
                and grant["starts_at"] <= at < grant["ends_at"]
            ):
                return grant
        return None
