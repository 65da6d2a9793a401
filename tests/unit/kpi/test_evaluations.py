"""R6.2, R2.2, R2.3, R3.5: staff evaluations, `services.kpi.domain.evaluation`.

Proves that:

- evaluation periods are months (`2026-11`, the self-assessment) and quarters
  (`2026-Q4`, the superior's assessment), parsed, printed and followed
  correctly; a monthly one is due at the end of day 5 of the next month, a
  quarterly one at the end of the 10th day after the quarter, in Shanghai
  (`[evaluations]` of the policy, R6.2, R3.5);
- the directory's history answers who was what under whom on a day (R2.2),
  including backdated changes, a rotation and a promotion to Director;
- a period is owed by someone who ends it in the department as a PM or
  specialist, from the period they became one (never retroactively past a
  due time); the Director, newcomers after the period, and those who left
  during it owe nothing (R6.2);
- the quarter's assessor is the superior as of its last day, or the
  Director once that superior has left (R2.2);
- the aggregate refuses another person's self-assessment and anyone but the
  assessor's quarterly assessment (403, R6.2/R2.2), a second submission, a
  bad rating, a month not begun and a quarter not ended (409 R6.2); a late
  submission records its Overdue first; the engine's Overdue is idempotent
  and not recorded for one submitted in time; replay rebuilds the state;
- readers: the person, their superiors, their superior as of the period's
  end and whoever wrote or owes it.

A hypothesis state machine submits (rightly and wrongly) and moves the
clock and the deadline engine at random; afterwards every period ends as
exactly one of on time, late, overdue-then-late and overdue, with at most one
Overdue, never before its due time.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, cast
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from services.kpi.domain.evaluation import (
    RATINGS,
    Evaluation,
    Period,
    StaffHistory,
    Stint,
    assessor_of,
    chain_of,
    deadline_ref,
    due_at,
    evaluation_id,
    first_owed,
    may_read,
    obligation,
    parse_deadline_ref,
    readable_people,
    staff_history,
)
from services.kpi.domain.staff import Department, StaffRole
from shared.clock import ManualClock, SequentialIds
from shared.deadlines import deadline_id
from shared.domain import Actor, CommandContext, RuleViolation, command_context
from shared.policy import Policy, load_policy

POLICY = load_policy()
SHANGHAI = timedelta(hours=8)
MICROSECOND = timedelta(microseconds=1)
JOINED: Final = date(2026, 10, 1)
ROLES: Final[dict[str, str]] = {
    "dir": "director",
    "pm1": "project_manager",
    "pm2": "project_manager",
    "s1": "specialist",
    "s2": "specialist",
    "s3": "specialist",
}


def local(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC) - SHANGHAI


def end_of_day(year: int, month: int, day: int) -> datetime:
    return local(year, month, day) + timedelta(days=1) - MICROSECOND


START = local(2026, 10, 1, 9)


class Ctx:
    def __init__(self, start: datetime = START) -> None:
        self.clock = ManualClock(start)
        self.ids = SequentialIds()

    @contextmanager
    def as_(self, user: str = "dir") -> Iterator[None]:
        actor = Actor.SYSTEM if user == "system" else Actor(user, ROLES.get(user, "auditor"))
        ctx = CommandContext(actor=actor, correlation_id=uuid4(), clock=self.clock, new_id=self.ids)
        with command_context(ctx):
            yield

    def today(self) -> date:
        return POLICY.clock.local_date(self.clock.now())


class Directory:
    """The Department with its events so far: dir; pm1, pm2 under dir; s1,
    s2 under pm1, s3 under pm2; all joined on 2026-10-01 (recorded then)."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        with ctx.as_():
            self.d = Department.open(name="信息技术部")
        self.log: list[Any] = list(self.d.collect_events())
        for user, superior in [
            ("dir", None), ("pm1", "dir"), ("pm2", "dir"), ("s1", "pm1"), ("s2", "pm1"),
            ("s3", "pm2"),
        ]:  # fmt: skip
            self.join(user, ROLES[user], superior, JOINED)

    def _do(self, act: Callable[[Department], object]) -> None:
        with self.ctx.as_():
            act(self.d)
        self.log += self.d.collect_events()

    def join(self, user: str, role: str, superior: str | None, on: date) -> None:
        staff_role = cast(StaffRole, role)
        self._do(
            lambda d: d.join(
                user_id=user, name=f"员工 {user}", role=staff_role, superior=superior, joined_on=on
            )
        )

    def line(self, user: str, superior: str, on: date) -> None:
        self._do(
            lambda d: d.change_line(user_id=user, superior=superior, effective_on=on, reason="x")
        )

    def rotate_to_pm(self, user: str, on: date) -> None:
        self._do(
            lambda d: d.change_role(
                user_id=user, change="rotation", to_role="project_manager", superior="dir",
                effective_on=on, reason="轮岗", evaluation_ref=None,
            )
        )  # fmt: skip

    def succeed(self, new_director: str, on: date) -> None:
        self._do(
            lambda d: d.succeed_director(
                new_director=new_director, name=None, effective_on=on, reason="换届",
                evaluation_ref="E",
            )
        )  # fmt: skip

    def leave(self, user: str, on: date) -> None:
        self._do(lambda d: d.leave(user_id=user, left_on=on, reason="离职"))

    def history(self) -> StaffHistory:
        return staff_history(self.log)


def _stint(h: StaffHistory, user: str, day: date) -> Stint:
    stint = h[user].stint_on(day)
    assert stint is not None
    return stint


# -- an application without I/O: the evaluations in a dict of streams -------------------------


class Store:
    def __init__(self, ctx: Ctx, history: StaffHistory, policy: Policy = POLICY) -> None:
        self.ctx = ctx
        self.history = history
        self.policy = policy
        self.streams: dict[UUID, list[Any]] = {}

    def load(self, user: str, period: Period) -> Evaluation | None:
        events = self.streams.get(evaluation_id(user, period))
        if not events:
            return None
        created, *rest = events
        aggregate = created.mutate(None)
        for e in rest:
            aggregate = e.mutate(aggregate)
        assert isinstance(aggregate, Evaluation)
        return aggregate

    def _save(self, e: Evaluation) -> list[Any]:
        new = list(e.collect_events())
        self.streams.setdefault(e.id, []).extend(new)
        return new

    def clock_of(self, user: str, period: Period) -> UUID:
        ref = deadline_ref(period, user)
        return deadline_id(period.deadline_kind, evaluation_id(user, period), ref)

    def submit(self, by: str, user: str, period: str, rating: int = 4) -> list[Any]:
        """Like KpiApplication.submit_evaluation; a refusal stores nothing."""
        p = Period.parse(period)
        now, today = self.ctx.clock.now(), self.ctx.today()
        e = self.load(user, p)
        with self.ctx.as_(by):
            if e is None:
                e = Evaluation.open(obligation(self.policy, self.history, user, p, today))
            e.submit(
                by=by,
                by_role=ROLES.get(by, "auditor"),
                assessor=user if p.kind == "self" else assessor_of(self.history, user, p),
                rating=rating,
                strengths="按时交付",
                improvements="风险预判",
                comment=None,
                now=now,
                today=today,
                deadline_id=self.clock_of(user, p),
            )
        return self._save(e)

    def fire(self, user: str, period: str) -> UUID | None:
        """Like KpiApplication.record_evaluation_overdue."""
        p = Period.parse(period)
        e = self.load(user, p)
        with self.ctx.as_("system"):
            if e is None:
                try:
                    owed = obligation(self.policy, self.history, user, p, self.ctx.today())
                except RuleViolation:
                    return None
                e = Evaluation.open(owed, due=due_at(self.policy, p))
            owed_by = user if p.kind == "self" else assessor_of(self.history, user, p)
            event_id = e.mark_overdue(deadline_id=self.clock_of(user, p), owed_by=owed_by)
        self._save(e)
        return event_id


def _types(events: list[Any]) -> list[str]:
    return [type(e).EVENT_TYPE for e in events]


def _refused(call: Callable[[], object], rule: str, *, forbidden: bool = False) -> str:
    with pytest.raises(RuleViolation) as refused:
        call()
    assert (refused.value.rule, refused.value.forbidden) == (rule, forbidden)
    return refused.value.detail


@pytest.fixture
def ctx() -> Ctx:
    return Ctx()


@pytest.fixture
def store(ctx: Ctx) -> Store:
    return Store(ctx, Directory(ctx).history())


# -- periods and due times (R6.2, R3.5) --------------------------------------------------------


def test_r6_2_periods_are_months_and_quarters() -> None:
    """R6.2: `2026-11` is a month (self-assessment), `2026-Q4` a quarter
    (superior's assessment); keys round-trip; ends and successors cross the
    year; anything else is refused naming both forms."""
    nov, q4 = Period.parse("2026-11"), Period.parse("2026-q4")
    assert (nov.kind, nov.start, nov.end, nov.key) == (
        "self",
        date(2026, 11, 1),
        date(2026, 11, 30),
        "2026-11",
    )
    assert (q4.kind, q4.start, q4.end, q4.key) == (
        "superior",
        date(2026, 10, 1),
        date(2026, 12, 31),
        "2026-Q4",
    )
    assert (str(nov.next().next()), str(q4.next())) == ("2027-01", "2027-Q1")
    assert Period.parse("2028-02").end == date(2028, 2, 29)
    assert Period.of("superior", date(2026, 8, 15)) == Period.parse("2026-Q3")
    assert Period.of("self", date(2026, 8, 15)) == Period.parse("2026-08")
    assert (nov.deadline_kind, q4.deadline_kind) == ("self_assessment", "superior_assessment")
    for bad in ("2026-13", "2026-00", "2026-Q5", "2026-W48", "26-11", "1999-11", "2026-11-01", ""):
        with pytest.raises(ValueError, match="2026-Q4"):
            Period.parse(bad)
    with pytest.raises(ValueError):
        Period(date(2026, 11, 1), "superior")  # a quarter starts in Jan, Apr, Jul or Oct
    assert parse_deadline_ref(deadline_ref(q4, "sp#1")) == (q4, "sp#1")
    assert evaluation_id("s1", nov) == evaluation_id("s1", Period.parse("2026-11"))
    assert evaluation_id("s1", nov) != evaluation_id("s2", nov)


@pytest.mark.parametrize(
    ("period", "due"),
    [
        ("2026-10", end_of_day(2026, 11, 5)),
        ("2026-12", end_of_day(2027, 1, 5)),  # crosses the year
        ("2026-Q3", end_of_day(2026, 10, 10)),  # in the National Day holiday: calendar days
        ("2026-Q4", end_of_day(2027, 1, 10)),
    ],
)
def test_r6_2_r3_5_due_times_are_the_policys_end_of_day_in_shanghai(
    period: str, due: datetime
) -> None:
    """R6.2, R3.5: day 5 of the next month; the 10th day after the quarter."""
    assert due_at(POLICY, Period.parse(period)) == due


def test_r6_2_the_due_days_come_from_the_policy_file() -> None:
    """R6.2: `[evaluations]` changes the due days without code changes."""
    policy = Policy.model_validate(
        {"evaluations": {"self_assessment_due_day": 10, "superior_assessment_due_days": 20}}
    )
    assert due_at(policy, Period.parse("2026-11")) == end_of_day(2026, 12, 10)
    assert due_at(policy, Period.parse("2026-Q4")) == end_of_day(2027, 1, 20)


def test_r6_2_nothing_is_owed_retroactively() -> None:
    """R6.2: the first period owed is the one a person became a PM or
    specialist in, unless its due time had passed when that was recorded."""
    recorded = local(2026, 11, 3, 10)
    assert first_owed(POLICY, "self", date(2026, 10, 20), recorded) == Period.parse("2026-10")
    later = local(2026, 11, 6, 10)
    assert first_owed(POLICY, "self", date(2026, 10, 20), later) == Period.parse("2026-11")
    assert first_owed(POLICY, "self", date(2026, 1, 1), later) == Period.parse("2026-11")
    assert first_owed(POLICY, "superior", date(2026, 1, 1), later) == Period.parse("2026-Q4")
    assert first_owed(POLICY, "superior", date(2026, 9, 1), local(2026, 10, 10, 9)) == Period.parse(
        "2026-Q3"
    )


# -- the directory's history (R2.2) ------------------------------------------------------------


def test_r2_2_the_history_answers_who_was_what_under_whom_on_a_day(ctx: Ctx) -> None:
    """R2.2: s1 moves from pm1 to pm2 on 11-15 (recorded that day), s2 from
    pm1 to pm2 backdated to 11-01 (recorded 11-20), s3 rotates to PM on
    12-01: the history answers each day; a rotation between PM and
    specialist continues the evaluated run; the current chain and the
    people each PM may read follow."""
    d = Directory(ctx)
    ctx.clock.set(local(2026, 11, 15, 10))
    d.line("s1", "pm2", date(2026, 11, 15))
    ctx.clock.set(local(2026, 11, 20, 10))
    d.line("s2", "pm2", date(2026, 11, 1))
    d.rotate_to_pm("s3", date(2026, 12, 1))
    h = d.history()
    assert [_stint(h, "s1", date(2026, 11, day)).superior for day in (14, 15)] == ["pm1", "pm2"]
    assert _stint(h, "s2", date(2026, 11, 1)).superior == "pm2"
    assert h["s1"].stint_on(date(2026, 9, 30)) is None
    assert [_stint(h, "s3", date(2026, 11, 30)).role, _stint(h, "s3", date(2026, 12, 1)).role] == [
        "specialist",
        "project_manager",
    ]
    s3 = h["s3"]
    # A rotation between the evaluated roles continues the run.
    run = s3.evaluated_run(date(2026, 12, 31))
    assert run is not None and run.since == JOINED
    assert (s3.role, s3.superior) == ("project_manager", "dir")
    assert chain_of(h, "s1") == ["pm2", "dir"]
    assert readable_people(h, "pm1") == {"pm1", "s1", "s2"}  # reported to pm1 once
    assert readable_people(h, "pm2") == {"pm2", "s1", "s2", "s3"}


# -- who owes what (R6.2) ----------------------------------------------------------------------


def test_r6_2_pms_and_specialists_owe_the_director_does_not(store: Store) -> None:
    """R6.2: the obligation names role and superior as of the period's end
    (today for a month still running) and the policy's due time."""
    owed = obligation(POLICY, store.history, "s1", Period.parse("2026-Q4"), date(2027, 1, 2))
    assert (owed.role, owed.superior, owed.name) == ("specialist", "pm1", "员工 s1")
    assert owed.due_at == end_of_day(2027, 1, 10)
    owed = obligation(POLICY, store.history, "pm1", Period.parse("2026-10"), date(2026, 10, 2))
    assert (owed.role, owed.superior) == ("project_manager", "dir")
    detail = _refused(
        lambda: obligation(
            POLICY, store.history, "dir", Period.parse("2026-10"), date(2026, 11, 2)
        ),
        "R6.2",
    )
    assert "director" in detail
    _refused(
        lambda: obligation(
            POLICY, store.history, "ghost", Period.parse("2026-10"), date(2026, 11, 2)
        ),
        "R6.2",
    )
    detail = _refused(
        lambda: obligation(POLICY, store.history, "s1", Period.parse("2026-09"), date(2026, 11, 2)),
        "R6.2",
    )
    assert "joined" in detail


def test_r6_2_leaving_or_becoming_director_ends_what_is_owed(ctx: Ctx) -> None:
    """R6.2: s3 leaves on 11-20: October still owed, November and Q4 not;
    pm1 becomes the Director on 11-15 (succession): October owed, November
    not; s4, recorded on 12-03 as joined in January, owes from November."""
    d = Directory(ctx)
    ctx.clock.set(local(2026, 11, 14, 10))
    d.line("s1", "pm2", date(2026, 11, 14))
    d.line("s2", "pm2", date(2026, 11, 14))
    d.leave("s3", date(2026, 11, 20))
    d.succeed("pm1", date(2026, 11, 15))
    ctx.clock.set(local(2026, 12, 3, 10))
    d.join("s4", "specialist", "pm2", date(2026, 1, 1))
    h = d.history()
    today = date(2026, 12, 20)

    def owed(user: str, period: str) -> str | None:
        """None when owed, else why not."""
        try:
            obligation(POLICY, h, user, Period.parse(period), today)
        except RuleViolation as refused:
            assert refused.rule == "R6.2" and not refused.forbidden
            return refused.detail
        return None

    for user in ("s3", "pm1"):
        assert owed(user, "2026-10") is None
        assert owed(user, "2026-11") is not None
        assert owed(user, "2026-Q4") is not None
    assert "left" in _refused(
        lambda: obligation(POLICY, h, "s3", Period.parse("2026-11"), today), "R6.2"
    )
    detail = _refused(lambda: obligation(POLICY, h, "s4", Period.parse("2026-10"), today), "R6.2")
    assert "owed from 2026-11" in detail
    obligation(POLICY, h, "s4", Period.parse("2026-11"), today)
    obligation(POLICY, h, "s4", Period.parse("2026-Q4"), today)
    # The old Director left; pm1 is the Director; nothing for either of them from now on.
    _refused(lambda: obligation(POLICY, h, "dir", Period.parse("2026-10"), today), "R6.2")


def test_r2_2_the_quarter_is_assessed_by_the_superior_at_its_end(ctx: Ctx) -> None:
    """R2.2: s1 moves to pm2 mid-quarter: pm2 assesses Q4; s2 moves after
    the quarter: pm1 still assesses Q4, and the Director once pm1 left; pm1's
    own Q4 goes to the Director."""
    d = Directory(ctx)
    ctx.clock.set(local(2026, 11, 15, 10))
    d.line("s1", "pm2", date(2026, 11, 15))
    ctx.clock.set(local(2027, 1, 2, 10))
    d.line("s2", "pm2", date(2027, 1, 2))
    q4 = Period.parse("2026-Q4")
    h = d.history()
    assessors = [assessor_of(h, u, q4) for u in ("s1", "s2", "s3", "pm1")]
    assert assessors == ["pm2", "pm1", "pm2", "dir"]
    d.leave("pm1", date(2027, 1, 3))
    h = d.history()
    assert assessor_of(h, "s2", q4) == "dir"
    assert assessor_of(h, "pm1", q4) == "dir"


# -- the aggregate (R6.2) ----------------------------------------------------------------------


def test_r6_2_a_self_assessment_on_time(store: Store) -> None:
    """R6.2: s1 writes October on 10-30: EvaluationOpened (who, role,
    superior, period, due) then SelfAssessmentSubmitted on time."""
    store.ctx.clock.set(local(2026, 10, 30, 10))
    events = store.submit("s1", "s1", "2026-10", rating=5)
    assert _types(events) == ["EvaluationOpened", "SelfAssessmentSubmitted"]
    opened, submitted = events
    assert (opened.user_id, opened.role, opened.superior, opened.kind, opened.period) == (
        "s1", "specialist", "pm1", "self", "2026-10",
    )  # fmt: skip
    assert opened.due_at == end_of_day(2026, 11, 5)
    assert (submitted.rating, submitted.on_time, submitted.submitted_at) == (
        5, True, local(2026, 10, 30, 10),
    )  # fmt: skip
    assert submitted.actor_id == "s1"
    e = store.load("s1", Period.parse("2026-10"))
    assert e is not None and (e.status, e.author, e.id) == (
        "on_time",
        "s1",
        evaluation_id("s1", e.period),
    )
    assert RATINGS[5].startswith("优秀")


def test_r6_2_r2_2_only_the_person_and_the_assessor_write(store: Store) -> None:
    """R6.2, R2.2: another person's self-assessment, a quarterly assessment
    by anyone but the superior at the quarter's end, and one of oneself are
    forbidden (403); nothing is recorded."""
    store.ctx.clock.set(local(2027, 1, 4, 10))
    _refused(lambda: store.submit("s2", "s1", "2026-10"), "R6.2", forbidden=True)
    detail = _refused(lambda: store.submit("pm2", "s1", "2026-Q4"), "R2.2", forbidden=True)
    assert "pm1" in detail
    _refused(lambda: store.submit("s2", "s1", "2026-Q4"), "R2.2", forbidden=True)
    _refused(lambda: store.submit("pm1", "pm1", "2026-Q4"), "R6.2", forbidden=True)
    assert store.streams == {}
    assert _types(store.submit("pm1", "s1", "2026-Q4")) == [
        "EvaluationOpened",
        "SuperiorAssessmentSubmitted",
    ]
    assert _types(store.submit("dir", "pm1", "2026-Q4"))[-1] == "SuperiorAssessmentSubmitted"


def test_r6_2_timing_twice_and_ratings_are_refused(store: Store) -> None:
    """R6.2: a month is written from its first day, a quarter after its
    last; a second submission and a rating outside 1-5 are refused (409)."""
    store.ctx.clock.set(local(2026, 10, 31, 23))
    assert "2026-11-01" in _refused(lambda: store.submit("s1", "s1", "2026-11"), "R6.2")
    assert "whole quarter" in _refused(lambda: store.submit("pm1", "s1", "2026-Q4"), "R6.2")
    store.ctx.clock.set(local(2026, 11, 1, 0))
    store.submit("s1", "s1", "2026-11")  # from the first minute of the month, Shanghai time
    assert "already" in _refused(lambda: store.submit("s1", "s1", "2026-11"), "R6.2")
    assert "1 to 5" in _refused(lambda: store.submit("s1", "s1", "2026-10", rating=0), "R6.2")
    store.ctx.clock.set(local(2027, 1, 1, 0))
    store.submit("pm1", "s1", "2026-Q4")


def test_r6_2_r3_5_a_late_submission_records_its_overdue_first(store: Store) -> None:
    """R6.2, R3.5: s1 writes October after 2026-11-05 ended in Shanghai,
    before the engine fired: SelfAssessmentOverdue (naming its clock, owed
    by s1, superior pm1) then SelfAssessmentSubmitted with on_time false;
    the engine then finds the Overdue and records nothing."""
    store.ctx.clock.set(end_of_day(2026, 11, 5))
    assert _types(store.submit("s1", "s1", "2026-10"))[-1] == "SelfAssessmentSubmitted"
    store.ctx.clock.set(end_of_day(2026, 11, 5) + MICROSECOND)
    events = store.submit("s2", "s2", "2026-10")
    assert _types(events) == [
        "EvaluationOpened",
        "SelfAssessmentOverdue",
        "SelfAssessmentSubmitted",
    ]
    _, overdue, late = events
    assert (overdue.owed_by, overdue.superior, overdue.deadline_id) == (
        "s2", "pm1", store.clock_of("s2", Period.parse("2026-10")),
    )  # fmt: skip
    assert (late.on_time, late.due_at) == (False, end_of_day(2026, 11, 5))
    assert store.fire("s2", "2026-10") == overdue.event_id
    assert store.fire("s1", "2026-10") is None  # written in time
    assert len(store.streams[evaluation_id("s2", Period.parse("2026-10"))]) == 3
    late_e = store.load("s2", Period.parse("2026-10"))
    assert late_e is not None and (late_e.status, late_e.owed_by) == ("late", "s2")


def test_r6_2_r3_5_the_engine_records_a_missed_one_once(store: Store) -> None:
    """R6.2, R3.5: the engine's SuperiorAssessmentOverdue names the superior
    who owes it; firing again returns the same event; a late assessment
    follows it without a second Overdue; someone not owing (the Director)
    gets none."""
    store.ctx.clock.set(end_of_day(2027, 1, 10) + MICROSECOND)
    first = store.fire("s1", "2026-Q4")
    assert first is not None and store.fire("s1", "2026-Q4") == first
    events = store.streams[evaluation_id("s1", Period.parse("2026-Q4"))]
    assert _types(events) == ["EvaluationOpened", "SuperiorAssessmentOverdue"]
    assert (events[1].owed_by, events[1].actor_id) == ("pm1", "system")
    assert store.fire("dir", "2026-10") is None
    store.ctx.clock.set(local(2027, 1, 12, 10))
    late = store.submit("pm1", "s1", "2026-Q4")
    assert _types(late) == ["SuperiorAssessmentSubmitted"] and late[0].on_time is False
    assert store.fire("s1", "2026-Q4") == first


def test_r6_2_replaying_an_evaluation_rebuilds_it(store: Store) -> None:
    """R6.2: the aggregate rebuilt from its events equals the one that recorded them."""
    store.ctx.clock.set(local(2027, 1, 12, 10))
    p = Period.parse("2026-Q4")
    with store.ctx.as_("pm1"):
        e = Evaluation.open(obligation(POLICY, store.history, "s1", p, store.ctx.today()))
        e.mark_overdue(deadline_id=store.clock_of("s1", p), owed_by="pm1")
        e.submit(
            by="pm1", by_role="project_manager", assessor="pm1", rating=3, strengths="a",
            improvements="b", comment="c", now=store.ctx.clock.now(), today=store.ctx.today(),
            deadline_id=store.clock_of("s1", p),
        )  # fmt: skip
    events = list(e.collect_events())
    store.streams[e.id] = events
    replayed = store.load("s1", p)

    def state(x: Any) -> dict[str, Any]:
        return copy.deepcopy({k: v for k, v in vars(x).items() if k != "_pending_events"})

    assert state(replayed) == state(e)
    assert e.status == "late" and e.submission.comment == "c"


def test_r6_2_who_may_read_an_evaluation(store: Store) -> None:
    """R6.2: the person, their superiors now, their superior at the period's
    end and whoever wrote or owes it; colleagues and other PMs not."""
    h, q4 = store.history, Period.parse("2026-Q4")
    assert all(may_read(h, r, "s1", q4, involved=[]) for r in ("s1", "pm1", "dir"))
    assert not any(may_read(h, r, "s1", q4, involved=[]) for r in ("s2", "pm2", "s3"))
    assert may_read(h, "pm2", "s1", q4, involved=["pm2"])


# -- the obligation state machine (R6.2, R3.5) --------------------------------------------------

MONTHS = ["2026-09", "2026-10", "2026-11", "2026-12", "2027-01", "2027-02", "2027-03"]
QUARTERS = ["2026-Q3", "2026-Q4", "2027-Q1"]
OWED = [p for p in MONTHS + QUARTERS if p not in ("2026-09", "2026-Q3")]  # joined 2026-10-01


class ObligationMachine(RuleBasedStateMachine):
    """s1 (a specialist under pm1) and the deadline engine, at random: the
    right and wrong authors submit, time moves, the engine fires (or lags)."""

    def __init__(self) -> None:
        super().__init__()
        self.ctx = Ctx()
        self.store = Store(self.ctx, Directory(self.ctx).history())

    def _expected_refusal(self, by: str, period: Period) -> str | None:
        today = self.ctx.today()
        if period.key not in OWED:
            return "R6.2"
        author = "s1" if period.kind == "self" else "pm1"
        if by != author:
            return "R6.2" if period.kind == "self" or by == "s1" else "R2.2"
        e = self.store.load("s1", period)
        if e is not None and e.submission is not None:
            return "R6.2"
        if period.kind == "self" and today < period.start:
            return "R6.2"
        if period.kind == "superior" and today <= period.end:
            return "R6.2"
        return None

    @rule(hours=st.integers(1, 24 * 20))
    def advance(self, hours: int) -> None:
        self.ctx.clock.advance(timedelta(hours=hours))

    @rule(
        period=st.sampled_from(MONTHS + QUARTERS),
        right=st.integers(0, 9),
        wrong=st.sampled_from(["s1", "pm1", "pm2", "s2"]),
    )
    def submit(self, period: str, right: int, wrong: str) -> None:
        """Mostly the right author (s1 for a month, pm1 for a quarter)."""
        p = Period.parse(period)
        by = ("s1" if p.kind == "self" else "pm1") if right < 8 else wrong
        expected = self._expected_refusal(by, p)
        before = copy.deepcopy({k: len(v) for k, v in self.store.streams.items()})
        overdue_before = self._overdue_id(p)
        try:
            events = self.store.submit(by, "s1", period)
        except RuleViolation as refused:
            assert expected is not None, f"refused unexpectedly: {refused}"
            assert refused.rule == expected, refused
            assert {k: len(v) for k, v in self.store.streams.items()} == before
            return
        assert expected is None, f"accepted, expected {expected}"
        submitted = events[-1]
        due = due_at(POLICY, p)
        assert submitted.on_time == (overdue_before is None and self.ctx.clock.now() <= due)

    def _overdue_id(self, p: Period) -> UUID | None:
        e = self.store.load("s1", p)
        return e.overdue_event if e else None

    @rule()
    def engine(self) -> None:
        """The engine fires every pending clock that has passed."""
        now = self.ctx.clock.now()
        for period in OWED:
            p = Period.parse(period)
            if due_at(POLICY, p) <= now:
                e = self.store.load("s1", p)
                before = e.overdue_event if e else None
                fired = self.store.fire("s1", period)
                if before is not None:
                    assert fired == before  # idempotent
                elif e is not None and e.submission is not None:
                    assert fired is None  # written in time: the projector meets it

    @invariant()
    def at_most_one_overdue_and_one_submission_never_early(self) -> None:
        for events in self.store.streams.values():
            kinds = _types(events)
            assert kinds[0] == "EvaluationOpened"
            overdue = [e for e in events if type(e).EVENT_TYPE.endswith("Overdue")]
            submitted = [e for e in events if type(e).EVENT_TYPE.endswith("Submitted")]
            assert len(overdue) <= 1 and len(submitted) <= 1
            for o in overdue:
                assert o.timestamp >= o.due_at, "an Overdue before the due time"
            for s in submitted:
                if s.on_time:
                    assert not overdue and s.submitted_at <= s.due_at
                else:
                    assert overdue and kinds.index(type(overdue[0]).EVENT_TYPE) < kinds.index(
                        type(s).EVENT_TYPE
                    )

    def teardown(self) -> None:
        """Past every due time, with the engine run: each period ended as
        exactly one of on time, late, overdue-then-late and overdue."""
        self.ctx.clock.set(end_of_day(2027, 4, 10) + timedelta(days=1))
        self.engine()
        for period in OWED:
            events = self.store.streams[evaluation_id("s1", Period.parse(period))]
            kinds = _types(events)[1:]
            by_engine = len(kinds) > 0 and events[1].actor_id == "system"
            submitted = kinds[-1].endswith("Submitted")
            outcomes = {
                "on_time": kinds == [kinds[-1]] and submitted and events[-1].on_time,
                "late": len(kinds) == 2 and submitted and not by_engine,
                "overdue_then_late": len(kinds) == 2 and submitted and by_engine,
                "overdue": kinds == [kinds[0]] and kinds[0].endswith("Overdue"),
            }
            assert sum(outcomes.values()) == 1, (period, kinds, outcomes)


def test_r6_2_r3_5_every_period_ends_exactly_one_way() -> None:
    """R6.2, R3.5: the obligation state machine above, at random."""
    run_state_machine_as_test(
        ObligationMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=60,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
