"""R3.1-R3.5, R5.1, R5.2, R6.1, R6.4, R1.2: the Project aggregate's lifecycle,
explored by a hypothesis state machine.

Rules call every command of the aggregate with generated arguments: procurement
approval and its outcomes (for the current request, a stale one or an unknown
one, repeated), the contract (within and above the approved budget, dated
before or after today), the kickoff, milestone deliveries, tasks, quarterly
reviews, complaints, incidents (data leaks reported in time or late, critical
incidents), investigations, costs, satisfaction surveys, budget and scope
changes below and above the threshold, renewals, the Director's decisions
(approved, denied, repeated, of the wrong kind), final acceptance (by the
contract's third party, differently spelled, or another one) and closure with
each outcome. A reference model of project.py's lifecycle predicts whether each
command is accepted and which events it records. Proves that:

- a refused command raises `RuleViolation` naming a requirement id, changes
  nothing and records no event; a stale or repeated outcome returns False and
  changes nothing;
- the status only moves along the transitions of project.py's docstring;
- a contract is signed only after procurement approval, within the approved
  amount and in its currency (R3.1); work (deliveries, task assignments)
  happens only in progress, after the kickoff; a task assigned then may still be
  acknowledged or completed after the acceptance, never once closed (R3.2);
- final acceptance happened iff the project is accepted or closed as
  completed, and only the contract's third party gives it (R3.4);
- a late data-leak report records `LateIncidentReport`; data leaks and critical
  incidents open an investigation (R6.4);
- the costs total is the sum of the recorded costs (R6.1); the budget never
  exceeds the approved budget by more than the threshold without the
  Director (R5.2);
- each Overdue method records at most one event per deadline id and returns
  the same event id for it every time (R3.5);
- replaying the events from scratch rebuilds the live state.

Regression tests at the end pin the bugs the model found (fixed meanwhile):
satisfaction surveyed for a project closed before its contract, an accepted
project closed as failed, a contract in another currency than the approval.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import event as note_outcome
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from services.partner.domain.project import Milestone, Project
from shared.clock import ManualClock, SequentialIds
from shared.domain import Actor, CommandContext, RuleViolation, command_context

START = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
DIRECTOR = Actor("d", "director")
RULE_ID = re.compile(r"R[1-6]\.[1-9]")
BUDGET = Decimal("100000.00")
THRESHOLD_PERCENT = 10.0
LIMIT_FACTOR = 1 + Decimal(str(THRESHOLD_PERCENT)) / 100
LEAK_REPORT_HOURS = 1
THIRD_PARTY = "China Software Testing Center"
SPECIALISTS = ("s1", "s2")
MILESTONES: list[Milestone] = [
    Milestone(milestone_id="m1", name="design", deliverable="spec", due_on=date(2026, 3, 31)),
    Milestone(milestone_id="m2", name="build", deliverable="system", due_on=date(2026, 6, 30)),
]
MILESTONE_IDS = ("m1", "m2", "m9")  # m9 is not in the project
TASK_IDS = ("T1", "T2", "T3")
COMPLAINT_IDS = ("C1", "C2")
INCIDENT_IDS = ("I1", "I2", "I3")
INVESTIGATION_IDS = (*(f"INV-{i}" for i in INCIDENT_IDS), "INV-X")
COST_IDS = ("K1", "K2", "K3", "K4")
SURVEY_IDS = ("S1", "S2")
QUARTERS = ("2026-Q1", "2026-Q2", "2026-Q3")
#: Small pools, so that deadline ids repeat within a run.
KICKOFF_DEADLINES = tuple(uuid5(NAMESPACE_URL, f"kickoff-deadline-{i}") for i in range(2))
REVIEW_DEADLINES = tuple(uuid5(NAMESPACE_URL, f"review-deadline-{i}") for i in range(3))

STATUSES = frozenset(
    {
        "planned",
        "awaiting_approval",
        "approved",
        "procurement_rejected",
        "contracted",
        "in_progress",
        "accepted",
        "closed",
    }
)
OPEN_AFTER_CONTRACT = frozenset({"contracted", "in_progress", "accepted"})
#: project.py's docstring, as (from, to) pairs.
TRANSITIONS = frozenset(
    {
        ("planned", "awaiting_approval"),
        ("awaiting_approval", "approved"),
        ("awaiting_approval", "procurement_rejected"),
        ("procurement_rejected", "awaiting_approval"),
        ("approved", "contracted"),
        ("contracted", "in_progress"),
        ("in_progress", "accepted"),
        *((s, "closed") for s in STATUSES - {"closed"}),
    }
)
#: Events of work on the deliverables: only in progress, after the kickoff (R3.2).
WORK_EVENTS = (
    Project.MilestoneDelivered,
    Project.MilestoneAccepted,
    Project.MilestoneRejected,
    Project.TaskAssigned,
)
#: A task assigned in progress may still be acknowledged or completed after acceptance.
TASK_FOLLOW_UP_EVENTS = (Project.TaskAcknowledged, Project.TaskCompleted)

REFUSED = None
Expected = tuple[type[Any], ...] | None


def _state(project: Project) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in vars(project).items() if k != "_pending_events"})


def _replay(events: list[Any]) -> Project:
    created, *rest = events
    aggregate = created.mutate(None)
    for e in rest:
        aggregate = e.mutate(aggregate)
    assert isinstance(aggregate, Project)
    return aggregate


def _end_of_day(day: date) -> datetime:
    return datetime.combine(day, time.max, tzinfo=UTC)


def _normal(name: str) -> str:
    return " ".join(name.split()).casefold()


#: The contract's acceptor, spelled differently, and another organisation.
third_parties = st.sampled_from(
    [THIRD_PARTY, "  china software  TESTING center ", "Our own QA team"]
)
#: Dates relative to today: mostly in the past, sometimes in the future (refused).
day_offsets = st.one_of(st.integers(-20, 0), st.integers(-20, 0), st.integers(1, 3))


class ProjectMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(START)
        self.new_id = SequentialIds()
        self.events: list[Any] = []
        # The reference model of project.py's lifecycle.
        self.status = "planned"
        self.request_id: UUID | None = None
        self.requested_amount: Decimal | None = None
        self.old_request_ids: list[UUID] = []
        self.budget = BUDGET
        self.approved_budget: Decimal | None = None
        self.scope = "ERP rollout"
        self.signed_on: date | None = None
        self.ends_on: date | None = None
        self.kickoff_held_on: date | None = None
        self.milestones = {m["milestone_id"]: "planned" for m in MILESTONES}
        self.tasks: dict[str, str] = {}
        self.reviewed: set[str] = set()
        self.complaints: dict[str, str] = {}
        self.incidents: set[str] = set()
        self.investigations: dict[str, str] = {}
        self.costs_total = Decimal(0)
        self.cost_ids: set[str] = set()
        self.survey_ids: set[str] = set()
        self.pending: dict[UUID, dict[str, Any]] = {}
        self.decided: set[UUID] = set()
        self.outcome: str | None = None
        self.overdue: dict[UUID, UUID] = {}

    # -- helpers -------------------------------------------------------------------------

    @contextmanager
    def _context(self) -> Iterator[CommandContext]:
        ctx = CommandContext(
            actor=DIRECTOR, correlation_id=uuid4(), clock=self.clock, new_id=self.new_id
        )
        with command_context(ctx):
            yield ctx

    def _now(self) -> datetime:
        return self.clock.now()

    def _today(self) -> date:
        return self.clock.now().date()

    def _run(
        self, label: str, command: Callable[[], Any], expected: Expected
    ) -> tuple[Any, list[Any]]:
        """Runs `command`; `expected` is the event types it must record, or
        REFUSED if the model says it must raise RuleViolation."""
        project = self.project
        before, version, status = _state(project), project.version, project.status
        try:
            with self._context():
                result = command()
        except RuleViolation as exc:
            assert RULE_ID.fullmatch(exc.rule), exc.rule
            assert expected is REFUSED, f"the model expected {expected}, got refusal {exc}"
            assert _state(project) == before
            assert project.version == version
            assert project.collect_events() == []
            note_outcome(f"{label}: refused")
            return None, []
        events = list(project.collect_events())
        assert expected is not REFUSED, f"the model expected a refusal, got {events}"
        assert [type(e) for e in events] == list(expected)
        assert project.version == version + len(events)
        if not events:
            assert _state(project) == before
        if project.status != status:
            assert (status, project.status) in TRANSITIONS, (status, project.status)
        for e in events:
            if isinstance(e, WORK_EVENTS):
                assert status == "in_progress", (type(e).__name__, status)
            if isinstance(e, TASK_FOLLOW_UP_EVENTS):
                assert status in ("in_progress", "accepted"), (type(e).__name__, status)
        self.events.extend(events)
        note_outcome(f"{label}: {'recorded' if events else 'nothing to record'}")
        return result, events

    # -- creation and procurement (R3.1) -------------------------------------------------

    @initialize()
    def create(self) -> None:
        with self._context():
            self.project = Project.create(
                project_id=uuid4(),
                title="ERP",
                scope=self.scope,
                budget=BUDGET,
                currency="CNY",
                partner_id=uuid4(),
                project_manager="pm",
                specialists=list(SPECIALISTS),
                milestones=MILESTONES,
            )
        self.events = list(self.project.collect_events())
        assert [type(e) for e in self.events] == [Project.Created]

    @rule(hours=st.one_of(st.integers(0, 48), st.integers(24 * 20, 24 * 100)))
    def time_passes(self, hours: int) -> None:
        self.clock.advance(timedelta(hours=hours, minutes=1))

    @rule()
    def request_procurement_approval(self) -> None:
        accepted = self.status in ("planned", "procurement_rejected")
        request_id = self.new_id()
        self._run(
            "request approval",
            lambda: self.project.request_procurement_approval(
                request_id=request_id, justification="needed", requested_by="pm"
            ),
            (Project.ProcurementApprovalRequested,) if accepted else REFUSED,
        )
        if accepted:
            if self.request_id is not None:
                self.old_request_ids.append(self.request_id)
            self.request_id, self.requested_amount = request_id, self.budget
            self.status = "awaiting_approval"

    @rule(approved=st.booleans(), which=st.sampled_from(["current", "current", "stale", "unknown"]))
    def procurement_outcome(self, approved: bool, which: str) -> None:
        if which == "current" and self.request_id is not None:
            request_id = self.request_id
        elif which == "stale" and self.old_request_ids:
            request_id = self.old_request_ids[-1]
        else:
            request_id = uuid5(NAMESPACE_URL, "never requested")
        moves = self.status == "awaiting_approval" and request_id == self.request_id
        amount = self.requested_amount or BUDGET

        def outcome() -> bool:
            if approved:
                return self.project.procurement_approved(
                    request_id=request_id, approved_at=self._now(), amount=amount
                )
            return self.project.procurement_rejected(
                request_id=request_id, step="finance", reason="too expensive"
            )

        expected_event = (
            Project.ProcurementApprovalGranted if approved else Project.ProcurementApprovalDenied
        )
        label = f"procurement {'approved' if approved else 'rejected'} {which}"
        result, _ = self._run(label, outcome, (expected_event,) if moves else ())
        assert result is moves
        if moves:
            self.status = "approved" if approved else "procurement_rejected"
            if approved:
                self.approved_budget = amount
        # The same outcome delivered again changes nothing.
        again, _ = self._run(f"{label} again", outcome, ())
        assert again is False

    # -- contract and kickoff (R3.1, R3.2) -----------------------------------------------

    @rule(
        value_factor=st.sampled_from([Decimal("0.8"), Decimal(1), Decimal("1.01")]),
        signed_offset=day_offsets,
        duration_days=st.sampled_from([-1, 180, 365]),
        acceptor=st.sampled_from([THIRD_PARTY, THIRD_PARTY, "  "]),
        currency=st.sampled_from(["CNY", "CNY", "CNY", "USD"]),
    )
    def sign_contract(
        self,
        value_factor: Decimal,
        signed_offset: int,
        duration_days: int,
        acceptor: str,
        currency: str = "CNY",
    ) -> None:
        today = self._today()
        signed_on = today + timedelta(days=signed_offset)
        ends_on = signed_on + timedelta(days=duration_days)
        value = (self.approved_budget or BUDGET) * value_factor
        accepted = (
            self.status == "approved"
            and bool(acceptor.strip())
            and signed_on <= today
            and currency == "CNY"  # the project's currency, that of the approved budget
            and self.approved_budget is not None
            and value <= self.approved_budget
            and ends_on >= signed_on
        )
        self._run(
            "sign contract",
            lambda: self.project.sign_contract(
                contract_number="C-2026-001",
                value=value,
                currency=currency,
                signed_on=signed_on,
                starts_on=signed_on,
                ends_on=ends_on,
                sla_terms=["99.9% availability"],
                third_party_acceptor=acceptor,
                kickoff_due_at=_end_of_day(signed_on + timedelta(days=7)),
                today=today,
            ),
            (Project.ContractSigned,) if accepted else REFUSED,
        )
        if accepted:
            self.status, self.signed_on, self.ends_on = "contracted", signed_on, ends_on

    @rule(held_offset=day_offsets, complete=st.sampled_from([True, True, True, False]))
    def hold_kickoff(self, held_offset: int, complete: bool) -> None:
        today = self._today()
        held_on = today + timedelta(days=held_offset)
        accepted = (
            self.status == "contracted"
            and self.signed_on is not None
            and self.signed_on <= held_on <= today
            and complete
        )
        _, events = self._run(
            "kickoff",
            lambda: self.project.hold_kickoff(
                held_on=held_on,
                held_by_end_of=_end_of_day(held_on),
                goals=["go live"] if complete else [],
                timetable="Q1 design, Q2 build",
                responsibilities=[{"person": "pm", "duty": "schedule"}],
                today=today,
            ),
            (Project.KickoffHeld,) if accepted else REFUSED,
        )
        if accepted:
            assert self.signed_on is not None
            due = _end_of_day(self.signed_on + timedelta(days=7))
            assert events[0].late == (_end_of_day(held_on) > due)
            self.status, self.kickoff_held_on = "in_progress", held_on

    @rule(deadline=st.sampled_from(KICKOFF_DEADLINES))
    def mark_kickoff_overdue(self, deadline: UUID) -> None:
        self._mark_overdue(
            "kickoff overdue",
            deadline,
            lambda: self.project.mark_kickoff_overdue(deadline_id=deadline),
            records=self.status == "contracted",
            event_type=Project.KickoffOverdue,
        )

    def _mark_overdue(
        self,
        label: str,
        deadline: UUID,
        call: Callable[[], UUID | None],
        *,
        records: bool,
        event_type: type[Any],
    ) -> None:
        """An Overdue method: recorded once per deadline id, the same id each time."""
        if deadline in self.overdue:
            expected: tuple[type[Any], ...] = ()
        else:
            expected = (event_type,) if records else ()
        result, events = self._run(label, call, expected)
        if deadline in self.overdue:
            assert result == self.overdue[deadline]
        elif events:
            assert result == events[0].event_id
            assert events[0].deadline_id == deadline
            self.overdue[deadline] = result
        else:
            assert result is None
        # The deadline fires again (a redelivery): same answer, nothing recorded.
        again, _ = self._run(f"{label} again", call, ())
        assert again == result

    # -- work: milestones and tasks (R3.2, R6.1, R2.2) -----------------------------------

    @rule(milestone=st.sampled_from(MILESTONE_IDS), delivered_offset=day_offsets)
    def deliver_milestone(self, milestone: str, delivered_offset: int) -> None:
        today = self._today()
        delivered_on = today + timedelta(days=delivered_offset)
        accepted = (
            self.status == "in_progress"
            and milestone in self.milestones
            and self.kickoff_held_on is not None
            and self.kickoff_held_on <= delivered_on <= today
            and self.milestones[milestone] not in ("delivered", "accepted")
        )
        self._run(
            "deliver milestone",
            lambda: self.project.deliver_milestone(
                milestone_id=milestone, delivered_on=delivered_on, note="v1", today=today
            ),
            (Project.MilestoneDelivered,) if accepted else REFUSED,
        )
        if accepted:
            self.milestones[milestone] = "delivered"

    @rule(milestone=st.sampled_from(MILESTONE_IDS), accept=st.booleans(), why=st.booleans())
    def review_delivery(self, milestone: str, accept: bool, why: bool) -> None:
        accepted = (
            self.status == "in_progress"
            and self.milestones.get(milestone) == "delivered"
            and (accept or why)
        )
        if accept:
            self._run(
                "accept milestone",
                lambda: self.project.accept_milestone(milestone_id=milestone),
                (Project.MilestoneAccepted,) if accepted else REFUSED,
            )
        else:
            self._run(
                "reject milestone",
                lambda: self.project.reject_milestone(
                    milestone_id=milestone, reasons=["incomplete"] if why else []
                ),
                (Project.MilestoneRejected,) if accepted else REFUSED,
            )
        if accepted:
            self.milestones[milestone] = "accepted" if accept else "rejected"

    @rule(task=st.sampled_from(TASK_IDS), specialist=st.sampled_from([*SPECIALISTS, "x"]))
    def assign_task(self, task: str, specialist: str) -> None:
        accepted = (
            self.status == "in_progress" and specialist in SPECIALISTS and task not in self.tasks
        )
        self._run(
            "assign task",
            lambda: self.project.assign_task(
                task_id=task, title="write tests", specialist=specialist, due_on=self._today()
            ),
            (Project.TaskAssigned,) if accepted else REFUSED,
        )
        if accepted:
            self.tasks[task] = "assigned"

    @rule(task=st.sampled_from(TASK_IDS))
    def acknowledge_task(self, task: str) -> None:
        accepted = self.status != "closed" and self.tasks.get(task) == "assigned"
        self._run(
            "acknowledge task",
            lambda: self.project.acknowledge_task(task_id=task),
            (Project.TaskAcknowledged,) if accepted else REFUSED,
        )
        if accepted:
            self.tasks[task] = "acknowledged"

    @rule(task=st.sampled_from(TASK_IDS), offset=st.integers(-3, 3))
    def complete_task(self, task: str, offset: int) -> None:
        accepted = self.status != "closed" and self.tasks.get(task) in ("assigned", "acknowledged")
        self._run(
            "complete task",
            lambda: self.project.complete_task(
                task_id=task, completed_on=self._today() + timedelta(days=offset)
            ),
            (Project.TaskCompleted,) if accepted else REFUSED,
        )
        if accepted:
            self.tasks[task] = "completed"

    # -- reviews (R3.3) ------------------------------------------------------------------

    @rule(quarter=st.sampled_from(QUARTERS), held_offset=st.integers(-3, 1))
    def hold_review(self, quarter: str, held_offset: int) -> None:
        today = self._today()
        held_on = today + timedelta(days=held_offset)
        accepted = (
            self.status in ("contracted", "in_progress")
            and self.signed_on is not None
            and self.signed_on <= held_on <= today
        )
        self._run(
            "review",
            lambda: self.project.hold_review(
                quarter=quarter,
                held_on=held_on,
                progress="on track",
                risk_rating="low",
                issues=[],
                today=today,
            ),
            (Project.ReviewHeld,) if accepted else REFUSED,
        )
        if accepted:
            self.reviewed.add(quarter)

    @rule(deadline=st.sampled_from(REVIEW_DEADLINES), quarter=st.sampled_from(QUARTERS))
    def mark_review_overdue(self, deadline: UUID, quarter: str) -> None:
        self._mark_overdue(
            "review overdue",
            deadline,
            lambda: self.project.mark_review_overdue(
                deadline_id=deadline, quarter=quarter, due_at=self._now()
            ),
            records=quarter not in self.reviewed and self.status in ("contracted", "in_progress"),
            event_type=Project.QuarterlyReviewOverdue,
        )

    # -- complaints, incidents, investigations (R6.1, R6.4) ------------------------------

    @rule(complaint=st.sampled_from(COMPLAINT_IDS), hours_ago=st.integers(-2, 48))
    def receive_complaint(self, complaint: str, hours_ago: int) -> None:
        now = self._now()
        received_at = now - timedelta(hours=hours_ago)
        accepted = (
            self.status != "closed" and received_at <= now and complaint not in self.complaints
        )
        self._run(
            "receive complaint",
            lambda: self.project.receive_complaint(
                complaint_id=complaint,
                source="finance",
                channel="phone",
                severity="medium",
                summary="slow",
                received_at=received_at,
                now=now,
            ),
            (Project.ComplaintReceived,) if accepted else REFUSED,
        )
        if accepted:
            self.complaints[complaint] = "received"

    @rule(complaint=st.sampled_from(COMPLAINT_IDS), resolve=st.booleans())
    def handle_complaint(self, complaint: str, resolve: bool) -> None:
        state = self.complaints.get(complaint)
        if resolve:
            accepted = state in ("received", "responded")
            self._run(
                "resolve complaint",
                lambda: self.project.resolve_complaint(complaint_id=complaint, resolution="fixed"),
                (Project.ComplaintResolved,) if accepted else REFUSED,
            )
        else:
            accepted = state == "received"
            self._run(
                "respond to complaint",
                lambda: self.project.respond_to_complaint(complaint_id=complaint, response="on it"),
                (Project.ComplaintResponded,) if accepted else REFUSED,
            )
        if accepted:
            self.complaints[complaint] = "resolved" if resolve else "responded"

    @rule(
        incident=st.sampled_from(INCIDENT_IDS),
        category=st.sampled_from(["data_leak", "data_leak", "availability", "security"]),
        severity=st.sampled_from(["low", "high", "critical"]),
        detected_after_minutes=st.integers(-5, 120),
        reported_after_minutes=st.one_of(st.integers(-5, 120), st.just(60), st.just(61)),
    )
    def report_incident(
        self,
        incident: str,
        category: str,
        severity: str,
        detected_after_minutes: int,
        reported_after_minutes: int,
    ) -> None:
        reported_at = self._now()
        detected_at = reported_at - timedelta(minutes=reported_after_minutes)
        occurred_at = detected_at - timedelta(minutes=detected_after_minutes)
        leak_due = detected_at + timedelta(hours=LEAK_REPORT_HOURS)
        accepted = (
            self.status != "closed"
            and incident not in self.incidents
            and detected_after_minutes >= 0
            and reported_after_minutes >= 0
        )
        leak = category == "data_leak"
        late = leak and reported_at > leak_due
        investigation = leak or severity == "critical"
        expected: Expected = REFUSED
        if accepted:
            expected = (
                Project.IncidentReported,
                *((Project.LateIncidentReport,) if late else ()),
                *((Project.InvestigationOpened,) if investigation else ()),
            )
        _, events = self._run(
            f"incident {category}{' late' if late else ''}",
            lambda: self.project.report_incident(
                incident_id=incident,
                category=category,  # type: ignore[arg-type]
                severity=severity,  # type: ignore[arg-type]
                occurred_at=occurred_at,
                detected_at=detected_at,
                description="customer records exposed",
                reported_at=reported_at,
                leak_report_due_at=leak_due,
                investigation_id=f"INV-{incident}",
            ),
            expected,
        )
        if accepted:
            self.incidents.add(incident)
            assert events[0].late == late
            assert events[0].report_due_at == (leak_due if leak else None)
            if late:
                assert (events[1].due_at, events[1].reported_at) == (leak_due, reported_at)
            if investigation:
                assert events[-1].incident_id == incident
                self.investigations[f"INV-{incident}"] = "open"

    @rule(investigation=st.sampled_from(INVESTIGATION_IDS))
    def conclude_investigation(self, investigation: str) -> None:
        accepted = self.investigations.get(investigation) == "open"
        self._run(
            "conclude investigation",
            lambda: self.project.conclude_investigation(
                investigation_id=investigation,
                findings="process gap",
                sanctions=[{"subject": "pm", "subject_kind": "staff", "level": "warning"}],
            ),
            (Project.InvestigationConcluded,) if accepted else REFUSED,
        )
        if accepted:
            self.investigations[investigation] = "concluded"

    # -- costs and satisfaction (R6.1) ---------------------------------------------------

    @rule(
        cost=st.sampled_from(COST_IDS),
        amount=st.sampled_from([Decimal(-1), Decimal(0)])
        | st.decimals(min_value=Decimal("0.01"), max_value=Decimal(20000), places=2).filter(
            lambda d: d.is_finite()
        )
        | st.sampled_from([Decimal("0.01"), Decimal("1500.50"), Decimal(20000)]),
        incurred_offset=day_offsets,
    )
    def record_cost(self, cost: str, amount: Decimal, incurred_offset: int) -> None:
        today = self._today()
        incurred_on = today + timedelta(days=incurred_offset)
        accepted = (
            self.status in OPEN_AFTER_CONTRACT
            and cost not in self.cost_ids
            and amount > 0
            and incurred_on <= today
        )
        self._run(
            "record cost",
            lambda: self.project.record_cost(
                cost_id=cost,
                amount=amount,
                category="labour",
                incurred_on=incurred_on,
                note="",
                today=today,
            ),
            (Project.CostRecorded,) if accepted else REFUSED,
        )
        if accepted:
            self.cost_ids.add(cost)
            self.costs_total += amount

    @rule(survey=st.sampled_from(SURVEY_IDS), score=st.integers(0, 6))
    def record_satisfaction(self, survey: str, score: int) -> None:
        worked = self.status in OPEN_AFTER_CONTRACT or (
            self.status == "closed" and self.signed_on is not None
        )
        accepted = worked and 1 <= score <= 5 and survey not in self.survey_ids
        self._run(
            "satisfaction",
            lambda: self.project.record_satisfaction(
                survey_id=survey, score=score, respondent="finance", comment=""
            ),
            (Project.SatisfactionRecorded,) if accepted else REFUSED,
        )
        if accepted:
            self.survey_ids.add(survey)

    # -- major decisions (R5.1, R5.2) ----------------------------------------------------

    def _pending_kind(self, kind: str) -> bool:
        return any(d["kind"] == kind for d in self.pending.values())

    @rule(
        factor=st.sampled_from(
            [Decimal(-1), Decimal("0.8"), Decimal("1.05"), Decimal("1.1"), Decimal("1.11")]
        )
    )
    def change_budget(self, factor: Decimal) -> None:
        base = self.approved_budget or self.budget
        new_budget = (base * factor).quantize(Decimal("0.01"))
        decision_id = self.new_id()
        # Before approval the plan itself changes; after it, above the
        # threshold of the approved budget, the Director decides (R5.2).
        major = self.approved_budget is not None and new_budget > base * LIMIT_FACTOR
        expected: Expected = REFUSED
        # The budget under procurement approval cannot change (R3.1).
        if self.status not in ("closed", "awaiting_approval") and new_budget > 0:
            if not major:
                expected = (Project.BudgetChanged,)
            elif not self._pending_kind("budget_increase"):
                expected = (Project.DirectorDecisionRequested,)
        result, _ = self._run(
            f"change budget x{factor}",
            lambda: self.project.change_budget(
                new_budget=new_budget,
                reason="more users",
                threshold_percent=THRESHOLD_PERCENT,
                decision_id=decision_id,
            ),
            expected,
        )
        if expected is REFUSED:
            return
        assert result is (not major)
        if major:
            self.pending[decision_id] = {"kind": "budget_increase", "new_budget": new_budget}
        else:
            self.budget = new_budget

    @rule(major=st.booleans(), scope=st.sampled_from(["ERP + CRM", "ERP only"]))
    def change_scope(self, major: bool, scope: str) -> None:
        decision_id = self.new_id()
        expected: Expected = REFUSED
        # Before approval the plan itself changes; under approval it cannot (R3.1).
        needs_director = major and self.approved_budget is not None
        if self.status not in ("closed", "awaiting_approval"):
            if not needs_director:
                expected = (Project.ScopeChanged,)
            elif not self._pending_kind("scope_change"):
                expected = (Project.DirectorDecisionRequested,)
        result, _ = self._run(
            "change scope",
            lambda: self.project.change_scope(
                new_scope=scope, reason="business", is_major=major, decision_id=decision_id
            ),
            expected,
        )
        if expected is REFUSED:
            return
        assert result is (not needs_director)
        if needs_director:
            self.pending[decision_id] = {"kind": "scope_change", "new_scope": scope}
        else:
            self.scope = scope

    @rule(extend_days=st.sampled_from([-10, 0, 90, 365]))
    def request_renewal(self, extend_days: int) -> None:
        decision_id = self.new_id()
        accepted = (
            self.status in OPEN_AFTER_CONTRACT
            and extend_days > 0
            and not self._pending_kind("contract_renewal")
        )
        new_end = (self.ends_on or self._today()) + timedelta(days=extend_days)
        self._run(
            "request renewal",
            lambda: self.project.request_renewal(
                new_end_date=new_end,
                new_value=Decimal(50000),
                reason="extend support",
                decision_id=decision_id,
            ),
            (Project.DirectorDecisionRequested,) if accepted else REFUSED,
        )
        if accepted:
            self.pending[decision_id] = {"kind": "contract_renewal", "new_end_date": new_end}

    @rule(
        data=st.data(),
        approved=st.booleans(),
        which=st.sampled_from(["pending", "pending", "decided", "unknown"]),
        right_kind=st.sampled_from([True, True, True, False]),
    )
    def decision_made(
        self, data: st.DataObject, approved: bool, which: str, right_kind: bool
    ) -> None:
        if which == "pending" and self.pending:
            kinds = sorted({d["kind"] for d in self.pending.values()})
            kind_wanted = data.draw(st.sampled_from(kinds))
            decision_id = next(i for i, d in self.pending.items() if d["kind"] == kind_wanted)
        elif which == "decided" and self.decided:
            decision_id = data.draw(st.sampled_from(sorted(self.decided)))
        else:
            decision_id = uuid5(NAMESPACE_URL, "never requested decision")
        self._decide(decision_id, approved=approved, right_kind=right_kind, which=which)

    @rule(approved=st.booleans())
    def director_decides_everything_pending(self, approved: bool) -> None:
        for decision_id in list(self.pending):
            self._decide(decision_id, approved=approved, right_kind=True, which="pending")

    def _decide(self, decision_id: UUID, *, approved: bool, right_kind: bool, which: str) -> None:
        pending = self.pending.get(decision_id)
        true_kind = pending["kind"] if pending else "budget_increase"
        kind = true_kind if right_kind else "not_" + true_kind
        moves = pending is not None and right_kind
        expected: tuple[type[Any], ...] = ()
        if pending is not None and moves:
            if not approved:
                expected = (Project.DirectorDecisionDenied,)
            else:
                expected = {
                    "budget_increase": (Project.BudgetChanged,),
                    "scope_change": (Project.ScopeChanged,),
                    "contract_renewal": (Project.ContractRenewed,),
                }[true_kind]

        def decide() -> bool:
            return self.project.decision_made(
                decision_id=decision_id, kind=kind, approved=approved, reason="Director"
            )

        label = f"decision {true_kind} {'approved' if approved else 'denied'} {which}"
        result, _ = self._run(label, decide, expected)
        assert result is moves
        if pending is not None and moves:
            del self.pending[decision_id]
            self.decided.add(decision_id)
            if approved and true_kind == "budget_increase":
                self.budget = self.approved_budget = pending["new_budget"]
            elif approved and true_kind == "scope_change":
                self.scope = pending["new_scope"]
            elif approved:
                self.ends_on = pending["new_end_date"]
        again, _ = self._run(f"{label} again", decide, ())
        assert again is False

    # -- final acceptance and closure (R3.4, R1.2) ---------------------------------------

    @rule(
        third_party=third_parties,
        signatory=st.sampled_from(["Wang Fang", "Wang Fang", " "]),
        accepted_offset=day_offsets,
    )
    def record_final_acceptance(
        self, third_party: str, signatory: str, accepted_offset: int
    ) -> None:
        today = self._today()
        accepted_on = today + timedelta(days=accepted_offset)
        accepted = (
            self.status == "in_progress"
            and _normal(third_party) == _normal(THIRD_PARTY)
            and bool(signatory.strip())
            and accepted_on <= today
            and all(s == "accepted" for s in self.milestones.values())
        )
        _, events = self._run(
            "final acceptance",
            lambda: self.project.record_final_acceptance(
                accepted_on=accepted_on,
                third_party=third_party,
                signatory=signatory,
                report_ref="R-1",
                today=today,
            ),
            (Project.FinalAcceptanceRecorded,) if accepted else REFUSED,
        )
        if accepted:
            assert events[0].third_party == THIRD_PARTY
            self.status = "accepted"

    # failed / terminated end most runs: drawn less often than completed
    @rule(outcome=st.sampled_from(["completed"] * 6 + ["failed", "terminated"]))
    def close(self, outcome: str) -> None:
        # Completed exactly when the third party accepted it (R3.4).
        accepted = self.status != "closed" and (outcome == "completed") == (
            self.status == "accepted"
        )
        self._run(
            f"close {outcome}",
            lambda: self.project.close(outcome=outcome, reason="end"),  # type: ignore[arg-type]
            (Project.Closed,) if accepted else REFUSED,
        )
        if accepted:
            self.status, self.outcome = "closed", outcome
            self.pending.clear()

    #: Where the usual path stops: mostly where the most rules apply.
    stops = st.sampled_from(
        ["approved", "contracted", "contracted", "in_progress", "in_progress", "accepted"]
    )

    @rule(
        until=stops,
        currency=st.sampled_from(["CNY", "CNY", "CNY", "USD"]),
        third_party=third_parties,
    )
    def happy_path(self, until: str, currency: str, third_party: str) -> None:
        """The usual path (through the rules above) up to the status `until`,
        so that runs spend their steps in the later statuses; the contract's
        currency and the acceptor's spelling vary (a refusal ends the walk)."""
        order = ["planned", "awaiting_approval", "approved", "contracted", "in_progress"]
        order.append("accepted")
        for _ in range(12):
            status = self.status
            progress = len(self.events)
            if status == "closed" or status == until:
                return
            if status == "procurement_rejected":
                status = "planned"
            if order.index(status) > order.index(until):
                return
            if status == "planned":
                self.request_procurement_approval()
            elif status == "awaiting_approval":
                self.procurement_outcome(approved=True, which="current")
            elif status == "approved":
                self.sign_contract(Decimal(1), -2, 365, THIRD_PARTY, currency)
            elif status == "contracted":
                self.hold_kickoff(0, complete=True)
            elif status == "in_progress":
                states = self.milestones
                todo = [m for m, s in states.items() if s in ("planned", "rejected")]
                delivered = [m for m, s in states.items() if s == "delivered"]
                if delivered:
                    self.review_delivery(delivered[0], accept=True, why=False)
                elif todo:
                    self.deliver_milestone(todo[0], 0)
                else:
                    self.record_final_acceptance(third_party, "Wang Fang", 0)
            if len(self.events) == progress:
                return  # refused: the walk ends here

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def matches_the_model(self) -> None:
        p = self.project
        assert p.status in STATUSES
        assert p.status == self.status
        assert (p.budget, p.approved_budget, p.scope) == (
            self.budget,
            self.approved_budget,
            self.scope,
        )
        assert (p.signed_on, p.ends_on, p.kickoff_held_on) == (
            self.signed_on,
            self.ends_on,
            self.kickoff_held_on,
        )
        assert {m: s["status"] for m, s in p.milestone_states.items()} == self.milestones
        assert {t: s["status"] for t, s in p.tasks.items()} == self.tasks
        assert p.complaints == self.complaints
        assert p.incidents == self.incidents
        assert p.investigations == self.investigations
        assert set(p.pending_decisions) == set(self.pending)
        assert p.decided == self.decided
        assert p.outcome == self.outcome
        assert p.reviewed_quarters == self.reviewed

    @invariant()
    def contract_only_after_approval(self) -> None:
        """R3.1: a contract exists only after procurement approval, within the
        budget approved at the time of signing."""
        types = [type(e) for e in self.events]
        if self.project.contract_number is None:
            assert Project.ContractSigned not in types
            return
        signed_at = types.index(Project.ContractSigned)
        approvals = [
            e for e in self.events[:signed_at] if isinstance(e, Project.ProcurementApprovalGranted)
        ]
        assert approvals
        approved_then = _replay(self.events[:signed_at]).approved_budget
        assert approved_then is not None
        assert self.events[signed_at].value <= approved_then

    @invariant()
    def completed_exactly_after_final_acceptance(self) -> None:
        """R3.4: final acceptance happened iff the project is accepted, or
        closed as completed."""
        accepted = any(isinstance(e, Project.FinalAcceptanceRecorded) for e in self.events)
        p = self.project
        assert accepted == (
            p.status == "accepted" or (p.status == "closed" and p.outcome == "completed")
        )

    @invariant()
    def costs_total_is_the_sum_of_costs(self) -> None:
        costs = [e.amount for e in self.events if isinstance(e, Project.CostRecorded)]
        assert self.project.costs_total == sum(costs, Decimal(0))
        assert self.project.costs_total == self.costs_total
        assert self.project.cost_ids == {
            e.cost_id for e in self.events if isinstance(e, Project.CostRecorded)
        }

    @invariant()
    def budget_within_the_threshold_of_the_approved_budget(self) -> None:
        """R5.2: above the threshold, only the Director moves the budget."""
        p = self.project
        if p.approved_budget is not None:
            assert p.budget <= p.approved_budget * LIMIT_FACTOR

    @invariant()
    def overdue_once_per_deadline(self) -> None:
        overdue_types = (Project.KickoffOverdue, Project.QuarterlyReviewOverdue)
        counts = Counter(e.deadline_id for e in self.events if isinstance(e, overdue_types))
        assert all(n == 1 for n in counts.values())
        assert set(counts) == set(self.overdue)
        assert self.project.overdue == self.overdue
        for deadline, event_id in self.overdue.items():
            with self._context():
                assert self.project.mark_kickoff_overdue(deadline_id=deadline) == event_id
                assert (
                    self.project.mark_review_overdue(
                        deadline_id=deadline, quarter="2026-Q1", due_at=self._now()
                    )
                    == event_id
                )
            assert self.project.collect_events() == []

    @invariant()
    def replay_rebuilds_the_live_state(self) -> None:
        assert _state(_replay(self.events)) == _state(self.project)


def test_project_lifecycle_state_machine() -> None:
    run_state_machine_as_test(
        ProjectMachine,
        settings=settings(
            max_examples=350,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# -- regressions: bugs the model found ---------------------------------------------------


def _new_project(clock: ManualClock, ids: SequentialIds) -> Project:
    with command_context(_context(clock, ids)):
        project = Project.create(
            project_id=uuid4(),
            title="ERP",
            scope="ERP rollout",
            budget=BUDGET,
            currency="CNY",
            partner_id=uuid4(),
            project_manager="pm",
            specialists=list(SPECIALISTS),
            milestones=MILESTONES,
        )
    return project


def _context(clock: ManualClock, ids: SequentialIds) -> CommandContext:
    return CommandContext(actor=DIRECTOR, correlation_id=uuid4(), clock=clock, new_id=ids)


def _approved_project(clock: ManualClock, ids: SequentialIds) -> Project:
    project = _new_project(clock, ids)
    with command_context(_context(clock, ids)):
        request_id = ids()
        project.request_procurement_approval(
            request_id=request_id, justification="needed", requested_by="pm"
        )
        assert project.procurement_approved(
            request_id=request_id, approved_at=clock.now(), amount=BUDGET
        )
    return project


def _accepted_project(clock: ManualClock, ids: SequentialIds) -> Project:
    project = _approved_project(clock, ids)
    today = clock.now().date()
    with command_context(_context(clock, ids)):
        project.sign_contract(
            contract_number="C-1",
            value=BUDGET,
            currency="CNY",
            signed_on=today,
            starts_on=today,
            ends_on=today + timedelta(days=365),
            sla_terms=[],
            third_party_acceptor=THIRD_PARTY,
            kickoff_due_at=_end_of_day(today + timedelta(days=7)),
            today=today,
        )
        project.hold_kickoff(
            held_on=today,
            held_by_end_of=_end_of_day(today),
            goals=["go live"],
            timetable="Q1",
            responsibilities=[{"person": "pm", "duty": "schedule"}],
            today=today,
        )
        for m in MILESTONES:
            project.deliver_milestone(
                milestone_id=m["milestone_id"], delivered_on=today, note="", today=today
            )
            project.accept_milestone(milestone_id=m["milestone_id"])
        project.record_final_acceptance(
            accepted_on=today,
            third_party=THIRD_PARTY,
            signatory="Wang Fang",
            report_ref="R-1",
            today=today,
        )
    assert project.status == "accepted"
    return project


def test_no_satisfaction_survey_for_a_project_closed_before_its_contract() -> None:
    """R6.1: satisfaction is surveyed once work began, even after closure."""
    clock, ids = ManualClock(START), SequentialIds()
    project = _new_project(clock, ids)
    with command_context(_context(clock, ids)):
        project.close(outcome="terminated", reason="cancelled")
        with pytest.raises(RuleViolation) as refused:
            project.record_satisfaction(survey_id="S1", score=1, respondent="x", comment="")
    assert refused.value.rule == "R6.1"
    closed = project.collect_events()[-1]
    assert isinstance(closed, Project.Closed)
    assert closed.outcome == "terminated"


@pytest.mark.parametrize("outcome", ["failed", "terminated"])
def test_an_accepted_project_closes_only_as_completed(outcome: str) -> None:
    """R3.4, R1.2: a project the third party accepted is no failure."""
    clock, ids = ManualClock(START), SequentialIds()
    project = _accepted_project(clock, ids)
    project.collect_events()
    with command_context(_context(clock, ids)):
        with pytest.raises(RuleViolation) as refused:
            project.close(outcome=outcome, reason="end")  # type: ignore[arg-type]
        assert refused.value.rule == "R3.4"
        assert project.status == "accepted"
        assert project.collect_events() == []
        project.close(outcome="completed", reason="end")
    assert (project.status, project.outcome) == ("closed", "completed")


def test_a_contract_in_another_currency_than_the_approval_is_refused() -> None:
    """R3.1: the approved amount caps the contract value, in the same currency."""
    clock, ids = ManualClock(START), SequentialIds()
    project = _approved_project(clock, ids)
    today = clock.now().date()
    with command_context(_context(clock, ids)), pytest.raises(RuleViolation) as refused:
        project.sign_contract(
            contract_number="C-1",
            value=BUDGET,
            currency="USD",
            signed_on=today,
            starts_on=today,
            ends_on=today + timedelta(days=365),
            sla_terms=[],
            third_party_acceptor=THIRD_PARTY,
            kickoff_due_at=_end_of_day(today + timedelta(days=7)),
            today=today,
        )
    assert refused.value.rule == "R3.1"
    assert project.status == "approved"
