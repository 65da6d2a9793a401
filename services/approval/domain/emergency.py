"""The EmergencyAction aggregate (R5.3): the PM acts first, explains after.

    awaiting_explanation --explanation filed--> explained
    explained --Director ratifies--> ratified
    explained --Director rejects (reason)--> rejected
    awaiting_explanation --limit passed--> awaiting_explanation, overdue (R3.5, once)

A late explanation is still filed (and says it was late): the breach stays on
record as `EmergencyExplanationOverdue`, the after-the-fact approval goes on.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from shared.domain import LedgerAggregate, RuleViolation

EmergencyState = Literal["awaiting_explanation", "explained", "ratified", "rejected"]


class EmergencyAction(LedgerAggregate):
    AGGREGATE_TYPE = "EmergencyAction"

    class Created(LedgerAggregate.Created):
        """A PM acted first in an emergency; the written explanation is due (R5.3)."""

        EVENT_TYPE = "EmergencyActionRecorded"
        project_id: uuid.UUID | None
        what_happened: str
        action_taken: str
        resources_changed: list[str]
        acted_at: datetime
        recorded_by: str
        explanation_due_at: datetime

    class ExplanationFiled(LedgerAggregate.Event):
        """The PM's written explanation of the emergency action (R5.3)."""

        EVENT_TYPE = "EmergencyExplanationFiled"
        explanation: str
        filed_by: str
        filed_at: datetime
        due_at: datetime
        on_time: bool

        def apply(self, aggregate: Any) -> None:
            aggregate.state = "explained"
            aggregate.explanation = self.explanation
            aggregate.explained_at = self.filed_at

    class ExplanationOverdue(LedgerAggregate.Event):
        """No written explanation within the policy's hours: a compliance breach (R5.3, R3.5)."""

        EVENT_TYPE = "EmergencyExplanationOverdue"
        deadline_id: uuid.UUID
        project_id: uuid.UUID | None
        recorded_by: str
        due_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.overdue[self.deadline_id] = self.event_id

    class Ratified(LedgerAggregate.Event):
        """The Director approved the emergency action after the fact (R5.3)."""

        EVENT_TYPE = "EmergencyActionRatified"
        project_id: uuid.UUID | None
        comment: str
        decided_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.state = "ratified"
            aggregate.decision_reason = self.comment
            aggregate.decided_by = self.actor_id
            aggregate.decided_at = self.decided_at

    class Rejected(LedgerAggregate.Event):
        """The Director did not approve the emergency action, with the reason (R5.3)."""

        EVENT_TYPE = "EmergencyActionRejected"
        project_id: uuid.UUID | None
        reason: str
        decided_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.state = "rejected"
            aggregate.decision_reason = self.reason
            aggregate.decided_by = self.actor_id
            aggregate.decided_at = self.decided_at

    def __init__(
        self,
        *,
        project_id: uuid.UUID | None,
        what_happened: str,
        action_taken: str,
        resources_changed: list[str],
        acted_at: datetime,
        recorded_by: str,
        explanation_due_at: datetime,
    ) -> None:
        self.project_id = project_id
        self.what_happened = what_happened
        self.action_taken = action_taken
        self.resources_changed = list(resources_changed)
        self.acted_at = acted_at
        self.recorded_by = recorded_by
        self.explanation_due_at = explanation_due_at
        self.state: EmergencyState = "awaiting_explanation"
        self.explanation: str | None = None
        self.explained_at: datetime | None = None
        self.decision_reason: str | None = None
        self.decided_by: str | None = None
        self.decided_at: datetime | None = None
        self.overdue: dict[uuid.UUID, uuid.UUID] = {}

    @property
    def explanation_overdue(self) -> bool:
        return bool(self.overdue)

    @classmethod
    def record(
        cls,
        *,
        action_id: uuid.UUID,
        project_id: uuid.UUID | None,
        what_happened: str,
        action_taken: str,
        resources_changed: list[str],
        acted_at: datetime,
        recorded_by: str,
        now: datetime,
        explanation_due_at: datetime,
    ) -> EmergencyAction:
        if acted_at > now:
            raise RuleViolation("R5.3", "an emergency action is recorded after it was taken")
        return cls._create_in_context(
            cls.Created,
            id=action_id,
            project_id=project_id,
            what_happened=what_happened,
            action_taken=action_taken,
            resources_changed=resources_changed,
            acted_at=acted_at,
            recorded_by=recorded_by,
            explanation_due_at=explanation_due_at,
        )

    def file_explanation(
        self,
        *,
        explanation: str,
        user_id: str,
        now: datetime,
        deadline_id: uuid.UUID | None = None,
    ) -> None:
        """A late explanation the deadline engine has not caught yet records
        the breach first (`deadline_id`: the explanation's clock), so every
        late one has its EmergencyExplanationOverdue (R5.3, R3.5)."""
        if user_id != self.recorded_by:
            raise RuleViolation(
                "R5.3",
                "the project manager who acted files the written explanation",
                forbidden=True,
            )
        if self.state != "awaiting_explanation":
            raise RuleViolation("R5.3", f"the explanation is filed already ({self.state})")
        if not explanation.strip():
            raise RuleViolation("R5.3", "the written explanation says why and what was done")
        if now > self.explanation_due_at and deadline_id is not None and not self.overdue:
            self.mark_explanation_overdue(deadline_id=deadline_id)
        self.trigger_event(
            self.ExplanationFiled,
            explanation=explanation,
            filed_by=user_id,
            filed_at=now,
            due_at=self.explanation_due_at,
            on_time=now <= self.explanation_due_at,
        )

    def decide(self, *, ratify: bool, reason: str, now: datetime) -> None:
        if self.state in ("ratified", "rejected"):
            raise RuleViolation("R5.3", f"the emergency action is {self.state} already")
        if self.state != "explained":
            raise RuleViolation(
                "R5.3", "the Director decides after the written explanation is filed"
            )
        if ratify:
            self.trigger_event(
                self.Ratified, project_id=self.project_id, comment=reason, decided_at=now
            )
            return
        if not reason.strip():
            raise RuleViolation("R5.3", "a rejected emergency action needs the reason")
        self.trigger_event(self.Rejected, project_id=self.project_id, reason=reason, decided_at=now)

    def mark_explanation_overdue(self, *, deadline_id: uuid.UUID) -> uuid.UUID | None:
        if deadline_id in self.overdue:
            return self.overdue[deadline_id]
        if self.state != "awaiting_explanation":
            return None  # filed meanwhile
        self.trigger_event(
            self.ExplanationOverdue,
            deadline_id=deadline_id,
            project_id=self.project_id,
            recorded_by=self.recorded_by,
            due_at=self.explanation_due_at,
        )
        return self.overdue[deadline_id]
