"""R4.3: report periods and report due days, `services.docs.domain.periods`.

Proves the period keys (`2026-11-27`, `2026-W48` by ISO year, `2026-11`,
`2026-Q4`) and their parser; the due days of weekly (Friday of the week),
monthly (day 5 of the next month) and quarterly (last day of the quarter)
reports with the calendar of config/policy.toml: across a quarter end, over
the National Day holiday (with each non-working-due-day rule), in year-end ISO
weeks, for December's monthly report; the end-of-day deadline in
Asia/Shanghai; the first period of a schedule. Properties check that periods
tile the calendar, that keys round-trip, and that due days are working days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.docs.domain.periods import (
    PERIOD_KINDS,
    REPORT_KINDS,
    REPORT_PERIOD,
    Period,
    PeriodKind,
    ReportKind,
    first_report_period,
    report_due_at,
    report_due_day,
)
from shared.policy import WEEKDAYS, CalendarSection, Policy, ReportsSection, load_policy

POLICY = load_policy()
ONE_DAY = timedelta(days=1)


def _policy(base: Policy = POLICY, **reports: Any) -> Policy:
    """`base` with some [reports] values changed, validated like the file's."""
    return base.model_copy(
        update={"reports": ReportsSection(**{**base.reports.model_dump(), **reports})}
    )


# -- periods and keys -----------------------------------------------------------


def test_r4_3_the_periods_of_a_day_and_their_keys() -> None:
    day = date(2026, 11, 27)
    assert [(p.key, p.start, p.end) for p in (Period.of(k, day) for k in PERIOD_KINDS)] == [
        ("2026-11-27", day, day),
        ("2026-W48", date(2026, 11, 23), date(2026, 11, 29)),
        ("2026-11", date(2026, 11, 1), date(2026, 11, 30)),
        ("2026-Q4", date(2026, 10, 1), date(2026, 12, 31)),
    ]
    assert str(Period.of("week", day)) == "2026-W48"


@pytest.mark.parametrize(
    ("day", "key"),
    [
        (date(2026, 12, 28), "2026-W53"),  # 2026 begins on a Thursday: 53 ISO weeks
        (date(2027, 1, 3), "2026-W53"),  # calendar year 2027, ISO year 2026
        (date(2027, 1, 4), "2027-W01"),
        (date(2021, 1, 1), "2020-W53"),
        (date(2024, 12, 30), "2025-W01"),  # calendar year 2024, ISO year 2025
    ],
)
def test_r4_3_weeks_are_named_by_their_iso_year(day: date, key: str) -> None:
    week = Period.of("week", day)
    assert week.key == key
    assert week.start.weekday() == 0
    assert week.end - week.start == timedelta(days=6)


def test_r4_3_week_53_exists_only_in_long_iso_years() -> None:
    assert date.fromisocalendar(2026, 53, 1) == date(2026, 12, 28)
    assert Period.parse("2026-W53") == Period("week", date(2026, 12, 28), date(2027, 1, 3))
    assert Period.parse("2020-W53").start == date(2020, 12, 28)
    with pytest.raises(ValueError, match="2025 has 52 ISO weeks"):
        Period.parse("2025-W53")


def test_r4_3_parse_accepts_lower_case_week_and_quarter() -> None:
    assert Period.parse("2026-w48") == Period.parse("2026-W48")
    assert Period.parse("2026-q4") == Period.parse("2026-Q4")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026",
        "2026-13",
        "2026-00",
        "2026-02-30",
        "2026-11-7",
        "2026-W00",
        "2026-W54",
        "2026-W5",
        "2026-Q0",
        "2026-Q5",
        "1999-12",
        "2101-01-01",
        " 2026-11",
        "2026-11\n",
        "2026/11",
        "２０２６-11",  # full-width digits: keys are ASCII
        "٢٠٢٦-11",  # Arabic-Indic digits, which int() would read
    ],
)
def test_r4_3_parse_refuses_what_is_not_a_period_naming_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"2026-W48|2000 to 2100"):
        Period.parse(text)


def test_r4_3_next_crosses_year_ends() -> None:
    assert Period.parse("2026-W53").next().key == "2027-W01"
    assert Period.parse("2026-12").next().key == "2027-01"
    assert Period.parse("2026-Q4").next().key == "2027-Q1"
    assert Period.parse("2026-12-31").next().key == "2027-01-01"


def test_r4_3_contains_and_overlaps() -> None:
    w48, w49 = Period.parse("2026-W48"), Period.parse("2026-W49")
    november = Period.parse("2026-11")
    assert w48.contains(date(2026, 11, 23)) and w48.contains(date(2026, 11, 29))
    assert not w48.contains(date(2026, 11, 30))
    assert w49.overlaps(november) and w49.overlaps(Period.parse("2026-12"))
    assert not w48.overlaps(Period.parse("2026-10"))
    assert november.overlaps(Period.parse("2026-Q4"))
    assert not w48.overlaps(w49)


def test_a_hand_built_period_must_be_a_real_one() -> None:
    with pytest.raises(ValueError, match="not a week"):
        Period("week", date(2026, 11, 24), date(2026, 11, 30))
    with pytest.raises(ValueError, match="unknown period kind"):
        Period("year", date(2026, 1, 1), date(2026, 12, 31))  # type: ignore[arg-type]


# -- due days ---------------------------------------------------------------------


def test_r4_3_weekly_report_due_on_friday_end_of_day_in_shanghai() -> None:
    week = Period.parse("2026-W48")
    assert report_due_day(POLICY, "weekly", week) == date(2026, 11, 27)
    due = report_due_at(POLICY, "weekly", week)
    assert due == datetime(2026, 11, 27, 15, 59, 59, 999999, tzinfo=UTC)
    assert due.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("rule", "due"),
    [
        ("next_working_day", date(2026, 10, 8)),
        ("previous_working_day", date(2026, 9, 30)),
        ("as_is", date(2026, 10, 2)),
    ],
)
def test_r4_3_weekly_report_due_on_a_national_day_holiday(rule: str, due: date) -> None:
    """Friday 2026-10-02 is a holiday; 10-05..07 too; the policy rule moves it."""
    week = Period.parse("2026-W40")
    assert report_due_day(_policy(non_working_due_day=rule), "weekly", week) == due


def test_r4_3_quarterly_reports_due_on_the_last_day_of_the_quarter() -> None:
    assert report_due_day(POLICY, "quarterly", Period.parse("2026-Q3")) == date(2026, 9, 30)
    assert report_due_day(POLICY, "quarterly", Period.parse("2026-Q4")) == date(2026, 12, 31)


@pytest.mark.parametrize(
    ("rule", "due"),
    [
        ("next_working_day", date(2029, 4, 2)),
        ("previous_working_day", date(2029, 3, 30)),
        ("as_is", date(2029, 3, 31)),
    ],
)
def test_r4_3_quarter_ending_on_a_saturday(rule: str, due: date) -> None:
    q1 = Period.parse("2029-Q1")
    assert report_due_day(_policy(non_working_due_day=rule), "quarterly", q1) == due


def test_r4_3_monthly_report_due_on_day_5_of_the_next_month() -> None:
    assert report_due_day(POLICY, "monthly", Period.parse("2026-12")) == date(2027, 1, 5)
    # 2026-12-05 is a Saturday; 2026-10-05 a National Day holiday.
    assert report_due_day(POLICY, "monthly", Period.parse("2026-11")) == date(2026, 12, 7)
    assert report_due_day(POLICY, "monthly", Period.parse("2026-09")) == date(2026, 10, 8)
    previous = _policy(non_working_due_day="previous_working_day")
    assert report_due_day(previous, "monthly", Period.parse("2026-09")) == date(2026, 9, 30)


def test_r4_3_due_weekday_and_day_come_from_the_policy() -> None:
    policy = _policy(weekly_due_weekday="monday", monthly_due_day=28)
    assert report_due_day(policy, "weekly", Period.parse("2026-W48")) == date(2026, 11, 23)
    # 2026-02-28 is a Saturday.
    assert report_due_day(policy, "monthly", Period.parse("2026-01")) == date(2026, 3, 2)


def test_r4_3_year_end_iso_weeks() -> None:
    """2026-W53's Friday is 2027-01-01: a working day in this file (which lists
    2026 holidays only), moved when the calendar says New Year is a holiday."""
    w53 = Period.parse("2026-W53")
    assert report_due_day(POLICY, "weekly", w53) == date(2027, 1, 1)
    with_new_year = Policy(calendar=CalendarSection(holidays=[date(2027, 1, 1)]))
    assert report_due_day(with_new_year, "weekly", w53) == date(2027, 1, 4)
    assert report_due_day(Policy(), "weekly", Period.parse("2020-W53")) == date(2021, 1, 1)


def test_r4_3_a_report_kind_needs_its_period_kind() -> None:
    with pytest.raises(ValueError, match="weekly report covers a week"):
        report_due_day(POLICY, "weekly", Period.parse("2026-11"))
    with pytest.raises(ValueError, match="unknown report kind"):
        report_due_day(POLICY, "daily", Period.parse("2026-11-27"))  # type: ignore[arg-type]


# -- the first period of a schedule -------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "first_day", "changes", "expected"),
    [
        ("weekly", date(2026, 11, 24), {}, "2026-W48"),  # due Friday, 3 days later
        ("weekly", date(2026, 11, 25), {}, "2026-W49"),  # 2 days: too close
        ("weekly", date(2026, 11, 27), {"first_period_min_days": 0}, "2026-W48"),
        ("weekly", date(2026, 11, 28), {"first_period_min_days": 0}, "2026-W49"),  # past due
        ("weekly", date(2026, 9, 29), {"non_working_due_day": "previous_working_day"}, "2026-W41"),
        ("monthly", date(2026, 11, 1), {}, "2026-11"),
        ("monthly", date(2026, 11, 30), {}, "2026-11"),
        ("monthly", date(2026, 11, 10), {"first_period_min_days": 31}, "2026-12"),
        ("quarterly", date(2026, 12, 28), {}, "2026-Q4"),
        ("quarterly", date(2026, 12, 29), {}, "2027-Q1"),
    ],
)
def test_r4_3_first_report_period(
    kind: ReportKind, first_day: date, changes: dict[str, Any], expected: str
) -> None:
    assert first_report_period(_policy(**changes), kind, first_day).key == expected


# -- properties ---------------------------------------------------------------------

# Keys carry years 2000..2100: the first ISO week of 2000 starts on 2000-01-03.
days = st.dates(min_value=date(2000, 1, 3), max_value=date(2100, 12, 31))
kinds = st.sampled_from(PERIOD_KINDS)
report_kinds = st.sampled_from(REPORT_KINDS)
rules = st.sampled_from(["next_working_day", "previous_working_day", "as_is"])


@given(kinds, days)
def test_r4_3_periods_tile_the_calendar_and_keys_round_trip(kind: PeriodKind, day: date) -> None:
    period = Period.of(kind, day)
    assert period.contains(day)
    assert Period.parse(period.key) == period
    assert Period.parse(period.key.lower()) == period
    following = period.next()
    assert following.kind == kind
    assert following.start == period.end + ONE_DAY
    assert not following.overlaps(period)
    assert Period.of(kind, period.end) == period


@given(
    report_kinds,
    days,
    rules,
    st.sampled_from(WEEKDAYS),
    st.integers(min_value=1, max_value=28),
)
def test_r4_3_due_days_are_working_days_unless_as_is(
    kind: ReportKind, day: date, rule: str, weekday: str, monthly_day: int
) -> None:
    policy = _policy(
        non_working_due_day=rule, weekly_due_weekday=weekday, monthly_due_day=monthly_day
    )
    period = Period.of(REPORT_PERIOD[kind], day)
    due = report_due_day(policy, kind, period)
    as_is = report_due_day(_policy(policy, non_working_due_day="as_is"), kind, period)
    if rule == "as_is":
        assert due == as_is
    else:
        assert policy.clock.is_working_day(due)
        step = ONE_DAY if rule == "next_working_day" else -ONE_DAY
        assert (due - as_is) * step.days >= timedelta(0)
        skipped = as_is
        while skipped != due:  # the nearest working day in the rule's direction
            assert not policy.clock.is_working_day(skipped)
            skipped += step
    assert policy.clock.local_date(report_due_at(policy, kind, period)) == due


@given(report_kinds, days)
def test_r4_3_with_next_working_day_a_report_is_never_due_before_its_period(
    kind: ReportKind, day: date
) -> None:
    period = Period.of(REPORT_PERIOD[kind], day)
    assert report_due_day(POLICY, kind, period) >= period.start
    if kind == "quarterly":
        assert report_due_day(POLICY, kind, period) >= period.end


@given(report_kinds, days, st.integers(min_value=0, max_value=31))
def test_r4_3_first_period_is_the_starting_one_or_the_next(
    kind: ReportKind, first_day: date, min_days: int
) -> None:
    policy = _policy(first_period_min_days=min_days)
    starting = Period.of(REPORT_PERIOD[kind], first_day)
    first = first_report_period(policy, kind, first_day)
    if first == starting:
        assert (report_due_day(policy, kind, first) - first_day).days >= min_days
    else:
        assert first == starting.next()
        assert (report_due_day(policy, kind, starting) - first_day).days < min_days
