"""R3.1, R3.5: the time limits of approval steps, `Policy.approval_step_due`,
with the calendar of config/policy.toml (Asia/Shanghai, weekends, the 2026
public holidays), and the emergency explanation limit of R5.3.

Proves the defaults (48 h, 72 h, 72 h; the Director step 72 h, escalated to
nobody; the others to the Director); that working hours skip weekends and the
file's holidays (Friday 10:00 + 48 h is Tuesday 10:00; Spring Festival and
National Day); that a step opened on a weekend starts counting on Monday; that
"calendar_hours" counting and other limits from the file are honoured; that
the emergency explanation counts elapsed hours. A property checks the due
moment against an independent count of working time: exactly the limit of
working time lies between opening and due, and the due moment is the earliest.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.policy import load_policy

POLICY = load_policy()
SHANGHAI = ZoneInfo("Asia/Shanghai")
STEPS = ("department_head", "finance", "ceo", "director")


def _local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def _working_time(start: datetime, end: datetime) -> timedelta:
    """Time between two moments that falls on working days of the policy
    calendar (Shanghai days), counted day by day."""
    total = timedelta(0)
    day = start.astimezone(SHANGHAI).date()
    while True:
        midnight = datetime.combine(day, time(0), tzinfo=SHANGHAI)
        if midnight >= end:
            return total
        if POLICY.clock.is_working_day(day):
            low = max(start, midnight)
            high = min(end, midnight + timedelta(days=1))
            if high > low:
                total += high - low
        day += timedelta(days=1)


def test_the_step_limits_and_escalation_of_the_shipped_policy() -> None:
    """R3.1: 48, 72 and 72 working hours; the Director step has a limit (R3.5)
    but nobody above to escalate to; the others escalate to the Director."""
    approval = POLICY.approval
    assert approval.counting == "working_hours"
    assert [approval.step(s).limit_hours for s in STEPS] == [48, 72, 72, 72]
    assert [approval.step(s).escalation_role for s in STEPS] == [
        "director",
        "director",
        "director",
        None,
    ]
    with pytest.raises(KeyError):
        approval.step("counting")
    with pytest.raises(KeyError):
        POLICY.approval_step_due("cfo", _local(2026, 3, 2, 10))


@pytest.mark.parametrize(
    ("step", "opened", "due"),
    [
        # Friday 10:00 + 48 h: Friday 14 h, Monday 24 h, Tuesday 10 h.
        ("department_head", _local(2026, 11, 27, 10), _local(2026, 12, 1, 10)),
        ("finance", _local(2026, 11, 27, 10), _local(2026, 12, 2, 10)),
        ("ceo", _local(2026, 11, 27, 10), _local(2026, 12, 2, 10)),
        # Monday 09:00, no weekend in between.
        ("department_head", _local(2026, 3, 2, 9), _local(2026, 3, 4, 9)),
        ("finance", _local(2026, 3, 2, 9), _local(2026, 3, 5, 9)),
        # Thursday 24 Sep: Friday 25 Sep is a holiday in the file.
        ("finance", _local(2026, 9, 24, 10), _local(2026, 9, 30, 10)),
        # Spring Festival: 16-20 and 23 Feb are holidays; Friday 13 Feb + 48 h.
        ("department_head", _local(2026, 2, 13, 10), _local(2026, 2, 25, 10)),
        # National Day: 1, 2, 5, 6, 7 Oct are holidays; Wednesday 30 Sep + 72 h.
        ("ceo", _local(2026, 9, 30, 12), _local(2026, 10, 12, 12)),
        # Opened on a Saturday: the clock starts on Monday 00:00.
        ("department_head", _local(2026, 11, 28, 15), _local(2026, 12, 2, 0)),
        # Opened late on Friday: 1 h on Friday, the rest from Monday.
        ("department_head", _local(2026, 11, 27, 23), _local(2026, 12, 1, 23)),
    ],
)
def test_a_step_is_due_after_its_limit_in_working_hours(
    step: str, opened: datetime, due: datetime
) -> None:
    """R3.1, R3.5: weekends and the file's public holidays do not count."""
    result = POLICY.approval_step_due(step, opened)
    assert result == due
    assert result.tzinfo == UTC


def test_calendar_hours_and_other_limits_come_from_the_file(tmp_path: Path) -> None:
    """R3.1: the limits and the way of counting are policy values."""
    path = tmp_path / "policy.toml"
    path.write_text(
        '[approval]\ncounting = "calendar_hours"\n[approval.finance]\nlimit_hours = 24\n',
        encoding="utf-8",
    )
    policy = load_policy(path)
    friday = _local(2026, 11, 27, 10)
    assert policy.approval_step_due("department_head", friday) == _local(2026, 11, 29, 10)
    assert policy.approval_step_due("finance", friday) == _local(2026, 11, 28, 10)
    path.write_text("[approval.finance]\nlimit_hours = 24\n", encoding="utf-8")
    assert load_policy(path).approval_step_due("finance", friday) == _local(2026, 11, 30, 10)


def test_the_emergency_explanation_counts_elapsed_hours() -> None:
    """R5.3: 24 hours after the action, weekend or not."""
    saturday = _local(2026, 11, 28, 3)
    assert POLICY.emergency.explanation_hours == 24
    assert POLICY.emergency_explanation_due(saturday) == _local(2026, 11, 29, 3)


moments = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 20), timezones=st.just(UTC)
)


@settings(max_examples=200, deadline=None)
@given(opened=moments, step=st.sampled_from(STEPS))
def test_the_due_moment_leaves_exactly_the_limit_of_working_time(
    opened: datetime, step: str
) -> None:
    """R3.1, R3.5: between opening and due lies exactly the step's limit of
    working time, and a moment earlier (if on a working day) lies less."""
    due = POLICY.approval_step_due(step, opened)
    limit = timedelta(hours=POLICY.approval.step(step).limit_hours)
    assert due >= opened + limit
    assert _working_time(opened, due) == limit
    assert POLICY.clock.is_working_day(POLICY.clock.local_date(due - timedelta(microseconds=1)))
    assert _working_time(opened, due - timedelta(seconds=1)) < limit


@settings(max_examples=100, deadline=None)
@given(opened=moments, later=st.timedeltas(timedelta(0), timedelta(days=10)))
def test_a_later_opening_is_never_due_earlier(opened: datetime, later: timedelta) -> None:
    """R3.1: the due moment is monotonic in the opening moment (a resubmitted
    step, opened again later, never falls due earlier)."""
    for step in STEPS:
        assert POLICY.approval_step_due(step, opened) <= POLICY.approval_step_due(
            step, opened + later
        )


def test_every_holiday_of_the_file_is_a_day_off() -> None:
    """R3.5: the calendar of the file is the one deadlines use."""
    holidays = {date(2026, 1, 1), date(2026, 2, 16), date(2026, 10, 7)}
    assert holidays <= set(POLICY.calendar.holidays)
    assert not any(POLICY.clock.is_working_day(d) for d in holidays)
