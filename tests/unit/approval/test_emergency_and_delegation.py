"""R5.3 (emergency actions) and R3.1 (delegation of an approver's signature):
the EmergencyAction and Delegations aggregates.

Proves that an emergency action is recorded only after it was taken; that only
the PM who recorded it files the written explanation (403 otherwise), once and
not blank; that the explanation is on time up to and including its due
moment, and a late one is still filed, saying so; that
`EmergencyExplanationOverdue` is recorded once per deadline, returns the same
event id when the deadline fires again and nothing once the explanation is
filed; that the Director decides only after the explanation, once, and a
rejection needs its reason. A hypothesis state machine explores these commands
in any order against a reference model (refusals name R5.3 and record nothing;
replay rebuilds the state).

For delegations: one book per delegator at a fixed id; a delegation goes to
another person, ends after it starts and after now, covers at most 92 days;
it is revoked once, before it ends; `active_for` holds from its start
(inclusive) to its end (exclusive), for the delegate and role it names only,
and never once revoked, which a property test checks against an independent
predicate over generated grants, revocations and moments.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from services.approval.domain.delegation import (
    MAX_PERIOD,
    Delegations,
    delegations_id,
)
from services.approval.domain.emergency import EmergencyAction
from shared.clock import ManualClock, SequentialIds
from shared.domain import Actor, CommandContext, LedgerAggregate, RuleViolation, command_context
from shared.policy import load_policy

POLICY = load_policy()
START = datetime(2026, 3, 6, 2, 0, tzinfo=UTC)  # Friday 10:00 in Shanghai
RULE_ID = re.compile(r"R\d\.\d")
PM = Actor("pm1", "project_manager")
OTHER_PM = Actor("pm2", "project_manager")
DIRECTOR = Actor("dir", "director")
MICRO = timedelta(microseconds=1)

A = TypeVar("A", bound=LedgerAggregate)


class Ctx:
    """A clock, ids and a command context per actor."""

    def __init__(self, start: datetime = START) -> None:
        self.clock = ManualClock(start)
        self.ids = SequentialIds()

    @contextmanager
    def as_(self, actor: Actor) -> Iterator[None]:
        ctx = CommandContext(actor=actor, correlation_id=uuid4(), clock=self.clock, new_id=self.ids)
        with command_context(ctx):
            yield

    def now(self) -> datetime:
        return self.clock.now()


def _state(aggregate: LedgerAggregate) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in vars(aggregate).items() if k != "_pending_events"})


def _replay(events: list[Any], kind: type[A]) -> A:
    created, *rest = events
    aggregate = created.mutate(None)
    for e in rest:
        aggregate = e.mutate(aggregate)
    assert isinstance(aggregate, kind)
    return aggregate


def _refused(
    aggregate: LedgerAggregate, call: Callable[[], object], rule: str, *, forbidden: bool = False
) -> RuleViolation:
    """`call` raises RuleViolation naming `rule`, changes nothing, records nothing."""
    before = _state(aggregate)
    with pytest.raises(RuleViolation) as refused:
        call()
    assert refused.value.rule == rule
    assert refused.value.forbidden == forbidden
    assert _state(aggregate) == before
    assert aggregate.collect_events() == []
    return refused.value


# -- emergency actions (R5.3) --------------------------------------------------------------


def _record(ctx: Ctx, acted_at: datetime | None = None) -> EmergencyAction:
    acted_at = acted_at or ctx.now() - timedelta(hours=2)
    with ctx.as_(PM):
        return EmergencyAction.record(
            action_id=uuid4(),
            project_id=uuid4(),
            what_happened="the database server failed",
            action_taken="moved two specialists to the recovery",
            resources_changed=["s1", "s2"],
            acted_at=acted_at,
            recorded_by=PM.user_id,
            now=ctx.now(),
            explanation_due_at=POLICY.emergency_explanation_due(acted_at),
        )


def _explain(ctx: Ctx, action: EmergencyAction, actor: Actor = PM, text: str = "why") -> None:
    with ctx.as_(actor):
        action.file_explanation(explanation=text, user_id=actor.user_id, now=ctx.now())


def test_an_emergency_action_is_recorded_after_it_was_taken() -> None:
    """R5.3: the PM acts first and records it; the explanation is due 24 hours
    after the action (the policy default, elapsed hours)."""
    ctx = Ctx()
    action = _record(ctx)
    (recorded,) = action.collect_events()
    assert isinstance(recorded, EmergencyAction.Created)
    assert recorded.explanation_due_at == recorded.acted_at + timedelta(hours=24)
    assert (action.state, action.recorded_by) == ("awaiting_explanation", "pm1")
    with ctx.as_(PM), pytest.raises(RuleViolation) as refused:
        EmergencyAction.record(
            action_id=uuid4(),
            project_id=None,
            what_happened="x",
            action_taken="y",
            resources_changed=[],
            acted_at=ctx.now() + MICRO,
            recorded_by="pm1",
            now=ctx.now(),
            explanation_due_at=ctx.now() + timedelta(hours=24),
        )
    assert refused.value.rule == "R5.3"


def test_only_the_recording_pm_explains_once_and_not_blank() -> None:
    """R5.3: the PM who acted files the written explanation (403 for anyone
    else), with content, once."""
    ctx = Ctx()
    action = _record(ctx)
    action.collect_events()
    _refused(action, lambda: _explain(ctx, action, OTHER_PM), "R5.3", forbidden=True)
    _refused(action, lambda: _explain(ctx, action, DIRECTOR), "R5.3", forbidden=True)
    _refused(action, lambda: _explain(ctx, action, text="  "), "R5.3")
    _explain(ctx, action)
    (filed,) = action.collect_events()
    assert isinstance(filed, EmergencyAction.ExplanationFiled)
    assert (filed.filed_by, filed.on_time, action.state) == ("pm1", True, "explained")
    _refused(action, lambda: _explain(ctx, action), "R5.3")


@pytest.mark.parametrize(
    ("after_due", "on_time"), [(-MICRO, True), (timedelta(0), True), (MICRO, False)]
)
def test_the_explanation_is_on_time_up_to_its_due_moment(
    after_due: timedelta, on_time: bool
) -> None:
    """R5.3, R3.5: filed at the due moment is on time; a moment later is late,
    and a late explanation is still filed (the breach is on the event)."""
    ctx = Ctx()
    action = _record(ctx)
    ctx.clock.set(action.explanation_due_at + after_due)
    _explain(ctx, action)
    filed = action.collect_events()[-1]
    assert isinstance(filed, EmergencyAction.ExplanationFiled)
    assert (filed.on_time, filed.due_at) == (on_time, action.explanation_due_at)
    assert action.state == "explained"


def test_a_missed_explanation_is_overdue_once_and_the_late_one_is_still_decided() -> None:
    """R5.3, R3.5: EmergencyExplanationOverdue is recorded once (the same
    event id when the deadline fires again); the late explanation is filed
    after it and the Director ratifies; the breach stays on record."""
    ctx = Ctx()
    action = _record(ctx)
    action.collect_events()
    ctx.clock.set(action.explanation_due_at + timedelta(minutes=1))
    deadline = uuid5(NAMESPACE_URL, "emergency-explanation")
    with ctx.as_(Actor.SYSTEM):
        first = action.mark_explanation_overdue(deadline_id=deadline)
        again = action.mark_explanation_overdue(deadline_id=deadline)
    events = action.collect_events()
    assert [type(e) for e in events] == [EmergencyAction.ExplanationOverdue]
    assert first == again == events[0].event_id
    assert events[0].due_at == action.explanation_due_at
    assert action.explanation_overdue
    _explain(ctx, action)
    with ctx.as_(DIRECTOR):
        action.decide(ratify=True, reason="", now=ctx.now())
        assert action.mark_explanation_overdue(deadline_id=deadline) == first
    filed, ratified = action.collect_events()
    assert isinstance(filed, EmergencyAction.ExplanationFiled)
    assert not filed.on_time
    assert isinstance(ratified, EmergencyAction.Ratified)
    assert (action.state, action.decided_by, action.explanation_overdue) == (
        "ratified",
        "dir",
        True,
    )


def test_no_overdue_once_the_explanation_is_filed() -> None:
    """R3.5: the deadline that fires after the explanation records nothing."""
    ctx = Ctx()
    action = _record(ctx)
    _explain(ctx, action)
    action.collect_events()
    with ctx.as_(Actor.SYSTEM):
        assert action.mark_explanation_overdue(deadline_id=uuid4()) is None
    assert action.collect_events() == []
    assert not action.explanation_overdue


def test_the_director_decides_only_after_the_explanation_and_once() -> None:
    """R5.3: no ratification before the written explanation; a rejection
    needs its reason; a decided action is not decided again."""
    ctx = Ctx()
    action = _record(ctx)
    action.collect_events()

    def decide(ratify: bool, reason: str) -> None:
        with ctx.as_(DIRECTOR):
            action.decide(ratify=ratify, reason=reason, now=ctx.now())

    _refused(action, lambda: decide(True, "fine"), "R5.3")
    _refused(action, lambda: decide(False, "no"), "R5.3")
    _explain(ctx, action)
    action.collect_events()
    _refused(action, lambda: decide(False, " "), "R5.3")
    decide(False, "the backup server was enough")
    (rejected,) = action.collect_events()
    assert isinstance(rejected, EmergencyAction.Rejected)
    assert (action.state, action.decision_reason) == ("rejected", rejected.reason)
    _refused(action, lambda: decide(True, "after all"), "R5.3")
    _refused(action, lambda: _explain(ctx, action), "R5.3")


class EmergencyMachine(RuleBasedStateMachine):
    """EmergencyAction under any order of commands, against a reference model."""

    TRANSITIONS = frozenset(
        {
            ("awaiting_explanation", "awaiting_explanation"),  # overdue
            ("awaiting_explanation", "explained"),
            ("explained", "ratified"),
            ("explained", "rejected"),
        }
    )
    DEADLINES = (uuid5(NAMESPACE_URL, "explanation-1"), uuid5(NAMESPACE_URL, "explanation-2"))

    @initialize(acted_hours_ago=st.integers(0, 30))
    def record(self, acted_hours_ago: int) -> None:
        self.ctx = Ctx()
        self.action = _record(self.ctx, self.ctx.now() - timedelta(hours=acted_hours_ago))
        self.events: list[Any] = list(self.action.collect_events())
        self.state = "awaiting_explanation"
        self.overdue: dict[UUID, UUID] = {}

    def _run(
        self,
        actor: Actor,
        call: Callable[[], Any],
        expected: tuple[type[Any], ...] | None,
        *,
        forbidden: bool = False,
    ) -> Any:
        """`expected`: the events recorded, or None for a refusal (403 if `forbidden`)."""
        action, before = self.action, _state(self.action)
        state = action.state
        try:
            with self.ctx.as_(actor):
                result = call()
        except RuleViolation as exc:
            assert expected is None, f"the model expected {expected}, got {exc}"
            assert RULE_ID.fullmatch(exc.rule)
            assert exc.rule == "R5.3"
            assert exc.forbidden == forbidden
            assert _state(action) == before
            assert action.collect_events() == []
            return None
        events = list(action.collect_events())
        assert expected is not None, f"the model expected a refusal, got {events}"
        assert [type(e) for e in events] == list(expected)
        if events:
            assert (state, action.state) in self.TRANSITIONS
        self.events += events
        return result

    @rule(hours=st.integers(0, 30))
    def time_passes(self, hours: int) -> None:
        self.ctx.clock.advance(timedelta(hours=hours, minutes=3))

    @rule(by=st.sampled_from([PM, PM, OTHER_PM, DIRECTOR]), text=st.sampled_from(["why", ""]))
    def file_explanation(self, by: Actor, text: str) -> None:
        ok = by == PM and self.state == "awaiting_explanation" and bool(text.strip())
        now = self.ctx.now()
        self._run(
            by,
            lambda: self.action.file_explanation(explanation=text, user_id=by.user_id, now=now),
            (EmergencyAction.ExplanationFiled,) if ok else None,
            forbidden=by != PM,
        )
        if ok:
            assert self.events[-1].on_time == (now <= self.action.explanation_due_at)
            self.state = "explained"

    @rule(ratify=st.booleans(), reason=st.sampled_from(["", "agreed"]))
    def director_decides(self, ratify: bool, reason: str) -> None:
        ok = self.state == "explained" and (ratify or bool(reason.strip()))
        event = EmergencyAction.Ratified if ratify else EmergencyAction.Rejected
        self._run(
            DIRECTOR,
            lambda: self.action.decide(ratify=ratify, reason=reason, now=self.ctx.now()),
            (event,) if ok else None,
        )
        if ok:
            self.state = "ratified" if ratify else "rejected"

    @rule(deadline=st.sampled_from(DEADLINES))
    def deadline_fires(self, deadline: UUID) -> None:
        """The engine fires once the explanation is due (the clock moves there)."""
        if self.ctx.now() <= self.action.explanation_due_at:
            self.ctx.clock.set(self.action.explanation_due_at + timedelta(seconds=1))
        known = self.overdue.get(deadline)
        records = known is None and self.state == "awaiting_explanation"

        def fire() -> UUID | None:
            return self.action.mark_explanation_overdue(deadline_id=deadline)

        expected = (EmergencyAction.ExplanationOverdue,) if records else ()
        result = self._run(Actor.SYSTEM, fire, expected)
        if known is not None:
            assert result == known
        elif records:
            assert result == self.events[-1].event_id
            self.overdue[deadline] = result
        else:
            assert result is None
        assert self._run(Actor.SYSTEM, fire, ()) == result

    @invariant()
    def matches_the_model(self) -> None:
        assert self.action.state == self.state
        assert self.action.overdue == self.overdue
        assert self.action.explanation_overdue == bool(self.overdue)

    @invariant()
    def decided_only_after_the_explanation(self) -> None:
        types = [type(e) for e in self.events]
        decisions = [
            i
            for i, t in enumerate(types)
            if t in (EmergencyAction.Ratified, EmergencyAction.Rejected)
        ]
        assert len(decisions) <= 1
        assert types.count(EmergencyAction.ExplanationFiled) <= 1
        if decisions:
            assert EmergencyAction.ExplanationFiled in types[: decisions[0]]
        for e in self.events:
            if isinstance(e, EmergencyAction.ExplanationOverdue):
                # Recorded only while the explanation was missing.
                assert EmergencyAction.ExplanationFiled not in types[: self.events.index(e)]

    @invariant()
    def replay_rebuilds_the_live_state(self) -> None:
        assert _state(_replay(self.events, EmergencyAction)) == _state(self.action)


def test_emergency_action_state_machine() -> None:
    """R5.3, R3.5: EmergencyAction against its reference model, commands in any order."""
    run_state_machine_as_test(
        EmergencyMachine,
        settings=settings(
            max_examples=150,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# -- delegations (R3.1) --------------------------------------------------------------------


def _book(ctx: Ctx, delegator: str = "fin1") -> Delegations:
    with ctx.as_(Actor(delegator, "finance")):
        book = Delegations.open(delegator=delegator)
    book.collect_events()
    return book


def _grant(
    ctx: Ctx,
    book: Delegations,
    *,
    delegate: str = "fin2",
    role: str = "finance",
    starts_at: datetime,
    ends_at: datetime,
) -> UUID:
    grant_id = uuid4()
    with ctx.as_(Actor(book.delegator, role)):
        book.grant(
            grant_id=grant_id,
            delegate=delegate,
            role=role,
            starts_at=starts_at,
            ends_at=ends_at,
            reason="out of office",
            now=ctx.now(),
        )
    return grant_id


def test_one_book_per_delegator_at_a_fixed_id() -> None:
    """R3.1: the decision-time check finds an approver's delegations by name."""
    ctx = Ctx()
    with ctx.as_(Actor("fin1", "finance")):
        book = Delegations.open(delegator="fin1")
    (opened,) = book.collect_events()
    assert isinstance(opened, Delegations.Created)
    assert book.id == delegations_id("fin1") != delegations_id("fin2")
    assert (book.delegator, book.grants) == ("fin1", {})


def test_the_period_rules_of_a_delegation() -> None:
    """R3.1: to another person, ending after it starts and after now, for at
    most 92 days (exactly 92 is allowed); a period begun already is fine."""
    ctx = Ctx()
    book = _book(ctx)
    now = ctx.now()

    def grant(delegate: str, starts_at: datetime, ends_at: datetime) -> Callable[[], object]:
        return lambda: _grant(ctx, book, delegate=delegate, starts_at=starts_at, ends_at=ends_at)

    _refused(book, grant("fin1", now, now + timedelta(days=1)), "R3.1")
    _refused(book, grant("fin2", now + timedelta(days=2), now + timedelta(days=2)), "R3.1")
    _refused(book, grant("fin2", now + timedelta(days=2), now + timedelta(days=1)), "R3.1")
    _refused(book, grant("fin2", now - timedelta(days=2), now), "R3.1")
    _refused(book, grant("fin2", now, now + MAX_PERIOD + MICRO), "R3.1")
    assert MAX_PERIOD.days == 92
    grant("fin2", now, now + MAX_PERIOD)()
    grant("fin2", now - timedelta(days=3), now + MICRO)()
    granted = book.collect_events()
    assert [type(e) for e in granted] == [Delegations.Granted] * 2
    assert len(book.grants) == 2


def test_active_for_holds_from_start_inclusive_to_end_exclusive() -> None:
    """R3.1: the delegate signs for the delegator in the period only, in the
    delegated role only; another user or role gets nothing."""
    ctx = Ctx()
    book = _book(ctx)
    starts, ends = START + timedelta(days=1), START + timedelta(days=8)
    grant_id = _grant(ctx, book, starts_at=starts, ends_at=ends)
    assert book.active_for("fin2", "finance", starts - MICRO) is None
    active = book.active_for("fin2", "finance", starts)
    assert active is not None
    assert active["grant_id"] == grant_id
    assert book.active_for("fin2", "finance", ends - MICRO) is not None
    assert book.active_for("fin2", "finance", ends) is None
    assert book.active_for("fin2", "ceo", starts) is None
    assert book.active_for("fin3", "finance", starts) is None
    assert book.active_for("fin1", "finance", starts) is None


def test_a_delegation_is_revoked_once_before_it_ends() -> None:
    """R3.1: a revoked delegation delegates nothing; an unknown, revoked or
    ended one is not revoked (again)."""
    ctx = Ctx()
    book = _book(ctx)
    grant_id = _grant(ctx, book, starts_at=START, ends_at=START + timedelta(days=2))
    ended = _grant(ctx, book, starts_at=START, ends_at=START + timedelta(hours=1))
    book.collect_events()
    ctx.clock.advance(timedelta(hours=1))

    def revoke(grant: UUID) -> Callable[[], None]:
        def call() -> None:
            with ctx.as_(Actor("fin1", "finance")):
                book.revoke(grant_id=grant, now=ctx.now())

        return call

    _refused(book, revoke(uuid4()), "R3.1")
    _refused(book, revoke(ended), "R3.1")  # ends_at == now: ended
    assert book.active_for("fin2", "finance", ctx.now()) is not None
    revoke(grant_id)()
    (revoked,) = book.collect_events()
    assert isinstance(revoked, Delegations.Revoked)
    assert book.grants[grant_id]["revoked_at"] == ctx.now()
    assert book.active_for("fin2", "finance", ctx.now()) is None
    _refused(book, revoke(grant_id), "R3.1")


grant_specs = st.lists(
    st.tuples(
        st.sampled_from(["fin1", "fin2", "fin3"]),  # delegate (fin1 is the delegator)
        st.sampled_from(["finance", "ceo"]),  # role
        st.integers(-48, 48),  # start, hours from now
        st.integers(-24, 24 * 100),  # length, hours
        st.one_of(st.none(), st.integers(0, 24 * 10)),  # revoked after, hours
    ),
    max_size=5,
)


@settings(max_examples=150, deadline=None)
@given(
    specs=grant_specs,
    moments=st.lists(st.integers(-24 * 3, 24 * 110), min_size=1, max_size=6),
    edge=st.booleans(),
)
def test_active_for_matches_the_period_rules(
    specs: list[tuple[str, str, int, int, int | None]], moments: list[int], edge: bool
) -> None:
    """R3.1: over generated grants (valid or not), revocations and moments
    (also at the exact bounds): a grant is accepted iff its period is valid,
    and `active_for` finds a delegation iff one of the accepted, unrevoked
    grants names the delegate and role and its period holds the moment."""
    ctx = Ctx()
    with ctx.as_(Actor("fin1", "finance")):
        book = Delegations.open(delegator="fin1")
    events: list[Any] = list(book.collect_events())
    accepted: list[tuple[str, str, datetime, datetime, datetime | None]] = []
    for delegate, role, start_h, length_h, revoke_h in specs:
        now = ctx.now()
        starts = now + timedelta(hours=start_h)
        ends = starts + timedelta(hours=length_h)
        valid = delegate != "fin1" and ends > starts and ends > now and ends - starts <= MAX_PERIOD
        try:
            grant_id = _grant(
                ctx, book, delegate=delegate, role=role, starts_at=starts, ends_at=ends
            )
        except RuleViolation as exc:
            assert not valid
            assert exc.rule == "R3.1"
            continue
        assert valid
        revoked_at = None
        if revoke_h is not None and now + timedelta(hours=revoke_h) < ends:
            ctx.clock.advance(timedelta(hours=revoke_h))
            with ctx.as_(Actor("fin1", role)):
                book.revoke(grant_id=grant_id, now=ctx.now())
            revoked_at = ctx.now()
        accepted.append((delegate, role, starts, ends, revoked_at))
    events += book.collect_events()
    assert _state(_replay(events, Delegations)) == _state(book)

    probes = [START + timedelta(hours=h) for h in moments]
    if edge:
        for _, _, starts, ends, _ in accepted:
            probes += [starts - MICRO, starts, ends - MICRO, ends]
    for at in probes:
        for delegate in ("fin1", "fin2", "fin3"):
            for role in ("finance", "ceo"):
                expected = any(
                    d == delegate and r == role and revoked is None and s <= at < e
                    for d, r, s, e, revoked in accepted
                )
                found = book.active_for(delegate, role, at)
                assert (found is not None) == expected, (delegate, role, at)
                if found is not None:
                    assert (found["delegate"], found["role"]) == (delegate, role)
                    assert found["starts_at"] <= at < found["ends_at"]
