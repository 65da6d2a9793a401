"""The partner service's application: its command handlers, the only place
that saves. Policy numbers (deadlines, thresholds, validity) are computed here
from the policy file and handed to the aggregates as values."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from eventsourcing.application import AggregateNotFoundError

from services.partner.domain.partner import (
    Contact,
    Partner,
    Qualification,
    StatusAction,
    partner_id_for,
)
from services.partner.domain.project import (
    ComplaintChannel,
    IncidentCategory,
    Milestone,
    Outcome,
    Project,
    Responsibility,
    RiskRating,
    Sanction,
    Severity,
)
from shared.deadlines import Deadline
from shared.domain import AlreadyExists, CommandContext, LedgerAggregate, command_context
from shared.eventstore import IntegrityError, LedgerApplication
from shared.policy import Quarter

A = TypeVar("A", bound=LedgerAggregate)


class PartnerApplication(LedgerApplication):
    SERVICE = "partner"
    AGGREGATES = (Partner, Project)

    # -- helpers ---------------------------------------------------------------------------

    def today(self) -> date:
        return self.policy.clock.local_date(self.clock.now())

    def _change_partner(
        self, ctx: CommandContext, partner_id: uuid.UUID, act: Callable[[Partner], object]
    ) -> Partner:
        partner = self.get_partner(partner_id)
        with command_context(ctx):
            act(partner)
        self.save_in(ctx, partner)
        return partner

    def _change(
        self, ctx: CommandContext, project_id: uuid.UUID, act: Callable[[Project], object]
    ) -> Project:
        project = self.get_project(project_id)
        with command_context(ctx):
            act(project)
        self.save_in(ctx, project)
        return project

    def get_partner(self, partner_id: uuid.UUID) -> Partner:
        partner: object = self.repository.get(partner_id)
        if not isinstance(partner, Partner):
            raise AggregateNotFoundError(partner_id)
        return partner

    def get_project(self, project_id: uuid.UUID) -> Project:
        project: object = self.repository.get(project_id)
        if not isinstance(project, Project):
            raise AggregateNotFoundError(project_id)
        return project

    # -- partners (R2.1) ---------------------------------------------------------------------

    def register_partner(
        self,
        ctx: CommandContext,
        *,
        name: str,
        unified_social_credit_code: str,
        contact: Contact,
        service_categories: list[str],
    ) -> Partner:
        partner_id = partner_id_for(unified_social_credit_code)
        with command_context(ctx):
            partner = Partner.register(
                name=name,
                unified_social_credit_code=unified_social_credit_code,
                contact=contact,
                service_categories=service_categories,
            )
        try:
            # The id is derived from the code: the store refuses a second one.
            self.save_in(ctx, partner)
        except IntegrityError:
            if partner_id in self.repository:
                raise AlreadyExists(
                    "R2.1",
                    "a partner with this unified social credit code is registered already",
                    partner_id,
                ) from None
            raise
        return partner

    def evaluate_partner(
        self,
        ctx: CommandContext,
        partner_id: uuid.UUID,
        *,
        scores: dict[str, int],
        qualifications: list[Qualification],
        summary: str,
    ) -> Partner:
        return self._change_partner(
            ctx,
            partner_id,
            lambda p: p.evaluate(
                evaluation_id=ctx.new_id(),
                scores=scores,
                qualifications=qualifications,
                summary=summary,
            ),
        )

    def qualify_partner(
        self, ctx: CommandContext, partner_id: uuid.UUID, *, reason: str
    ) -> Partner:
        today = self.today()
        validity = timedelta(days=self.policy.qualification.default_validity_days)
        return self._change_partner(
            ctx,
            partner_id,
            lambda p: p.qualify(
                reason=reason,
                today=today,
                default_valid_until=today + validity,
                renew_within_days=self.policy.qualification.renew_within_days,
            ),
        )

    def reject_partner(self, ctx: CommandContext, partner_id: uuid.UUID, *, reason: str) -> Partner:
        return self._change_partner(ctx, partner_id, lambda p: p.reject(reason=reason))

    def change_partner_status(
        self,
        ctx: CommandContext,
        partner_id: uuid.UUID,
        *,
        action: StatusAction,
        reason: str,
        blacklist: bool,
    ) -> Partner:
        return self._change_partner(
            ctx,
            partner_id,
            lambda p: p.change_status(action=action, reason=reason, blacklist=blacklist),
        )

    # -- projects ----------------------------------------------------------------------------

    def create_project(
        self,
        ctx: CommandContext,
        *,
        partner_id: uuid.UUID,
        title: str,
        scope: str,
        budget: Decimal,
        currency: str,
        project_manager: str,
        specialists: list[str],
        milestones: list[Milestone],
    ) -> Project:
        partner = self.get_partner(partner_id)
        partner.ensure_selectable()
        with command_context(ctx):
            project = Project.create(
                project_id=ctx.new_id(),
                title=title,
                scope=scope,
                budget=budget,
                currency=currency,
                partner_id=partner_id,
                project_manager=project_manager,
                specialists=specialists,
                milestones=milestones,
            )
        self.save_in(ctx, project)
        return project

    def request_procurement_approval(
        self, ctx: CommandContext, project_id: uuid.UUID, *, justification: str
    ) -> Project:
        return self._change(
            ctx,
            project_id,
            lambda p: p.request_procurement_approval(
                request_id=ctx.new_id(), justification=justification, requested_by=ctx.actor.user_id
            ),
        )

    def record_procurement_outcome(
        self,
        ctx: CommandContext,
        project_id: uuid.UUID,
        *,
        request_id: uuid.UUID,
        approved: bool,
        decided_at: datetime,
        amount: Decimal | None = None,
        step: str = "",
        reason: str = "",
    ) -> bool:
        """From `approval.events`; True if it moved the project (a redelivery
        or an outcome of an older request changes nothing)."""
        project = self.get_project(project_id)
        with command_context(ctx):
            if approved:
                moved = project.procurement_approved(
                    request_id=request_id,
                    approved_at=decided_at,
                    amount=project.budget if amount is None else amount,
                )
            else:
                moved = project.procurement_rejected(
                    request_id=request_id, step=step, reason=reason
                )
        if moved:
            self.save_in(ctx, project)
        return moved

    def sign_contract(
        self,
        ctx: CommandContext,
        project_id: uuid.UUID,
        *,
        contract_number: str,
        value: Decimal,
        currency: str,
        signed_on: date,
        starts_on: date,
        ends_on: date,
        sla_terms: list[str],
        third_party_acceptor: str,
    ) -> Project:
        """The contract and the partner's activation are one transaction."""
        project = self.get_project(project_id)
        partner = self.get_partner(project.partner_id)
        with command_context(ctx):
            project.sign_contract(
                contract_number=contract_number,
                value=value,
                currency=currency,
                signed_on=signed_on,
                starts_on=starts_on,
                ends_on=ends_on,
                sla_terms=sla_terms,
                third_party_acceptor=third_party_acceptor,
                kickoff_due_at=self.policy.kickoff_due(signed_on),
                today=self.today(),
            )
            partner.first_contract_signed(project_id=project.id, contract_number=contract_number)
        self.save_in(ctx, project, partner)
        return project

    def hold_kickoff(
        self,
        ctx: CommandContext,
        project_id: uuid.UUID,
        *,
        held_on: date,
        goals: list[str],
        timetable: str,
        responsibilities: list[Responsibility],
    ) -> Project:
        end_of_day = self.policy.clock.end_of_day(held_on)
        today = self.today()
        return self._change(
            ctx,
            project_id,
            lambda p: p.hold_kickoff(
                held_on=held_on,
                held_by_end_of=end_of_day,
                goals=goals,
                timetable=timetable,
                responsibilities=responsibilities,
                today=today,
            ),
        )

    def deliver_milestone(
        self,
        ctx: CommandContext,
        project_id: uuid.UUID,
        *,
        milestone_id: str,
        delivered_on: date,
        note: str,
    ) -> Project:
        return self._change(
            ctx,
            project_id,
            lambda p: p.deliver_milestone(
                milestone_id=milestone_id, delivered_on=delivered_on, note=note, today=self.today()
            ),
        )

    def accept_milestone(
        self, ctx: CommandContext, project_id: uuid.UUID, *, milestone_id: str
    ) -> Project:
        return self._change(
            ctx, project_id, lambda p: p.accept_milestone(milestone_id=milestone_id)
        )

    def reject_milestone(
        self, ctx: CommandContext, project_id: uuid.UUID, *, milestone_id: str, reasons: list[str]
    ) -> Project:
        return self._change(
            ctx,
            project_id,
            lambda p: p.reject_milestone(milestone_id=milestone_id, reasons=reasons),
        )

    def assign_task(
        self,
        ctx: CommandContext,
        project_id: uuid.UUID,
        *,
        task_id: str,
        title: str,
        specialist: str,
        due_on: date,
    ) -> Project:
        return self._change(
            ctx,
            project_id,
            lambda p: p.assign_task(
                task_id=task_id, title=title, specialist=specialist, due_on=due_on
            ),
        )

    def acknowledge_task(
        self, ctx: CommandContext, project_id: uuid.UUID, *, task_id: str
    ) -> Project:
        return self._change(ctx, project_id, lambda p: p.acknowledge_task(task_id=task_id))

    def complete_task(self, ctx: CommandContext, project_id: uuid.UUID, *, task_id: str) -> Project:
        today = self.today()
        return self._change(
            ctx, project_id, lambda p: p.complete_task(task_id=task_id, completed_on=today)
        )

    def hold_review(
        self,
        ctx: CommandContext,
        project_id: uuid.UUID,
        *,
        held_on: date,
        progress: str,
        risk_rating: RiskRating,
        issues: list[str],
    ) -> Project:
        quarter = str(Quarter.of(held_on))
        return self._change(
            ctx,
            project_id,
            lambda p: p.hold_review(
                quarter=quarter,
                held_on=held_on,
                progress=progress,
                risk_rating=risk_rating,
                issues=issues,
                today=self.today(),
            ),
        )

    def receive_complaint(
        self,
        ctx: CommandContext,
        project_id: uuid.UUID,
        *,
        source: str,
        channel: ComplaintChannel = "unspecified",
        severity: Severity,
        summary: str,
        received_at: datetime | None,
    ) -> Project:
        complaint_id = f"C-{ctx.new_id().hex[:12]}"
        when = received_at or self.clock.now()
        return self._change(
            ctx,
            project_id,
            lambda p: p.receive_complaint(
                complaint_id=complaint_id,
                source=source,
                channel=channel,
                severity=severity,
                summary=summary,
                received_at=when,
                now=self.clock.now(),
            ),
        )

    def respond_to_complaint(
        self, ctx: CommandContext, project_id: uuid.UUID, *, complaint_id: str, response: str
    ) -> Project:
        return self._change(
            ctx,
            project_id,
            lambda p: p.respond_to_complaint(complaint_id=complaint_id, response=response),
        )

    def resolve_complaint(
        self, ctx: CommandContext, project_id: uuid.UUID, *, complaint_id: str, resolution: str
    ) -> Project:
        return self._change(
            ctx,
            project_id,
            lambda p: p.resolve_complaint(complaint_id=complaint_id, resolution=resolution),
        )

    def report_incident(
        self,
        ctx: CommandContext,
        project_id: uuid.UUID,
        *,
        category: IncidentCategory,
        severity: Severity,
        occurred_at: datetime,
        detected_at: datetime,
        description: str,
    ) -> Project:
        incident_id = f"I-{ctx.new_id().hex[:12]}"
        return self._change(
            ctx,
            project_id,
            lambda p: p.report_incident(
                incident_id=incident_id,
                category=category,
                severity=severity,
                occurred_at=occurred_at,
                detected_at=detected_at,
                description=description,
                reported_at=self.clock.now(),
                leak_report_due_at=self.policy.data_leak_report_due(detected_at),
                investigation_id=f"INV-{incident_id[2:]}",
            ),
        )

    def conclude_investigation(
        self,
        ctx: CommandContext,
        project_id: uuid.UUID,
        *,
        investigation_id: str,
        findings: str,
        sanctions: list[Sanction],
    ) -> Project:
        return self._change(
            ctx,
            project_id,
            lambda p: p.conclude_investigation(
                investigation_id=investigation_id, findings=findings, sanctions=sanctions
            ),
        )

    def record_cost(
        self,
        ctx: CommandContext,
        project_id: uuid.UUID,
        *,
        amount: Decimal,
        category: str,
        incurred_on: date,
        note: str,
    ) -> Project:
        cost_id = f"K-{ctx.new_id().hex[:12]}"
        return self._change(
            ctx,
            project_id,
            lambda p: p.record_cost(
                cost_id=cost_id,
                amount=amount,
                category=category,
                incurred_on=incurred_on,
                note=note,
                today=self.today(),
            ),
        )

    def record_satisfaction(
        self,
        ctx: CommandContext,
        project_id: uuid.UUID,
        *,
        score: int,
        respondent: str,
        comment: str,
    ) -> Project:
        survey_id = f"S-{ctx.new_id().hex[:12]}"
        return self._change(
            ctx,
            project_id,
            lambda p: p.record_satisfaction(
                survey_id=survey_id, score=score, respondent=respondent, comment=comment
            ),
        )

    # -- major decisions (R5.1, R5.2) -----------------------------------------------------------

    def change_budget(
        self, ctx: CommandContext, project_id: uuid.UUID, *, new_budget: Decimal, reason: str
    ) -> Project:
        """Changed now, or (above the threshold) a decision asked of the Director."""
        return self._change(
            ctx,
            project_id,
            lambda p: p.change_budget(
                new_budget=new_budget,
                reason=reason,
                threshold_percent=self.policy.decisions.major_budget_increase_percent,
                decision_id=ctx.new_id(),
            ),
        )

    def change_scope(
        self, ctx: CommandContext, project_id: uuid.UUID, *, new_scope: str, reason: str
    ) -> Project:
        return self._change(
            ctx,
            project_id,
            lambda p: p.change_scope(
                new_scope=new_scope,
                reason=reason,
                is_major=self.policy.decisions.scope_change_is_major,
                decision_id=ctx.new_id(),
            ),
        )

    def request_renewal(
        self,
        ctx: CommandContext,
        project_id: uuid.UUID,
        *,
        new_end_date: date,
        new_value: Decimal | None,
        reason: str,
    ) -> Project:
        return self._change(
            ctx,
            project_id,
            lambda p: p.request_renewal(
                new_end_date=new_end_date,
                new_value=new_value,
                reason=reason,
                decision_id=ctx.new_id(),
            ),
        )

    def record_decision(
        self,
        ctx: CommandContext,
        project_id: uuid.UUID,
        *,
        decision_id: uuid.UUID,
        kind: str,
        approved: bool,
        reason: str,
    ) -> bool:
        project = self.get_project(project_id)
        with command_context(ctx):
            moved = project.decision_made(
                decision_id=decision_id, kind=kind, approved=approved, reason=reason
            )
        if moved:
            self.save_in(ctx, project)
        return moved

    # -- acceptance and closure -------------------------------------------------------------------

    def record_final_acceptance(
        self,
        ctx: CommandContext,
        project_id: uuid.UUID,
        *,
        accepted_on: date,
        third_party: str,
        signatory: str,
        report_ref: str,
    ) -> Project:
        return self._change(
            ctx,
            project_id,
            lambda p: p.record_final_acceptance(
                accepted_on=accepted_on,
                third_party=third_party,
                signatory=signatory,
                report_ref=report_ref,
                today=self.today(),
            ),
        )

    def close_project(
        self, ctx: CommandContext, project_id: uuid.UUID, *, outcome: Outcome, reason: str
    ) -> Project:
        return self._change(ctx, project_id, lambda p: p.close(outcome=outcome, reason=reason))

    # -- deadlines passed (shared.deadlines calls these) -------------------------------------

    def _overdue(
        self, deadline: Deadline, kind: type[A], record: Callable[[A], uuid.UUID | None]
    ) -> uuid.UUID | None:
        return self.record_once(deadline.aggregate_id, kind, deadline.started_by, record)

    def kickoff_overdue(self, deadline: Deadline) -> uuid.UUID | None:
        return self._overdue(
            deadline, Project, lambda p: p.mark_kickoff_overdue(deadline_id=deadline.id)
        )

    def review_overdue(self, deadline: Deadline) -> uuid.UUID | None:
        return self._overdue(
            deadline,
            Project,
            lambda p: p.mark_review_overdue(
                deadline_id=deadline.id, quarter=deadline.ref, due_at=deadline.due_at
            ),
        )

    def requalification_overdue(self, deadline: Deadline) -> uuid.UUID | None:
        return self._overdue(
            deadline,
            Partner,
            lambda p: p.mark_requalification_overdue(
                deadline_id=deadline.id,
                valid_until=date.fromisoformat(deadline.ref.partition("@")[0]),
                qualified_version=int(deadline.ref.partition("@")[2] or 0),
            ),
        )
