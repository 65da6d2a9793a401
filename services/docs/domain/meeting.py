"""The Meeting aggregate (R4.2, R5.4, R5.5, R3.2, R3.3): a meeting held, its
minutes on the clock, and its resolutions followed to closure.

    held --minutes filed in time--> MinutesFiled (on time)
         --no minutes by the limit--> MinutesOverdue (deadline engine; a late
           filing records it first, then MinutesFiled with on_time false)
    resolution recorded --owner and deadline fixed within 24 h--> ResolutionAssigned
                        --not fixed in time--> ResolutionOwnerOverdue
    resolution assigned --done by its deadline--> ResolutionCompleted
                        --not done--> ResolutionOverdue

The department's weekly meeting and the Director's quarterly strategy
meeting (R5.4) are recorded here; project meetings (kickoff, mid-term review,
acceptance) arrive from the partner service's events.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, Literal, TypedDict

from shared.domain import LedgerAggregate, RuleViolation

MeetingKind = Literal[
    "weekly_department", "quarterly_strategy", "kickoff", "midterm_review", "acceptance"
]
MEETING_KINDS: Final[tuple[MeetingKind, ...]] = (
    "weekly_department",
    "quarterly_strategy",
    "kickoff",
    "midterm_review",
    "acceptance",
)
DEPARTMENT_KINDS: Final[frozenset[str]] = frozenset({"weekly_department", "quarterly_strategy"})
#: The document types that are the minutes of a kind of meeting (R4.2, R4.4).
MINUTES_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "weekly_department": ("会议纪要",),
    "quarterly_strategy": ("会议纪要",),
    "kickoff": ("启动会纪要", "会议纪要"),
    "midterm_review": ("中期评审报告", "会议纪要"),
    "acceptance": ("验收报告", "会议纪要"),
}
MEETING_NAMESPACE: Final = uuid.UUID("a4a3f0d9-7f63-5b0e-b1a7-4c1e2f9d8b30")

ResolutionStatus = Literal["unassigned", "open", "done"]


def meeting_id_for(source_event_id: uuid.UUID) -> uuid.UUID:
    """The meeting a partner-service event records, the same on redelivery."""
    return uuid.uuid5(MEETING_NAMESPACE, str(source_event_id))


def resolution_ref(resolution_id: str, assignment: int) -> str:
    return f"{resolution_id}#{assignment}"


class ResolutionState(TypedDict):
    text: str
    status: ResolutionStatus
    owner: str | None
    deadline: datetime | None
    assignments: int
    owner_overdue_event: uuid.UUID | None
    overdue_events: dict[int, uuid.UUID]


class Meeting(LedgerAggregate):
    AGGREGATE_TYPE = "Meeting"

    class Created(LedgerAggregate.Created):
        """A meeting was held; its minutes are due (R4.2)."""

        EVENT_TYPE = "MeetingHeld"
        kind: MeetingKind
        title: str
        project_id: uuid.UUID | None
        held_at: datetime
        chaired_by: str
        attendees: list[str]
        source: Literal["api", "partner.events"]
        minutes_due_at: datetime
        owners_due_at: datetime

    class MinutesFiled(LedgerAggregate.Event):
        """The meeting's minutes were filed as a document (R4.2)."""

        EVENT_TYPE = "MinutesFiled"
        kind: MeetingKind
        project_id: uuid.UUID | None
        document_id: uuid.UUID
        document_name: str
        filed_by: str
        filed_at: datetime
        due_at: datetime
        on_time: bool

        def apply(self, aggregate: Any) -> None:
            aggregate.minutes_document = self.document_id
            aggregate.minutes_filed_at = self.filed_at

    class MinutesOverdue(LedgerAggregate.Event):
        """No minutes within the policy's hours after the meeting (R4.2, R3.5)."""

        EVENT_TYPE = "MinutesOverdue"
        kind: MeetingKind
        project_id: uuid.UUID | None
        chaired_by: str
        due_at: datetime
        deadline_id: uuid.UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.minutes_overdue_event = self.event_id

    class ResolutionRecorded(LedgerAggregate.Event):
        """A resolution of the meeting was written down (R5.5)."""

        EVENT_TYPE = "ResolutionRecorded"
        project_id: uuid.UUID | None
        resolution_id: str
        text: str
        owner_due_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.resolutions[self.resolution_id] = ResolutionState(
                text=self.text,
                status="unassigned",
                owner=None,
                deadline=None,
                assignments=0,
                owner_overdue_event=None,
                overdue_events={},
            )

    class ResolutionAssigned(LedgerAggregate.Event):
        """A resolution got its owner and deadline (R5.5); a re-assignment restarts its clock."""

        EVENT_TYPE = "ResolutionAssigned"
        project_id: uuid.UUID | None
        resolution_id: str
        assignment: int
        owner: str
        deadline: datetime
        assigned_at: datetime
        owner_due_at: datetime
        on_time: bool

        def apply(self, aggregate: Any) -> None:
            state = aggregate.resolutions[self.resolution_id]
            state["status"] = "open"
            state["owner"] = self.owner
            state["deadline"] = self.deadline
            state["assignments"] = self.assignment

    class ResolutionOwnerOverdue(LedgerAggregate.Event):
        """No owner and deadline within the policy's hours of the meeting (R5.5, R3.5)."""

        EVENT_TYPE = "ResolutionOwnerOverdue"
        project_id: uuid.UUID | None
        resolution_id: str
        chaired_by: str
        due_at: datetime
        deadline_id: uuid.UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.resolutions[self.resolution_id]["owner_overdue_event"] = self.event_id

    class ResolutionCompleted(LedgerAggregate.Event):
        """The owner closed the resolution (R5.5)."""

        EVENT_TYPE = "ResolutionCompleted"
        project_id: uuid.UUID | None
        resolution_id: str
        assignment: int
        owner: str
        deadline: datetime
        completed_at: datetime
        on_time: bool
        note: str

        def apply(self, aggregate: Any) -> None:
            aggregate.resolutions[self.resolution_id]["status"] = "done"

    class ResolutionOverdue(LedgerAggregate.Event):
        """A resolution passed its deadline unfinished (R5.5, R3.5)."""

        EVENT_TYPE = "ResolutionOverdue"
        project_id: uuid.UUID | None
        resolution_id: str
        assignment: int
        owner: str
        deadline: datetime
        deadline_id: uuid.UUID

        def apply(self, aggregate: Any) -> None:
            state = aggregate.resolutions[self.resolution_id]
            state["overdue_events"][self.assignment] = self.event_id

    def __init__(
        self,
        *,
        kind: MeetingKind,
        title: str,
        project_id: uuid.UUID | None,
        held_at: datetime,
        chaired_by: str,
        attendees: list[str],
        source: str,
        minutes_due_at: datetime,
        owners_due_at: datetime,
    ) -> None:
        self.kind: MeetingKind = kind
        self.title = title
        self.project_id = project_id
        self.held_at = held_at
        self.chaired_by = chaired_by
        self.attendees = list(attendees)
        self.source = source
        self.minutes_due_at = minutes_due_at
        self.owners_due_at = owners_due_at
        self.minutes_document: uuid.UUID | None = None
        self.minutes_filed_at: datetime | None = None
        self.minutes_overdue_event: uuid.UUID | None = None
        self.resolutions: dict[str, ResolutionState] = {}

    @property
    def minutes_types(self) -> tuple[str, ...]:
        return MINUTES_TYPES[self.kind]

    def resolution(self, resolution_id: str) -> ResolutionState:
        state = self.resolutions.get(resolution_id)
        if state is None:
            raise RuleViolation("R5.5", f"the meeting has no resolution {resolution_id!r}")
        return state

    # -- commands ----------------------------------------------------------------------------

    @classmethod
    def hold(
        cls,
        *,
        meeting_id: uuid.UUID,
        kind: MeetingKind,
        title: str,
        project_id: uuid.UUID | None,
        held_at: datetime,
        chaired_by: str,
        attendees: list[str],
        source: Literal["api", "partner.events"],
        now: datetime,
        minutes_due_at: datetime,
        owners_due_at: datetime,
        resolutions: Sequence[tuple[str, str]] = (),
    ) -> Meeting:
        if held_at > now:
            raise RuleViolation("R4.2", "a meeting is recorded once it has been held")
        if (kind in DEPARTMENT_KINDS) != (project_id is None):
            raise RuleViolation(
                "R5.4",
                f"a {kind} meeting is "
                + ("the department's, not a project's" if project_id else "a project's"),
            )
        meeting = cls._create_in_context(
            cls.Created,
            id=meeting_id,
            kind=kind,
            title=title,
            project_id=project_id,
            held_at=held_at,
            chaired_by=chaired_by,
            attendees=attendees,
            source=source,
            minutes_due_at=minutes_due_at,
            owners_due_at=owners_due_at,
        )
        for resolution_id, text in resolutions:
            meeting.record_resolution(resolution_id=resolution_id, text=text)
        return meeting

    def file_minutes(
        self,
        *,
        document_id: uuid.UUID,
        document_name: str,
        doc_type: str,
        filed_by: str,
        now: datetime,
        deadline_id: uuid.UUID,
    ) -> None:
        if self.minutes_document is not None:
            raise RuleViolation(
                "R4.2",
                "the minutes of this meeting are filed already; file a new version of that"
                " document to correct them",
            )
        if doc_type not in self.minutes_types:
            raise RuleViolation(
                "R4.2",
                f"the minutes of a {self.kind} meeting are a {' or '.join(self.minutes_types)},"
                f" not a {doc_type}",
            )
        if now > self.minutes_due_at and self.minutes_overdue_event is None:
            self.mark_minutes_overdue(deadline_id=deadline_id)
        self.trigger_event(
            self.MinutesFiled,
            kind=self.kind,
            project_id=self.project_id,
            document_id=document_id,
            document_name=document_name,
            filed_by=filed_by,
            filed_at=now,
            due_at=self.minutes_due_at,
            on_time=now <= self.minutes_due_at,
        )

    def mark_minutes_overdue(self, *, deadline_id: uuid.UUID) -> uuid.UUID | None:
        if self.minutes_overdue_event is not None:
            return self.minutes_overdue_event
        if self.minutes_document is not None:
            return None
        self.trigger_event(
            self.MinutesOverdue,
            kind=self.kind,
            project_id=self.project_id,
            chaired_by=self.chaired_by,
            due_at=self.minutes_due_at,
            deadline_id=deadline_id,
        )
        return self.minutes_overdue_event

    def record_resolution(self, *, resolution_id: str, text: str) -> None:
        if resolution_id in self.resolutions:
            raise RuleViolation("R5.5", f"resolution {resolution_id!r} is recorded already")
        if not text.strip():
            raise RuleViolation("R5.5", "a resolution says what was resolved")
        self.trigger_event(
            self.ResolutionRecorded,
            project_id=self.project_id,
            resolution_id=resolution_id,
            text=text,
            owner_due_at=self.owners_due_at,
        )

    def assign_resolution(
        self,
        *,
        resolution_id: str,
        owner: str,
        deadline: datetime,
        now: datetime,
        owner_clock: uuid.UUID,
        deadline_clock: uuid.UUID | None = None,
    ) -> None:
        """`deadline_clock`: the clock of the current assignment, so a
        re-assignment after its deadline first records the breach (R3.5): a
        deadline cannot be moved away from an overdue resolution unseen."""
        state = self.resolution(resolution_id)
        if state["status"] == "done":
            raise RuleViolation("R5.5", f"resolution {resolution_id!r} is completed already")
        if deadline <= now:
            raise RuleViolation("R5.5", "a resolution's deadline lies in the future")
        if deadline <= self.held_at:
            raise RuleViolation("R5.5", "a resolution's deadline comes after the meeting")
        first = state["assignments"] == 0
        if first and now > self.owners_due_at and state["owner_overdue_event"] is None:
            self.mark_owner_overdue(resolution_id=resolution_id, deadline_id=owner_clock)
        current = state["assignments"]
        if (
            not first
            and deadline_clock is not None
            and state["deadline"] is not None
            and now > state["deadline"]
            and current not in state["overdue_events"]
        ):
            self.mark_resolution_overdue(
                resolution_id=resolution_id, assignment=current, deadline_id=deadline_clock
            )
        self.trigger_event(
            self.ResolutionAssigned,
            project_id=self.project_id,
            resolution_id=resolution_id,
            assignment=state["assignments"] + 1,
            owner=owner,
            deadline=deadline,
            assigned_at=now,
            owner_due_at=self.owners_due_at,
            on_time=now <= self.owners_due_at if first else True,
        )

    def mark_owner_overdue(self, *, resolution_id: str, deadline_id: uuid.UUID) -> uuid.UUID | None:
        state = self.resolutions.get(resolution_id)
        if state is None:
            return None
        if state["owner_overdue_event"] is not None:
            return state["owner_overdue_event"]
        if state["assignments"] > 0:
            return None  # assigned meanwhile
        self.trigger_event(
            self.ResolutionOwnerOverdue,
            project_id=self.project_id,
            resolution_id=resolution_id,
            chaired_by=self.chaired_by,
            due_at=self.owners_due_at,
            deadline_id=deadline_id,
        )
        return state["owner_overdue_event"]

    def complete_resolution(
        self,
        *,
        resolution_id: str,
        user_id: str,
        may_close_for_owner: bool,
        note: str,
        now: datetime,
        clock: uuid.UUID,
    ) -> None:
        state = self.resolution(resolution_id)
        if state["status"] == "unassigned":
            raise RuleViolation(
                "R5.5", "a resolution gets an owner and a deadline before it is completed"
            )
        if state["status"] == "done":
            raise RuleViolation("R5.5", f"resolution {resolution_id!r} is completed already")
        owner, deadline = state["owner"], state["deadline"]
        assert owner is not None and deadline is not None
        if user_id != owner and not may_close_for_owner:
            raise RuleViolation(
                "R5.5",
                "a resolution is completed by its owner (or the meeting's chair)",
                forbidden=True,
            )
        assignment = state["assignments"]
        if now > deadline and assignment not in state["overdue_events"]:
            self.mark_resolution_overdue(
                resolution_id=resolution_id,
                assignment=assignment,
                deadline_id=clock,
            )
        self.trigger_event(
            self.ResolutionCompleted,
            project_id=self.project_id,
            resolution_id=resolution_id,
            assignment=assignment,
            owner=owner,
            deadline=deadline,
            completed_at=now,
            on_time=now <= deadline,
            note=note,
        )

    def mark_resolution_overdue(
        self, *, resolution_id: str, assignment: int, deadline_id: uuid.UUID
    ) -> uuid.UUID | None:
        state = self.resolutions.get(resolution_id)
        if state is None:
            return None
        if assignment in state["overdue_events"]:
            return state["overdue_events"][assignment]
        if state["status"] != "open" or state["assignments"] != assignment:
            return None  # completed or re-assigned meanwhile
        owner, deadline = state["owner"], state["deadline"]
        assert owner is not None and deadline is not None
        self.trigger_event(
            self.ResolutionOverdue,
            project_id=self.project_id,
            resolution_id=resolution_id,
            assignment=assignment,
            owner=owner,
            deadline=deadline,
            deadline_id=deadline_id,
        )
        return state["overdue_events"][assignment]
