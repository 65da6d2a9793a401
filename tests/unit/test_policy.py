"""R3.5 (every process node has a time limit), R4.3 (report due dates), R3.2
(kickoff within X days), R3.1 (approval step limits): the policy file and its
calendar, `shared/policy.py`.

Proves that the shipped `config/policy.toml` loads and holds the defaults of
MISSION.md; that a bad file (a wrong value, an unknown key, an unknown time
zone, an impossible holiday, invalid TOML, a file that is not UTF-8 or cannot
be read, no file) is refused with a `PolicyError` naming the key path or the
file; that deadlines fall at the end of a day in Asia/Shanghai; that the
kickoff deadline counts calendar or working days, skipping weekends and listed
holidays; that staff evaluations fall due at the end of day 5 of the next
month and of the 10th day after the quarter (R6.2, `[evaluations]`); that
working hours and working days skip weekends and holidays and
count working weekends; that quarters parse, print, end and follow each other
correctly. Hypothesis properties: adding working
hours is monotonic and lands on a working day, adding working days lands on a
working day and grows strictly with the count.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.policy import (
    DEFAULT_POLICY_FILE,
    Policy,
    PolicyCalendar,
    PolicyError,
    Quarter,
    load_policy,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
POLICY = load_policy()
CALENDAR = POLICY.clock


def _local(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=SHANGHAI)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- the shipped file ------------------------------------------------------------------


def test_the_shipped_file_is_the_default_and_holds_the_mission_defaults() -> None:
    assert DEFAULT_POLICY_FILE.name == "policy.toml"
    assert DEFAULT_POLICY_FILE.parent.name == "config"
    p = load_policy(DEFAULT_POLICY_FILE)
    assert p.time.zone == "Asia/Shanghai"
    assert p.kickoff.days_after_signing == 7  # R3.2
    assert p.kickoff.counting == "calendar_days"
    assert p.minutes.hours_after_meeting == 24  # R4.2
    assert p.reports.monthly_due_day == 5  # R4.3
    assert p.reports.weekly_due_weekday == "friday"  # R4.3
    assert p.emergency.explanation_hours == 24  # R5.3
    assert p.resolutions.owner_within_hours == 24  # R5.5
    assert (  # R3.1
        p.approval.department_head.limit_hours,
        p.approval.finance.limit_hours,
        p.approval.ceo.limit_hours,
    ) == (48, 72, 72)
    assert p.staffing.trainings_per_year == 4  # R2.3
    assert p.rewards.cost_saving_bonus_percent == 5.0  # R6.3
    assert p.incidents.data_leak_report_hours == 1  # R6.4
    assert p.evaluations.self_assessment_due_day == 5  # R6.2
    assert p.evaluations.superior_assessment_due_days == 10  # R6.2
    assert p.evaluations.promotion_min_rating == 4  # R2.3
    assert p.calendar.weekend == ["saturday", "sunday"]
    assert date(2026, 10, 1) in p.calendar.holidays


def test_the_code_defaults_are_the_shipped_values_apart_from_the_holidays() -> None:
    shipped = load_policy().model_dump()
    defaults = Policy().model_dump()
    assert shipped["calendar"]["holidays"]  # the shipped file lists the 2026 holidays
    shipped["calendar"]["holidays"] = []
    assert shipped == defaults


def test_a_missing_value_takes_its_default(tmp_path: Path) -> None:
    p = load_policy(_write(tmp_path, "[kickoff]\ncounting = 'working_days'\n"))
    assert p.kickoff.counting == "working_days"
    assert p.kickoff.days_after_signing == 7
    assert p.approval.finance.limit_hours == 72


# -- a bad file stops the service, naming the key ----------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[kickoff]\ndays_after_signing = 0\n", "kickoff.days_after_signing"),
        ("[kickoff]\ndays_after_signing = -7\n", "kickoff.days_after_signing"),
        ("[kickoff]\ndays_after_sigining = 7\n", "kickoff.days_after_sigining"),
        ('[kickoff]\ncounting = "fortnights"\n', "kickoff.counting"),
        ("[kickof]\ndays_after_signing = 7\n", "kickof"),
        ("kickoff = 7\n", "kickoff"),
        ('[time]\nzone = "Mars/Base"\n', "time.zone"),
        ('[calendar]\nholidays = ["2026-02-30"]\n', "calendar.holidays.0"),
        ('[calendar]\nholidays = ["2026-01-01", "2026-13-01"]\n', "calendar.holidays.1"),
        ('[calendar]\nweekend = ["caturday"]\n', "calendar.weekend.0"),
        ("[reports]\nmonthly_due_day = 29\n", "reports.monthly_due_day"),
        ("[approval.finance]\nlimit_hours = 0\n", "approval.finance.limit_hours"),
        ('[approval.ceo]\nlimit_hours = 72\nescalate_to = "cfo"\n', "approval.ceo.escalate_to"),
        ("[rewards]\ncost_saving_bonus_percent = 101\n", "rewards.cost_saving_bonus_percent"),
        ('[incidents]\ndata_leak_report_hours = "one"\n', "incidents.data_leak_report_hours"),
        ("[staffing]\ntrainings_per_year = -1\n", "staffing.trainings_per_year"),
        ("[evaluations]\nself_assessment_due_day = 29\n", "evaluations.self_assessment_due_day"),
        (
            "[evaluations]\nsuperior_assessment_due_days = 0\n",
            "evaluations.superior_assessment_due_days",
        ),
        ("[evaluations]\npromotion_min_rating = 6\n", "evaluations.promotion_min_rating"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(tmp_path: Path, text: str, key: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PolicyError) as refused:
        load_policy(path)
    message = str(refused.value)
    assert f"{key}:" in message
    assert str(path) in message


def test_every_bad_key_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, '[kickoff]\ndays_after_signing = 0\n[time]\nzone = "Mars/Base"\n')
    with pytest.raises(PolicyError) as refused:
        load_policy(path)
    assert "kickoff.days_after_signing:" in str(refused.value)
    assert "time.zone:" in str(refused.value)


def test_invalid_toml_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "[kickoff\ndays_after_signing = 7\n")
    with pytest.raises(PolicyError, match="not valid TOML") as refused:
        load_policy(path)
    assert str(path) in str(refused.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(PolicyError, match="not found") as refused:
        load_policy(path)
    assert str(path) in str(refused.value)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    """E.g. saved as GBK by an editor: the shipped file has Chinese comments."""
    path = tmp_path / "policy.toml"
    path.write_bytes("# 节假日安排\n[kickoff]\ndays_after_signing = 7\n".encode("gbk"))
    with pytest.raises(PolicyError, match="not UTF-8") as refused:
        load_policy(path)
    assert str(path) in str(refused.value)


def test_a_path_that_cannot_be_read_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot be read") as refused:
        load_policy(tmp_path)  # a directory
    assert str(tmp_path) in str(refused.value)


# -- deadlines at the end of a day in the policy zone (R3.5) -----------------------------


def test_end_of_day_is_the_last_instant_of_the_day_in_shanghai() -> None:
    end = CALENDAR.end_of_day(date(2026, 11, 27))
    assert end == datetime(2026, 11, 27, 15, 59, 59, 999999, tzinfo=UTC)
    assert end.tzinfo == UTC
    assert end.astimezone(SHANGHAI).date() == date(2026, 11, 27)
    assert (end + timedelta(microseconds=1)).astimezone(SHANGHAI) == _local(2026, 11, 28)


def test_local_date_is_the_date_in_shanghai() -> None:
    assert CALENDAR.local_date(datetime(2026, 11, 27, 16, 0, tzinfo=UTC)) == date(2026, 11, 28)
    assert CALENDAR.local_date(datetime(2026, 11, 27, 15, 59, tzinfo=UTC)) == date(2026, 11, 27)


def test_kickoff_due_counts_calendar_days_through_weekends_and_holidays() -> None:
    # Friday + 7 calendar days: the next Friday, weekend included.
    assert POLICY.kickoff_due(date(2026, 11, 27)) == CALENDAR.end_of_day(date(2026, 12, 4))
    # Across the National Day holidays, calendar days do not stop.
    assert POLICY.kickoff_due(date(2026, 9, 28)) == CALENDAR.end_of_day(date(2026, 10, 5))


def test_kickoff_due_counts_working_days_when_configured(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, '[kickoff]\ncounting = "working_days"\n'))
    # No holiday listed in that file: Friday + 7 working days skips one weekend.
    assert policy.kickoff_due(date(2026, 11, 27)) == policy.clock.end_of_day(date(2026, 12, 8))


def test_kickoff_due_in_working_days_skips_the_listed_holidays(tmp_path: Path) -> None:
    holidays = '"2026-09-25", "2026-10-01", "2026-10-02", "2026-10-05", "2026-10-06"'
    text = f'[kickoff]\ncounting = "working_days"\n[calendar]\nholidays = [{holidays}]\n'
    policy = load_policy(_write(tmp_path, text))
    # Thursday 24 Sep: 25 Sep holiday, Mon 28 (1), Tue 29 (2), Wed 30 (3), 1, 2 Oct
    # holidays, weekend, 5, 6 Oct holidays, Wed 7 (4), Thu 8 (5), Fri 9 (6), Mon 12 (7).
    assert policy.kickoff_due(date(2026, 9, 24)) == policy.clock.end_of_day(date(2026, 10, 12))
    without = load_policy(_write(tmp_path, '[kickoff]\ncounting = "working_days"\n'))
    assert without.kickoff_due(date(2026, 9, 24)) == without.clock.end_of_day(date(2026, 10, 5))


def test_evaluations_are_due_at_the_end_of_a_day_after_their_period() -> None:
    """R6.2: a month's self-assessment at the end of day 5 of the next month
    (December's in January), a quarter's assessment at the end of the 10th
    day after it, in Shanghai."""
    assert POLICY.self_assessment_due(2026, 11) == _local(2026, 12, 6) - timedelta(microseconds=1)
    assert POLICY.self_assessment_due(2026, 12) == _local(2027, 1, 6) - timedelta(microseconds=1)
    q4 = POLICY.superior_assessment_due(Quarter(2026, 4))
    assert q4 == _local(2027, 1, 11) - timedelta(microseconds=1)
    assert POLICY.superior_assessment_due(Quarter(2026, 3)) == _local(2026, 10, 11) - timedelta(
        microseconds=1
    )


def test_review_due_is_the_end_of_the_quarters_last_day() -> None:
    assert POLICY.review_due(Quarter(2026, 4)) == datetime(
        2026, 12, 31, 15, 59, 59, 999999, tzinfo=UTC
    )


def test_a_data_leak_is_due_in_elapsed_hours() -> None:
    detected = datetime(2026, 10, 1, 23, 30, tzinfo=UTC)  # a holiday in Shanghai
    assert POLICY.data_leak_report_due(detected) == detected + timedelta(hours=1)


# -- working days and hours --------------------------------------------------------------


def test_working_days_follow_the_calendar() -> None:
    assert CALENDAR.is_working_day(date(2026, 11, 27))  # Friday
    assert not CALENDAR.is_working_day(date(2026, 11, 28))  # Saturday
    assert not CALENDAR.is_working_day(date(2026, 10, 1))  # National Day (listed)
    assert CALENDAR.is_working_day(date(2026, 9, 30))


def test_48_working_hours_from_friday_morning_end_on_tuesday_morning() -> None:
    due = CALENDAR.add_working_hours(_local(2026, 11, 27, 10), 48)
    assert due == _local(2026, 12, 1, 10)
    assert due.tzinfo == UTC


def test_working_hours_skip_a_public_holiday_of_the_file() -> None:
    # Thursday 24 Sep 10:00; Friday 25 Sep is a holiday in config/policy.toml.
    assert CALENDAR.add_working_hours(_local(2026, 9, 24, 10), 48) == _local(2026, 9, 29, 10)
    # The same hours a week earlier, with no holiday: Monday.
    assert CALENDAR.add_working_hours(_local(2026, 9, 17, 10), 48) == _local(2026, 9, 21, 10)


def test_a_working_weekend_day_counts(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, '[calendar]\nworking_weekends = ["2026-11-28"]\n'))
    assert policy.clock.is_working_day(date(2026, 11, 28))
    assert policy.clock.add_working_hours(_local(2026, 11, 27, 10), 48) == _local(2026, 11, 30, 10)
    assert policy.clock.add_working_days(date(2026, 11, 27), 1) == date(2026, 11, 28)


def test_working_hours_started_on_a_weekend_start_on_monday() -> None:
    assert CALENDAR.add_working_hours(_local(2026, 11, 28, 15), 10) == _local(2026, 11, 30, 10)


def test_add_working_days() -> None:
    friday = date(2026, 11, 27)
    assert CALENDAR.add_working_days(friday, 0) == friday
    assert CALENDAR.add_working_days(friday, 1) == date(2026, 11, 30)
    assert CALENDAR.add_working_days(friday, 5) == date(2026, 12, 4)
    # From the last working day before National Day: 1, 2 Oct holidays, weekend,
    # 5, 6, 7 Oct holidays.
    assert CALENDAR.add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)
    # Counting from a holiday.
    assert CALENDAR.add_working_days(date(2026, 10, 1), 1) == date(2026, 10, 8)


# -- quarters (R3.3, R4.3) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "quarter"),
    [
        (date(2026, 1, 1), Quarter(2026, 1)),
        (date(2026, 3, 31), Quarter(2026, 1)),
        (date(2026, 4, 1), Quarter(2026, 2)),
        (date(2026, 9, 30), Quarter(2026, 3)),
        (date(2026, 11, 27), Quarter(2026, 4)),
        (date(2026, 12, 31), Quarter(2026, 4)),
    ],
)
def test_quarter_of_a_day(day: date, quarter: Quarter) -> None:
    assert Quarter.of(day) == quarter


def test_quarter_parse_and_print() -> None:
    assert Quarter.parse("2026-Q4") == Quarter(2026, 4)
    assert str(Quarter(2026, 4)) == "2026-Q4"
    assert Quarter.parse("1999-Q1") == Quarter(1999, 1)


@pytest.mark.parametrize(
    "text",
    ["", "2026", "2026-Q", "2026-Q0", "2026-Q5", "2026Q4", "2026-q4", "Q4-2026", "-Q4", "2026-Q4 "],
)
def test_quarter_parse_refuses_bad_strings(text: str) -> None:
    with pytest.raises(ValueError, match="2026-Q4"):
        Quarter.parse(text)


def test_quarter_last_days() -> None:
    assert Quarter(2024, 1).last_day == date(2024, 3, 31)  # leap year: still 31 March
    assert Quarter(2026, 1).last_day == date(2026, 3, 31)
    assert Quarter(2026, 2).last_day == date(2026, 6, 30)
    assert Quarter(2026, 3).last_day == date(2026, 9, 30)
    assert Quarter(2026, 4).last_day == date(2026, 12, 31)
    assert Quarter(2026, 4).first_day == date(2026, 10, 1)


def test_next_quarter_crosses_the_year_end() -> None:
    assert Quarter(2026, 4).next() == Quarter(2027, 1)
    assert Quarter(2026, 1).next() == Quarter(2026, 2)
    assert Quarter(2026, 3) < Quarter(2026, 4) < Quarter(2027, 1)


quarters = st.builds(Quarter, st.integers(1900, 2200), st.integers(1, 4))


@given(quarters)
def test_quarter_properties(q: Quarter) -> None:
    assert Quarter.parse(str(q)) == q
    assert Quarter.of(q.first_day) == q
    assert Quarter.of(q.last_day) == q
    assert Quarter.of(q.last_day + timedelta(days=1)) == q.next()
    assert q.next().first_day == q.last_day + timedelta(days=1)
    assert 90 <= (q.last_day - q.first_day).days + 1 <= 92


# -- properties of the working calendar --------------------------------------------------

#: Moments around the shipped 2026 holidays, local time in Shanghai, to the minute.
moments = st.datetimes(
    min_value=datetime(2025, 12, 1), max_value=datetime(2027, 1, 31), timezones=st.just(SHANGHAI)
).map(lambda m: m.replace(second=0, microsecond=0))
hours = st.one_of(st.integers(0, 24 * 20).map(float), st.floats(0, 24 * 20, allow_nan=False))
days = st.dates(min_value=date(2025, 12, 1), max_value=date(2027, 1, 31))


def _on_a_working_day(calendar: PolicyCalendar, moment: datetime) -> bool:
    """A deadline lies in working time: on a working day, or at the midnight
    that ends one (the same instant as 24:00 of that working day)."""
    local = moment.astimezone(calendar.zone)
    if calendar.is_working_day(local.date()):
        return True
    at_midnight = local.time() == datetime.min.time()
    return at_midnight and calendar.is_working_day(local.date() - timedelta(days=1))


@settings(max_examples=300)
@given(moments, hours, hours)
def test_add_working_hours_is_monotonic_in_the_hours(start: datetime, h1: float, h2: float) -> None:
    low, high = sorted((h1, h2))
    assert CALENDAR.add_working_hours(start, low) <= CALENDAR.add_working_hours(start, high)


@settings(max_examples=300)
@given(moments, hours)
def test_add_working_hours_lands_in_working_time(start: datetime, h: float) -> None:
    due = CALENDAR.add_working_hours(start, h)
    assert due >= start
    assert due - start >= timedelta(hours=h) - timedelta(microseconds=1)
    if h > 0:
        assert _on_a_working_day(CALENDAR, due)


@settings(max_examples=300)
@given(days, st.integers(1, 40))
def test_add_working_days_is_a_working_day_and_strictly_increasing(day: date, n: int) -> None:
    nth = CALENDAR.add_working_days(day, n)
    assert CALENDAR.is_working_day(nth)
    assert nth > day
    assert CALENDAR.add_working_days(day, n + 1) > nth
    # exactly n working days lie in (day, nth]
    span = [day + timedelta(days=i) for i in range(1, (nth - day).days + 1)]
    assert sum(CALENDAR.is_working_day(d) for d in span) == n
