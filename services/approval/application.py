"""The approval service's application: its command handlers, the only place
that saves (R3.1 procurement approval, R5.1/R5.2 Director decisions, R5.3
emergency actions). Time limits are computed here from the policy file and
handed to the aggregates as values."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Literal, TypeVar

from eventsourcing.application import AggregateNotFoundError

from services.approval.domain.delegation import Delegations, delegations_id
from services.approval.domain.emergency import EmergencyAction
from services.approval.domain.request import (
    APPROVER_ROLES,
    PROCUREMENT_STEPS,
    STEP_ROLE,
    ApprovalRequest,
    Decision,
    Kind,
    Signer,
    Step,
)
from services.approval.projections import APPROVAL_STEP, EMERGENCY_EXPLANATION, step_ref
from shared.deadlines import Deadline, deadline_id
from shared.domain import CommandContext, LedgerAggregate, RuleViolation, command_context
from shared.eventstore import IntegrityError, LedgerApplication

A = TypeVar("A", bound=LedgerAggregate)

#: The procurement step each role signs (R3.1): dept_head -> department_head, ...
ROLE_STEP: dict[str, Step] = {STEP_ROLE[step]: step for step in PROCUREMENT_STEPS}


class ApprovalApplication(LedgerApplication):
    SERVICE = "approval"
    AGGREGATES = (ApprovalRequest, EmergencyAction, Delegations)

    # -- helpers ---------------------------------------------------------------------------

    def _due(self, step: Step, opened_at: datetime) -> datetime:
        return self.policy.approval_step_due(step, opened_at)

    def get_request(self, request_id: uuid.UUID) -> ApprovalRequest:
        return self.get_as(ApprovalRequest, request_id)

    def get_emergency(self, action_id: uuid.UUID) -> EmergencyAction:
        return self.get_as(EmergencyAction, action_id)

    def get_delegations(self, delegator: str) -> Delegations | None:
        return self.find_as(Delegations, delegations_id(delegator))

    def _change(
        self,
        ctx: CommandContext,
        kind: type[A],
        aggregate_id: uuid.UUID,
        act: Callable[[A], object],
    ) -> A:
        aggregate = self.get_as(kind, aggregate_id)
        with command_context(ctx):
            act(aggregate)
        self.save_in(ctx, aggregate)
        return aggregate

    # -- opening requests -------------------------------------------------------------------

    def open_request(
        self,
        ctx: CommandContext,
        *,
        request_id: uuid.UUID,
        kind: Kind,
        project_id: uuid.UUID | None,
        partner_id: uuid.UUID | None,
        title: str,
        amount: Decimal | None,
        currency: str,
        justification: str,
        requested_by: str,
        source: Literal["partner.events", "api"],
        approvers: dict[str, str] | None = None,
        new_budget: Decimal | None = None,
        new_scope: str | None = None,
        new_end_date: date | None = None,
        new_value: Decimal | None = None,
    ) -> tuple[ApprovalRequest, bool]:
        """Opens a request and its first step; (request, False) when a request
        with this id exists already (a redelivered event opens nothing)."""
        if request_id in self.repository:
            return self.get_request(request_id), False
        now = self.clock.now()
        with command_context(ctx):
            request = ApprovalRequest.open(
                request_id=request_id,
                kind=kind,
                project_id=project_id,
                partner_id=partner_id,
                title=title,
                amount=amount,
                currency=currency,
                justification=justification,
                requested_by=requested_by,
                source=source,
                approvers=approvers or {},
                now=now,
                due=self._due,
                new_budget=new_budget,
                new_scope=new_scope,
                new_end_date=new_end_date,
                new_value=new_value,
            )
        try:
            self.save_in(ctx, request)
        except IntegrityError:
            if request_id in self.repository:  # a racing delivery opened it
                return self.get_request(request_id), False
            raise
        return request, True

    def ensure_major(
        self,
        kind: Kind,
        *,
        current_budget: Decimal | None = None,
        new_budget: Decimal | None = None,
    ) -> None:
        """R5.2: only a major decision goes to the Director; the PM decides
        the rest (the partner service applies the same thresholds)."""
        rules = self.policy.decisions
        if kind == "budget_increase":
            assert current_budget is not None and new_budget is not None
            if new_budget <= current_budget:
                raise RuleViolation("R5.2", "a budget increase raises the budget")
            percent = (new_budget - current_budget) / current_budget * 100
            if percent <= Decimal(str(rules.major_budget_increase_percent)):
                raise RuleViolation(
                    "R5.2",
                    f"an increase of {percent:.2f}% is within the project manager's authority;"
                    f" above {rules.major_budget_increase_percent}% it goes to the Director",
                )
        elif kind == "scope_change" and not rules.scope_change_is_major:
            raise RuleViolation("R5.2", "the policy leaves scope changes to the project manager")

    # -- deciding ---------------------------------------------------------------------------

    def signer_for(
        self,
        request: ApprovalRequest,
        user_id: str,
        role: str,
        on_behalf_of: str | None,
    ) -> Signer:
        """Who signs: the user, and whom they stand in for. A delegate names the
        delegator, or is recognised when the open step is assigned to a person
        who delegated to them (R3.1); the delegation is read from the store."""
        now = self.clock.now()
        if on_behalf_of is None:
            record = request.current
            named = record["assignee"] if record else None
            if named is not None and named != user_id:
                book = self.get_delegations(named)
                if book is not None and book.active_for(user_id, role, now) is not None:
                    on_behalf_of = named
        elif on_behalf_of == user_id:
            on_behalf_of = None
        else:
            book = self.get_delegations(on_behalf_of)
            if book is None or book.active_for(user_id, role, now) is None:
                raise RuleViolation(
                    "R3.1",
                    f"{user_id} holds no delegation from {on_behalf_of} for the role {role}"
                    " at this time",
                    forbidden=True,
                )
        return Signer(user_id=user_id, role=role, delegate_of=on_behalf_of)

    def decide(
        self,
        ctx: CommandContext,
        request_id: uuid.UUID,
        *,
        decision: Decision,
        reason: str,
        step: Step | None = None,
        on_behalf_of: str | None = None,
        expected_version: int | None = None,
    ) -> ApprovalRequest:
        request = self.get_request(request_id)
        if expected_version is not None and expected_version != request.version:
            raise StaleVersion(request.version)
        if step is None and request.is_procurement and not request.may_sign(ctx.actor.role):
            # The caller's role signs a step of the chain that is not the open one:
            # it lost a race to the step (or its turn has not come). That is a
            # conflict of order (409 with the current version), not a denial.
            step = ROLE_STEP.get(ctx.actor.role)
        signer = self.signer_for(request, ctx.actor.user_id, ctx.actor.role, on_behalf_of)
        record = request.current
        clock_id = (
            deadline_id(APPROVAL_STEP, request.id, step_ref(record["step"], record["round"]))
            if record is not None
            else None
        )
        with command_context(ctx):
            request.decide(
                decision=decision,
                signer=signer,
                reason=reason,
                now=self.clock.now(),
                due=self._due,
                step=step,
                deadline_id=clock_id,
            )
        self.save_in(ctx, request)
        return request

    def resubmit(
        self, ctx: CommandContext, request_id: uuid.UUID, *, response: str
    ) -> ApprovalRequest:
        now = self.clock.now()
        return self._change(
            ctx,
            ApprovalRequest,
            request_id,
            lambda r: r.resubmit(
                user_id=ctx.actor.user_id, response=response, now=now, due=self._due
            ),
        )

    # -- delegation -------------------------------------------------------------------------

    def delegate(
        self,
        ctx: CommandContext,
        *,
        delegate: str,
        starts_at: datetime,
        ends_at: datetime,
        reason: str,
    ) -> Delegations:
        role = ctx.actor.role
        if role not in APPROVER_ROLES:
            raise RuleViolation(
                "R3.1",
                f"only approvers delegate their signature; {role} signs no step",
                forbidden=True,
            )
        grant_id = ctx.new_id()
        now = self.clock.now()
        for _ in range(3):
            book = self.get_delegations(ctx.actor.user_id)
            with command_context(ctx):
                if book is None:
                    book = Delegations.open(delegator=ctx.actor.user_id)
                book.grant(
                    grant_id=grant_id,
                    delegate=delegate,
                    role=role,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    reason=reason,
                    now=now,
                )
            try:
                self.save_in(ctx, book)
                return book
            except IntegrityError:
                continue  # the first delegation of this person raced another
        raise IntegrityError("the delegations of this approver keep changing")

    def revoke_delegation(self, ctx: CommandContext, grant_id: uuid.UUID) -> Delegations:
        now = self.clock.now()
        book = self.get_delegations(ctx.actor.user_id)
        if book is None or grant_id not in book.grants:
            raise AggregateNotFoundError(grant_id)
        with command_context(ctx):
            book.revoke(grant_id=grant_id, now=now)
        self.save_in(ctx, book)
        return book

    # -- emergency actions (R5.3) -----------------------------------------------------------

    def record_emergency(
        self,
        ctx: CommandContext,
        *,
        project_id: uuid.UUID | None,
        what_happened: str,
        action_taken: str,
        resources_changed: list[str],
        acted_at: datetime,
    ) -> EmergencyAction:
        now = self.clock.now()
        if acted_at > now:  # before the due time is computed from it
            raise RuleViolation("R5.3", "an emergency action is recorded after it was taken")
        with command_context(ctx):
            action = EmergencyAction.record(
                action_id=ctx.new_id(),
                project_id=project_id,
                what_happened=what_happened,
                action_taken=action_taken,
                resources_changed=resources_changed,
                acted_at=acted_at,
                recorded_by=ctx.actor.user_id,
                now=now,
                explanation_due_at=self.policy.emergency_explanation_due(acted_at),
            )
        self.save_in(ctx, action)
        return action

    def file_explanation(
        self, ctx: CommandContext, action_id: uuid.UUID, *, explanation: str
    ) -> EmergencyAction:
        now = self.clock.now()
        return self._change(
            ctx,
            EmergencyAction,
            action_id,
            lambda a: a.file_explanation(
                explanation=explanation,
                user_id=ctx.actor.user_id,
                now=now,
                deadline_id=deadline_id(EMERGENCY_EXPLANATION, action_id),
            ),
        )

    def decide_emergency(
        self, ctx: CommandContext, action_id: uuid.UUID, *, ratify: bool, reason: str
    ) -> EmergencyAction:
        now = self.clock.now()
        return self._change(
            ctx,
            EmergencyAction,
            action_id,
            lambda a: a.decide(ratify=ratify, reason=reason, now=now),
        )

    # -- deadlines (R3.5) -------------------------------------------------------------------

    def _overdue(
        self, deadline: Deadline, kind: type[A], record: Callable[[A], uuid.UUID | None]
    ) -> uuid.UUID | None:
        return self.record_once(deadline.aggregate_id, kind, deadline.started_by, record)

    def step_overdue(self, deadline: Deadline) -> uuid.UUID | None:
        step, _, round_ = deadline.ref.partition("#")
        escalate_to = self.policy.approval.step(step).escalation_role
        return self._overdue(
            deadline,
            ApprovalRequest,
            lambda r: r.mark_step_overdue(
                deadline_id=deadline.id, step=step, round_=int(round_), escalate_to=escalate_to
            ),
        )

    def explanation_overdue(self, deadline: Deadline) -> uuid.UUID | None:
        return self._overdue(
            deadline,
            EmergencyAction,
            lambda a: a.mark_explanation_overdue(deadline_id=deadline.id),
        )


class StaleVersion(RuleViolation):
    """The caller decided on a version of the request that is not the current one."""

    def __init__(self, current_version: int) -> None:
        super().__init__(
            "R3.1",
            f"the request is at version {current_version} now; reload it and decide again",
        )
        self.current_version = current_version
