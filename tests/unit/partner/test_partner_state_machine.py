"""R2.1 (partners are selected, evaluated, contracted and supervised): the
Partner aggregate's lifecycle, explored by a hypothesis state machine.

Rules call every command of the aggregate with generated arguments (due
diligence with random scores and certificates expiring before or after today,
qualification and renewal at the edge of the renewal window, rejection, each
status action with or without a blacklist, the first contract (also on
probation, and again after a termination), overdue requalifications with the
current or a stale validity date or qualification version, and repeated
deadline ids). A reference model of the lifecycle in partner.py's
docstring predicts whether each command is accepted and which events it
records. Proves that:

- every command either succeeds as the model predicts or raises a
  `RuleViolation` naming a requirement id; a refused command changes nothing
  and records no event;
- every status change follows the docstring's transition table, the status is
  always one of the seven, and a blacklisted partner is always terminated;
- `ensure_selectable()` passes exactly for a qualified, active or probation
  partner that is not blacklisted and needs no requalification (R2.1);
- an overdue requalification is recorded at most once per deadline id, and the
  same deadline id always returns the same event id (R3.5);
- replaying the recorded events from scratch rebuilds the live state (audit
  by event replay).
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

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

from services.partner.domain.partner import (
    ACTIVE,
    CANDIDATE,
    CRITERIA,
    PROBATION,
    QUALIFIED,
    REJECTED,
    SUSPENDED,
    TERMINATED,
    Contact,
    Partner,
    Qualification,
)
from shared.clock import ManualClock, SequentialIds
from shared.domain import Actor, CommandContext, RuleViolation, command_context

CREDIT_CODE = "91350100M000100Y43"
CONTACT: Contact = {"name": "Li Lei", "email": "li.lei@vendor.example", "phone": "+86 591 0000"}
START = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
DIRECTOR = Actor("d", "director")
RULE_ID = re.compile(r"R[1-6]\.[1-9]")
#: A small pool, so that deadline ids repeat within a run.
DEADLINES = tuple(uuid5(NAMESPACE_URL, f"requalification-deadline-{i}") for i in range(3))

STATUSES = frozenset({CANDIDATE, QUALIFIED, REJECTED, ACTIVE, PROBATION, SUSPENDED, TERMINATED})
SELECTABLE = frozenset({QUALIFIED, ACTIVE, PROBATION})
#: partner.py's docstring, as (from, to) pairs; a requalification keeps the status.
TRANSITIONS = frozenset(
    {
        (CANDIDATE, QUALIFIED),
        (CANDIDATE, REJECTED),
        (REJECTED, QUALIFIED),
        (QUALIFIED, ACTIVE),
        (QUALIFIED, PROBATION),
        (ACTIVE, PROBATION),
        (QUALIFIED, SUSPENDED),
        (ACTIVE, SUSPENDED),
        (PROBATION, SUSPENDED),
        *((s, TERMINATED) for s in STATUSES - {TERMINATED}),
        (PROBATION, ACTIVE),
        (PROBATION, QUALIFIED),
        (SUSPENDED, ACTIVE),
        (SUSPENDED, QUALIFIED),
        (TERMINATED, QUALIFIED),
    }
)
#: Which statuses each action of change_status starts from (docstring).
ACTION_FROM = {
    "probation": frozenset({QUALIFIED, ACTIVE}),
    "suspend": frozenset({QUALIFIED, ACTIVE, PROBATION}),
    "terminate": STATUSES - {TERMINATED},
    "reinstate": frozenset({PROBATION, SUSPENDED}),
}

REFUSED = None


def _state(partner: Partner) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in vars(partner).items() if k != "_pending_events"})


def _replay(events: list[Any]) -> Partner:
    created, *rest = events
    aggregate = created.mutate(None)
    for event in rest:
        aggregate = event.mutate(aggregate)
    assert isinstance(aggregate, Partner)
    return aggregate


scores_strategy = st.fixed_dictionaries({c: st.integers(1, 5) for c in CRITERIA})
#: "exact" is the only shape the aggregate accepts; the others must be refused.
score_shapes = st.sampled_from(["exact"] * 6 + ["missing", "extra"])
#: Certificate expiry, in days from today: some expired, some valid, some ending soon.
expiry_offsets = st.one_of(
    st.integers(-60, -1), st.integers(0, 45), st.integers(46, 800), st.integers(46, 800)
)


class PartnerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(START)
        self.new_id = SequentialIds()
        self.events: list[Any] = []
        # The reference model of the lifecycle (partner.py's docstring).
        self.status = CANDIDATE
        self.blacklisted = False
        self.has_contract = False
        self.valid_until: date | None = None
        self.qualified_version = 0
        #: (valid_until, qualified_version) of the qualifications replaced since
        self.old_qualifications: list[tuple[date, int]] = []
        self.requalification_required = False
        #: certificates of the latest evaluation made since the Director's last
        #: decision, or None when there is none
        self.fresh_evaluation: list[Qualification] | None = None
        self.overdue: dict[UUID, UUID] = {}

    # -- helpers -------------------------------------------------------------------------

    @contextmanager
    def _context(self) -> Iterator[CommandContext]:
        ctx = CommandContext(
            actor=DIRECTOR, correlation_id=uuid4(), clock=self.clock, new_id=self.new_id
        )
        with command_context(ctx):
            yield ctx

    def _today(self) -> date:
        return self.clock.now().date()

    def _selectable(self) -> bool:
        return (
            self.status in SELECTABLE and not self.blacklisted and not self.requalification_required
        )

    def _run(
        self, label: str, command: Callable[[], Any], expected: tuple[type[Any], ...] | None
    ) -> tuple[Any, list[Any]]:
        """Runs `command`; `expected` is the event types it must record, or
        REFUSED if the model says it must raise RuleViolation."""
        partner = self.partner
        before, version, status = _state(partner), partner.version, partner.status
        try:
            with self._context():
                result = command()
        except RuleViolation as exc:
            assert RULE_ID.fullmatch(exc.rule), exc.rule
            assert expected is REFUSED, f"the model expected {expected}, got refusal {exc}"
            assert _state(partner) == before
            assert partner.version == version
            assert partner.collect_events() == []
            note_outcome(f"{label}: refused {exc.detail[:40]}")
            return None, []
        events = list(partner.collect_events())
        assert expected is not REFUSED, f"the model expected a refusal, got {events}"
        assert [type(e) for e in events] == list(expected)
        assert partner.version == version + len(events)
        if partner.status != status:
            assert (status, partner.status) in TRANSITIONS, (status, partner.status)
        self.events.extend(events)
        note_outcome(f"{label}: {'recorded' if events else 'nothing to record'}")
        return result, events

    def _decided(self) -> None:
        self.fresh_evaluation = None

    # -- rules ---------------------------------------------------------------------------

    @initialize()
    def register(self) -> None:
        with self._context():
            self.partner = Partner.register(
                name="Fuzhou Software Ltd.",
                unified_social_credit_code=CREDIT_CODE,
                contact=CONTACT,
                service_categories=["development"],
            )
        self.events = list(self.partner.collect_events())
        assert [type(e) for e in self.events] == [Partner.Registered]

    @rule(days=st.one_of(st.integers(0, 40), st.integers(300, 400)))
    def time_passes(self, days: int) -> None:
        self.clock.advance(timedelta(days=days, minutes=1))

    @rule(scores=scores_strategy, shape=score_shapes, offsets=st.lists(expiry_offsets, max_size=2))
    def evaluate(self, scores: dict[str, int], shape: str, offsets: list[int]) -> None:
        if shape == "missing":
            scores = dict(list(scores.items())[1:])
        elif shape == "extra":
            scores = {**scores, "price": 3}
        today = self._today()
        qualifications = [
            Qualification(
                name=f"cert-{i}", certificate_no=f"N{i}", expires_on=today + timedelta(days=o)
            )
            for i, o in enumerate(offsets)
        ]
        accepted = not self.blacklisted and shape == "exact"
        self._run(
            "evaluate",
            lambda: self.partner.evaluate(
                evaluation_id=self.new_id(),
                scores=scores,
                qualifications=qualifications,
                summary="due diligence",
            ),
            (Partner.Evaluated,) if accepted else REFUSED,
        )
        if accepted:
            self.fresh_evaluation = qualifications

    @rule(
        today_offset=st.integers(0, 3),
        validity_days=st.one_of(st.integers(1, 40), st.integers(300, 730)),
        renew_within_days=st.sampled_from([0, 30, 60]),
        window_edge=st.sampled_from([None, None, -1, 0, 1]),
    )
    def qualify(
        self,
        today_offset: int,
        validity_days: int,
        renew_within_days: int,
        window_edge: int | None = None,
    ) -> None:
        """`window_edge` puts today next to the day the renewal window opens."""
        today = self._today() + timedelta(days=today_offset)
        if window_edge is not None and self.valid_until is not None:
            today = self.valid_until - timedelta(days=renew_within_days + window_edge)
        default_valid_until = today + timedelta(days=validity_days)
        renewal = self.requalification_required or (
            self.valid_until is not None and (self.valid_until - today).days <= renew_within_days
        )
        fresh = self.fresh_evaluation
        accepted = (
            not self.blacklisted
            and (self.status in (CANDIDATE, REJECTED, TERMINATED) or renewal)
            and fresh is not None
            and all(q["expires_on"] >= today for q in fresh)
        )
        _, events = self._run(
            "qualify",
            lambda: self.partner.qualify(
                reason="meets the criteria",
                today=today,
                default_valid_until=default_valid_until,
                renew_within_days=renew_within_days,
            ),
            (Partner.Qualified,) if accepted else REFUSED,
        )
        if accepted:
            assert fresh is not None
            if self.status in (CANDIDATE, REJECTED, TERMINATED):
                self.status = QUALIFIED
            if self.valid_until is not None:
                self.old_qualifications.append((self.valid_until, self.qualified_version))
            self.valid_until = min([q["expires_on"] for q in fresh] + [default_valid_until])
            self.qualified_version = events[0].originator_version
            assert events[0].valid_until == self.valid_until
            assert events[0].status == self.status
            self.requalification_required = False
            self._decided()

    @rule(
        scores=scores_strategy,
        offsets=st.lists(st.integers(31, 800), max_size=2),
        validity_days=st.integers(300, 730),
    )
    def evaluate_then_qualify(
        self, scores: dict[str, int], offsets: list[int], validity_days: int
    ) -> None:
        """The usual path (the two rules above, in a row), so runs get further."""
        self.evaluate(scores, "exact", offsets)
        self.qualify(0, validity_days, 30)

    @rule()
    def reject(self) -> None:
        accepted = self.status == CANDIDATE
        self._run(
            "reject",
            lambda: self.partner.reject(reason="weak references"),
            (Partner.Rejected,) if accepted else REFUSED,
        )
        if accepted:
            self.status = REJECTED
            self._decided()

    @rule()
    def first_contract_signed(self) -> None:
        if not self._selectable():
            expected: tuple[type[Any], ...] | None = REFUSED
        elif not self.has_contract:
            expected = (Partner.Activated,)
        else:
            expected = ()  # it had its first contract already: nothing to record
        _, events = self._run(
            "first contract",
            lambda: self.partner.first_contract_signed(
                project_id=uuid4(), contract_number="C-2026-001"
            ),
            expected,
        )
        if events:
            # A qualified partner becomes active; one on probation stays so.
            if self.status == QUALIFIED:
                self.status = ACTIVE
            assert events[0].status == self.status
            self.has_contract = True

    #: Only a termination may blacklist; the others must refuse a blacklist.
    blacklists = st.sampled_from([False, False, False, True])

    @rule(blacklist=blacklists)
    def put_on_probation(self, blacklist: bool) -> None:
        self._change_status("probation", blacklist)

    @rule(blacklist=blacklists)
    def suspend(self, blacklist: bool) -> None:
        self._change_status("suspend", blacklist)

    @rule(blacklist=st.booleans())
    def terminate(self, blacklist: bool) -> None:
        self._change_status("terminate", blacklist)

    @rule(blacklist=blacklists)
    def reinstate(self, blacklist: bool) -> None:
        self._change_status("reinstate", blacklist)

    def _change_status(self, action: str, blacklist: bool) -> None:
        target: str | None = None
        if self.status in ACTION_FROM[action] and (not blacklist or action == "terminate"):
            if action == "probation":
                target = PROBATION
            elif action == "suspend":
                target = SUSPENDED
            elif action == "terminate":
                target = TERMINATED
            else:
                target = ACTIVE if self.has_contract else QUALIFIED
        _, events = self._run(
            f"change_status {action}{' blacklist' if blacklist else ''}",
            lambda: self.partner.change_status(
                action=action,  # type: ignore[arg-type]
                reason="supervision",
                blacklist=blacklist,
            ),
            (Partner.StatusChanged,) if target is not None else REFUSED,
        )
        if target is not None:
            (event,) = events
            assert (event.from_status, event.to_status) == (self.status, target)
            self.status = target
            self.blacklisted = blacklist and action == "terminate"
            if target == TERMINATED:
                self.has_contract = False  # a qualification anew starts afresh
            assert event.blacklisted == self.blacklisted
            self._decided()

    @rule(
        deadline=st.sampled_from(DEADLINES),
        which=st.sampled_from(["current", "current", "stale", "stale version"]),
    )
    def mark_requalification_overdue(self, deadline: UUID, which: str) -> None:
        """The deadline of a qualification (its valid_until and version) fired."""
        if which == "current" and self.valid_until is not None:
            valid_until, version = self.valid_until, self.qualified_version
        elif which == "stale version" and self.valid_until is not None:
            # a renewal that kept the same date: the old deadline is stale
            valid_until, version = self.valid_until, self.qualified_version - 1
        elif self.old_qualifications:
            valid_until, version = self.old_qualifications[-1]
        else:
            valid_until, version = self._today() - timedelta(days=1), 0
        current = (valid_until, version) == (self.valid_until, self.qualified_version)
        if deadline in self.overdue:
            expected: tuple[type[Any], ...] = ()
            expected_result: UUID | None = self.overdue[deadline]
        elif not current or self.status == TERMINATED:
            expected, expected_result = (), None
        else:
            expected, expected_result = (Partner.RequalificationOverdue,), None

        def command() -> UUID | None:
            return self.partner.mark_requalification_overdue(
                deadline_id=deadline, valid_until=valid_until, qualified_version=version
            )

        result, events = self._run(f"overdue {which}", command, expected)
        if events:
            (event,) = events
            assert result == event.event_id
            assert event.deadline_id == deadline
            self.overdue[deadline] = result
            self.requalification_required = True
        else:
            assert result == expected_result
        # The deadline fires again (a redelivery): same answer, nothing recorded.
        again, _ = self._run("overdue again", command, ())
        assert again == result

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def matches_the_model(self) -> None:
        p = self.partner
        assert p.status in STATUSES
        assert (p.status, p.blacklisted, p.has_contract) == (
            self.status,
            self.blacklisted,
            self.has_contract,
        )
        assert (p.valid_until, p.qualified_version) == (self.valid_until, self.qualified_version)
        assert p.requalification_required == self.requalification_required
        assert p.overdue_deadlines == self.overdue

    @invariant()
    def blacklisted_means_terminated(self) -> None:
        assert not self.partner.blacklisted or self.partner.status == TERMINATED

    @invariant()
    def selectable_exactly_when_qualified_and_in_good_standing(self) -> None:
        p = self.partner
        expected = p.status in SELECTABLE and not p.blacklisted and not p.requalification_required
        try:
            p.ensure_selectable()
        except RuleViolation as exc:
            assert exc.rule == "R2.1"
            assert not expected, exc
        else:
            assert expected

    @invariant()
    def overdue_once_per_deadline(self) -> None:
        counts = Counter(
            e.deadline_id for e in self.events if isinstance(e, Partner.RequalificationOverdue)
        )
        assert all(n == 1 for n in counts.values())
        assert set(counts) == set(self.overdue)
        for deadline, event_id in self.overdue.items():
            with self._context():
                assert (
                    self.partner.mark_requalification_overdue(
                        deadline_id=deadline, valid_until=date(2000, 1, 1), qualified_version=-1
                    )
                    == event_id
                )
            assert self.partner.collect_events() == []

    @invariant()
    def replay_rebuilds_the_live_state(self) -> None:
        assert _state(_replay(self.events)) == _state(self.partner)


def test_partner_lifecycle_state_machine() -> None:
    run_state_machine_as_test(
        PartnerMachine,
        settings=settings(
            max_examples=300,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
