"""R2.1 (the outsourcing department selects partners): the Partner aggregate,
as pure domain, and the audit metadata every event carries (R4.5 traceability,
DESIGN.md section 3: who did it, when, and why).

Proves that registering a partner yields a candidate whose id is derived from
its unified social credit code (so one legal entity can be registered only
once, whatever the letter case of the code), with a stripped name and
de-duplicated categories; that the PartnerRegistered event records the actor,
correlation, causation, the injected clock's time and the injected event id;
that no event can be raised outside a command context; and that replaying the
events rebuilds the same state. A property-based test checks registration
over random valid inputs, including the JSON round trip of the envelope.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.partner.domain.partner import CANDIDATE, Contact, Partner, partner_id_for
from services.partner.domain.uscc import USCC_ALPHABET, InvalidUSCC, make_uscc
from shared.catalogue import EventCatalogue
from shared.clock import ManualClock, SequentialIds
from shared.domain import Actor, CommandContext, command_context, current_context
from shared.envelope import EventEnvelope

CREDIT_CODE = "91350100M000100Y43"
CONTACT: Contact = {"name": "Li Lei", "email": "li.lei@vendor.example", "phone": "+86 591 0000"}
MOMENT = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
ALICE = Actor("alice", "director")
CATALOGUE = EventCatalogue("partner", [Partner])


def _context(**overrides: Any) -> CommandContext:
    kwargs: dict[str, Any] = {
        "actor": ALICE,
        "correlation_id": uuid4(),
        "clock": ManualClock(MOMENT),
        "new_id": SequentialIds(),
    }
    kwargs.update(overrides)
    return CommandContext(**kwargs)


def _register(
    ctx: CommandContext | None = None,
    *,
    name: str = "Fuzhou Software Ltd.",
    code: str = CREDIT_CODE,
    categories: list[str] | None = None,
) -> Partner:
    with command_context(ctx or _context()):
        return Partner.register(
            name=name,
            unified_social_credit_code=code,
            contact=CONTACT,
            service_categories=categories or ["development"],
        )


def _only_event(partner: Partner) -> Partner.Registered:
    events = partner.collect_events()
    assert len(events) == 1
    (event,) = events
    assert isinstance(event, Partner.Registered)
    return event


def _state(partner: Partner) -> dict[str, Any]:
    return {k: v for k, v in vars(partner).items() if k != "_pending_events"}


def test_registration_gives_a_candidate_identified_by_its_credit_code() -> None:
    partner = _register(name="  Fuzhou Software Ltd.\t")
    assert partner.status == CANDIDATE == "candidate"
    assert partner.id == partner_id_for(CREDIT_CODE)
    assert partner.version == 1
    assert partner.name == "Fuzhou Software Ltd."
    assert partner.unified_social_credit_code == CREDIT_CODE
    assert partner.contact == CONTACT


def test_credit_code_letter_case_does_not_change_the_id() -> None:
    assert partner_id_for(CREDIT_CODE.lower()) == partner_id_for(CREDIT_CODE)
    partner = _register(code=" " + CREDIT_CODE.lower() + " ")
    assert partner.id == partner_id_for(CREDIT_CODE)
    assert partner.unified_social_credit_code == CREDIT_CODE


def test_different_credit_codes_give_different_ids() -> None:
    other = make_uscc("91350100M00010099")
    assert partner_id_for(other) != partner_id_for(CREDIT_CODE)


def test_invalid_credit_code_is_refused_before_any_event() -> None:
    ctx = _context()
    with command_context(ctx), pytest.raises(InvalidUSCC):
        Partner.register(
            name="X",
            unified_social_credit_code="91350100M000100Y44",
            contact=CONTACT,
            service_categories=["development"],
        )


def test_categories_are_deduplicated_in_order() -> None:
    partner = _register(categories=["ops", "dev", "ops", "audit", "dev"])
    assert partner.service_categories == ["ops", "dev", "audit"]


def test_event_records_actor_correlation_clock_and_id() -> None:
    correlation = uuid4()
    partner = _register(_context(correlation_id=correlation, actor=Actor("bob", "specialist")))
    event = _only_event(partner)
    assert event.actor_id == "bob"
    assert event.actor_role == "specialist"
    assert event.correlation_id == correlation
    assert event.causation_id is None
    assert event.timestamp == MOMENT
    assert event.occurred_at == MOMENT
    assert event.event_id == SequentialIds()()  # the first id of a fresh sequence
    assert event.originator_id == partner.id
    assert event.originator_version == 1
    assert partner.created_on == MOMENT


def test_event_records_the_causing_event() -> None:
    cause = uuid4()
    partner = _register(_context(causation_id=cause))
    event = _only_event(partner)
    assert event.causation_id == cause


def test_caused_by_carries_cause_and_correlation() -> None:
    cause, correlation = uuid4(), uuid4()
    partner = _register(_context().caused_by(cause, correlation))
    event = _only_event(partner)
    assert (event.causation_id, event.correlation_id) == (cause, correlation)


def test_reported_past_fact_keeps_its_own_time() -> None:
    earlier = MOMENT - timedelta(days=3)
    partner = _register(_context(occurred_at=earlier))
    event = _only_event(partner)
    assert event.occurred_at == earlier
    assert event.timestamp == MOMENT


def test_clock_moves_between_commands() -> None:
    clock = ManualClock(MOMENT)
    ids = SequentialIds()
    first = _register(_context(clock=clock, new_id=ids))
    clock.advance(timedelta(hours=2))
    second = _register(_context(clock=clock, new_id=ids), code=make_uscc("91350100M00010099"))
    e1 = _only_event(first)
    e2 = _only_event(second)
    assert e2.timestamp - e1.timestamp == timedelta(hours=2)
    assert e1.event_id != e2.event_id


def test_no_event_outside_a_command_context() -> None:
    with pytest.raises(RuntimeError, match="command_context"):
        Partner.register(
            name="X",
            unified_social_credit_code=CREDIT_CODE,
            contact=CONTACT,
            service_categories=["development"],
        )


def test_no_event_triggered_on_an_aggregate_outside_a_command_context() -> None:
    partner = _register()
    partner.collect_events()
    with pytest.raises(RuntimeError, match="command_context"):
        partner.trigger_event(Partner.Event)
    assert partner.version == 1
    assert partner.collect_events() == []


def test_context_is_closed_after_the_command() -> None:
    ctx = _context()
    with command_context(ctx):
        assert current_context() is ctx
    with pytest.raises(RuntimeError, match="command_context"):
        current_context()


def test_replaying_the_events_rebuilds_the_same_state() -> None:
    partner = _register(categories=["dev", "ops", "dev"])
    events = partner.collect_events()
    created, *rest = events
    rebuilt = created.mutate(None)
    for event in rest:
        rebuilt = event.mutate(rebuilt)
    assert isinstance(rebuilt, Partner)
    assert _state(rebuilt) == _state(partner)
    assert rebuilt.status == CANDIDATE
    assert rebuilt.service_categories == ["dev", "ops"]


# --- property-based -------------------------------------------------------------

#: Control, format, surrogate, private-use, unassigned and line/paragraph separators.
_NOT_PRINTABLE = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")),
    min_size=1,
    max_size=60,
).filter(lambda s: s.strip() != "")
_categories = st.lists(
    st.text(alphabet=string.ascii_letters + string.digits + " -", min_size=1, max_size=12),
    min_size=1,
    max_size=5,
)
_codes = st.builds(
    lambda authority, division, organisation: make_uscc(authority + division + organisation),
    st.just("91"),
    st.text(alphabet=string.digits, min_size=6, max_size=6),
    st.text(alphabet=USCC_ALPHABET, min_size=9, max_size=9),
)


@settings(max_examples=150, deadline=None)
@given(name=_names, categories=_categories, code=_codes, lower=st.booleans())
def test_any_valid_registration_yields_one_publishable_event(
    name: str, categories: list[str], code: str, lower: bool
) -> None:
    correlation = uuid4()
    ctx = _context(correlation_id=correlation)
    partner = _register(ctx, name=name, code=code.lower() if lower else code, categories=categories)

    assert partner.status == CANDIDATE
    assert partner.id == partner_id_for(code)
    assert partner.name == name.strip()
    assert partner.unified_social_credit_code == code
    assert partner.service_categories == list(dict.fromkeys(categories))

    events = partner.collect_events()
    assert len(events) == 1
    (event,) = events
    assert isinstance(event, Partner.Registered)

    envelope = CATALOGUE.to_envelope(event)
    assert envelope.event_type == "PartnerRegistered"
    assert envelope.aggregate_id == partner.id
    assert envelope.correlation_id == correlation
    assert envelope.payload["name"] == name.strip()
    assert envelope.payload["unified_social_credit_code"] == code
    assert envelope.payload["service_categories"] == list(dict.fromkeys(categories))
    wire = envelope.to_json_bytes()
    assert EventEnvelope.parse_message(wire) == envelope
    assert isinstance(EventEnvelope.parse_message(wire).aggregate_id, UUID)
