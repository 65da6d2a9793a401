"""The ReportSchedule aggregate (R4.3, R3.5): which weekly, monthly and
quarterly reports a contracted project owes, and whether each came on time.

One schedule per project, opened when its contract is signed and closed with
the project. Each report kind has one open period at a time, on the clock:

    period opened --report filed by the due time--> ReportFiled
                  --filed after it--> ReportOverdue (if not yet recorded), ReportFiledLate
                  --nothing by the due time--> ReportOverdue (deadline engine)

Closing the open period opens the next one, skipping periods filed early, so
every period from the first on is accounted for exactly once, even when the
deadline engine catches up after a pause.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Final, Literal, TypedDict

from services.docs.domain.periods import REPORT_KINDS, REPORT_PERIOD, Period, ReportKind
from shared.domain import LedgerAggregate

SCHEDULE_NAMESPACE: Final = uuid.UUID("6c0f4f0e-2a55-5b7e-9d64-8f1b7f0c2e21")

PeriodStatus = Literal["open", "filed", "filed_late", "overdue"]
#: The due time of a report kind's period (from the policy).
DueFor = Callable[[ReportKind, Period], datetime]
#: The first period of a report kind for a schedule starting on a day.
FirstPeriod = Callable[[ReportKind, date], Period]
#: The deadline id of a report kind's period (its clock in the deadlines table).
ClockOf = Callable[[ReportKind, str], uuid.UUID]


def schedule_id(project_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(SCHEDULE_NAMESPACE, str(project_id))


def period_ref(kind: str, period: str) -> str:
    return f"{kind}:{period}"


class PeriodState(TypedDict):
    status: PeriodStatus
    due_at: datetime
    overdue_event: uuid.UUID | None


class ReportSchedule(LedgerAggregate):
    AGGREGATE_TYPE = "ReportSchedule"

    class Created(LedgerAggregate.Created):
        """A contracted project owes reports from its first periods on (R4.3)."""

        EVENT_TYPE = "ReportScheduleOpened"
        project_id: uuid.UUID
        project_name: str
        project_manager: str
        first_day: date

    class PeriodOpened(LedgerAggregate.Event):
        """A report period is on the clock (R4.3, R3.5)."""

        EVENT_TYPE = "ReportPeriodOpened"
        project_id: uuid.UUID
        kind: ReportKind
        period: str
        period_start: date
        period_end: date
        due_at: datetime
        project_manager: str

        def apply(self, aggregate: Any) -> None:
            aggregate.open[self.kind] = self.period
            aggregate.first.setdefault(
                self.kind, Period(REPORT_PERIOD[self.kind], self.period_start, self.period_end)
            )
            aggregate.periods.setdefault(
                period_ref(self.kind, self.period),
                PeriodState(status="open", due_at=self.due_at, overdue_event=None),
            )

    class Filed(LedgerAggregate.Event):
        """A report was filed by its due time (R4.3)."""

        EVENT_TYPE = "ReportFiled"
        project_id: uuid.UUID
        kind: ReportKind
        period: str
        due_at: datetime
        document_id: uuid.UUID
        filed_by: str
        filed_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.periods[period_ref(self.kind, self.period)] = PeriodState(
                status="filed", due_at=self.due_at, overdue_event=None
            )

    class FiledLate(LedgerAggregate.Event):
        """A report was filed after its due time; its ReportOverdue is on record (R4.3, R3.5)."""

        EVENT_TYPE = "ReportFiledLate"
        project_id: uuid.UUID
        kind: ReportKind
        period: str
        due_at: datetime
        document_id: uuid.UUID
        filed_by: str
        filed_at: datetime
        hours_late: float

        def apply(self, aggregate: Any) -> None:
            ref = period_ref(self.kind, self.period)
            previous = aggregate.periods.get(ref)
            aggregate.periods[ref] = PeriodState(
                status="filed_late",
                due_at=self.due_at,
                overdue_event=previous["overdue_event"] if previous else None,
            )

    class Overdue(LedgerAggregate.Event):
        """No report by the due time: a compliance breach (R4.3, R3.5)."""

        EVENT_TYPE = "ReportOverdue"
        project_id: uuid.UUID
        kind: ReportKind
        period: str
        due_at: datetime
        deadline_id: uuid.UUID
        project_manager: str

        def apply(self, aggregate: Any) -> None:
            aggregate.periods[period_ref(self.kind, self.period)] = PeriodState(
                status="overdue", due_at=self.due_at, overdue_event=self.event_id
            )

    class Closed(LedgerAggregate.Event):
        """The project closed: no further reports fall due."""

        EVENT_TYPE = "ReportScheduleClosed"
        project_id: uuid.UUID
        reason: str
        closed_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.closed = True

    def __init__(
        self,
        *,
        project_id: uuid.UUID,
        project_name: str,
        project_manager: str,
        first_day: date,
    ) -> None:
        self.project_id = project_id
        self.project_name = project_name
        self.project_manager = project_manager
        self.first_day = first_day
        self.open: dict[str, str] = {}
        #: The first period of each kind, as opened: what the schedule owes
        #: does not move when the policy file changes later.
        self.first: dict[str, Period] = {}
        self.periods: dict[str, PeriodState] = {}
        self.closed = False

    # -- commands ----------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        project_id: uuid.UUID,
        project_name: str,
        project_manager: str,
        first_day: date,
        first_period: FirstPeriod,
        due: DueFor,
    ) -> ReportSchedule:
        schedule = cls._create_in_context(
            cls.Created,
            id=schedule_id(project_id),
            project_id=project_id,
            project_name=project_name,
            project_manager=project_manager,
            first_day=first_day,
        )
        for kind in REPORT_KINDS:
            schedule._open(kind, first_period(kind, first_day), due)
        return schedule

    def _open(self, kind: ReportKind, period: Period, due: DueFor) -> None:
        while period_ref(kind, period.key) in self.periods:  # filed early
            period = period.next()
        self.trigger_event(
            self.PeriodOpened,
            project_id=self.project_id,
            kind=kind,
            period=period.key,
            period_start=period.start,
            period_end=period.end,
            due_at=due(kind, period),
            project_manager=self.project_manager,
        )

    def _advance(self, kind: ReportKind, period: Period, due: DueFor) -> None:
        """The open period closed: the next one goes on the clock."""
        if not self.closed and self.open.get(kind) == period.key:
            self._open(kind, period.next(), due)

    def file(
        self,
        *,
        kind: ReportKind,
        period: Period,
        document_id: uuid.UUID,
        filed_by: str,
        now: datetime,
        due: DueFor,
        clock_of: ClockOf,
    ) -> PeriodStatus | None:
        """Records a report filed for a period of this schedule; None when the
        period is not one the schedule owes (before its first period, after
        closure) or was filed already (a new version changes nothing). An
        opened period keeps the due time it was opened with (ADR 0007)."""
        first = self.first.get(kind)
        if self.closed or first is None or period < first:
            return None
        ref = period_ref(kind, period.key)
        state = self.periods.get(ref)
        if state is not None and state["status"] in ("filed", "filed_late"):
            return None
        due_at = state["due_at"] if state is not None else due(kind, period)
        if now <= due_at:
            self.trigger_event(
                self.Filed,
                project_id=self.project_id,
                kind=kind,
                period=period.key,
                due_at=due_at,
                document_id=document_id,
                filed_by=filed_by,
                filed_at=now,
            )
            self._advance(kind, period, due)
            return "filed"
        if state is None or state["status"] == "open":
            # Late, and the deadline engine has not recorded it yet: the breach
            # goes on record first, so every late report has its ReportOverdue.
            self._overdue(kind, period.key, due_at, clock_of(kind, period.key))
        self.trigger_event(
            self.FiledLate,
            project_id=self.project_id,
            kind=kind,
            period=period.key,
            due_at=due_at,
            document_id=document_id,
            filed_by=filed_by,
            filed_at=now,
            hours_late=round((now - due_at).total_seconds() / 3600, 2),
        )
        self._advance(kind, period, due)
        return "filed_late"

    def _overdue(self, kind: ReportKind, period: str, due_at: datetime, clock: uuid.UUID) -> None:
        self.trigger_event(
            self.Overdue,
            project_id=self.project_id,
            kind=kind,
            period=period,
            due_at=due_at,
            deadline_id=clock,
            project_manager=self.project_manager,
        )

    def mark_overdue(
        self, *, kind: ReportKind, period: Period, deadline_id: uuid.UUID, due: DueFor
    ) -> uuid.UUID | None:
        """The deadline engine's record of a missed report (idempotent)."""
        state = self.periods.get(period_ref(kind, period.key))
        if state is not None and state["overdue_event"] is not None:
            return state["overdue_event"]  # recorded before (and maybe filed late since)
        if state is None or (self.closed and state["status"] == "open"):
            return None
        if state["status"] != "open":
            return None  # filed meanwhile: the projector meets the clock
        self._overdue(kind, period.key, state["due_at"], deadline_id)
        event_id = self.periods[period_ref(kind, period.key)]["overdue_event"]
        self._advance(kind, period, due)
        return event_id

    def close(self, *, reason: str, now: datetime, clock_of: ClockOf | None = None) -> bool:
        """Closes the schedule. An open period whose due time passed before
        the closure is a breach the deadline engine may not have recorded yet
        (it was down, or behind): it is recorded first, so closing a project
        never erases a missed report (R3.5)."""
        if self.closed:
            return False
        if clock_of is not None:
            for kind, key in sorted(self.open.items()):
                state = self.periods[period_ref(kind, key)]
                if state["status"] == "open" and state["due_at"] < now:
                    report_kind = next(k for k in REPORT_KINDS if k == kind)
                    self._overdue(report_kind, key, state["due_at"], clock_of(report_kind, key))
        self.trigger_event(self.Closed, project_id=self.project_id, reason=reason, closed_at=now)
        return True
