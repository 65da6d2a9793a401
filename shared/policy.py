"""The policy parameters (every "X" of the policy) and its calendar.

One TOML file (`config/policy.toml`, or PL_POLICY_FILE) holds them; it is
validated at start, and a bad value stops the service with a message naming
the key. Deadlines are computed here, the same way for every service: they fall
at the end of a day in the policy's time zone (R3.5), and limits counted in
working days or hours skip weekends and public holidays.

"Working hours" means: time elapses only on working days, whole days in the
policy zone. 48 working hours from Friday 10:00 is Tuesday 10:00.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
DEFAULT_WEEKEND: tuple[Weekday, ...] = ("saturday", "sunday")
DEFAULT_POLICY_FILE = Path(__file__).resolve().parents[1] / "config" / "policy.toml"

Positive = Annotated[int, Field(gt=0)]
Percent = Annotated[float, Field(ge=0, le=100)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeSection(_Section):
    zone: str = "Asia/Shanghai"

    @field_validator("zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value


class CalendarSection(_Section):
    weekend: list[Weekday] = Field(default_factory=lambda: list(DEFAULT_WEEKEND), max_length=6)
    holidays: list[date] = Field(default_factory=list)
    working_weekends: list[date] = Field(default_factory=list)


class StaffingSection(_Section):
    project_managers: Positive = 3
    specialists: Positive = 6
    trainings_per_year: Annotated[int, Field(ge=0)] = 4


class ApprovalStepSection(_Section):
    limit_hours: Positive
    #: Who may also sign once the step is overdue; "none" records the breach only.
    escalate_to: Literal["director", "ceo", "dept_head", "finance", "none"] = "director"

    @property
    def escalation_role(self) -> str | None:
        return None if self.escalate_to == "none" else self.escalate_to


class ApprovalSection(_Section):
    counting: Literal["working_hours", "calendar_hours"] = "working_hours"
    department_head: ApprovalStepSection = ApprovalStepSection(limit_hours=48)
    finance: ApprovalStepSection = ApprovalStepSection(limit_hours=72)
    ceo: ApprovalStepSection = ApprovalStepSection(limit_hours=72)
    #: R5.1/R5.2 Director decisions are one step; R3.5 gives it a limit too.
    director: ApprovalStepSection = ApprovalStepSection(limit_hours=72, escalate_to="none")

    def step(self, name: str) -> ApprovalStepSection:
        section = getattr(self, name, None)
        if not isinstance(section, ApprovalStepSection):
            raise KeyError(f"no approval step {name!r}")
        return section


class KickoffSection(_Section):
    days_after_signing: Positive = 7
    counting: Literal["calendar_days", "working_days"] = "calendar_days"


class MinutesSection(_Section):
    hours_after_meeting: Positive = 24


class ReportsSection(_Section):
    weekly_due_weekday: Weekday = "friday"
    monthly_due_day: Annotated[int, Field(ge=1, le=28)] = 5
    #: A due day that is not a working day moves to the next working day (the
    #: rule of Civil Code art. 203), to the previous one, or stays as it is.
    non_working_due_day: Literal["next_working_day", "previous_working_day", "as_is"] = (
        "next_working_day"
    )
    #: A schedule starts with the period the contract starts in, unless that
    #: period's report would fall due within X days of the start.
    first_period_min_days: Annotated[int, Field(ge=0, le=31)] = 3

    def shift(self, day: date, calendar: PolicyCalendar) -> date:
        """The due day after the non-working-day rule."""
        if self.non_working_due_day == "as_is":
            return day
        step = timedelta(days=1 if self.non_working_due_day == "next_working_day" else -1)
        while not calendar.is_working_day(day):
            day += step
        return day


class DocumentsSection(_Section):
    """R4.4, R4.5: what may be filed."""

    max_upload_mb: Annotated[float, Field(gt=0, le=1024)] = 25.0
    max_name_length: Annotated[int, Field(ge=20, le=255)] = 120
    #: The project part of department-level documents (the weekly department
    #: meeting's and the quarterly strategy meeting's minutes, R5.4).
    department_name: Annotated[str, Field(min_length=1, max_length=60)] = "信息技术部"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class EmergencySection(_Section):
    explanation_hours: Positive = 24


class ResolutionsSection(_Section):
    owner_within_hours: Positive = 24


class DecisionsSection(_Section):
    major_budget_increase_percent: Percent = 10.0
    scope_change_is_major: bool = True


class RewardsSection(_Section):
    cost_saving_bonus_percent: Percent = 5.0


class IncidentsSection(_Section):
    data_leak_report_hours: Positive = 1


class QualificationSection(_Section):
    default_validity_days: Positive = 365
    renew_within_days: Annotated[int, Field(ge=0, le=365)] = 30


class EvaluationsSection(_Section):
    """R6.2: the monthly self-assessment is due by the end of day X of the
    next month; the superior's quarterly assessment by the end of the X-th
    day after the quarter ends (calendar days: a self-assessment can be
    written from the month's first day, an assessment from the quarter's
    end, so neither waits for a working day). R2.3: a promotion resting on
    one of the system's evaluations needs at least this rating (1-5)."""

    self_assessment_due_day: Annotated[int, Field(ge=1, le=28)] = 5
    superior_assessment_due_days: Annotated[int, Field(ge=1, le=60)] = 10
    promotion_min_rating: Annotated[int, Field(ge=1, le=5)] = 4


class Policy(_Section):
    """Every policy parameter, with the defaults of MISSION.md."""

    time: TimeSection = TimeSection()
    calendar: CalendarSection = CalendarSection()
    staffing: StaffingSection = StaffingSection()
    approval: ApprovalSection = ApprovalSection()
    kickoff: KickoffSection = KickoffSection()
    minutes: MinutesSection = MinutesSection()
    reports: ReportsSection = ReportsSection()
    documents: DocumentsSection = DocumentsSection()
    emergency: EmergencySection = EmergencySection()
    resolutions: ResolutionsSection = ResolutionsSection()
    decisions: DecisionsSection = DecisionsSection()
    rewards: RewardsSection = RewardsSection()
    incidents: IncidentsSection = IncidentsSection()
    qualification: QualificationSection = QualificationSection()
    evaluations: EvaluationsSection = EvaluationsSection()

    @cached_property
    def clock(self) -> PolicyCalendar:
        c = self.calendar
        return PolicyCalendar(
            zone=ZoneInfo(self.time.zone),
            weekend=frozenset(WEEKDAYS.index(d) for d in c.weekend),
            holidays=frozenset(c.holidays),
            working_weekends=frozenset(c.working_weekends),
        )

    # -- deadlines of the policy, one place ------------------------------------

    def kickoff_due(self, signed_on: date) -> datetime:
        """R3.2: end of the X-th day after signing (calendar or working days)."""
        days = self.kickoff.days_after_signing
        if self.kickoff.counting == "working_days":
            return self.clock.end_of_day(self.clock.add_working_days(signed_on, days))
        return self.clock.end_of_day(signed_on + timedelta(days=days))

    def review_due(self, quarter: Quarter) -> datetime:
        """R3.3: the last day of the quarter, end of day."""
        return self.clock.end_of_day(quarter.last_day)

    def approval_step_due(self, step: str, opened_at: datetime) -> datetime:
        """R3.1: the step's limit in working hours (or calendar hours), from opening."""
        hours = self.approval.step(step).limit_hours
        if self.approval.counting == "working_hours":
            return self.clock.add_working_hours(opened_at, hours)
        return opened_at + timedelta(hours=hours)

    def emergency_explanation_due(self, acted_at: datetime) -> datetime:
        """R5.3: X hours after the action (elapsed time: an emergency does not wait)."""
        return acted_at + timedelta(hours=self.emergency.explanation_hours)

    def data_leak_report_due(self, detected_at: datetime) -> datetime:
        """R6.4: X hours after detection (elapsed time: a leak does not wait)."""
        return detected_at + timedelta(hours=self.incidents.data_leak_report_hours)

    def self_assessment_due(self, year: int, month: int) -> datetime:
        """R6.2: the self-assessment of a month, end of day X of the next month."""
        first = date(year + month // 12, month % 12 + 1, 1)
        return self.clock.end_of_day(first.replace(day=self.evaluations.self_assessment_due_day))

    def superior_assessment_due(self, quarter: Quarter) -> datetime:
        """R6.2: the superior's assessment of a quarter, end of the X-th day after it."""
        days = self.evaluations.superior_assessment_due_days
        return self.clock.end_of_day(quarter.last_day + timedelta(days=days))


class PolicyError(Exception):
    """The policy file is missing or a value is wrong; the message names the key."""


def load_policy(path: Path | None = None) -> Policy:
    path = path or DEFAULT_POLICY_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} not found (set PL_POLICY_FILE)") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(f"policy file {path} is not UTF-8: {exc}") from None
    except OSError as exc:
        raise PolicyError(f"policy file {path} cannot be read: {exc}") from None
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise PolicyError(f"policy file {path}: {problems}") from None


@dataclass(frozen=True, order=True)
class Quarter:
    year: int
    number: int  # 1-4

    @classmethod
    def of(cls, day: date) -> Quarter:
        return cls(day.year, (day.month - 1) // 3 + 1)

    @classmethod
    def parse(cls, text: str) -> Quarter:
        """`2026-Q4`."""
        year, _, q = text.partition("-Q")
        if not (year.isascii() and year.isdigit() and q in ("1", "2", "3", "4")):
            raise ValueError(f"a quarter looks like 2026-Q4, not {text!r}")
        return cls(int(year), int(q))

    @property
    def first_day(self) -> date:
        return date(self.year, 3 * self.number - 2, 1)

    @property
    def last_day(self) -> date:
        return self.next().first_day - timedelta(days=1)

    def next(self) -> Quarter:
        return (
            Quarter(self.year + 1, 1) if self.number == 4 else Quarter(self.year, self.number + 1)
        )

    def __str__(self) -> str:
        return f"{self.year}-Q{self.number}"


@dataclass(frozen=True)
class PolicyCalendar:
    zone: ZoneInfo
    weekend: frozenset[int]
    holidays: frozenset[date]
    working_weekends: frozenset[date]

    def is_working_day(self, day: date) -> bool:
        if day in self.holidays:
            return False
        if day in self.working_weekends:
            return True
        return day.weekday() not in self.weekend

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def end_of_day(self, day: date) -> datetime:
        """The last instant of `day` in the policy zone, as UTC."""
        local = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
        return (local - timedelta(microseconds=1)).astimezone(UTC)

    def add_working_days(self, day: date, days: int) -> date:
        """The `days`-th working day after `day`."""
        current = day
        remaining = days
        while remaining > 0:
            current += timedelta(days=1)
            if self.is_working_day(current):
                remaining -= 1
        return current

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """`start` plus `hours` of time on working days only (policy zone)."""
        local = start.astimezone(self.zone)
        remaining = timedelta(hours=hours)
        while True:
            day = local.date()
            next_midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
            if self.is_working_day(day):
                left_today = next_midnight - local
                if remaining <= left_today:
                    return (local + remaining).astimezone(UTC)
                remaining -= left_today
            local = next_midnight
