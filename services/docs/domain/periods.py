"""Report periods and report due days (R4.3).

A report covers a period: a week (ISO, Monday to Sunday), a month or a quarter.
Contracts, minutes and acceptance reports are tied to a single day, so "day" is
a period kind too. Each period has one textual key (`2026-11-27`, `2026-W48`,
`2026-11`, `2026-Q4`) that the API and the event payloads use.

R4.3: a weekly report is due on the policy's weekday (default Friday) of its
week, a monthly report on day X (default 5) of the following month, a
quarterly report on the last day of its quarter. A due day that is not a
working day is moved by `ReportsSection.shift`; the deadline is the end of that
day in the policy zone (R3.5).

Pure: no I/O, no clock; the policy is passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final, Literal

from shared.policy import WEEKDAYS, Policy

__all__ = [
    "MAX_YEAR",
    "MIN_YEAR",
    "PERIOD_KINDS",
    "REPORT_KINDS",
    "REPORT_PERIOD",
    "Period",
    "PeriodKind",
    "ReportKind",
    "first_report_period",
    "report_due_at",
    "report_due_day",
]

PeriodKind = Literal["day", "week", "month", "quarter"]
PERIOD_KINDS: Final[tuple[PeriodKind, ...]] = ("day", "week", "month", "quarter")

ReportKind = Literal["weekly", "monthly", "quarterly"]
REPORT_KINDS: Final[tuple[ReportKind, ...]] = ("weekly", "monthly", "quarterly")
REPORT_PERIOD: Final[dict[ReportKind, PeriodKind]] = {
    "weekly": "week",
    "monthly": "month",
    "quarterly": "quarter",
}

#: Keys outside these years are refused: they are typing mistakes, never
#: periods of this company's outsourcing engagements.
MIN_YEAR: Final[int] = 2000
MAX_YEAR: Final[int] = 2100

_ONE_DAY: Final[timedelta] = timedelta(days=1)
_ACCEPTED: Final[str] = (
    "2026-11-27 (a day), 2026-W48 (an ISO week), 2026-11 (a month) or 2026-Q4 (a quarter), "
    f"with a year from {MIN_YEAR} to {MAX_YEAR}"
)
# [0-9], not \d: \d also matches other scripts' digits, which int() would accept.
_KEY_PATTERNS: Final[tuple[tuple[PeriodKind, re.Pattern[str]], ...]] = (
    ("day", re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")),
    ("week", re.compile(r"([0-9]{4})-[Ww]([0-9]{2})")),
    ("month", re.compile(r"([0-9]{4})-([0-9]{2})")),
    ("quarter", re.compile(r"([0-9]{4})-[Qq]([0-9])")),
)


def _month_start(year: int, month: int) -> date:
    # Months past December roll into the next year, so callers can say "+1".
    return date(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)


def _bounds(kind: PeriodKind, day: date) -> tuple[date, date]:
    """First and last day of the period of `kind` containing `day`."""
    if kind == "day":
        return day, day
    if kind == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=6)
    if kind == "month":
        return day.replace(day=1), _month_start(day.year, day.month + 1) - _ONE_DAY
    if kind == "quarter":
        first_month = (day.month - 1) // 3 * 3 + 1
        start = date(day.year, first_month, 1)
        return start, _month_start(day.year, first_month + 3) - _ONE_DAY
    raise ValueError(f"unknown period kind {kind!r}; use one of {', '.join(PERIOD_KINDS)}")


@dataclass(frozen=True, order=True)
class Period:
    """A day, ISO week, month or quarter: `start` and `end` are both inclusive (R4.3)."""

    kind: PeriodKind
    start: date
    end: date

    def __post_init__(self) -> None:
        # A hand-built Period must be a real one: keys, `next` and overlaps rely on it.
        if (self.start, self.end) != _bounds(self.kind, self.start):
            raise ValueError(
                f"{self.start}..{self.end} is not a {self.kind}; build periods with Period.of"
            )

    @classmethod
    def of(cls, kind: PeriodKind, day: date) -> Period:
        """The period of `kind` that contains `day`."""
        start, end = _bounds(kind, day)
        return cls(kind, start, end)

    @classmethod
    def parse(cls, text: str) -> Period:
        """The period of a key: the inverse of `key`; `w` and `q` may be lower case.

        Raises ValueError naming the accepted forms.
        """
        for kind, pattern in _KEY_PATTERNS:
            match = pattern.fullmatch(text)
            if match is None:
                continue
            year, number = int(match[1]), int(match[2])
            if not MIN_YEAR <= year <= MAX_YEAR:
                raise ValueError(
                    f"{text!r} has the year {year}; a period's year is from {MIN_YEAR} to "
                    f"{MAX_YEAR}"
                )
            try:
                if kind == "day":
                    first = date(year, number, int(match[3]))
                elif kind == "week":
                    first = date.fromisocalendar(year, number, 1)
                elif kind == "month":
                    first = date(year, number, 1)
                else:
                    if not 1 <= number <= 4:
                        raise ValueError("quarters are numbered 1 to 4")
                    first = date(year, 3 * number - 2, 1)
            except ValueError:
                weeks = date(year, 12, 28).isocalendar().week
                hint = f" ({year} has {weeks} ISO weeks)" if kind == "week" else ""
                raise ValueError(
                    f"{text!r} is not a real {kind}{hint}; a period is written {_ACCEPTED}"
                ) from None
            return cls.of(kind, first)
        raise ValueError(f"{text!r} is not a period; a period is written {_ACCEPTED}")

    @property
    def key(self) -> str:
        """`2026-11-27`, `2026-W48`, `2026-11` or `2026-Q4`.

        A week is named by its ISO year, which differs from the calendar year
        around New Year: 2027-01-01 lies in 2026-W53.
        """
        if self.kind == "day":
            return self.start.isoformat()
        if self.kind == "week":
            iso = self.start.isocalendar()
            return f"{iso.year}-W{iso.week:02d}"
        if self.kind == "month":
            return f"{self.start.year}-{self.start.month:02d}"
        return f"{self.start.year}-Q{(self.start.month - 1) // 3 + 1}"

    def next(self) -> Period:
        """The period of the same kind that starts the day after this one ends."""
        return Period.of(self.kind, self.end + _ONE_DAY)

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end

    def overlaps(self, other: Period) -> bool:
        """True when the two periods share at least one day (any kinds)."""
        return self.start <= other.end and other.start <= self.end

    def __str__(self) -> str:
        return self.key


def _report_period_kind(kind: ReportKind, period: Period) -> None:
    try:
        expected = REPORT_PERIOD[kind]
    except KeyError:
        raise ValueError(
            f"unknown report kind {kind!r}; use one of {', '.join(REPORT_KINDS)}"
        ) from None
    if period.kind != expected:
        raise ValueError(f"a {kind} report covers a {expected}, not the {period.kind} {period}")


def report_due_day(policy: Policy, kind: ReportKind, period: Period) -> date:
    """R4.3: the day the report of `kind` for `period` is due, after the
    policy's non-working-day rule (`reports.non_working_due_day`)."""
    _report_period_kind(kind, period)
    reports = policy.reports
    if kind == "weekly":
        day = period.start + timedelta(days=WEEKDAYS.index(reports.weekly_due_weekday))
    elif kind == "monthly":
        day = _month_start(period.start.year, period.start.month + 1).replace(
            day=reports.monthly_due_day
        )
    else:
        day = period.end
    return reports.shift(day, policy.clock)


def report_due_at(policy: Policy, kind: ReportKind, period: Period) -> datetime:
    """R4.3, R3.5: the deadline, the end of the due day in the policy zone (aware, UTC)."""
    return policy.clock.end_of_day(report_due_day(policy, kind, period))


def first_report_period(policy: Policy, kind: ReportKind, first_day: date) -> Period:
    """R4.3: the first period a schedule starting on `first_day` owes a report for.

    The period containing `first_day`, unless its report would fall due fewer
    than `reports.first_period_min_days` days after `first_day` (or before it):
    nobody can write a useful report in two days, so the schedule starts with
    the next period instead.
    """
    period = Period.of(REPORT_PERIOD[kind], first_day)
    due = report_due_day(policy, kind, period)
    if (due - first_day).days < policy.reports.first_period_min_days:
        return period.next()
    return period
