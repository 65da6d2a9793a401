"""The kpi service's own event store and command handlers: the department's
staff directory (R2.2, R2.3). The KPI figures themselves are projections of
the other services' topics (services/kpi/consumers)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime

from psycopg.sql import SQL, Identifier

from services.kpi.domain.evaluation import (
    Evaluation,
    Period,
    StaffHistory,
    assessor_of,
    deadline_ref,
    evaluation_id,
    obligation,
    parse_deadline_ref,
    staff_history,
)
from services.kpi.domain.scorecard import load_scorecard
from services.kpi.domain.staff import (
    DEPARTMENT_ID,
    Department,
    RoleChange,
    StaffRole,
)
from services.kpi.domain.standing import PartnerStanding, standing_id
from shared.clock import Clock, IdFactory, random_ids
from shared.deadlines import Deadline, deadline_id
from shared.domain import CommandContext, RuleViolation, command_context
from shared.eventstore import IntegrityError, LedgerApplication
from shared.policy import Policy
from shared.settings import Settings

#: The deadline kind of a person's training year (R2.3); ref `<year>#<user id>`.
TRAINING_YEAR = "training_year"


def training_ref(year: int, user_id: str) -> str:
    return f"{year}#{user_id}"


class KpiApplication(LedgerApplication):
    SERVICE = "kpi"
    AGGREGATES = (Department, Evaluation, PartnerStanding)

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        new_id: IdFactory = random_ids,
        policy: Policy | None = None,
    ) -> None:
        super().__init__(settings, clock=clock, new_id=new_id, policy=policy)
        #: The scorecard's formulas (R6.1); a bad file stops the service here.
        self.scorecard = load_scorecard(settings.scorecard_file)

    # -- partner standings (services/kpi/scoring.py) -------------------------------

    def _standing(self, partner_id: uuid.UUID, act: Callable[[PartnerStanding], bool]) -> bool:
        """Loads (or opens) the partner's standing, acts, saves if it changed;
        a racing replica's change is decided again on the newer state."""
        for _ in range(5):
            ctx = self.system_context()
            with command_context(ctx):
                standing = self.find_as(PartnerStanding, standing_id(partner_id))
                if standing is None:
                    standing = PartnerStanding.open(partner_id)
                changed = act(standing)
            if not standing.pending_events:
                return False
            try:
                self.save_in(ctx, standing)
                return changed
            except IntegrityError:
                continue
        raise IntegrityError(f"the standing of {partner_id} keeps changing")

    def assess_standing(
        self,
        partner_id: uuid.UUID,
        *,
        standing: str,
        standing_zh: str,
        overall: float,
        formula_version: str,
        period_kind: str,
        latest_period: str,
    ) -> bool:
        """R6.1: records PartnerStandingChanged when the standing moves."""
        return self._standing(
            partner_id,
            lambda s: s.assess(
                standing=standing,
                standing_zh=standing_zh,
                overall=overall,
                formula_version=formula_version,
                period_kind=period_kind,
                latest_period=latest_period,
            ),
        )

    def warn_probation_project(
        self,
        partner_id: uuid.UUID,
        *,
        project_id: uuid.UUID,
        title: str,
        project_manager: str,
        created_at: datetime,
        probation: str,
    ) -> bool:
        """R1.2: a project created for a partner already in Probation is
        warned about once; projects from before the standing began are not."""
        current = self.find_as(PartnerStanding, standing_id(partner_id))
        if current is None or current.since is None or created_at < current.since:
            return False
        return self._standing(
            partner_id,
            lambda s: s.warn_project(
                project_id=project_id,
                title=title,
                project_manager=project_manager,
                probation=probation,
            ),
        )

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
        if change == "promotion":
            self.check_evaluation_ref(user_id, evaluation_ref)
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
        self.check_evaluation_ref(new_director, evaluation_ref)
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

    # -- staff evaluations (R6.2, R2.3) --------------------------------------------------------

    def staff_history(self) -> StaffHistory:
        """Everyone's roles and superiors in time, from the directory's events."""
        return staff_history(self.events.get(DEPARTMENT_ID))

    def evaluation(self, user_id: str, period: Period) -> Evaluation | None:
        return self.find_as(Evaluation, evaluation_id(user_id, period))

    def _clock_due(self, user_id: str, period: Period) -> datetime | None:
        """The due time the evaluation's clock was started with, if it was."""
        clock = deadline_id(
            period.deadline_kind, evaluation_id(user_id, period), deadline_ref(period, user_id)
        )
        sql = SQL("SELECT due_at FROM {}.deadlines WHERE id = %s").format(Identifier(self.schema))
        with self.recorder_datastore().get_connection() as conn, conn.cursor() as curs:
            curs.execute(sql, (clock,))
            row = curs.fetchone()
        return None if row is None else row["due_at"]

    def submit_evaluation(
        self,
        ctx: CommandContext,
        user_id: str,
        period: Period,
        *,
        rating: int,
        strengths: str,
        improvements: str,
        comment: str | None,
    ) -> Evaluation:
        """The caller's self-assessment of a month (`user_id` is the caller)
        or their assessment of a report's quarter (R6.2)."""
        eid = evaluation_id(user_id, period)
        clock = deadline_id(period.deadline_kind, eid, deadline_ref(period, user_id))
        for _ in range(5):
            history = self.staff_history()
            now = ctx.clock.now()
            today = self.policy.clock.local_date(now)
            evaluation = self.find_as(Evaluation, eid)
            with command_context(ctx):
                if evaluation is None:
                    owed = obligation(self.policy, history, user_id, period, today)
                    evaluation = Evaluation.open(owed, due=self._clock_due(user_id, period))
                evaluation.submit(
                    by=ctx.actor.user_id,
                    by_role=ctx.actor.role,
                    assessor=(
                        user_id if period.kind == "self" else assessor_of(history, user_id, period)
                    ),
                    rating=rating,
                    strengths=strengths,
                    improvements=improvements,
                    comment=comment,
                    now=now,
                    today=today,
                    deadline_id=clock,
                )
            try:
                self.save_in(ctx, evaluation)
                return evaluation
            except IntegrityError:
                continue
        raise IntegrityError(f"the evaluation of {user_id} for {period} keeps changing")

    def record_evaluation_overdue(self, deadline: Deadline) -> uuid.UUID | None:
        """The deadline engine's record of a missed self-assessment or
        quarterly assessment (idempotent); None when it was submitted after
        all, or is no longer owed (the projector meets or cancels the clock)."""
        period, user_id = parse_deadline_ref(deadline.ref)
        for _ in range(3):
            history = self.staff_history()
            evaluation = self.find_as(Evaluation, deadline.aggregate_id)
            ctx = self.system_context(causation_id=deadline.started_by)
            with command_context(ctx):
                if evaluation is None:
                    today = self.policy.clock.local_date(self.clock.now())
                    try:
                        owed = obligation(self.policy, history, user_id, period, today)
                    except RuleViolation:
                        return None
                    evaluation = Evaluation.open(owed, due=deadline.due_at)
                owed_by = (
                    user_id if period.kind == "self" else assessor_of(history, user_id, period)
                )
                event_id = evaluation.mark_overdue(deadline_id=deadline.id, owed_by=owed_by)
            if not evaluation.pending_events:
                return event_id
            try:
                self.save_in(ctx, evaluation)
                return event_id
            except IntegrityError:
                continue
        raise RuntimeError(f"the evaluation of {user_id} for {period} keeps changing")

    def check_evaluation_ref(self, user_id: str, ref: str | None) -> None:
        """R2.3: a promotion rests on an evaluation. When its ref names one
        of this system's (the period, e.g. `2026-Q3`, or the evaluation id),
        it must be a quarterly assessment of that person by their superior,
        written, rated at least `[evaluations] promotion_min_rating`; other
        text names an evaluation held outside the system and is kept as given."""
        if not ref:
            return
        try:
            period = Period.parse(ref.strip())
        except ValueError:
            try:
                cited = self.find_as(Evaluation, uuid.UUID(ref.strip()))
            except ValueError:
                return
            if cited is None:
                return
        else:
            cited = self.evaluation(user_id, period)
            if cited is None:
                raise RuleViolation("R2.3", f"{user_id} has no evaluation for {period} on record")
        if cited.user_id != user_id:
            raise RuleViolation("R2.3", f"evaluation {ref} is {cited.user_id}'s, not {user_id}'s")
        if cited.kind != "superior":
            raise RuleViolation(
                "R2.3",
                "a promotion rests on the superior's quarterly assessment (R6.2), not on a"
                " monthly self-assessment",
            )
        if cited.submission is None:
            raise RuleViolation(
                "R2.3", f"the assessment of {user_id} for {cited.period} is not written"
            )
        least = self.policy.evaluations.promotion_min_rating
        if cited.submission.rating < least:
            raise RuleViolation(
                "R2.3",
                f"the assessment of {user_id} for {cited.period} is rated"
                f" {cited.submission.rating}; a promotion needs at least {least}",
            )
