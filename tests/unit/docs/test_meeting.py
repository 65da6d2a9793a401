"""R4.2, R5.4, R5.5, R3.5: the Meeting aggregate, `services.docs.domain.meeting`.

Proves that:

- the department's meetings (weekly, quarterly strategy) belong to no project
  and the project meetings (kickoff, mid-term review, acceptance) to one
  (R5.4); a meeting is recorded once held, never ahead;
- minutes are a document of the meeting's minutes type, filed once (R4.2);
  up to the due moment they are on time, a moment later MinutesOverdue is
  recorded first and then MinutesFiled with on_time false; the deadline
  engine's `mark_minutes_overdue` records once, returns the same id when it
  fires again and None once the minutes were filed in time;
- every resolution is written down, gets an owner and a future deadline; on
  time within 24 hours of the meeting, later with ResolutionOwnerOverdue first;
  a reassignment numbers the assignment and restarts its clock (R5.5);
- only the owner completes a resolution, or someone allowed to close for them
  (403 otherwise); after the deadline ResolutionOverdue is recorded first;
  `mark_resolution_overdue` is idempotent and records nothing for a stale
  assignment or a completed resolution;
- refusals name their rule, change nothing and record nothing; replaying the
  events rebuilds the state.

A hypothesis state machine assigns, reassigns, completes and fires every
clock in any order, over a moving clock, and checks that each resolution gets
at most one ResolutionOwnerOverdue and at most one ResolutionOverdue per
assignment, that the late ones come after them, and the minutes likewise.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from services.docs.domain.meeting import (
    MINUTES_TYPES,
    Meeting,
    MeetingKind,
    resolution_ref,
)
from shared.clock import ManualClock, SequentialIds
from shared.domain import Actor, CommandContext, LedgerAggregate, RuleViolation, command_context
from shared.policy import load_policy

POLICY = load_policy()
START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
MICRO = timedelta(microseconds=1)
HOUR = timedelta(hours=1)
CHAIR = Actor("pm1", "project_manager")
DIRECTOR = Actor("dir", "director")
PROJECT = uuid5(NAMESPACE_URL, "project-1")
MINUTES_CLOCK = uuid5(NAMESPACE_URL, "minutes-clock")
MINUTES_HOURS: Final = POLICY.minutes.hours_after_meeting
OWNER_HOURS: Final = POLICY.resolutions.owner_within_hours


def owner_clock(resolution_id: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"owner/{resolution_id}")


def resolution_clock(resolution_id: str, assignment: int) -> UUID:
    return uuid5(NAMESPACE_URL, f"resolution/{resolution_ref(resolution_id, assignment)}")


class Ctx:
    """A manual clock, sequential ids and a command context per actor."""

    def __init__(self, start: datetime = START) -> None:
        self.clock = ManualClock(start)
        self.ids = SequentialIds()

    @contextmanager
    def as_(self, actor: Actor = CHAIR) -> Iterator[None]:
        ctx = CommandContext(actor=actor, correlation_id=uuid4(), clock=self.clock, new_id=self.ids)
        with command_context(ctx):
            yield

    def now(self) -> datetime:
        return self.clock.now()


def _hold(
    ctx: Ctx,
    kind: MeetingKind = "weekly_department",
    *,
    project_id: UUID | None = None,
    held_at: datetime | None = None,
    resolutions: tuple[tuple[str, str], ...] = (),
) -> Meeting:
    held_at = held_at or ctx.now() - HOUR
    with ctx.as_():
        return Meeting.hold(
            meeting_id=uuid5(NAMESPACE_URL, f"meeting/{held_at.isoformat()}/{kind}"),
            kind=kind,
            title="weekly department meeting",
            project_id=project_id,
            held_at=held_at,
            chaired_by=CHAIR.user_id,
            attendees=["pm1", "s1", "s2"],
            source="api",
            now=ctx.now(),
            minutes_due_at=held_at + timedelta(hours=MINUTES_HOURS),
            owners_due_at=held_at + timedelta(hours=OWNER_HOURS),
            resolutions=resolutions,
        )


def _minutes(ctx: Ctx, meeting: Meeting, doc_type: str = "会议纪要") -> None:
    with ctx.as_():
        meeting.file_minutes(
            document_id=uuid5(NAMESPACE_URL, f"minutes/{doc_type}"),
            document_name=f"综合管理部-2026年11月23日-{doc_type}",
            doc_type=doc_type,
            filed_by=CHAIR.user_id,
            now=ctx.now(),
            deadline_id=MINUTES_CLOCK,
        )


def _mark_minutes(ctx: Ctx, meeting: Meeting) -> UUID | None:
    with ctx.as_(Actor.SYSTEM):
        return meeting.mark_minutes_overdue(deadline_id=MINUTES_CLOCK)


def _assign(ctx: Ctx, meeting: Meeting, resolution_id: str, owner: str, deadline: datetime) -> None:
    current = meeting.resolution(resolution_id)["assignments"]
    with ctx.as_():
        meeting.assign_resolution(
            resolution_id=resolution_id,
            owner=owner,
            deadline=deadline,
            now=ctx.now(),
            owner_clock=owner_clock(resolution_id),
            deadline_clock=resolution_clock(resolution_id, current),
        )


def _complete(
    ctx: Ctx, meeting: Meeting, resolution_id: str, user: str, *, may_close: bool = False
) -> None:
    assignment = meeting.resolution(resolution_id)["assignments"]
    with ctx.as_(Actor(user, "specialist")):
        meeting.complete_resolution(
            resolution_id=resolution_id,
            user_id=user,
            may_close_for_owner=may_close,
            note="done",
            now=ctx.now(),
            clock=resolution_clock(resolution_id, assignment),
        )


def _mark_owner(ctx: Ctx, meeting: Meeting, resolution_id: str) -> UUID | None:
    with ctx.as_(Actor.SYSTEM):
        return meeting.mark_owner_overdue(
            resolution_id=resolution_id, deadline_id=owner_clock(resolution_id)
        )


def _mark_resolution(
    ctx: Ctx, meeting: Meeting, resolution_id: str, assignment: int
) -> UUID | None:
    with ctx.as_(Actor.SYSTEM):
        return meeting.mark_resolution_overdue(
            resolution_id=resolution_id,
            assignment=assignment,
            deadline_id=resolution_clock(resolution_id, assignment),
        )


def _types(events: list[Any]) -> list[str]:
    return [type(e).EVENT_TYPE for e in events]


def _events(aggregate: LedgerAggregate) -> list[Any]:
    """The aggregate's new events (typed loosely: each test checks the class)."""
    return list(aggregate.collect_events())


def _state(aggregate: Meeting) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in vars(aggregate).items() if k != "_pending_events"})


def _replay(events: list[Any]) -> Meeting:
    created, *rest = events
    aggregate = created.mutate(None)
    for e in rest:
        aggregate = e.mutate(aggregate)
    assert isinstance(aggregate, Meeting)
    return aggregate


def _refused(
    aggregate: Meeting, call: Callable[[], object], rule: str, *, forbidden: bool = False
) -> RuleViolation:
    """`call` raises RuleViolation naming `rule`, changes nothing, records nothing."""
    before = _state(aggregate)
    with pytest.raises(RuleViolation) as refused:
        call()
    assert (refused.value.rule, refused.value.forbidden) == (rule, forbidden)
    assert _state(aggregate) == before
    assert _events(aggregate) == []
    return refused.value


# -- holding a meeting (R5.4) ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["weekly_department", "quarterly_strategy"])
def test_r5_4_a_department_meeting_belongs_to_no_project(kind: MeetingKind) -> None:
    """R5.4, R4.2: the department's meetings need no project (and take none);
    minutes and owners are due 24 hours after the meeting."""
    ctx = Ctx()
    meeting = _hold(ctx, kind)
    (held,) = _events(meeting)
    assert isinstance(held, Meeting.Created)
    assert (held.kind, held.project_id, held.chaired_by, held.source) == (
        kind,
        None,
        "pm1",
        "api",
    )
    assert held.minutes_due_at == held.held_at + timedelta(hours=24)
    assert held.owners_due_at == held.held_at + timedelta(hours=24)
    with pytest.raises(RuleViolation) as refused:
        _hold(ctx, kind, project_id=PROJECT)
    assert refused.value.rule == "R5.4"


@pytest.mark.parametrize("kind", ["kickoff", "midterm_review", "acceptance"])
def test_r5_4_a_project_meeting_needs_its_project(kind: MeetingKind) -> None:
    """R5.4: kickoff, mid-term review and acceptance are a project's meetings."""
    ctx = Ctx()
    with pytest.raises(RuleViolation) as refused:
        _hold(ctx, kind)
    assert refused.value.rule == "R5.4"
    meeting = _hold(ctx, kind, project_id=PROJECT)
    assert meeting.project_id == PROJECT


def test_r4_2_a_meeting_is_recorded_once_it_was_held() -> None:
    """R4.2: held now is fine; a moment in the future is refused."""
    ctx = Ctx()
    assert _hold(ctx, held_at=ctx.now()).held_at == ctx.now()
    with pytest.raises(RuleViolation) as refused:
        _hold(ctx, held_at=ctx.now() + MICRO)
    assert refused.value.rule == "R4.2"


# -- minutes (R4.2) --------------------------------------------------------------------


def test_r4_2_minutes_are_of_the_meetings_type_and_filed_once() -> None:
    """R4.2: a weekly department meeting's minutes are a 会议纪要, a kickoff's a
    启动会纪要 or 会议纪要; another type is refused; a second filing is refused."""
    ctx = Ctx()
    meeting = _hold(ctx)
    _events(meeting)
    assert meeting.minutes_types == MINUTES_TYPES["weekly_department"] == ("会议纪要",)
    _refused(meeting, lambda: _minutes(ctx, meeting, "启动会纪要"), "R4.2")
    _refused(meeting, lambda: _minutes(ctx, meeting, "周报"), "R4.2")
    _minutes(ctx, meeting)
    (filed,) = _events(meeting)
    assert isinstance(filed, Meeting.MinutesFiled)
    assert (filed.on_time, filed.filed_by, filed.due_at) == (True, "pm1", meeting.minutes_due_at)
    assert meeting.minutes_document == filed.document_id
    _refused(meeting, lambda: _minutes(ctx, meeting), "R4.2")

    kickoff = _hold(ctx, "kickoff", project_id=PROJECT)
    _events(kickoff)
    _refused(kickoff, lambda: _minutes(ctx, kickoff, "验收报告"), "R4.2")
    _minutes(ctx, kickoff, "启动会纪要")
    assert _types(_events(kickoff)) == ["MinutesFiled"]


@pytest.mark.parametrize(("after_due", "on_time"), [(timedelta(0), True), (MICRO, False)])
def test_r4_2_r3_5_late_minutes_record_their_overdue_first(
    after_due: timedelta, on_time: bool
) -> None:
    """R4.2, R3.5: at the due moment (24 h after the meeting) minutes are on
    time; a moment later MinutesOverdue comes first, then MinutesFiled with
    on_time false, and the engine firing afterwards returns that Overdue."""
    ctx = Ctx()
    meeting = _hold(ctx)
    _events(meeting)
    ctx.clock.set(meeting.held_at + timedelta(hours=24) + after_due)
    _minutes(ctx, meeting)
    events = _events(meeting)
    if on_time:
        assert _types(events) == ["MinutesFiled"]
        assert _mark_minutes(ctx, meeting) is None
        assert _events(meeting) == []
        return
    assert _types(events) == ["MinutesOverdue", "MinutesFiled"]
    overdue, filed = events
    assert isinstance(overdue, Meeting.MinutesOverdue)
    assert isinstance(filed, Meeting.MinutesFiled)
    assert (overdue.deadline_id, overdue.chaired_by, overdue.due_at) == (
        MINUTES_CLOCK,
        "pm1",
        meeting.minutes_due_at,
    )
    assert (filed.on_time, filed.filed_at) == (False, ctx.now())
    assert _mark_minutes(ctx, meeting) == overdue.event_id
    assert _events(meeting) == []


def test_r3_5_minutes_overdue_is_recorded_once() -> None:
    """R3.5: the engine records MinutesOverdue once; firing again returns the
    same event id; the late minutes then record only MinutesFiled (late)."""
    ctx = Ctx()
    meeting = _hold(ctx)
    _events(meeting)
    ctx.clock.advance(timedelta(hours=30))
    first = _mark_minutes(ctx, meeting)
    (overdue,) = _events(meeting)
    assert isinstance(overdue, Meeting.MinutesOverdue)
    assert first == overdue.event_id
    assert _mark_minutes(ctx, meeting) == first
    assert _events(meeting) == []
    _minutes(ctx, meeting)
    (filed,) = _events(meeting)
    assert isinstance(filed, Meeting.MinutesFiled)
    assert filed.on_time is False
    assert _mark_minutes(ctx, meeting) == first


# -- resolutions (R5.5) ----------------------------------------------------------------


def test_r5_5_resolutions_are_written_down() -> None:
    """R5.5: each resolution is recorded with its text and the owner clock; a
    duplicate id and an empty text are refused."""
    ctx = Ctx()
    meeting = _hold(ctx, resolutions=(("R1", "upgrade the VPN"), ("R2", "hire a tester")))
    _held, *recorded = _events(meeting)
    assert [(type(e), e.resolution_id, e.text, e.owner_due_at) for e in recorded] == [
        (Meeting.ResolutionRecorded, "R1", "upgrade the VPN", meeting.owners_due_at),
        (Meeting.ResolutionRecorded, "R2", "hire a tester", meeting.owners_due_at),
    ]
    assert meeting.resolution("R1")["status"] == "unassigned"
    with ctx.as_():
        _refused(meeting, lambda: meeting.record_resolution(resolution_id="R1", text="x"), "R5.5")
        _refused(meeting, lambda: meeting.record_resolution(resolution_id="R3", text=" "), "R5.5")
    _refused(meeting, lambda: meeting.resolution("R9"), "R5.5")


def test_r5_5_an_owner_within_24_hours_is_on_time() -> None:
    """R5.5: an owner and a deadline fixed at the 24th hour are on time
    (assignment 1); the deadline must lie in the future."""
    ctx = Ctx()
    meeting = _hold(ctx, resolutions=(("R1", "upgrade the VPN"),))
    _events(meeting)
    ctx.clock.set(meeting.owners_due_at)
    _refused(meeting, lambda: _assign(ctx, meeting, "R1", "s1", ctx.now()), "R5.5")
    _refused(meeting, lambda: _assign(ctx, meeting, "R1", "s1", ctx.now() - HOUR), "R5.5")
    _refused(meeting, lambda: _assign(ctx, meeting, "R9", "s1", ctx.now() + HOUR), "R5.5")
    deadline = ctx.now() + timedelta(days=7)
    _assign(ctx, meeting, "R1", "s1", deadline)
    (assigned,) = _events(meeting)
    assert isinstance(assigned, Meeting.ResolutionAssigned)
    assert (assigned.assignment, assigned.owner, assigned.deadline, assigned.on_time) == (
        1,
        "s1",
        deadline,
        True,
    )
    assert _mark_owner(ctx, meeting, "R1") is None  # assigned meanwhile
    assert _events(meeting) == []


def test_r5_5_r3_5_a_late_owner_records_resolution_owner_overdue_first() -> None:
    """R5.5, R3.5: assigned after 24 hours: ResolutionOwnerOverdue, then the
    assignment with on_time false; the engine firing later returns that event."""
    ctx = Ctx()
    meeting = _hold(ctx, resolutions=(("R1", "upgrade the VPN"),))
    _events(meeting)
    ctx.clock.set(meeting.owners_due_at + MICRO)
    _assign(ctx, meeting, "R1", "s1", ctx.now() + timedelta(days=3))
    events = _events(meeting)
    assert _types(events) == ["ResolutionOwnerOverdue", "ResolutionAssigned"]
    overdue, assigned = events
    assert isinstance(overdue, Meeting.ResolutionOwnerOverdue)
    assert (overdue.resolution_id, overdue.deadline_id, overdue.due_at) == (
        "R1",
        owner_clock("R1"),
        meeting.owners_due_at,
    )
    assert (assigned.assignment, assigned.on_time) == (1, False)
    assert _mark_owner(ctx, meeting, "R1") == overdue.event_id
    assert _events(meeting) == []


def test_r3_5_owner_overdue_is_recorded_once_by_the_engine() -> None:
    """R3.5: the engine records ResolutionOwnerOverdue once (same id again);
    the late assignment then adds no second one; an unknown resolution gets None."""
    ctx = Ctx()
    meeting = _hold(ctx, resolutions=(("R1", "upgrade the VPN"),))
    _events(meeting)
    ctx.clock.advance(timedelta(hours=25))
    first = _mark_owner(ctx, meeting, "R1")
    (overdue,) = _events(meeting)
    assert first == overdue.event_id
    assert _mark_owner(ctx, meeting, "R1") == first
    assert _mark_owner(ctx, meeting, "R9") is None
    assert _events(meeting) == []
    _assign(ctx, meeting, "R1", "s1", ctx.now() + HOUR)
    (assigned,) = _events(meeting)
    assert isinstance(assigned, Meeting.ResolutionAssigned)
    assert assigned.on_time is False


def test_r5_5_a_reassignment_numbers_the_assignment() -> None:
    """R5.5: a new owner or deadline is assignment 2, 3, ...; a reassignment
    is never late (the owner was fixed in time once)."""
    ctx = Ctx()
    meeting = _hold(ctx, resolutions=(("R1", "upgrade the VPN"),))
    _events(meeting)
    _assign(ctx, meeting, "R1", "s1", ctx.now() + timedelta(days=2))
    ctx.clock.advance(timedelta(days=3))
    _assign(ctx, meeting, "R1", "s2", ctx.now() + timedelta(days=2))
    _assign(ctx, meeting, "R1", "s2", ctx.now() + timedelta(days=4))
    assigned = _events(meeting)
    assert [(type(e), e.assignment, e.owner) for e in assigned] == [
        (Meeting.ResolutionAssigned, 1, "s1"),
        # R3.5: the first deadline had passed: its breach is recorded before
        # the resolution gets a new one, so no deadline moves away unseen.
        (Meeting.ResolutionOverdue, 1, "s1"),
        (Meeting.ResolutionAssigned, 2, "s2"),
        (Meeting.ResolutionAssigned, 3, "s2"),
    ]
    assert all(e.on_time for e in assigned if isinstance(e, Meeting.ResolutionAssigned))
    state = meeting.resolution("R1")
    assert (state["assignments"], state["owner"], state["status"]) == (3, "s2", "open")


def test_r5_5_only_the_owner_completes_unless_allowed_to_close_for_them() -> None:
    """R5.5: a resolution without owner cannot be completed; another user is
    forbidden (403) unless allowed to close for the owner (the chair); once
    done, nothing more: no second completion, no reassignment."""
    ctx = Ctx()
    meeting = _hold(ctx, resolutions=(("R1", "upgrade the VPN"), ("R2", "hire a tester")))
    _events(meeting)
    _refused(meeting, lambda: _complete(ctx, meeting, "R1", "s1"), "R5.5")
    _assign(ctx, meeting, "R1", "s1", ctx.now() + timedelta(days=2))
    _assign(ctx, meeting, "R2", "s2", ctx.now() + timedelta(days=2))
    _events(meeting)
    _refused(meeting, lambda: _complete(ctx, meeting, "R1", "s2"), "R5.5", forbidden=True)
    _refused(meeting, lambda: _complete(ctx, meeting, "R1", "pm1"), "R5.5", forbidden=True)
    _complete(ctx, meeting, "R1", "s1")
    _complete(ctx, meeting, "R2", "pm1", may_close=True)
    done = _events(meeting)
    assert [(type(e), e.resolution_id, e.owner, e.assignment, e.on_time) for e in done] == [
        (Meeting.ResolutionCompleted, "R1", "s1", 1, True),
        (Meeting.ResolutionCompleted, "R2", "s2", 1, True),
    ]
    assert done[1].actor_id == "pm1"
    _refused(meeting, lambda: _complete(ctx, meeting, "R1", "s1"), "R5.5")
    _refused(meeting, lambda: _assign(ctx, meeting, "R1", "s2", ctx.now() + HOUR), "R5.5")
    assert _mark_resolution(ctx, meeting, "R1", 1) is None  # completed
    assert _events(meeting) == []


@pytest.mark.parametrize(("after_deadline", "on_time"), [(timedelta(0), True), (MICRO, False)])
def test_r5_5_r3_5_a_late_completion_records_resolution_overdue_first(
    after_deadline: timedelta, on_time: bool
) -> None:
    """R5.5, R3.5: done at the deadline is on time; a moment later
    ResolutionOverdue (of this assignment) comes first, then the completion."""
    ctx = Ctx()
    meeting = _hold(ctx, resolutions=(("R1", "upgrade the VPN"),))
    deadline = ctx.now() + timedelta(days=2)
    _assign(ctx, meeting, "R1", "s1", deadline)
    _events(meeting)
    ctx.clock.set(deadline + after_deadline)
    _complete(ctx, meeting, "R1", "s1")
    events = _events(meeting)
    if on_time:
        assert _types(events) == ["ResolutionCompleted"]
        return
    assert _types(events) == ["ResolutionOverdue", "ResolutionCompleted"]
    overdue, completed = events
    assert isinstance(overdue, Meeting.ResolutionOverdue)
    assert (overdue.assignment, overdue.owner, overdue.deadline, overdue.deadline_id) == (
        1,
        "s1",
        deadline,
        resolution_clock("R1", 1),
    )
    assert (completed.on_time, completed.completed_at) == (False, ctx.now())
    assert _mark_resolution(ctx, meeting, "R1", 1) == overdue.event_id


def test_r3_5_resolution_overdue_is_per_assignment_and_idempotent() -> None:
    """R5.5, R3.5: the engine records ResolutionOverdue once per assignment
    (same id again); a stale assignment's clock records nothing; the new
    assignment has its own clock; completing it late adds no second one."""
    ctx = Ctx()
    meeting = _hold(ctx, resolutions=(("R1", "upgrade the VPN"),))
    _assign(ctx, meeting, "R1", "s1", ctx.now() + timedelta(days=1))
    _assign(ctx, meeting, "R1", "s1", ctx.now() + timedelta(days=2))
    _events(meeting)
    ctx.clock.advance(timedelta(days=3))
    assert _mark_resolution(ctx, meeting, "R1", 1) is None  # reassigned meanwhile
    assert _mark_resolution(ctx, meeting, "R1", 3) is None  # no such assignment
    assert _mark_resolution(ctx, meeting, "R9", 1) is None
    assert _events(meeting) == []
    first = _mark_resolution(ctx, meeting, "R1", 2)
    (overdue,) = _events(meeting)
    assert isinstance(overdue, Meeting.ResolutionOverdue)
    assert (first, overdue.assignment) == (overdue.event_id, 2)
    assert _mark_resolution(ctx, meeting, "R1", 2) == first
    assert _events(meeting) == []

    _assign(ctx, meeting, "R1", "s2", ctx.now() + timedelta(days=1))
    (assigned,) = _events(meeting)
    assert assigned.assignment == 3
    assert _mark_resolution(ctx, meeting, "R1", 2) == first  # still on record
    ctx.clock.advance(timedelta(days=2))
    _complete(ctx, meeting, "R1", "s2")
    late = _events(meeting)
    assert _types(late) == ["ResolutionOverdue", "ResolutionCompleted"]
    assert (late[0].assignment, late[1].assignment, late[1].on_time) == (3, 3, False)


def test_r4_5_replaying_the_events_rebuilds_the_meeting() -> None:
    """R4.5, R5.5: the events alone rebuild minutes, assignments and overdues."""
    ctx = Ctx()
    meeting = _hold(ctx, resolutions=(("R1", "upgrade the VPN"), ("R2", "hire a tester")))
    events = _events(meeting)
    ctx.clock.advance(timedelta(hours=30))
    _mark_minutes(ctx, meeting)
    _assign(ctx, meeting, "R1", "s1", ctx.now() + HOUR)
    _mark_owner(ctx, meeting, "R2")
    ctx.clock.advance(2 * HOUR)
    _mark_resolution(ctx, meeting, "R1", 1)
    _assign(ctx, meeting, "R1", "s2", ctx.now() + HOUR)
    _complete(ctx, meeting, "R1", "s2")
    _minutes(ctx, meeting)
    events += _events(meeting)
    assert _state(_replay(events)) == _state(meeting)


# -- a state machine -------------------------------------------------------------------

RESOLUTIONS: Final = ("R1", "R2", "R3")
USERS: Final = ("s1", "s2", "pm1")


class MeetingMachine(RuleBasedStateMachine):
    """Assignments, completions, minutes and every clock fired in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.ctx = Ctx()
        self.meeting = _hold(self.ctx, resolutions=tuple((r, f"do {r}") for r in RESOLUTIONS))
        self.log: list[Any] = _events(self.meeting)
        #: Per resolution, the deadline of each assignment (index 0 = assignment 1).
        self.deadlines: dict[str, list[datetime]] = {r: [] for r in RESOLUTIONS}
        self.done: set[str] = set()

    def _collect(self) -> list[Any]:
        events = _events(self.meeting)
        self.log += events
        return events

    @rule(minutes=st.integers(1, 60 * 40))
    def advance(self, minutes: int) -> None:
        self.ctx.clock.advance(timedelta(minutes=minutes))

    @rule(
        resolution=st.sampled_from(RESOLUTIONS),
        owner=st.sampled_from(USERS),
        hours=st.integers(-2, 30),
    )
    def assign(self, resolution: str, owner: str, hours: int) -> None:
        deadline = self.ctx.now() + timedelta(hours=hours)
        before = self.meeting.resolution(resolution)
        current = before["assignments"]
        past_deadline = (
            current > 0
            and before["status"] == "open"
            and before["deadline"] is not None
            and self.ctx.now() > before["deadline"]
            and current not in before["overdue_events"]
        )
        try:
            _assign(self.ctx, self.meeting, resolution, owner, deadline)
        except RuleViolation as refused:
            assert refused.rule == "R5.5"
            assert resolution in self.done or hours <= 0
            assert self._collect() == []
            return
        assert resolution not in self.done and hours > 0
        events = self._collect()
        assigned = events[-1]
        assert isinstance(assigned, Meeting.ResolutionAssigned)
        self.deadlines[resolution].append(deadline)
        assert assigned.assignment == len(self.deadlines[resolution])
        first = assigned.assignment == 1
        late = first and self.ctx.now() > self.meeting.owners_due_at
        assert assigned.on_time is not late
        owner_overdue_before = any(
            isinstance(e, Meeting.ResolutionOwnerOverdue) and e.resolution_id == resolution
            for e in self.log[: -len(events)]
        )
        expected = (
            (["ResolutionOwnerOverdue"] if late and not owner_overdue_before else [])
            # R3.5: a re-assignment after the deadline records that breach first.
            + (["ResolutionOverdue"] if past_deadline else [])
            + ["ResolutionAssigned"]
        )
        assert _types(events) == expected

    @rule(
        resolution=st.sampled_from(RESOLUTIONS),
        user=st.sampled_from(USERS),
        may_close=st.booleans(),
    )
    def complete(self, resolution: str, user: str, may_close: bool) -> None:
        state = self.meeting.resolution(resolution)
        try:
            _complete(self.ctx, self.meeting, resolution, user, may_close=may_close)
        except RuleViolation as refused:
            assert refused.rule == "R5.5"
            assert state["status"] != "open" or (
                refused.forbidden and user != state["owner"] and not may_close
            )
            assert self._collect() == []
            return
        assert resolution not in self.done
        assert user == state["owner"] or may_close
        self.done.add(resolution)
        events = self._collect()
        completed = events[-1]
        assert isinstance(completed, Meeting.ResolutionCompleted)
        assert completed.on_time is (self.ctx.now() <= self.deadlines[resolution][-1])
        assert completed.assignment == len(self.deadlines[resolution])

    @rule(resolution=st.sampled_from(RESOLUTIONS))
    def fire_owner_clock(self, resolution: str) -> None:
        if self.ctx.now() <= self.meeting.owners_due_at:
            return
        event_id = _mark_owner(self.ctx, self.meeting, resolution)
        events = self._collect()
        state = self.meeting.resolution(resolution)
        assert event_id == state["owner_overdue_event"]
        if events:
            assert _types(events) == ["ResolutionOwnerOverdue"]
            assert state["assignments"] == 0

    @rule(resolution=st.sampled_from(RESOLUTIONS), back=st.integers(0, 2))
    def fire_resolution_clock(self, resolution: str, back: int) -> None:
        """Fires the clock of the current assignment, or of an earlier (stale) one."""
        assignment = len(self.deadlines[resolution]) - back
        if assignment < 1 or self.ctx.now() <= self.deadlines[resolution][assignment - 1]:
            return
        recorded_before = self.meeting.resolution(resolution)["overdue_events"].get(assignment)
        event_id = _mark_resolution(self.ctx, self.meeting, resolution, assignment)
        events = self._collect()
        if recorded_before is not None:
            assert (event_id, events) == (recorded_before, [])
        elif back > 0 or resolution in self.done:
            assert (event_id, events) == (None, [])
        else:
            assert _types(events) == ["ResolutionOverdue"]
            assert event_id == events[0].event_id

    @rule()
    def file_minutes(self) -> None:
        filed = self.meeting.minutes_document is not None
        try:
            _minutes(self.ctx, self.meeting)
        except RuleViolation as refused:
            assert (refused.rule, filed) == ("R4.2", True)
            return
        events = self._collect()
        assert events[-1].on_time is (self.ctx.now() <= self.meeting.minutes_due_at)

    @rule()
    def fire_minutes_clock(self) -> None:
        if self.ctx.now() <= self.meeting.minutes_due_at:
            return
        event_id = _mark_minutes(self.ctx, self.meeting)
        self._collect()
        assert event_id == self.meeting.minutes_overdue_event

    @invariant()
    def overdues_are_recorded_at_most_once_and_before_the_late_step(self) -> None:
        owner_overdue: dict[str, int] = {}
        overdue: dict[tuple[str, int], int] = {}
        assignments: dict[str, list[int]] = {}
        for e in self.log:
            if isinstance(e, Meeting.ResolutionOwnerOverdue):
                owner_overdue[e.resolution_id] = owner_overdue.get(e.resolution_id, 0) + 1
                assert not assignments.get(e.resolution_id)  # never after an owner was fixed
            elif isinstance(e, Meeting.ResolutionOverdue):
                key = (e.resolution_id, e.assignment)
                overdue[key] = overdue.get(key, 0) + 1
                assert assignments[e.resolution_id][-1] == e.assignment
            elif isinstance(e, Meeting.ResolutionAssigned):
                numbers = assignments.setdefault(e.resolution_id, [])
                assert e.assignment == len(numbers) + 1
                numbers.append(e.assignment)
                if not e.on_time:
                    assert owner_overdue.get(e.resolution_id) == 1
            elif isinstance(e, Meeting.ResolutionCompleted):
                assert assignments[e.resolution_id][-1] == e.assignment
                if not e.on_time:
                    assert overdue.get((e.resolution_id, e.assignment)) == 1
        assert all(n == 1 for n in owner_overdue.values())
        assert all(n == 1 for n in overdue.values())
        minutes = _types([e for e in self.log if "Minutes" in type(e).EVENT_TYPE])
        assert minutes in (
            [],
            ["MinutesFiled"],
            ["MinutesOverdue"],
            ["MinutesOverdue", "MinutesFiled"],
        )
        filed = [e for e in self.log if isinstance(e, Meeting.MinutesFiled)]
        assert all(f.on_time is (minutes[0] == "MinutesFiled") for f in filed)

    def teardown(self) -> None:
        assert _state(_replay(self.log)) == _state(self.meeting)


def test_r5_5_r3_5_random_assignments_and_clocks_record_each_overdue_once() -> None:
    """R5.5, R4.2, R3.5: the state machine above."""
    run_state_machine_as_test(
        MeetingMachine,
        settings=settings(
            max_examples=150,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
