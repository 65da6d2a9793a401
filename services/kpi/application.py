"""The kpi service's own event store and command handlers: the department's
staff directory (R2.2, R2.3). The KPI figures themselves are projections of
the other services' topics (services/kpi/consumers)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date

from services.kpi.domain.staff import (
    DEPARTMENT_ID,
    Department,
    RoleChange,
    StaffRole,
)
from shared.deadlines import Deadline
from shared.domain import CommandContext, command_context
from shared.eventstore import IntegrityError, LedgerApplication

#: The deadline kind of a person's training year (R2.3); ref `<year>#<user id>`.
TRAINING_YEAR = "training_year"


def training_ref(year: int, user_id: str) -> str:
    return f"{year}#{user_id}"


class KpiApplication(LedgerApplication):
    SERVICE = "kpi"
    AGGREGATES = (Department,)

    def department(self) -> Department | None:
        return self.find_as(Department, DEPARTMENT_ID)

    def _change(self, ctx: CommandContext, act: Callable[[Department], object]) -> Department:
        """Every staff command changes the one Department (opened on first
        use); a command racing another is decided again on the newer state."""
        for _ in range(5):
            department = self.department()
            with command_context(ctx):
                if department is None:
                    department = Department.open(name=self.policy.documents.department_name)
                act(department)
            try:
                self.save_in(ctx, department)
                return department
            except IntegrityError:
                continue
        raise IntegrityError("the staff directory keeps changing; try again")

    def join(
        self,
        ctx: CommandContext,
        *,
        user_id: str,
        name: str,
        role: StaffRole,
        superior: str | None,
        joined_on: date,
    ) -> Department:
        return self._change(
            ctx,
            lambda d: d.join(
                user_id=user_id, name=name, role=role, superior=superior, joined_on=joined_on
            ),
        )

    def change_role(
        self,
        ctx: CommandContext,
        user_id: str,
        *,
        change: RoleChange,
        to_role: StaffRole,
        superior: str | None,
        effective_on: date,
        reason: str,
        evaluation_ref: str | None,
    ) -> Department:
        return self._change(
            ctx,
            lambda d: d.change_role(
                user_id=user_id,
                change=change,
                to_role=to_role,
                superior=superior,
                effective_on=effective_on,
                reason=reason,
                evaluation_ref=evaluation_ref,
            ),
        )

    def change_line(
        self,
        ctx: CommandContext,
        user_id: str,
        *,
        superior: str | None,
        effective_on: date,
        reason: str,
    ) -> Department:
        return self._change(
            ctx,
            lambda d: d.change_line(
                user_id=user_id, superior=superior, effective_on=effective_on, reason=reason
            ),
        )

    def succeed_director(
        self,
        ctx: CommandContext,
        *,
        new_director: str,
        name: str | None,
        effective_on: date,
        reason: str,
        evaluation_ref: str | None,
    ) -> Department:
        return self._change(
            ctx,
            lambda d: d.succeed_director(
                new_director=new_director,
                name=name,
                effective_on=effective_on,
                reason=reason,
                evaluation_ref=evaluation_ref,
            ),
        )

    def leave(self, ctx: CommandContext, user_id: str, *, left_on: date, reason: str) -> Department:
        return self._change(ctx, lambda d: d.leave(user_id=user_id, left_on=left_on, reason=reason))

    def hold_training(
        self,
        ctx: CommandContext,
        *,
        title: str,
        held_on: date,
        hours: float,
        attendees: list[str],
    ) -> tuple[Department, uuid.UUID]:
        training_id = ctx.new_id()
        department = self._change(
            ctx,
            lambda d: d.hold_training(
                training_id=training_id,
                title=title,
                held_on=held_on,
                hours=hours,
                attendees=attendees,
            ),
        )
        return department, training_id

    # -- deadlines (R2.3, R3.5) ----------------------------------------------------------------

    def close_training_year(self, deadline: Deadline) -> uuid.UUID | None:
        year, _, user_id = deadline.ref.partition("#")
        return self.record_once(
            deadline.aggregate_id,
            Department,
            deadline.started_by,
            lambda d: d.close_training_year(
                user_id=user_id,
                year=int(year),
                target=self.policy.staffing.trainings_per_year,
                deadline_id=deadline.id,
            ),
        )
