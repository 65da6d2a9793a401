"""R3.1, R3.5, R5.1, R5.2: the ApprovalRequest aggregate, explored by a
hypothesis state machine.

Rules open a procurement (three steps: department head -> Finance -> CEO) or a
Director decision (one step) with named approvers, valid or not (the requester,
one person for two steps, a step the request does not have); then approve,
reject and return each step as a pool of users: the requester, people in each
approver role, people who signed already, the named approvers, delegates
standing in for them (the `Signer` that `signer_for` builds, with or without
`delegate_of`), with the right, a wrong or no `step` argument and with or
without a reason. The requester resubmits (or another user tries); the clock
moves across weekends; the deadline of the open step, an earlier one and one
never started fire (and fire again) with the escalation role the policy names.
A reference model predicts whether each command is accepted and which events
it records. Proves that:

- a refused command raises `RuleViolation` naming a requirement id, changes
  nothing and records no event;
- the state only moves along the transitions of request.py's docstring, steps
  are signed in strict order and a return re-opens the same step (next round);
- segregation of duties: the requester never decides their own procurement,
  and nobody (approver or the one delegated for) signs two steps;
- a named step is signed only by that person, their delegate, or (once the
  step is overdue) the escalation role; a Director decision only by the
  Director (R5.1);
- `ProcurementApproved` carries exactly the three signatures, in order;
- each step's deadline records `ApprovalStepOverdue` once, returns the same
  event id when it fires again and None when the step moved on (R3.5);
- replaying the events from scratch rebuilds the live state.

Regression tests at the end pin the bugs the model found (fixed meanwhile).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5
from zoneinfo import ZoneInfo

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

from services.approval.domain.request import (
    DIRECTOR_STEPS,
    PROCUREMENT_STEPS,
    STEP_ROLE,
    ApprovalRequest,
    Decision,
    Kind,
    Signer,
    Step,
)
from shared.clock import ManualClock, SequentialIds
from shared.domain import Actor, CommandContext, RuleViolation, command_context
from shared.policy import load_policy

POLICY = load_policy()
SHANGHAI = ZoneInfo("Asia/Shanghai")
#: Monday 2 March 2026, 09:00 in Shanghai.
START = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)
RULE_ID = re.compile(r"R\d\.\d")
ALL_STEPS: Final[tuple[Step, ...]] = (*PROCUREMENT_STEPS, *DIRECTOR_STEPS)
REQUESTER = "req"
#: Every user but the requester, with the one role they hold.
ROLES: Final[dict[str, str]] = {
    "dh1": "dept_head",
    "dh2": "dept_head",
    "fin1": "finance",
    "fin2": "finance",
    "ceo1": "ceo",
    "ceo2": "ceo",
    "dir": "director",
    "pm2": "pm",
}
USERS: Final[tuple[str, ...]] = (REQUESTER, *ROLES)
DIRECTOR_KINDS: Final[tuple[Kind, ...]] = ("budget_increase", "scope_change", "contract_renewal")
NAMED = "<the named approver>"
#: The escalation role of each step (the policy's, or another a policy file may name).
escalation_roles = st.sampled_from(
    [POLICY.approval.step(s).escalation_role for s in ALL_STEPS] * 2
    + ["director", "ceo", "finance", "dept_head", None]
)

#: Approvers named for the steps: people holding the step's role ...
named_approvers = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            step: st.sampled_from([u for u, r in ROLES.items() if r == STEP_ROLE[step]])
            for step in PROCUREMENT_STEPS
        },
    ),
    st.just({"director": "dir"}),
)
#: ... or anyone: the requester, one person for two steps, a step the request lacks.
any_approvers = st.dictionaries(st.sampled_from(ALL_STEPS), st.sampled_from(USERS), max_size=3)

#: request.py's docstring, as (from, to) pairs of `state`.
TRANSITIONS = frozenset(
    {
        ("pending", "pending"),  # the next step opens
        ("pending", "approved"),
        ("pending", "rejected"),
        ("pending", "returned"),
        ("returned", "pending"),
    }
)


class Refused:
    """The model expects a RuleViolation: 403 (`forbidden`, who acts) or 409."""

    def __init__(self, *, forbidden: bool) -> None:
        self.forbidden = forbidden

    def __repr__(self) -> str:
        return f"refused ({403 if self.forbidden else 409})"


CONFLICT, FORBIDDEN = Refused(forbidden=False), Refused(forbidden=True)
Expected = tuple[type[Any], ...] | Refused


def _state(request: ApprovalRequest) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in vars(request).items() if k != "_pending_events"})


def _replay(events: list[Any]) -> ApprovalRequest:
    created, *rest = events
    aggregate = created.mutate(None)
    for e in rest:
        aggregate = e.mutate(aggregate)
    assert isinstance(aggregate, ApprovalRequest)
    return aggregate


def _deadline(step: str, round_: int) -> UUID:
    """One deadline per step and round, as the deadline engine names them."""
    return uuid5(NAMESPACE_URL, f"approval-step/{step}#{round_}")


def _people(event: Any) -> set[str]:
    """Who decided with an event: the user and whom they stood in for."""
    user = {
        ApprovalRequest.StepApproved: "approver",
        ApprovalRequest.Returned: "returned_by",
        ApprovalRequest.ProcurementRejected: "rejected_by",
        ApprovalRequest.DirectorDecisionRejected: "actor_id",
    }[type(event)]
    on_behalf = getattr(event, "delegate_of", None)
    return {getattr(event, user)} | ({on_behalf} if on_behalf else set())


DECISION_EVENTS = (
    ApprovalRequest.StepApproved,
    ApprovalRequest.Returned,
    ApprovalRequest.ProcurementRejected,
    ApprovalRequest.DirectorDecisionRejected,
)


class RequestMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(START)
        self.new_id = SequentialIds()
        self.events: list[Any] = []
        # The reference model of request.py.
        self.state = "pending"
        self.index = 0
        self.round = 1
        self.escalated: str | None = None
        self.due_at = START
        self.signers: set[str] = set()
        self.signatures: list[tuple[str, str, str | None, datetime]] = []
        self.opened: dict[tuple[str, int], datetime] = {}
        self.overdue: dict[UUID, UUID] = {}

    # -- helpers -------------------------------------------------------------------------

    @contextmanager
    def _context(self, actor: Actor) -> Iterator[CommandContext]:
        ctx = CommandContext(
            actor=actor, correlation_id=uuid4(), clock=self.clock, new_id=self.new_id
        )
        with command_context(ctx):
            yield ctx

    def _now(self) -> datetime:
        return self.clock.now()

    def _role(self, user: str) -> str:
        return self.requester_role if user == REQUESTER else ROLES[user]

    @property
    def step(self) -> Step:
        return self.steps[self.index]

    @property
    def named(self) -> str | None:
        return self.approvers.get(self.step)

    @property
    def is_procurement(self) -> bool:
        return self.kind == "procurement"

    def _run(
        self, label: str, actor: Actor, command: Callable[[], Any], expected: Expected
    ) -> tuple[Any, list[Any]]:
        """Runs `command`; `expected` is the event types it must record, or
        the refusal (403 or 409) the model predicts."""
        request = self.request
        before, version, state = _state(request), request.version, request.state
        try:
            with self._context(actor):
                result = command()
        except RuleViolation as exc:
            assert RULE_ID.fullmatch(exc.rule), exc.rule
            assert isinstance(expected, Refused), f"the model expected {expected}, got {exc}"
            assert exc.forbidden == expected.forbidden, (expected, exc)
            assert _state(request) == before
            assert request.version == version
            assert request.collect_events() == []
            note_outcome(f"{label}: refused")
            return None, []
        events = list(request.collect_events())
        assert not isinstance(expected, Refused), f"the model expected {expected}, got {events}"
        assert [type(e) for e in events] == list(expected)
        assert request.version == version + len(events)
        if not events:
            assert _state(request) == before
        if events:
            assert (state, request.state) in TRANSITIONS, (state, request.state)
        self.events.extend(events)
        note_outcome(f"{label}: {'recorded' if events else 'nothing to record'}")
        return result, events

    def _refusal(
        self, signer: Signer, decision: Decision, reason: str, step: str | None
    ) -> Refused | None:
        """The model: whether `decide` refuses, and how (first the request's
        state and order, 409; then who signs, 403; then the reason, 409)."""
        if self.state in ("approved", "rejected"):
            return CONFLICT
        if step is not None and step != self.step:
            return CONFLICT
        if self.state == "returned":
            return CONFLICT
        user, role, on_behalf = signer["user_id"], signer["role"], signer["delegate_of"]
        if role not in (STEP_ROLE[self.step], self.escalated):
            return FORBIDDEN
        by_escalation = self.escalated is not None and role == self.escalated
        if self.named is not None and not by_escalation and self.named not in (user, on_behalf):
            return FORBIDDEN
        people = {user} | ({on_behalf} if on_behalf else set())
        sole_director = not self.is_procurement and role == "director"
        if REQUESTER in people and not sole_director:
            return FORBIDDEN
        if people & self.signers:
            return FORBIDDEN
        if decision in ("reject", "return") and not reason.strip():
            return CONFLICT
        return None

    def _signer(self, user: str, on_behalf: str | None) -> Signer:
        """The signer `signer_for` hands over (the delegation was checked there)."""
        if on_behalf == NAMED:
            on_behalf = self.named
        if on_behalf == user:
            on_behalf = None
        return Signer(user_id=user, role=self._role(user), delegate_of=on_behalf)

    def _open_step(self, event: Any, now: datetime) -> None:
        """Checks a StepOpened event against the model's open step."""
        assert isinstance(event, ApprovalRequest.StepOpened)
        assert (event.step, event.round) == (self.step, self.round)
        assert event.assignee_role == STEP_ROLE[self.step]
        assert event.assignee == self.named
        assert event.opened_at == now
        assert event.due_at == POLICY.approval_step_due(self.step, now)
        assert event.due_at > now
        self.escalated = None
        self.due_at = event.due_at
        self.opened[(self.step, self.round)] = event.due_at

    # -- opening (R3.1, R5.1) ------------------------------------------------------------

    @initialize(
        kind=st.sampled_from(["procurement", "procurement", "procurement", *DIRECTOR_KINDS]),
        amount=st.sampled_from([Decimal("50000.00")] * 8 + [Decimal(0), Decimal(-1)]),
        approvers=st.one_of(named_approvers, named_approvers, named_approvers, any_approvers),
        requester_role=st.sampled_from(["pm", "pm", "dept_head", "finance", "ceo", "director"]),
        escalation=st.fixed_dictionaries({s: escalation_roles for s in ALL_STEPS}),
    )
    def open_request(
        self,
        kind: Kind,
        amount: Decimal,
        approvers: dict[str, str],
        requester_role: str,
        escalation: dict[str, str | None],
    ) -> None:
        self.kind, self.requester_role, self.escalation = kind, requester_role, escalation
        self.steps: tuple[Step, ...] = (
            PROCUREMENT_STEPS if kind == "procurement" else DIRECTOR_STEPS
        )
        named = list(approvers.values())
        valid = (
            (kind != "procurement" or amount > 0)
            and set(approvers) <= set(self.steps)
            and REQUESTER not in named
            and len(set(named)) == len(named)
        )
        request_id = uuid4()

        def open_(approvers: dict[str, str], amount: Decimal) -> ApprovalRequest:
            with self._context(Actor(REQUESTER, requester_role)):
                return ApprovalRequest.open(
                    request_id=request_id,
                    kind=kind,
                    project_id=uuid4(),
                    partner_id=None,
                    title="servers",
                    amount=amount if kind == "procurement" else None,
                    currency="CNY",
                    justification="the old ones failed",
                    requested_by=REQUESTER,
                    source="api",
                    approvers=approvers,
                    now=self._now(),
                    due=POLICY.approval_step_due,
                    new_budget=None if kind == "procurement" else Decimal("120000"),
                )

        if not valid:
            with pytest.raises(RuleViolation) as refused:
                open_(approvers, amount)
            assert refused.value.rule == "R3.1"
            note_outcome("open: refused")
            # Open the request again with what may be named.
            seen: set[str] = set()
            kept = {}
            for step, user in approvers.items():
                if step in self.steps and user != REQUESTER and user not in seen:
                    kept[step] = user
                    seen.add(user)
            approvers, amount = kept, Decimal("50000.00")
        self.approvers = dict(approvers)
        self.request = open_(self.approvers, amount)
        self.events = list(self.request.collect_events())
        assert [type(e) for e in self.events] == [
            ApprovalRequest.Created,
            ApprovalRequest.StepOpened,
        ]
        self._open_step(self.events[1], self._now())

    # -- time ----------------------------------------------------------------------------

    @rule(hours=st.one_of(st.integers(0, 12), st.integers(24, 24 * 6)))
    def time_passes(self, hours: int) -> None:
        self.clock.advance(timedelta(hours=hours, minutes=7))

    # -- deciding (R3.1) -----------------------------------------------------------------

    def _decide(
        self, label: str, signer: Signer, decision: Decision, reason: str, step: str | None
    ) -> None:
        now = self._now()
        refused = self._refusal(signer, decision, reason, step)
        last = self.index + 1 == len(self.steps)
        expected: Expected
        if refused is not None:
            expected = refused
        elif decision == "return":
            expected = (ApprovalRequest.Returned,)
        elif decision == "reject":
            expected = (
                (ApprovalRequest.ProcurementRejected,)
                if self.is_procurement
                else (ApprovalRequest.DirectorDecisionRejected,)
            )
        elif not last:
            expected = (ApprovalRequest.StepApproved, ApprovalRequest.StepOpened)
        elif self.is_procurement:
            expected = (ApprovalRequest.StepApproved, ApprovalRequest.ProcurementApproved)
        else:
            expected = (ApprovalRequest.StepApproved, ApprovalRequest.DirectorDecisionApproved)
        _, events = self._run(
            f"{label} {decision}",
            Actor(signer["user_id"], signer["role"]),
            lambda: self.request.decide(
                decision=decision,
                signer=signer,
                reason=reason,
                now=now,
                due=POLICY.approval_step_due,
                step=step,  # type: ignore[arg-type]
            ),
            expected,
        )
        if refused is not None:
            return
        first = events[0]
        if decision == "approve":
            assert isinstance(first, ApprovalRequest.StepApproved)
            assert (first.step, first.round) == (self.step, self.round)
            assert (first.approver, first.approver_role, first.delegate_of) == (
                signer["user_id"],
                signer["role"],
                signer["delegate_of"],
            )
            assert first.on_time == (now <= self.due_at)
            assert first.decided_at == now
            if signer["role"] != STEP_ROLE[self.step]:
                note_outcome("signed by the escalation role")
            elif signer["delegate_of"]:
                note_outcome("signed by a delegate")
            self.signers |= _people(first)
            self.signatures.append((self.step, signer["user_id"], signer["delegate_of"], now))
            if last:
                self.state = "approved"
            else:
                self.index += 1
                self.round = 1
                self._open_step(events[1], now)
        elif decision == "return":
            assert isinstance(first, ApprovalRequest.Returned)
            assert (first.step, first.round, first.reason) == (self.step, self.round, reason)
            assert first.on_time == (now <= self.due_at)
            self.state = "returned"
        else:
            assert first.reason == reason
            if self.is_procurement:
                assert isinstance(first, ApprovalRequest.ProcurementRejected)
                assert first.step == self.step
            self.state = "rejected"

    @rule(
        user=st.sampled_from(USERS),
        on_behalf=st.sampled_from([None, None, None, NAMED, *USERS]),
        decision=st.sampled_from(["approve", "approve", "approve", "return", "reject"]),
        reason=st.sampled_from(["", "  ", "need a second quote"]),
        step=st.sampled_from([None, None, "<current>", *ALL_STEPS]),
    )
    def anyone_decides(
        self,
        user: str,
        on_behalf: str | None,
        decision: Decision,
        reason: str,
        step: str | None,
    ) -> None:
        """Any user, standing in for anyone, with any step argument."""
        if step == "<current>":
            step = self.step
        self._decide("anyone", self._signer(user, on_behalf), decision, reason, step)

    @rule(
        pick=st.integers(0, 99),
        decision=st.sampled_from(["approve"] * 6 + ["return", "return", "reject"]),
        reason=st.sampled_from(["ok", "need a second quote"]),
    )
    def an_eligible_user_decides(self, pick: int, decision: Decision, reason: str) -> None:
        """Someone the model lets sign the open step (if anyone), or the
        requester answering a return: progress."""
        if self.state == "returned":
            self.resubmit(REQUESTER, "here is the second quote")
            return
        candidates = [
            signer
            for user in USERS
            for on_behalf in (None, NAMED)
            if self._refusal(signer := self._signer(user, on_behalf), decision, reason, None)
            is None
        ]
        if not candidates:
            note_outcome("eligible: nobody may sign")
            return
        self._decide("eligible", candidates[pick % len(candidates)], decision, reason, None)

    @rule(
        user=st.sampled_from([REQUESTER, REQUESTER, REQUESTER, "dh1", "dir"]),
        response=st.sampled_from(["here is the second quote", "", " "]),
    )
    def resubmit(self, user: str, response: str) -> None:
        expected: Expected = (ApprovalRequest.Resubmitted, ApprovalRequest.StepOpened)
        if self.state != "returned" or not response.strip():
            expected = CONFLICT
        if self.state == "returned" and user != REQUESTER:
            expected = FORBIDDEN
        accepted = not isinstance(expected, Refused)
        now = self._now()
        _, events = self._run(
            "resubmit",
            Actor(user, self._role(user)),
            lambda: self.request.resubmit(
                user_id=user, response=response, now=now, due=POLICY.approval_step_due
            ),
            expected,
        )
        if accepted:
            assert events[0].step == self.step
            assert events[0].response == response
            self.state, self.round = "pending", self.round + 1
            self._open_step(events[1], now)

    # -- deadlines (R3.5) ----------------------------------------------------------------

    @rule(
        which=st.sampled_from(["open step", "open step", "open step", "earlier", "never"]),
        pick=st.integers(0, 99),
    )
    def deadline_fires(self, which: str, pick: int) -> None:
        """The deadline engine fires a step's deadline once it has passed (the
        clock moves there first), and again after a restart."""
        if which == "open step":
            step, round_ = self.step, self.round
        elif which == "earlier":
            earlier = sorted(self.opened, key=lambda k: (ALL_STEPS.index(k[0]), k[1]))
            step, round_ = earlier[pick % len(earlier)]
        else:
            step, round_ = ALL_STEPS[pick % len(ALL_STEPS)], 7
        due_at = self.opened.get((step, round_))
        if due_at is not None and self._now() <= due_at:
            self.clock.set(due_at + timedelta(minutes=1 + pick))  # the engine ticks
        deadline = _deadline(step, round_)
        escalate_to = self.escalation[step]
        recorded_before = self.overdue.get(deadline)
        records = (
            recorded_before is None
            and self.state == "pending"
            and (step, round_) == (self.step, self.round)
        )
        escalates = (
            records
            and escalate_to is not None
            and escalate_to != STEP_ROLE[step]
            and self.is_procurement  # a Director decision stays the Director's (R5.1)
        )
        expected: tuple[type[Any], ...] = ()
        if records:
            expected = (ApprovalRequest.StepOverdue,)
            if escalates:
                expected += (ApprovalRequest.StepEscalated,)

        def fire() -> UUID | None:
            return self.request.mark_step_overdue(
                deadline_id=deadline, step=step, round_=round_, escalate_to=escalate_to
            )

        result, events = self._run("deadline", Actor.SYSTEM, fire, expected)
        if recorded_before is not None:
            assert result == recorded_before
        elif records:
            overdue = events[0]
            assert result == overdue.event_id
            assert (overdue.deadline_id, overdue.step, overdue.round) == (deadline, step, round_)
            assert overdue.due_at == self.due_at
            self.overdue[deadline] = result
            if escalates:
                assert events[1].escalated_to == escalate_to
                self.escalated = escalate_to
        else:
            assert result is None
        again, _ = self._run("deadline again", Actor.SYSTEM, fire, ())
        assert again == result

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def matches_the_model(self) -> None:
        r = self.request
        assert r.state == self.state
        assert r.signers == self.signers
        assert r.overdue == self.overdue
        assert [
            (s["step"], s["approver"], s["delegate_of"], s["decided_at"]) for s in r.signatures()
        ] == self.signatures
        record = r.current
        if self.state in ("approved", "rejected"):
            assert record is None
            assert r.closed_at is not None
            return
        assert record is not None
        assert (record["step"], record["round"]) == (self.step, self.round)
        assert record["assignee"] == self.named
        assert record["escalated_to"] == self.escalated
        assert record["due_at"] == self.due_at
        assert r.may_sign(STEP_ROLE[self.step]) == (self.state == "pending")

    @invariant()
    def steps_are_signed_in_strict_order(self) -> None:
        """R3.1: the steps approved are a prefix of the chain, one signature each."""
        approved = [e.step for e in self.events if isinstance(e, ApprovalRequest.StepApproved)]
        assert approved == list(self.steps[: len(approved)])
        opened = [e for e in self.events if isinstance(e, ApprovalRequest.StepOpened)]
        for e in opened:
            earlier = self.steps[: self.steps.index(e.step)]
            assert approved[: len(earlier)] == list(earlier)

    @invariant()
    def segregation_of_duties(self) -> None:
        """R3.1: nobody signs two steps; the requester never decides a procurement."""
        signed: set[str] = set()
        for e in self.events:
            if isinstance(e, ApprovalRequest.StepApproved):
                assert not (_people(e) & signed), (e, signed)
                signed |= _people(e)
            if isinstance(e, DECISION_EVENTS):
                if self.is_procurement:
                    assert REQUESTER not in _people(e)
                else:
                    # R5.1: only the Director decides a Director decision.
                    role = (
                        getattr(e, "approver_role", None)
                        or getattr(e, "returned_by_role", None)
                        or e.actor_role
                    )
                    assert role == "director", e

    @invariant()
    def procurement_approved_carries_the_three_signatures(self) -> None:
        """R3.1: approved procurement = department head, Finance, CEO, in order."""
        approvals = [e for e in self.events if isinstance(e, ApprovalRequest.ProcurementApproved)]
        assert len(approvals) == (1 if self.is_procurement and self.state == "approved" else 0)
        if not approvals:
            return
        assert approvals[0] is self.events[-1]
        signed = [e for e in self.events if isinstance(e, ApprovalRequest.StepApproved)]
        steps = approvals[0].steps
        assert [s["step"] for s in steps] == list(PROCUREMENT_STEPS)
        assert [(s["approver"], s["delegate_of"]) for s in steps] == [
            (e.approver, e.delegate_of) for e in signed
        ]
        assert [s["decided_at"] for s in steps] == [e.decided_at for e in signed]
        assert approvals[0].amount == Decimal("50000.00")

    @invariant()
    def overdue_once_per_step_round(self) -> None:
        """R3.5: one ApprovalStepOverdue per deadline (step and round)."""
        overdue = [e for e in self.events if isinstance(e, ApprovalRequest.StepOverdue)]
        assert len({e.deadline_id for e in overdue}) == len(overdue)
        assert len({(e.step, e.round) for e in overdue}) == len(overdue)
        for e in overdue:
            assert e.deadline_id == _deadline(e.step, e.round)
        escalated = [e for e in self.events if isinstance(e, ApprovalRequest.StepEscalated)]
        assert len(escalated) <= len(overdue)

    @invariant()
    def replay_rebuilds_the_live_state(self) -> None:
        assert _state(_replay(self.events)) == _state(self.request)


def test_approval_request_state_machine() -> None:
    """R3.1, R3.5, R5.1: the request state machine against its reference model."""
    run_state_machine_as_test(
        RequestMachine,
        settings=settings(
            max_examples=200,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# -- examples ------------------------------------------------------------------------------


class _Chain:
    """One request driven by hand: the clock, the ids, a command per actor."""

    def __init__(
        self,
        kind: Kind = "procurement",
        approvers: dict[str, str] | None = None,
        requested_by: str = REQUESTER,
    ) -> None:
        self.clock = ManualClock(START)
        self.ids = SequentialIds()
        with self.as_(Actor(requested_by, "pm")):
            self.request = ApprovalRequest.open(
                request_id=uuid4(),
                kind=kind,
                project_id=uuid4(),
                partner_id=None,
                title="servers",
                amount=Decimal("50000.00") if kind == "procurement" else None,
                currency="CNY",
                justification="the old ones failed",
                requested_by=requested_by,
                source="api",
                approvers=approvers or {},
                now=self.clock.now(),
                due=POLICY.approval_step_due,
            )
        self.events = list(self.request.collect_events())

    @contextmanager
    def as_(self, actor: Actor) -> Iterator[None]:
        ctx = CommandContext(actor=actor, correlation_id=uuid4(), clock=self.clock, new_id=self.ids)
        with command_context(ctx):
            yield

    def decide(
        self,
        user: str,
        role: str,
        decision: Decision = "approve",
        *,
        reason: str = "ok",
        delegate_of: str | None = None,
    ) -> list[Any]:
        with self.as_(Actor(user, role)):
            self.request.decide(
                decision=decision,
                signer=Signer(user_id=user, role=role, delegate_of=delegate_of),
                reason=reason,
                now=self.clock.now(),
                due=POLICY.approval_step_due,
            )
        events = list(self.request.collect_events())
        self.events += events
        return events

    def overdue(self, escalate_to: str | None) -> UUID | None:
        record = self.request.current
        assert record is not None
        with self.as_(Actor.SYSTEM):
            event_id = self.request.mark_step_overdue(
                deadline_id=_deadline(record["step"], record["round"]),
                step=record["step"],
                round_=record["round"],
                escalate_to=escalate_to,
            )
        self.events += self.request.collect_events()
        return event_id


def _refused(call: Callable[[], object], rule: str = "R3.1") -> RuleViolation:
    with pytest.raises(RuleViolation) as refused:
        call()
    assert refused.value.rule == rule
    return refused.value


def test_three_signatures_in_order_with_a_return_loop_and_a_delegate() -> None:
    """R3.1: department head -> Finance -> CEO; a return re-opens the same step
    in a new round with a fresh limit; a delegate's signature names both people."""
    chain = _Chain(approvers={"finance": "fin1"})
    chain.decide("dh1", "dept_head")
    chain.clock.advance(timedelta(hours=30))
    returned = chain.decide("fin2", "finance", "return", reason="which vendor?", delegate_of="fin1")
    assert [type(e) for e in returned] == [ApprovalRequest.Returned]
    assert chain.request.state == "returned"
    chain.clock.advance(timedelta(days=1))
    with chain.as_(Actor(REQUESTER, "pm")):
        chain.request.resubmit(
            user_id=REQUESTER,
            response="vendor A",
            now=chain.clock.now(),
            due=POLICY.approval_step_due,
        )
    reopened = chain.request.collect_events()
    assert [type(e) for e in reopened] == [ApprovalRequest.Resubmitted, ApprovalRequest.StepOpened]
    assert (reopened[1].step, reopened[1].round) == ("finance", 2)
    assert reopened[1].due_at == POLICY.approval_step_due("finance", chain.clock.now())
    chain.decide("fin2", "finance", delegate_of="fin1")
    done = chain.decide("ceo1", "ceo")
    assert [type(e) for e in done] == [
        ApprovalRequest.StepApproved,
        ApprovalRequest.ProcurementApproved,
    ]
    assert [(s["step"], s["approver"], s["delegate_of"]) for s in done[1].steps] == [
        ("department_head", "dh1", None),
        ("finance", "fin2", "fin1"),
        ("ceo", "ceo1", None),
    ]


def test_segregation_of_duties_is_refused_with_403() -> None:
    """R3.1: the requester never approves their own request, and neither a
    signer nor the one a delegate signed for signs a second step."""
    chain = _Chain(requested_by="dh1")  # a department head's own request
    assert _refused(lambda: chain.decide("dh1", "dept_head")).forbidden
    chain.decide("dh2", "dept_head")
    chain.clock.advance(timedelta(days=7))
    chain.overdue("ceo")  # the policy escalates Finance to the CEO
    chain.decide("ceo2", "ceo", delegate_of="ceo1")  # signs Finance for ceo1
    for user in ("ceo1", "ceo2"):
        refusal = _refused(lambda user=user: chain.decide(user, "ceo"))  # type: ignore[misc]
        assert refusal.forbidden
        assert "segregation of duties" in refusal.detail
    assert chain.request.collect_events() == []
    assert chain.request.signers == {"dh2", "ceo2", "ceo1"}


def test_an_overdue_step_is_escalated_once_and_the_escalation_role_signs() -> None:
    """R3.5, R3.1: a step past its limit records ApprovalStepOverdue once and
    escalates to the policy's role, who may then sign the named step."""
    chain = _Chain(approvers={"department_head": "dh1"})
    assert chain.overdue("director") is not None  # the engine fired it: nothing checks time
    chain.clock.advance(timedelta(days=7))
    first = chain.events[-2]
    assert isinstance(first, ApprovalRequest.StepOverdue)
    assert chain.overdue("director") == first.event_id
    assert isinstance(chain.events[-1], ApprovalRequest.StepEscalated)
    assert len(chain.events) == 4
    assert _refused(lambda: chain.decide("dh2", "dept_head")).forbidden  # named: dh1
    approved = chain.decide("dir", "director")[0]
    assert (approved.approver_role, approved.on_time) == ("director", False)
    # The deadline of the step that moved on records nothing.
    record = chain.request.current
    assert record is not None
    with chain.as_(Actor.SYSTEM):
        assert (
            chain.request.mark_step_overdue(
                deadline_id=uuid4(), step="department_head", round_=1, escalate_to="director"
            )
            is None
        )
    assert chain.request.collect_events() == []


# -- regressions: bugs the model found -----------------------------------------------------


def test_a_director_decision_is_never_escalated_to_another_role() -> None:
    """R5.1, R3.5: a policy file may name an escalation role for the director
    step (`escalate_to = "ceo"`); an overdue Director decision is recorded but
    stays the Director's: the CEO cannot decide it. (Before the fix the step
    was escalated and the CEO's approval was accepted.)"""
    chain = _Chain(kind="budget_increase")
    chain.clock.advance(timedelta(days=7))
    assert chain.overdue("ceo") is not None
    assert [type(e) for e in chain.events[2:]] == [ApprovalRequest.StepOverdue]
    assert chain.request.current is not None
    assert chain.request.current["escalated_to"] is None
    assert _refused(lambda: chain.decide("ceo1", "ceo")).forbidden
    done = chain.decide("dir", "director")
    assert [type(e) for e in done] == [
        ApprovalRequest.StepApproved,
        ApprovalRequest.DirectorDecisionApproved,
    ]
