"""Staff evaluations (R6.2, R2.3): every project manager and specialist
assesses themself each month; each quarter their superior assesses them.

    owed (the deadline engine's clock runs) --submitted by the due time--> on time
      --submitted after it--> Overdue recorded first (if the engine has not), then late
      --nothing by the due time--> Overdue (deadline engine) --submitted later--> late

One `Evaluation` aggregate per person and period: `2026-11` is the monthly
self-assessment, `2026-Q4` the quarterly assessment by the superior. Its
stream is the evaluation's whole record (who wrote it, when, against which
due time), so an auditor reads one stream per evaluation. It starts with
`EvaluationOpened` together with its first fact (a submission, or the
engine's Overdue), since nothing is known about an evaluation before either.

Who owes what is decided from the staff directory's history (the Department
events, `staff_history`), not from its current state, because the rules look
back in time:

- a period is owed by a person who ends it in the department as a PM or
  specialist (R2.2): the Director has no superior in the department and
  writes no monthly self-assessment; someone who leaves (or becomes the
  Director) during a period owes nothing for it, nor for later ones, while a
  period that ended before stays owed;
- the quarterly assessment is written by the person's superior as of the
  quarter's last day (the reporting line of R2.2 then: the Director for a PM,
  the PM for a specialist), since that superior saw the quarter's end; if
  they left the department since, the Director (now) writes it, so no
  assessment is left without an author;
- nothing is owed for a period whose due time had passed when the person was
  recorded in the directory (or became a PM/specialist): directories are
  filled in after the fact, and nobody could have been asked then.

Timing (decided here, R6.2): a self-assessment may be written from the
month's first day on (someone away at the month's end writes it early; it
stays the month's), a superior's assessment only after the quarter ended
(it judges the whole quarter, beside the quarter's complete figures).

Pure: no I/O; the policy, the clock's readings and the directory's events
are passed in.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal

from services.kpi.domain.staff import Department, StaffRole
from shared.domain import LedgerAggregate, RuleViolation
from shared.policy import Policy, Quarter

EvaluationKind = Literal["self", "superior"]
EVALUATION_KINDS: Final[tuple[EvaluationKind, ...]] = ("self", "superior")
#: R6.2: who is evaluated monthly and quarterly.
EVALUATED_ROLES: Final[frozenset[str]] = frozenset({"project_manager", "specialist"})
#: The deadline kinds (shared/deadlines.py) of the two obligations; ref `<period>#<user id>`.
SELF_ASSESSMENT: Final = "self_assessment"
SUPERIOR_ASSESSMENT: Final = "superior_assessment"
DEADLINE_KIND: Final[dict[EvaluationKind, str]] = {
    "self": SELF_ASSESSMENT,
    "superior": SUPERIOR_ASSESSMENT,
}
#: The rating scale (the policy's 考核 gives scores, R6.1, without a scale).
RATINGS: Final[dict[int, str]] = {
    1: "不合格 (unsatisfactory)",
    2: "待改进 (needs improvement)",
    3: "合格 (meets expectations)",
    4: "良好 (good)",
    5: "优秀 (excellent)",
}
EVALUATION_NAMESPACE: Final = uuid.UUID("5d2b8f7e-3c1a-5e4f-9a6b-7c8d9e0f1a2b")

_ONE_DAY: Final = timedelta(days=1)
_MONTH: Final = re.compile(r"([0-9]{4})-([0-9]{2})")
_QUARTER: Final = re.compile(r"([0-9]{4})-[Qq]([1-4])")


# -- periods -----------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Period:
    """A month (the self-assessment's, `2026-11`) or a quarter (the
    superior's assessment's, `2026-Q4`); start and end inclusive."""

    start: date
    kind: EvaluationKind

    def __post_init__(self) -> None:
        if self.start.day != 1 or (self.kind == "superior" and self.start.month % 3 != 1):
            raise ValueError(f"{self.start} does not start a {self.kind} evaluation period")

    @classmethod
    def of(cls, kind: EvaluationKind, day: date) -> Period:
        """The period of `kind` containing `day`."""
        month = day.month if kind == "self" else (day.month - 1) // 3 * 3 + 1
        return cls(date(day.year, month, 1), kind)

    @classmethod
    def parse(cls, text: str) -> Period:
        """`2026-11` (a month: self-assessment) or `2026-Q4` (a quarter:
        superior's assessment); ValueError naming the forms otherwise."""
        if match := _MONTH.fullmatch(text):
            year, month = int(match[1]), int(match[2])
            if 2000 <= year <= 2100 and 1 <= month <= 12:
                return cls(date(year, month, 1), "self")
        elif match := _QUARTER.fullmatch(text):
            year = int(match[1])
            if 2000 <= year <= 2100:
                return cls(Quarter(year, int(match[2])).first_day, "superior")
        raise ValueError(
            f"{text!r} is not an evaluation period: a month such as 2026-11 (the monthly"
            " self-assessment) or a quarter such as 2026-Q4 (the superior's assessment),"
            " years 2000 to 2100"
        )

    @property
    def end(self) -> date:
        return self.next().start - _ONE_DAY

    @property
    def quarter(self) -> Quarter:
        return Quarter.of(self.start)

    @property
    def key(self) -> str:
        if self.kind == "self":
            return f"{self.start.year}-{self.start.month:02d}"
        return str(self.quarter)

    @property
    def deadline_kind(self) -> str:
        return DEADLINE_KIND[self.kind]

    def next(self) -> Period:
        months = 1 if self.kind == "self" else 3
        index = self.start.month - 1 + months
        return Period(date(self.start.year + index // 12, index % 12 + 1, 1), self.kind)

    def __str__(self) -> str:
        return self.key


def due_at(policy: Policy, period: Period) -> datetime:
    """R6.2, R3.5: when the evaluation of `period` is due ([evaluations] of the policy)."""
    if period.kind == "self":
        return policy.self_assessment_due(period.start.year, period.start.month)
    return policy.superior_assessment_due(period.quarter)


def evaluation_id(user_id: str, period: Period) -> uuid.UUID:
    return uuid.uuid5(EVALUATION_NAMESPACE, f"{user_id}/{period.key}")


def deadline_ref(period: Period, user_id: str) -> str:
    return f"{period.key}#{user_id}"


def parse_deadline_ref(ref: str) -> tuple[Period, str]:
    period, _, user_id = ref.partition("#")
    return Period.parse(period), user_id


def first_owed(policy: Policy, kind: EvaluationKind, since: date, recorded_at: datetime) -> Period:
    """The first period of `kind` owed by someone who became a PM or
    specialist on `since`, recorded at `recorded_at`: the period containing
    `since`, or the first later one still due when it was recorded (nothing
    is owed retroactively)."""
    period = Period.of(kind, since)
    while due_at(policy, period) < recorded_at:
        period = period.next()
    return period


# -- the directory's history -------------------------------------------------------------------


@dataclass(frozen=True)
class Stint:
    """A person's role and superior from `since` on (R2.2)."""

    since: date
    role: StaffRole
    superior: str | None
    recorded_at: datetime
    seq: int


@dataclass
class StaffRecord:
    """One person as the directory's events tell it, in time."""

    user_id: str
    name: str
    joined_on: date
    role: StaffRole  # now (as last recorded)
    superior: str | None  # now
    left_on: date | None = None
    stints: list[Stint] = field(default_factory=list)

    def _ordered(self) -> list[Stint]:
        return sorted(self.stints, key=lambda s: (s.since, s.seq))

    def stint_on(self, day: date) -> Stint | None:
        """The role and superior in effect on `day` (None before joining)."""
        found = None
        for stint in self._ordered():
            if stint.since <= day:
                found = stint
        return found

    def evaluated_run(self, day: date) -> Stint | None:
        """The stint that began the person's current run as a PM or
        specialist on `day` (a rotation between the two continues it)."""
        start = None
        for stint in self._ordered():
            if stint.since > day:
                break
            if stint.role not in EVALUATED_ROLES:
                start = None
            elif start is None:
                start = stint
        return start


StaffHistory = dict[str, StaffRecord]


def staff_history(events: Iterable[object]) -> StaffHistory:
    """Every person's record from the Department's events (oldest first)."""
    people: StaffHistory = {}
    for seq, event in enumerate(events):
        if not isinstance(event, LedgerAggregate.Event):
            continue
        at = event.timestamp
        if isinstance(event, Department.Joined):
            people[event.user_id] = StaffRecord(
                user_id=event.user_id,
                name=event.name,
                joined_on=event.joined_on,
                role=event.role,
                superior=event.superior,
                stints=[Stint(event.joined_on, event.role, event.superior, at, seq)],
            )
        elif isinstance(event, Department.RoleChanged):
            person = people[event.user_id]
            person.role, person.superior = event.to_role, event.superior
            person.stints.append(Stint(event.effective_on, event.to_role, event.superior, at, seq))
        elif isinstance(event, Department.LineChanged):
            person = people[event.user_id]
            person.superior = event.superior
            role = person.role
            person.stints.append(Stint(event.effective_on, role, event.superior, at, seq))
        elif isinstance(event, Department.Left):
            people[event.user_id].left_on = event.left_on
    return people


def director_now(history: StaffHistory) -> str | None:
    for user_id, person in history.items():
        if person.left_on is None and person.role == "director":
            return user_id
    return None


def chain_of(history: StaffHistory, user_id: str) -> list[str]:
    """The person's superiors now, nearest first, up to the Director (R2.2)."""
    chain: list[str] = []
    person = history.get(user_id)
    boss = person.superior if person else None
    while boss is not None and boss not in chain and boss in history:
        chain.append(boss)
        boss = history[boss].superior
    return chain


def reports_under(history: StaffHistory, user_id: str) -> set[str]:
    """Everyone whose superior chain (now) leads through `user_id`."""
    return {u for u in history if user_id in chain_of(history, u)}


def readable_people(history: StaffHistory, reader: str) -> set[str]:
    """Whose evaluations a PM or specialist may read at all: their own, and
    those of everyone under them now or reporting to them at some time
    (`may_read` decides per evaluation)."""
    past = {u for u, p in history.items() if any(s.superior == reader for s in p.stints)}
    return {reader} | reports_under(history, reader) | past


def may_read(
    history: StaffHistory, reader: str, user_id: str, period: Period, *, involved: Iterable[str]
) -> bool:
    """R6.2, R2.2: the person, their superiors now, their superior as of the
    period's end, and whoever wrote or owes the assessment (`involved`)."""
    if reader == user_id or reader in chain_of(history, user_id) or reader in set(involved):
        return True
    person = history.get(user_id)
    stint = person.stint_on(period.end) if person else None
    return stint is not None and stint.superior == reader


@dataclass(frozen=True)
class Obligation:
    """An evaluation a person owes (R6.2): as of the period's end, or of
    today for a month still running."""

    user_id: str
    name: str
    role: StaffRole
    superior: str | None
    period: Period
    due_at: datetime


def obligation(
    policy: Policy, history: StaffHistory, user_id: str, period: Period, today: date
) -> Obligation:
    """The evaluation of `period` that `user_id` owes; RuleViolation (R6.2,
    409) naming why when nothing is owed."""
    person = history.get(user_id)
    if person is None:
        raise RuleViolation("R6.2", f"{user_id} is not in the department's staff directory")
    day = min(period.end, today)
    if person.joined_on > period.end:
        raise RuleViolation("R6.2", f"{user_id} joined on {person.joined_on}, after {period}")
    if person.left_on is not None and person.left_on <= period.end:
        raise RuleViolation(
            "R6.2",
            f"{user_id} left on {person.left_on}: nothing is owed for {period} or later",
        )
    stint = person.stint_on(day)
    run = person.evaluated_run(day)
    if stint is None or run is None:
        role = stint.role if stint else "not yet in the department"
        raise RuleViolation(
            "R6.2",
            f"the monthly self-assessment and the quarterly assessment are for project"
            f" managers and specialists; {user_id} is {role} on {day}",
        )
    first = first_owed(policy, period.kind, run.since, run.recorded_at)
    if period < first:
        raise RuleViolation(
            "R6.2",
            f"{user_id} was recorded as a {run.role} on {run.recorded_at:%Y-%m-%d}, after the"
            f" {period} evaluation was due: evaluations are owed from {first} on",
        )
    return Obligation(
        user_id=user_id,
        name=person.name,
        role=stint.role,
        superior=stint.superior,
        period=period,
        due_at=due_at(policy, period),
    )


def assessor_of(history: StaffHistory, user_id: str, period: Period) -> str | None:
    """Who writes the quarterly assessment (R6.2, R2.2): the person's
    superior on the quarter's last day while they are in the department,
    else the Director now (never the person themself)."""
    person = history.get(user_id)
    stint = person.stint_on(period.end) if person else None
    superior = stint.superior if stint else None
    if superior is not None and superior in history and history[superior].left_on is None:
        return superior
    director = director_now(history)
    return director if director != user_id else None


# -- the aggregate -----------------------------------------------------------------------------


class Evaluation(LedgerAggregate):
    AGGREGATE_TYPE = "Evaluation"

    class Created(LedgerAggregate.Created):
        """A person's evaluation for a period went on record (R6.2).

        Recorded with its first fact (a submission or the Overdue): whom it
        is about, their role and superior as of the period's end (today for
        a month still running), and its due time."""

        EVENT_TYPE = "EvaluationOpened"
        user_id: str
        name: str
        role: StaffRole
        superior: str | None
        kind: EvaluationKind
        period: str
        period_start: date
        period_end: date
        due_at: datetime

    class SelfAssessed(LedgerAggregate.Event):
        """The person's monthly self-assessment (R6.2); `on_time` false: after the due time."""

        EVENT_TYPE = "SelfAssessmentSubmitted"
        user_id: str
        period: str
        rating: int
        strengths: str
        improvements: str
        comment: str | None
        due_at: datetime
        submitted_at: datetime
        on_time: bool

        def apply(self, aggregate: Any) -> None:
            aggregate._submitted(self, self.user_id)

    class SuperiorAssessed(LedgerAggregate.Event):
        """The superior's quarterly assessment (R6.2, R2.2); `on_time` false: after the due time."""

        EVENT_TYPE = "SuperiorAssessmentSubmitted"
        user_id: str
        period: str
        assessor: str
        assessor_role: str
        rating: int
        strengths: str
        improvements: str
        comment: str | None
        due_at: datetime
        submitted_at: datetime
        on_time: bool

        def apply(self, aggregate: Any) -> None:
            aggregate._submitted(self, self.assessor)

    class SelfOverdue(LedgerAggregate.Event):
        """No self-assessment by the due time: a breach by the person (R6.2, R3.5)."""

        EVENT_TYPE = "SelfAssessmentOverdue"
        user_id: str
        period: str
        due_at: datetime
        deadline_id: uuid.UUID
        owed_by: str
        superior: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate._missed(self)

    class SuperiorOverdue(LedgerAggregate.Event):
        """No quarterly assessment by the due time: a breach by `owed_by` (R6.2, R3.5).

        `owed_by` is the superior who owed it (as of the quarter's end, or
        the Director once that superior left)."""

        EVENT_TYPE = "SuperiorAssessmentOverdue"
        user_id: str
        period: str
        due_at: datetime
        deadline_id: uuid.UUID
        owed_by: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate._missed(self)

    def __init__(
        self,
        *,
        user_id: str,
        name: str,
        role: StaffRole,
        superior: str | None,
        kind: EvaluationKind,
        period: str,
        period_start: date,
        period_end: date,
        due_at: datetime,
    ) -> None:
        self.user_id = user_id
        self.name = name
        self.role = role
        self.superior = superior
        self.kind = kind
        self.period = Period(period_start, kind)
        self.due_at = due_at
        self.overdue_event: uuid.UUID | None = None
        self.overdue_at: datetime | None = None
        #: Who failed to submit by the due time (the person, or the assessor).
        self.owed_by: str | None = None
        #: The SelfAssessed or SuperiorAssessed event, once submitted.
        self.submission: Any = None
        self.author: str | None = None

    def _missed(self, event: Any) -> None:
        self.overdue_event = event.event_id
        self.overdue_at = event.timestamp
        self.owed_by = event.owed_by

    def _submitted(self, event: Any, author: str) -> None:
        self.submission = event
        self.author = author

    # -- queries -----------------------------------------------------------------------------

    @property
    def status(self) -> str:
        """on_time, late, overdue (not submitted) or pending."""
        if self.submission is not None:
            return "on_time" if self.submission.on_time else "late"
        return "overdue" if self.overdue_event is not None else "pending"

    # -- commands ----------------------------------------------------------------------------

    @classmethod
    def open(cls, owed: Obligation, *, due: datetime | None = None) -> Evaluation:
        """The evaluation's stream starts; `due` is its clock's due time when
        the clock runs (a policy change since does not move it, ADR 0007)."""
        period = owed.period
        return cls._create_in_context(
            cls.Created,
            id=evaluation_id(owed.user_id, period),
            user_id=owed.user_id,
            name=owed.name,
            role=owed.role,
            superior=owed.superior,
            kind=period.kind,
            period=period.key,
            period_start=period.start,
            period_end=period.end,
            due_at=due or owed.due_at,
        )

    def submit(
        self,
        *,
        by: str,
        by_role: str,
        assessor: str | None,
        rating: int,
        strengths: str,
        improvements: str,
        comment: str | None,
        now: datetime,
        today: date,
        deadline_id: uuid.UUID,
    ) -> bool:
        """Records the assessment; returns on_time. A late one records the
        Overdue first when the deadline engine has not yet (one breach, one
        Overdue, whoever notices it first)."""
        period = self.period
        if self.kind == "self":
            if by != self.user_id:
                raise RuleViolation(
                    "R6.2",
                    f"a self-assessment is written by {self.user_id} themself",
                    forbidden=True,
                )
        else:
            if by == self.user_id:
                raise RuleViolation("R6.2", "nobody assesses themself quarterly", forbidden=True)
            if by != assessor:
                raise RuleViolation(
                    "R2.2",
                    f"{self.user_id}'s assessment of {period} is written by their superior as of"
                    f" {period.end} ({assessor or 'nobody in the department now'}), not {by}",
                    forbidden=True,
                )
        if self.submission is not None:
            raise RuleViolation(
                "R6.2",
                f"the {self._what()} of {self.user_id} for {period} was submitted already,"
                f" on {self.submission.submitted_at:%Y-%m-%d}",
            )
        if rating not in RATINGS:
            raise RuleViolation("R6.2", f"a rating is 1 to 5, not {rating}")
        if self.kind == "self" and today < period.start:
            raise RuleViolation(
                "R6.2", f"the self-assessment of {period} can be written from {period.start} on"
            )
        if self.kind == "superior" and today <= period.end:
            raise RuleViolation(
                "R6.2",
                f"the assessment of {period} judges the whole quarter: it is written after"
                f" {period.end}",
            )
        on_time = self.overdue_event is None and now <= self.due_at
        if not on_time and self.overdue_event is None:
            self._overdue(deadline_id, self.user_id if self.kind == "self" else by)
        if self.kind == "self":
            self.trigger_event(
                self.SelfAssessed,
                user_id=self.user_id,
                period=period.key,
                rating=rating,
                strengths=strengths,
                improvements=improvements,
                comment=comment,
                due_at=self.due_at,
                submitted_at=now,
                on_time=on_time,
            )
        else:
            self.trigger_event(
                self.SuperiorAssessed,
                user_id=self.user_id,
                period=period.key,
                assessor=by,
                assessor_role=by_role,
                rating=rating,
                strengths=strengths,
                improvements=improvements,
                comment=comment,
                due_at=self.due_at,
                submitted_at=now,
                on_time=on_time,
            )
        return on_time

    def _what(self) -> str:
        return "self-assessment" if self.kind == "self" else "quarterly assessment"

    def _overdue(self, deadline_id: uuid.UUID, owed_by: str | None) -> None:
        if self.kind == "self":
            self.trigger_event(
                self.SelfOverdue,
                user_id=self.user_id,
                period=self.period.key,
                due_at=self.due_at,
                deadline_id=deadline_id,
                owed_by=self.user_id,
                superior=self.superior,
            )
        else:
            self.trigger_event(
                self.SuperiorOverdue,
                user_id=self.user_id,
                period=self.period.key,
                due_at=self.due_at,
                deadline_id=deadline_id,
                owed_by=owed_by,
            )

    def mark_overdue(self, *, deadline_id: uuid.UUID, owed_by: str | None) -> uuid.UUID | None:
        """The deadline engine's record of a missed evaluation (idempotent):
        the Overdue's id, also when recorded before; None when it was
        submitted on time after all (the projector meets the clock)."""
        if self.overdue_event is not None:
            return self.overdue_event
        if self.submission is not None:
            return None
        self._overdue(deadline_id, owed_by)
        return self.overdue_event
