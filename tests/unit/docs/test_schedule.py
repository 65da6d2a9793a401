"""R4.3, R3.5: the ReportSchedule aggregate, `services.docs.domain.schedule`.

Proves, with the calendar of config/policy.toml (Asia/Shanghai, the 2026
holidays, weekly reports due on Friday, monthly on day 5 of the next month,
quarterly on the last day of the quarter, due days moved to the next working
day, a first period owed only if its report falls due 3 days or more after the
first day), that:

- opening a schedule puts one period per report kind on the clock, with its
  end-of-day due time in Shanghai (as UTC), and skips a first period that
  falls due too soon;
- a report filed by its due time (inclusive) records ReportFiled and opens the
  next period; one filed a moment later records ReportOverdue, then
  ReportFiledLate, then the next period, with exactly one ReportOverdue;
- the deadline engine's `mark_overdue` records ReportOverdue once (the same
  event id when it fires again, no new event), opens the next period, and
  records nothing for a filed period, a period not owed yet or a closed schedule;
- a later period filed early is skipped when the open one closes;
- a period before the first one, a second filing and any filing after closure
  record nothing;
- the National Day week (2026-W40) across the quarter end is due on Thursday
  8 October, the first working day after the holidays;
- replaying the events from scratch rebuilds the live state.

A hypothesis state machine then files random started periods (on time or
late), fires the deadline engine for open periods whose due time passed,
moves the clock and closes the schedule, checking the invariants of every
period's record over the whole event log.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from services.docs.domain.periods import (
    REPORT_KINDS,
    REPORT_PERIOD,
    Period,
    ReportKind,
    first_report_period,
    report_due_at,
)
from services.docs.domain.schedule import (
    PeriodStatus,
    ReportSchedule,
    period_ref,
    schedule_id,
)
from shared.clock import ManualClock, SequentialIds
from shared.domain import Actor, CommandContext, LedgerAggregate, command_context
from shared.policy import load_policy

POLICY = load_policy()
SHANGHAI = ZoneInfo("Asia/Shanghai")
PM = Actor("pm1", "project_manager")
MICRO = timedelta(microseconds=1)
PROJECT = uuid5(NAMESPACE_URL, "project-1")
#: The deadline engine's clocks, as the application names them (one per period).
CLOCK_NS: Final = uuid5(NAMESPACE_URL, "report-clock")


def due(kind: ReportKind, period: Period) -> datetime:
    return report_due_at(POLICY, kind, period)


def first_period(kind: ReportKind, day: date) -> Period:
    return first_report_period(POLICY, kind, day)


def clock_of(kind: ReportKind, period: str) -> UUID:
    return uuid5(CLOCK_NS, period_ref(kind, period))


def local(day: date, hour: int = 10) -> datetime:
    """`hour` o'clock on `day` in Shanghai, as UTC."""
    return datetime.combine(day, time(hour), tzinfo=SHANGHAI).astimezone(UTC)


def end_of_day_utc(day: date) -> datetime:
    """The last instant of `day` in Shanghai: 15:59:59.999999 UTC."""
    return datetime.combine(day, time(15, 59, 59, 999999), tzinfo=UTC)


def week(key: str) -> Period:
    return Period.parse(key)


class Ctx:
    """A manual clock, sequential ids and a command context per actor."""

    def __init__(self, start: datetime) -> None:
        self.clock = ManualClock(start)
        self.ids = SequentialIds()

    @contextmanager
    def as_(self, actor: Actor = PM) -> Iterator[None]:
        ctx = CommandContext(actor=actor, correlation_id=uuid4(), clock=self.clock, new_id=self.ids)
        with command_context(ctx):
            yield

    def now(self) -> datetime:
        return self.clock.now()


def _open(ctx: Ctx, first_day: date) -> ReportSchedule:
    with ctx.as_(Actor.SYSTEM):
        return ReportSchedule.start(
            project_id=PROJECT,
            project_name="XX项目",
            project_manager="pm1",
            first_day=first_day,
            first_period=first_period,
            due=due,
        )


def _file(
    ctx: Ctx, schedule: ReportSchedule, kind: ReportKind, period: Period
) -> PeriodStatus | None:
    with ctx.as_(PM):
        return schedule.file(
            kind=kind,
            period=period,
            document_id=uuid5(NAMESPACE_URL, f"doc/{kind}/{period.key}"),
            filed_by=PM.user_id,
            now=ctx.now(),
            due=due,
            clock_of=clock_of,
        )


def _mark(ctx: Ctx, schedule: ReportSchedule, kind: ReportKind, period: Period) -> UUID | None:
    with ctx.as_(Actor.SYSTEM):
        return schedule.mark_overdue(
            kind=kind, period=period, deadline_id=clock_of(kind, period.key), due=due
        )


def _names(events: list[Any]) -> list[tuple[str, str, str]]:
    """(event type, kind, period) of each event, for order assertions."""
    return [(type(e).EVENT_TYPE, getattr(e, "kind", ""), getattr(e, "period", "")) for e in events]


def _events(aggregate: LedgerAggregate) -> list[Any]:
    """The aggregate's new events (typed loosely: each test checks the class)."""
    return list(aggregate.collect_events())


def _state(aggregate: ReportSchedule) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in vars(aggregate).items() if k != "_pending_events"})


def _replay(events: list[Any]) -> ReportSchedule:
    created, *rest = events
    aggregate = created.mutate(None)
    for e in rest:
        aggregate = e.mutate(aggregate)
    assert isinstance(aggregate, ReportSchedule)
    return aggregate


# -- opening ---------------------------------------------------------------------------


def test_r4_3_opening_puts_one_period_per_kind_on_the_clock() -> None:
    """R4.3, R3.5: a schedule from Monday 2026-11-23 owes 2026-W48 (due Friday
    27 Nov), 2026-11 (due 5 Dec, a Saturday, so Monday 7 Dec) and 2026-Q4 (due
    Thursday 31 Dec), each at the end of the day in Shanghai (15:59:59.999999Z)."""
    ctx = Ctx(local(date(2026, 11, 23), 9))
    schedule = _open(ctx, date(2026, 11, 23))
    created, *opened = _events(schedule)
    assert isinstance(created, ReportSchedule.Created)
    assert schedule.id == schedule_id(PROJECT)
    assert (created.project_id, created.first_day, created.actor_id) == (
        PROJECT,
        date(2026, 11, 23),
        "system",
    )
    assert [
        (type(e), e.kind, e.period, e.period_start, e.period_end, e.due_at, e.project_manager)
        for e in opened
    ] == [
        (
            ReportSchedule.PeriodOpened,
            "weekly",
            "2026-W48",
            date(2026, 11, 23),
            date(2026, 11, 29),
            datetime(2026, 11, 27, 15, 59, 59, 999999, tzinfo=UTC),
            "pm1",
        ),
        (
            ReportSchedule.PeriodOpened,
            "monthly",
            "2026-11",
            date(2026, 11, 1),
            date(2026, 11, 30),
            datetime(2026, 12, 7, 15, 59, 59, 999999, tzinfo=UTC),
            "pm1",
        ),
        (
            ReportSchedule.PeriodOpened,
            "quarterly",
            "2026-Q4",
            date(2026, 10, 1),
            date(2026, 12, 31),
            datetime(2026, 12, 31, 15, 59, 59, 999999, tzinfo=UTC),
            "pm1",
        ),
    ]
    assert schedule.open == {"weekly": "2026-W48", "monthly": "2026-11", "quarterly": "2026-Q4"}
    assert all(s["status"] == "open" for s in schedule.periods.values())


def test_r4_3_a_first_period_due_too_soon_is_not_owed() -> None:
    """R4.3: from Thursday 2026-11-26 the week's report would be due the next
    day (fewer than first_period_min_days = 3), so the schedule starts with
    2026-W49 (due Friday 4 Dec); November's and Q4's reports are still owed."""
    ctx = Ctx(local(date(2026, 11, 26)))
    schedule = _open(ctx, date(2026, 11, 26))
    assert schedule.open == {"weekly": "2026-W49", "monthly": "2026-11", "quarterly": "2026-Q4"}
    assert schedule.periods["weekly:2026-W49"]["due_at"] == end_of_day_utc(date(2026, 12, 4))


# -- filing ----------------------------------------------------------------------------


def test_r4_3_a_report_filed_by_its_due_time_opens_the_next_period() -> None:
    """R4.3: filed at the very due instant is on time (ReportFiled); the next
    week (2026-W49, due Friday 4 Dec) goes on the clock."""
    ctx = Ctx(local(date(2026, 11, 23), 9))
    schedule = _open(ctx, date(2026, 11, 23))
    _events(schedule)
    ctx.clock.set(end_of_day_utc(date(2026, 11, 27)))
    assert _file(ctx, schedule, "weekly", week("2026-W48")) == "filed"
    filed, opened = _events(schedule)
    assert isinstance(filed, ReportSchedule.Filed)
    assert (filed.kind, filed.period, filed.filed_by, filed.filed_at, filed.due_at) == (
        "weekly",
        "2026-W48",
        "pm1",
        end_of_day_utc(date(2026, 11, 27)),
        end_of_day_utc(date(2026, 11, 27)),
    )
    assert filed.document_id == uuid5(NAMESPACE_URL, "doc/weekly/2026-W48")
    assert isinstance(opened, ReportSchedule.PeriodOpened)
    assert (opened.kind, opened.period, opened.due_at) == (
        "weekly",
        "2026-W49",
        end_of_day_utc(date(2026, 12, 4)),
    )
    assert schedule.periods["weekly:2026-W48"]["status"] == "filed"
    assert schedule.open["weekly"] == "2026-W49"


def test_r4_3_r3_5_a_late_report_records_its_overdue_first_then_filed_late() -> None:
    """R4.3, R3.5: a moment after the due time, with the deadline engine not
    yet fired: ReportOverdue, then ReportFiledLate, then the next period, in
    that order, and exactly one ReportOverdue."""
    ctx = Ctx(local(date(2026, 11, 23), 9))
    schedule = _open(ctx, date(2026, 11, 23))
    _events(schedule)
    due_at = end_of_day_utc(date(2026, 11, 27))
    ctx.clock.set(due_at + MICRO)
    assert _file(ctx, schedule, "weekly", week("2026-W48")) == "filed_late"
    events = _events(schedule)
    assert _names(events) == [
        ("ReportOverdue", "weekly", "2026-W48"),
        ("ReportFiledLate", "weekly", "2026-W48"),
        ("ReportPeriodOpened", "weekly", "2026-W49"),
    ]
    overdue, late, _ = events
    assert isinstance(overdue, ReportSchedule.Overdue)
    assert isinstance(late, ReportSchedule.FiledLate)
    assert (overdue.due_at, overdue.deadline_id, overdue.project_manager) == (
        due_at,
        clock_of("weekly", "2026-W48"),
        "pm1",
    )
    assert (late.due_at, late.filed_at, late.hours_late) == (due_at, due_at + MICRO, 0.0)
    state = schedule.periods["weekly:2026-W48"]
    assert (state["status"], state["overdue_event"]) == ("filed_late", overdue.event_id)

    # A day and a half late: the hours are on the event.
    ctx.clock.set(end_of_day_utc(date(2026, 12, 8)) + timedelta(hours=36))
    assert _file(ctx, schedule, "monthly", Period.parse("2026-11")) == "filed_late"
    late = _events(schedule)[1]
    assert isinstance(late, ReportSchedule.FiledLate)
    assert late.hours_late == 60.0


def test_r3_5_mark_overdue_is_idempotent_and_opens_the_next_period() -> None:
    """R3.5: the deadline engine records ReportOverdue once and opens the next
    period; firing again returns the same event id and records nothing; the
    late report then records only ReportFiledLate (no second Overdue, no
    second opening)."""
    ctx = Ctx(local(date(2026, 11, 23), 9))
    schedule = _open(ctx, date(2026, 11, 23))
    _events(schedule)
    ctx.clock.set(end_of_day_utc(date(2026, 11, 27)) + MICRO)
    first = _mark(ctx, schedule, "weekly", week("2026-W48"))
    overdue, opened = _events(schedule)
    assert isinstance(overdue, ReportSchedule.Overdue)
    assert first == overdue.event_id
    assert overdue.deadline_id == clock_of("weekly", "2026-W48")
    assert (type(opened), opened.period) == (ReportSchedule.PeriodOpened, "2026-W49")
    assert schedule.periods["weekly:2026-W48"]["status"] == "overdue"

    assert _mark(ctx, schedule, "weekly", week("2026-W48")) == first
    assert _events(schedule) == []

    ctx.clock.advance(timedelta(days=1))
    assert _file(ctx, schedule, "weekly", week("2026-W48")) == "filed_late"
    assert _names(_events(schedule)) == [("ReportFiledLate", "weekly", "2026-W48")]
    assert schedule.periods["weekly:2026-W48"]["overdue_event"] == first
    assert schedule.open["weekly"] == "2026-W49"


def test_r3_5_mark_overdue_records_nothing_for_a_filed_or_unopened_period() -> None:
    """R3.5: a period filed on time (the engine met a stopped clock), a period
    the schedule has not opened and a period of a closed schedule get None."""
    ctx = Ctx(local(date(2026, 11, 23), 9))
    schedule = _open(ctx, date(2026, 11, 23))
    assert _file(ctx, schedule, "weekly", week("2026-W48")) == "filed"
    _events(schedule)
    ctx.clock.set(end_of_day_utc(date(2026, 11, 27)) + MICRO)
    assert _mark(ctx, schedule, "weekly", week("2026-W48")) is None
    assert _mark(ctx, schedule, "weekly", week("2026-W51")) is None
    assert _mark(ctx, schedule, "monthly", Period.parse("2026-10")) is None
    assert _events(schedule) == []

    with ctx.as_():
        assert schedule.close(reason="project closed", now=ctx.now()) is True
    _events(schedule)
    ctx.clock.set(end_of_day_utc(date(2026, 12, 4)) + MICRO)
    assert _mark(ctx, schedule, "weekly", week("2026-W49")) is None
    assert _events(schedule) == []


def test_r4_3_a_period_filed_early_is_skipped_when_the_open_one_closes() -> None:
    """R4.3: on Wednesday 2 Dec, December's report (begun, due 5 Jan) is filed
    early while November's is still open; filing November then opens January
    2027, skipping December. The same for weeks, filed late: W49 on time
    while W48 is overdue, then W48 late opens W50."""
    ctx = Ctx(local(date(2026, 11, 23), 9))
    schedule = _open(ctx, date(2026, 11, 23))
    _events(schedule)
    ctx.clock.set(local(date(2026, 12, 2)))
    assert _file(ctx, schedule, "monthly", Period.parse("2026-12")) == "filed"
    assert _names(_events(schedule)) == [("ReportFiled", "monthly", "2026-12")]
    assert schedule.open["monthly"] == "2026-11"
    assert _file(ctx, schedule, "monthly", Period.parse("2026-11")) == "filed"
    filed, opened = _events(schedule)
    assert (type(filed), filed.period) == (ReportSchedule.Filed, "2026-11")
    assert isinstance(opened, ReportSchedule.PeriodOpened)
    assert (opened.period, opened.period_start, opened.due_at) == (
        "2027-01",
        date(2027, 1, 1),
        end_of_day_utc(date(2027, 2, 5)),
    )

    assert _file(ctx, schedule, "weekly", week("2026-W49")) == "filed"
    assert _names(_events(schedule)) == [("ReportFiled", "weekly", "2026-W49")]
    assert _file(ctx, schedule, "weekly", week("2026-W48")) == "filed_late"
    assert _names(_events(schedule)) == [
        ("ReportOverdue", "weekly", "2026-W48"),
        ("ReportFiledLate", "weekly", "2026-W48"),
        ("ReportPeriodOpened", "weekly", "2026-W50"),
    ]


def test_r4_3_periods_the_schedule_does_not_owe_record_nothing() -> None:
    """R4.3: a period before the first one, a period filed already (a second
    report, on time or not) and anything after closure: None, no event."""
    ctx = Ctx(local(date(2026, 11, 23), 9))
    schedule = _open(ctx, date(2026, 11, 23))
    _events(schedule)
    assert _file(ctx, schedule, "weekly", week("2026-W47")) is None
    assert _file(ctx, schedule, "monthly", Period.parse("2026-10")) is None
    assert _file(ctx, schedule, "quarterly", Period.parse("2026-Q3")) is None
    assert _events(schedule) == []

    assert _file(ctx, schedule, "weekly", week("2026-W48")) == "filed"
    _events(schedule)
    assert _file(ctx, schedule, "weekly", week("2026-W48")) is None
    ctx.clock.set(end_of_day_utc(date(2026, 12, 31)) + timedelta(days=1))
    assert _file(ctx, schedule, "weekly", week("2026-W48")) is None
    assert _file(ctx, schedule, "quarterly", Period.parse("2026-Q4")) == "filed_late"
    _events(schedule)
    assert _file(ctx, schedule, "quarterly", Period.parse("2026-Q4")) is None
    assert _events(schedule) == []

    with ctx.as_():
        assert schedule.close(reason="project closed", now=ctx.now()) is True
    (closed,) = _events(schedule)
    assert isinstance(closed, ReportSchedule.Closed)
    assert (closed.reason, closed.closed_at, schedule.closed) == (
        "project closed",
        ctx.now(),
        True,
    )
    with ctx.as_():
        assert schedule.close(reason="again", now=ctx.now()) is False
    assert _file(ctx, schedule, "weekly", week("2026-W49")) is None
    assert _file(ctx, schedule, "monthly", Period.parse("2026-11")) is None
    assert _events(schedule) == []


def test_r4_3_the_national_day_week_across_the_quarter_end() -> None:
    """R4.3, R3.5: from Monday 21 Sep 2026, W39's Friday (25 Sep) is a holiday,
    so it is due Monday 28 Sep. W40 (28 Sep - 4 Oct) spans the end of Q3; its
    Friday, 2 Oct, is National Day and 5-7 Oct are holidays too, so it is due
    Thursday 8 Oct. Q3 is due Wednesday 30 Sep; missing it opens Q4 (due
    31 Dec). September's report (due 5 Oct, a holiday) is due 8 Oct as well."""
    ctx = Ctx(local(date(2026, 9, 21), 9))
    schedule = _open(ctx, date(2026, 9, 21))
    _events(schedule)
    assert {ref: s["due_at"] for ref, s in schedule.periods.items()} == {
        "weekly:2026-W39": end_of_day_utc(date(2026, 9, 28)),
        "monthly:2026-09": end_of_day_utc(date(2026, 10, 8)),
        "quarterly:2026-Q3": end_of_day_utc(date(2026, 9, 30)),
    }
    ctx.clock.set(local(date(2026, 9, 28), 18))
    assert _file(ctx, schedule, "weekly", week("2026-W39")) == "filed"
    opened = _events(schedule)[-1]
    assert isinstance(opened, ReportSchedule.PeriodOpened)
    assert (opened.period, opened.period_start, opened.period_end, opened.due_at) == (
        "2026-W40",
        date(2026, 9, 28),
        date(2026, 10, 4),
        end_of_day_utc(date(2026, 10, 8)),
    )

    ctx.clock.set(end_of_day_utc(date(2026, 9, 30)) + MICRO)
    assert _mark(ctx, schedule, "quarterly", Period.parse("2026-Q3")) is not None
    _, q4 = _events(schedule)
    assert (q4.kind, q4.period, q4.due_at) == (
        "quarterly",
        "2026-Q4",
        end_of_day_utc(date(2026, 12, 31)),
    )

    # Friday 2 Oct passed, the holidays too: still on time on Thursday evening.
    ctx.clock.set(local(date(2026, 10, 8), 23))
    assert _file(ctx, schedule, "weekly", week("2026-W40")) == "filed"
    assert _file(ctx, schedule, "monthly", Period.parse("2026-09")) == "filed"
    ctx.clock.set(local(date(2026, 10, 9), 0))
    assert _file(ctx, schedule, "weekly", week("2026-W41")) == "filed"
    assert _file(ctx, schedule, "quarterly", Period.parse("2026-Q3")) == "filed_late"
    assert _names(_events(schedule)) == [
        ("ReportFiled", "weekly", "2026-W40"),
        ("ReportPeriodOpened", "weekly", "2026-W41"),
        ("ReportFiled", "monthly", "2026-09"),
        ("ReportPeriodOpened", "monthly", "2026-10"),
        ("ReportFiled", "weekly", "2026-W41"),
        ("ReportPeriodOpened", "weekly", "2026-W42"),
        ("ReportFiledLate", "quarterly", "2026-Q3"),
    ]


def test_r4_5_replaying_the_events_rebuilds_the_schedule() -> None:
    """R4.3, R4.5: the events alone rebuild the state (filed, late, overdue,
    early, closed)."""
    ctx = Ctx(local(date(2026, 11, 23), 9))
    schedule = _open(ctx, date(2026, 11, 23))
    events = _events(schedule)
    _file(ctx, schedule, "weekly", week("2026-W48"))
    ctx.clock.set(local(date(2026, 12, 7)))
    _mark(ctx, schedule, "weekly", week("2026-W49"))
    _file(ctx, schedule, "monthly", Period.parse("2026-12"))
    _file(ctx, schedule, "weekly", week("2026-W49"))
    ctx.clock.set(local(date(2026, 12, 8)))
    _file(ctx, schedule, "monthly", Period.parse("2026-11"))
    events += _events(schedule)
    replayed = _replay(events)
    assert _state(replayed) == _state(schedule)
    assert replayed.periods["monthly:2026-11"]["status"] == "filed_late"
    assert replayed.open == {"weekly": "2026-W50", "monthly": "2027-01", "quarterly": "2026-Q4"}
    with ctx.as_():
        schedule.close(reason="done", now=ctx.now())
    events += _events(schedule)
    assert _state(_replay(events)) == _state(schedule)


# -- a state machine -------------------------------------------------------------------


def _previous(period: Period) -> Period:
    return Period.of(period.kind, period.start - timedelta(days=1))


class ScheduleMachine(RuleBasedStateMachine):
    """Random filings (on time or late), engine firings, clock moves and a
    closure; every event goes to `log` and the invariants read the log."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[Any] = []
        #: Per kind, the periods in the order they were opened.
        self.opened: dict[str, list[Period]] = {k: [] for k in REPORT_KINDS}

    @initialize(first_day=st.dates(date(2026, 1, 1), date(2026, 12, 31)))
    def start(self, first_day: date) -> None:
        self.first_day = first_day
        self.ctx = Ctx(local(first_day, 9))
        self.schedule = _open(self.ctx, first_day)
        self._collect()

    def _collect(self) -> list[Any]:
        events = _events(self.schedule)
        for e in events:
            if isinstance(e, ReportSchedule.PeriodOpened):
                period = Period.parse(e.period)
                opened = self.opened[e.kind]
                filed_before = {
                    (x.kind, x.period)
                    for x in self.log
                    if isinstance(x, ReportSchedule.Filed | ReportSchedule.FiledLate)
                }
                # Never a period already filed, and consecutive: every period
                # between the previous opened one and this one was filed early.
                assert (e.kind, e.period) not in filed_before
                if opened:
                    assert period > opened[-1]
                    between = opened[-1].next()
                    while between < period:
                        assert (e.kind, between.key) in filed_before
                        between = between.next()
                else:
                    assert period == first_period(e.kind, self.first_day)
                opened.append(period)
                assert e.due_at == due(e.kind, period)
            self.log.append(e)
        return events

    @rule(hours=st.integers(1, 24 * 20))
    def advance(self, hours: int) -> None:
        self.ctx.clock.advance(timedelta(hours=hours))

    @rule(
        kind=st.sampled_from(REPORT_KINDS),
        back=st.integers(0, 5),
        to_due=st.sampled_from([None, -MICRO, timedelta(0), MICRO]),
    )
    def file(self, kind: ReportKind, back: int, to_due: timedelta | None) -> None:
        """Files a period that has begun, `back` periods before today's;
        optionally first moves the clock to just around its due time (if ahead)."""
        today = POLICY.clock.local_date(self.ctx.now())
        period = Period.of(REPORT_PERIOD[kind], today)
        for _ in range(back):
            period = _previous(period)
        if to_due is not None and due(kind, period) + to_due > self.ctx.now():
            self.ctx.clock.set(due(kind, period) + to_due)
        ref = period_ref(kind, period.key)
        before = self.schedule.periods.get(ref)
        owed = not self.schedule.closed and period >= first_period(kind, self.first_day)
        already = before is not None and before["status"] in ("filed", "filed_late")
        result = _file(self.ctx, self.schedule, kind, period)
        events = self._collect()
        if not owed or already:
            assert (result, events) == (None, [])
            return
        late = self.ctx.now() > due(kind, period)
        assert result == ("filed_late" if late else "filed")
        expected = []
        if late and (before is None or before["status"] == "open"):
            expected.append(("ReportOverdue", kind, period.key))
        expected.append(("ReportFiledLate" if late else "ReportFiled", kind, period.key))
        assert _names(events)[: len(expected)] == expected
        rest = events[len(expected) :]
        assert all(isinstance(e, ReportSchedule.PeriodOpened) for e in rest)
        assert len(rest) == (1 if before is not None and before["status"] == "open" else 0)

    @rule(kind=st.sampled_from(REPORT_KINDS), again=st.booleans())
    def fire_open(self, kind: ReportKind, again: bool) -> None:
        """The deadline engine fires for the open period whose due time passed."""
        period = Period.parse(self.schedule.open[kind])
        if self.ctx.now() <= due(kind, period):
            return
        event_id = _mark(self.ctx, self.schedule, kind, period)
        events = self._collect()
        if self.schedule.closed:
            assert (event_id, events) == (None, [])
            return
        assert _names(events) == [
            ("ReportOverdue", kind, period.key),
            ("ReportPeriodOpened", kind, events[1].period),
        ]
        assert event_id == events[0].event_id
        if again:
            assert _mark(self.ctx, self.schedule, kind, period) == event_id
            assert self._collect() == []

    @rule(kind=st.sampled_from(REPORT_KINDS), back=st.integers(1, 4))
    def fire_earlier(self, kind: ReportKind, back: int) -> None:
        """The engine fires again for a period closed already: nothing new."""
        period = Period.parse(self.schedule.open[kind])
        for _ in range(back):
            period = _previous(period)
        state = self.schedule.periods.get(period_ref(kind, period.key))
        event_id = _mark(self.ctx, self.schedule, kind, period)
        assert self._collect() == []
        if state is not None and state["status"] == "overdue":
            assert event_id == state["overdue_event"]
        elif state is None or state["status"] == "filed":
            assert event_id is None

    @rule(now=st.integers(0, 4))
    def close(self, now: int) -> None:
        if now:  # the project goes on (closing ends the interesting part)
            return
        with self.ctx.as_():
            closed = self.schedule.close(reason="project closed", now=self.ctx.now())
        assert closed == (len(self._collect()) == 1)

    @invariant()
    def each_period_is_accounted_for_once(self) -> None:
        outcomes: dict[tuple[str, str], list[str]] = {}
        for e in self.log:
            if isinstance(
                e, ReportSchedule.Filed | ReportSchedule.FiledLate | ReportSchedule.Overdue
            ):
                outcomes.setdefault((e.kind, e.period), []).append(type(e).EVENT_TYPE)
        for key, types in outcomes.items():
            # At most one ReportOverdue and one filing; a late filing after its Overdue.
            assert types in (
                ["ReportFiled"],
                ["ReportOverdue"],
                ["ReportOverdue", "ReportFiledLate"],
            ), (key, types)
        for e in self.log:
            if isinstance(e, ReportSchedule.Filed):
                assert e.filed_at <= e.due_at
            elif isinstance(e, ReportSchedule.FiledLate):
                assert e.filed_at > e.due_at

    @invariant()
    def one_open_period_per_kind(self) -> None:
        if not hasattr(self, "schedule"):
            return
        schedule = self.schedule
        for kind in REPORT_KINDS:
            if not schedule.closed:
                assert schedule.periods[period_ref(kind, schedule.open[kind])]["status"] == "open"
                assert Period.parse(schedule.open[kind]) == self.opened[kind][-1]
            still_open = [
                ref
                for ref, s in schedule.periods.items()
                if ref.startswith(f"{kind}:") and s["status"] == "open"
            ]
            assert len(still_open) <= 1
            # Every period from the first up to the open one is in the record.
            period = first_period(kind, self.first_day)
            while period < self.opened[kind][-1]:
                assert schedule.periods[period_ref(kind, period.key)]["status"] != "open"
                period = period.next()

    def teardown(self) -> None:
        if hasattr(self, "schedule"):
            assert _state(_replay(self.log)) == _state(self.schedule)


def test_r4_3_r3_5_random_filings_and_deadlines_keep_the_schedule_consistent() -> None:
    """R4.3, R3.5: the state machine above, across the 2026 calendar."""
    run_state_machine_as_test(
        ScheduleMachine,
        settings=settings(
            max_examples=150,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_r3_5_closing_after_a_missed_due_time_records_that_report_overdue_first() -> None:
    """R3.5, R4.3: a project closed after a report's due time, before the
    deadline engine caught it (it was down), still has its ReportOverdue: the
    closure records it first and only then closes; periods not yet due close
    without a breach."""
    ctx = Ctx(local(date(2026, 11, 23)))
    schedule = _open(ctx, date(2026, 11, 23))
    _events(schedule)
    ctx.clock.set(local(date(2026, 11, 28), 9))  # Saturday: W48 was due Friday
    with ctx.as_(Actor.SYSTEM):
        assert schedule.close(reason="project closed", now=ctx.now(), clock_of=clock_of)
    events = _events(schedule)
    assert [type(e).__name__ for e in events] == ["Overdue", "Closed"]
    (overdue,) = [e for e in events if isinstance(e, ReportSchedule.Overdue)]
    assert (overdue.kind, overdue.period) == ("weekly", "2026-W48")
    assert overdue.deadline_id == clock_of("weekly", "2026-W48")
    with ctx.as_(Actor.SYSTEM):  # the engine, back later, records nothing more
        assert (
            schedule.mark_overdue(
                kind="weekly", period=week("2026-W48"), deadline_id=overdue.deadline_id, due=due
            )
            == overdue.event_id
        )
    assert _events(schedule) == []
