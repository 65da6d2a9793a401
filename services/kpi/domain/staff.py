"""The department's staff directory (R2.2, R2.3): one Department aggregate
holding every person's role, superior, trainings and departure.

    joined (Director | ProjectManager | Specialist, with a superior)
      --promoted on an evaluation / rotated--> another role (R2.3)
      --reporting line changed--> another superior (R2.2)
      --attended trainings--> counted against the yearly target (R2.3)
      --year ended--> TrainingYearClosed, met or not against the target (R3.5)
      --left--> (no further changes)

One aggregate, because the rules span people: the reporting line is
Specialist -> ProjectManager -> Director with one Director (R2.2, R2.3), a
superior must be in the department in the right role, and nobody leaves or
changes role while others still report to them. A department is a handful of
people, so one stream is small; its events on `kpi.events` let the other
services resolve a person's superior.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any, Final, Literal, TypedDict

from shared.domain import LedgerAggregate, RuleViolation

StaffRole = Literal["director", "project_manager", "specialist"]
STAFF_ROLES: Final[tuple[StaffRole, ...]] = ("director", "project_manager", "specialist")
#: R2.2: whom each role reports to.
SUPERIOR_ROLE: Final[dict[str, str | None]] = {
    "director": None,
    "project_manager": "director",
    "specialist": "project_manager",
}
#: R2.3: a promotion moves a person up the line.
PROMOTIONS: Final[frozenset[tuple[str, str]]] = frozenset(
    {("specialist", "project_manager"), ("project_manager", "director")}
)
#: The department's one stream.
DEPARTMENT_ID: Final = uuid.UUID("9c7f1f44-1d0e-5d3a-8b7e-4a0f6e2d3c51")

RoleChange = Literal["promotion", "rotation"]


class Person(TypedDict):
    user_id: str
    name: str
    role: StaffRole
    superior: str | None
    joined_on: date
    left_on: date | None
    trainings: dict[int, list[uuid.UUID]]
    years_closed: dict[int, uuid.UUID]


class Department(LedgerAggregate):
    AGGREGATE_TYPE = "Department"

    class Created(LedgerAggregate.Created):
        """The department's staff directory was opened (R2.2)."""

        EVENT_TYPE = "DepartmentOpened"
        name: str

    class Joined(LedgerAggregate.Event):
        """A person joined in a role, reporting to a superior (R2.2, R2.3)."""

        EVENT_TYPE = "StaffJoined"
        user_id: str
        name: str
        role: StaffRole
        superior: str | None
        joined_on: date

        def apply(self, aggregate: Any) -> None:
            aggregate.people[self.user_id] = Person(
                user_id=self.user_id,
                name=self.name,
                role=self.role,
                superior=self.superior,
                joined_on=self.joined_on,
                left_on=None,
                trainings={},
                years_closed={},
            )

    class RoleChanged(LedgerAggregate.Event):
        """A promotion on an evaluation's result, or a rotation (R2.3)."""

        EVENT_TYPE = "StaffRoleChanged"
        user_id: str
        change: RoleChange
        from_role: StaffRole
        to_role: StaffRole
        superior: str | None
        effective_on: date
        reason: str
        evaluation_ref: str | None

        def apply(self, aggregate: Any) -> None:
            person = aggregate.people[self.user_id]
            person["role"] = self.to_role
            person["superior"] = self.superior

    class LineChanged(LedgerAggregate.Event):
        """The person reports to another superior from now on (R2.2)."""

        EVENT_TYPE = "StaffReportingLineChanged"
        user_id: str
        role: StaffRole
        from_superior: str | None
        superior: str | None
        effective_on: date
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.people[self.user_id]["superior"] = self.superior

    class TrainingHeld(LedgerAggregate.Event):
        """A training was held; each attendee's yearly count grows (R2.3)."""

        EVENT_TYPE = "TrainingHeld"
        training_id: uuid.UUID
        title: str
        held_on: date
        hours: float
        attendees: list[str]

        def apply(self, aggregate: Any) -> None:
            for user in self.attendees:
                person = aggregate.people[user]
                person["trainings"].setdefault(self.held_on.year, []).append(self.training_id)
            aggregate.trainings[self.training_id] = self.held_on

    class TrainingYearClosed(LedgerAggregate.Event):
        """A person's training year ended: attended against the policy's
        target (R2.3); `met` false is a compliance breach (R3.5)."""

        EVENT_TYPE = "TrainingYearClosed"
        user_id: str
        role: StaffRole
        year: int
        attended: int
        target: int
        met: bool
        deadline_id: uuid.UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.people[self.user_id]["years_closed"][self.year] = self.event_id

    class Left(LedgerAggregate.Event):
        """The person left the department."""

        EVENT_TYPE = "StaffLeft"
        user_id: str
        role: StaffRole
        left_on: date
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.people[self.user_id]["left_on"] = self.left_on

    def __init__(self, *, name: str) -> None:
        self.name = name
        self.people: dict[str, Person] = {}
        self.trainings: dict[uuid.UUID, date] = {}

    # -- queries -----------------------------------------------------------------------------

    def person(self, user_id: str) -> Person:
        person = self.people.get(user_id)
        if person is None:
            raise RuleViolation("R2.2", f"{user_id} is not in the department's directory")
        return person

    def active(self, user_id: str) -> Person | None:
        person = self.people.get(user_id)
        return person if person is not None and person["left_on"] is None else None

    def holders(self, role: str) -> list[str]:
        return sorted(
            u for u, p in self.people.items() if p["left_on"] is None and p["role"] == role
        )

    def reports_of(self, user_id: str) -> list[str]:
        return sorted(
            u for u, p in self.people.items() if p["left_on"] is None and p["superior"] == user_id
        )

    def superior_of(self, user_id: str) -> str | None:
        return self.person(user_id)["superior"]

    def attended_in(self, user_id: str, year: int) -> int:
        return len(self.person(user_id)["trainings"].get(year, []))

    # -- rules -------------------------------------------------------------------------------

    def _check_line(self, user_id: str, role: str, superior: str | None) -> None:
        """R2.2: a Director reports to nobody, a PM to the Director, a
        specialist to a PM, each of them in the department now."""
        wanted = SUPERIOR_ROLE[role]
        if wanted is None:
            if superior is not None:
                raise RuleViolation("R2.2", "the Director reports to nobody in the department")
            return
        if superior is None:
            raise RuleViolation("R2.2", f"a {role} reports to a {wanted}: name the superior")
        if superior == user_id:
            raise RuleViolation("R2.2", "nobody reports to themselves")
        boss = self.active(superior)
        if boss is None:
            raise RuleViolation("R2.2", f"{superior} is not in the department")
        if boss["role"] != wanted:
            raise RuleViolation(
                "R2.2", f"a {role} reports to a {wanted}; {superior} is a {boss['role']}"
            )

    def _check_one_director(self, user_id: str, role: str) -> None:
        directors = [d for d in self.holders("director") if d != user_id]
        if role == "director" and directors:
            raise RuleViolation("R2.3", f"the department has its Director ({directors[0]})")

    def _check_no_reports(self, user_id: str, doing: str) -> None:
        reports = self.reports_of(user_id)
        if reports:
            raise RuleViolation(
                "R2.2",
                f"{', '.join(reports)} report to {user_id}: give them another superior before"
                f" {doing}",
            )

    def _ensure_active(self, user_id: str) -> Person:
        person = self.person(user_id)
        if person["left_on"] is not None:
            raise RuleViolation("R2.3", f"{user_id} left the department on {person['left_on']}")
        return person

    # -- commands ----------------------------------------------------------------------------

    @classmethod
    def open(cls, *, name: str) -> Department:
        return cls._create_in_context(cls.Created, id=DEPARTMENT_ID, name=name)

    def join(
        self,
        *,
        user_id: str,
        name: str,
        role: StaffRole,
        superior: str | None,
        joined_on: date,
    ) -> None:
        if user_id in self.people:
            state = "left" if self.people[user_id]["left_on"] else "is in the department"
            raise RuleViolation("R2.3", f"{user_id} {state} already; a return is a new user id")
        self._check_one_director(user_id, role)
        self._check_line(user_id, role, superior)
        self.trigger_event(
            self.Joined,
            user_id=user_id,
            name=name,
            role=role,
            superior=superior,
            joined_on=joined_on,
        )

    def change_role(
        self,
        *,
        user_id: str,
        change: RoleChange,
        to_role: StaffRole,
        superior: str | None,
        effective_on: date,
        reason: str,
        evaluation_ref: str | None,
    ) -> None:
        """R2.3: a promotion rests on an evaluation's result; a rotation (a
        specialist becoming a PM, or back) needs only its reason."""
        person = self._ensure_active(user_id)
        if to_role == person["role"]:
            raise RuleViolation("R2.3", f"{user_id} is a {person['role']} already")
        if change == "promotion":
            if (person["role"], to_role) not in PROMOTIONS:
                raise RuleViolation(
                    "R2.3",
                    f"a promotion moves up the line; {person['role']} to {to_role} is not one",
                )
            if not evaluation_ref:
                raise RuleViolation("R2.3", "a promotion names the evaluation it rests on")
        if effective_on < person["joined_on"]:
            raise RuleViolation("R2.3", "a role change takes effect after the person joined")
        self._check_no_reports(user_id, "the role changes")
        self._check_one_director(user_id, to_role)
        self._check_line(user_id, to_role, superior)
        self.trigger_event(
            self.RoleChanged,
            user_id=user_id,
            change=change,
            from_role=person["role"],
            to_role=to_role,
            superior=superior,
            effective_on=effective_on,
            reason=reason,
            evaluation_ref=evaluation_ref,
        )

    def change_line(
        self, *, user_id: str, superior: str | None, effective_on: date, reason: str
    ) -> None:
        person = self._ensure_active(user_id)
        if superior == person["superior"]:
            raise RuleViolation("R2.2", f"{user_id} reports to {superior} already")
        self._check_line(user_id, person["role"], superior)
        self.trigger_event(
            self.LineChanged,
            user_id=user_id,
            role=person["role"],
            from_superior=person["superior"],
            superior=superior,
            effective_on=effective_on,
            reason=reason,
        )

    def hold_training(
        self,
        *,
        training_id: uuid.UUID,
        title: str,
        held_on: date,
        hours: float,
        attendees: list[str],
    ) -> None:
        if training_id in self.trainings:
            raise RuleViolation("R2.3", "this training is recorded already")
        if not attendees:
            raise RuleViolation("R2.3", "a training has attendees")
        if len(set(attendees)) != len(attendees):
            raise RuleViolation("R2.3", "each attendee is named once")
        for user in attendees:
            person = self.person(user)
            if person["joined_on"] > held_on or (
                person["left_on"] is not None and person["left_on"] < held_on
            ):
                raise RuleViolation("R2.3", f"{user} was not in the department on {held_on}")
        self.trigger_event(
            self.TrainingHeld,
            training_id=training_id,
            title=title,
            held_on=held_on,
            hours=hours,
            attendees=sorted(attendees),
        )

    def close_training_year(
        self, *, user_id: str, year: int, target: int, deadline_id: uuid.UUID
    ) -> uuid.UUID | None:
        """The deadline engine's record at the end of a person's year
        (idempotent); None when the person left before it ended (their clock
        is cancelled with the departure). The target is prorated for a person
        who joined during the year: whole months in the department."""
        person = self.people.get(user_id)
        if person is None:
            return None
        if year in person["years_closed"]:
            return person["years_closed"][year]
        if person["left_on"] is not None and person["left_on"].year <= year:
            return None
        attended = self.attended_in(user_id, year)
        owed = prorated_target(target, person["joined_on"], year)
        self.trigger_event(
            self.TrainingYearClosed,
            user_id=user_id,
            role=person["role"],
            year=year,
            attended=attended,
            target=owed,
            met=attended >= owed,
            deadline_id=deadline_id,
        )
        return person["years_closed"][year]

    def succeed_director(
        self,
        *,
        new_director: str,
        name: str | None,
        effective_on: date,
        reason: str,
        evaluation_ref: str | None,
    ) -> None:
        """The Director hands over (R2.2, R2.3): a PM promoted on an
        evaluation, or a newcomer (`name`), becomes the Director; every PM
        then reports to them, and the outgoing Director leaves, in one step,
        since the line allows no moment with two Directors or none."""
        (outgoing,) = self.holders("director") or (None,)
        if outgoing is None:
            raise RuleViolation("R2.3", "there is no Director to succeed; a Director joins")
        if new_director == outgoing:
            raise RuleViolation("R2.3", f"{outgoing} is the Director already")
        successor = self.active(new_director)
        if successor is None:
            if new_director in self.people:
                raise RuleViolation("R2.3", f"{new_director} left the department")
            if not name:
                raise RuleViolation("R2.3", "a Director from outside joins with a name")
            self.trigger_event(
                self.Joined,
                user_id=new_director,
                name=name,
                role="director",
                superior=None,
                joined_on=effective_on,
            )
        else:
            if successor["role"] != "project_manager":
                raise RuleViolation(
                    "R2.3",
                    f"the Director is succeeded by a project manager or a newcomer;"
                    f" {new_director} is a {successor['role']}",
                )
            if not evaluation_ref:
                raise RuleViolation("R2.3", "a promotion names the evaluation it rests on")
            self._check_no_reports(new_director, "becoming the Director")
            self.trigger_event(
                self.RoleChanged,
                user_id=new_director,
                change="promotion",
                from_role="project_manager",
                to_role="director",
                superior=None,
                effective_on=effective_on,
                reason=reason,
                evaluation_ref=evaluation_ref,
            )
        for manager in self.reports_of(outgoing):
            self.trigger_event(
                self.LineChanged,
                user_id=manager,
                role=self.people[manager]["role"],
                from_superior=outgoing,
                superior=new_director,
                effective_on=effective_on,
                reason=f"new Director: {reason}",
            )
        self.trigger_event(
            self.Left,
            user_id=outgoing,
            role="director",
            left_on=effective_on,
            reason=f"succeeded by {new_director}: {reason}",
        )

    def leave(self, *, user_id: str, left_on: date, reason: str) -> None:
        person = self._ensure_active(user_id)
        if left_on < person["joined_on"]:
            raise RuleViolation("R2.3", "a person leaves after joining")
        self._check_no_reports(user_id, "leaving")
        self.trigger_event(
            self.Left, user_id=user_id, role=person["role"], left_on=left_on, reason=reason
        )


def prorated_target(target: int, joined_on: date, year: int) -> int:
    """The trainings owed in `year` by someone who joined on `joined_on`:
    the yearly target for a whole year, a share by the months remaining after
    joining otherwise (rounded down: nobody owes a training for a part month)."""
    if joined_on.year < year:
        return target
    if joined_on.year > year:
        return 0
    # Whole months in the department: the joining month counts if it began with them.
    months = 12 - joined_on.month + (1 if joined_on.day == 1 else 0)
    return target * months // 12
