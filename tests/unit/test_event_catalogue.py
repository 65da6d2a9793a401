"""DESIGN.md section 3 (the one event contract) for R2.1's PartnerRegistered,
and the backward-compatibility rule for published event schemas.

Proves that `shared.catalogue.incompatibilities` reports exactly the changes
that would break a consumer of an already published schema (a removed field,
a changed type, a newly required field, also inside nested models the way
pydantic emits them) and accepts compatible ones; and that the catalogue
turns a stored Partner.Registered event into an `EventEnvelope` with the
envelope metadata (who, when, correlation, causation) and the payload, which
survives the JSON wire format and validates against the published payload
model. The audit trail of R4.5 and the KPI projections of R6.1 consume
exactly these envelopes.
"""

from __future__ import annotations

import copy
from typing import Any
from uuid import uuid4

import pytest
from pydantic import BaseModel

from services.partner.domain.partner import Partner
from shared.catalogue import CatalogueError, EventCatalogue, incompatibilities
from shared.domain import Actor, CommandContext, LedgerAggregate, command_context
from shared.envelope import ActorRef, EventEnvelope

CREDIT_CODE = "91350100M000100Y43"
CONTACT = {"name": "Li Lei", "email": "li.lei@vendor.example", "phone": "+86 591 0000 0000"}

# --- incompatibilities on hand-written schemas ------------------------------------


def _schema(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or []}


BASE = _schema(
    {
        "name": {"type": "string"},
        "score": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    required=["name", "score"],
)


def test_identical_schemas_are_compatible() -> None:
    assert incompatibilities(BASE, copy.deepcopy(BASE)) == []


def test_an_added_optional_property_is_compatible() -> None:
    new = copy.deepcopy(BASE)
    new["properties"]["note"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert incompatibilities(BASE, new) == []


def test_a_field_no_longer_required_is_compatible() -> None:
    new = copy.deepcopy(BASE)
    new["required"] = ["name"]
    assert incompatibilities(BASE, new) == []


def test_a_removed_property_is_reported_by_name() -> None:
    new = copy.deepcopy(BASE)
    del new["properties"]["score"]
    new["required"] = ["name"]
    assert incompatibilities(BASE, new) == ["field 'score' removed"]


def test_a_changed_type_is_reported() -> None:
    old = _schema({"code": {"type": "string"}})
    new = _schema({"code": {"type": "integer"}})
    assert incompatibilities(old, new) == ["field 'code' changed type string -> integer"]


def test_a_changed_array_item_type_is_reported() -> None:
    new = copy.deepcopy(BASE)
    new["properties"]["tags"]["items"] = {"type": "integer"}
    assert incompatibilities(BASE, new) == [
        "field 'tags' changed type array[string] -> array[integer]"
    ]


def test_a_changed_format_is_reported() -> None:
    old = _schema({"at": {"type": "string"}})
    new = _schema({"at": {"type": "string", "format": "date-time"}})
    assert incompatibilities(old, new) == ["field 'at' changed type string -> string<date-time>"]


def test_a_newly_required_property_is_reported() -> None:
    new = copy.deepcopy(BASE)
    new["properties"]["owner"] = {"type": "string"}
    new["required"] = ["name", "score", "owner"]
    assert incompatibilities(BASE, new) == ["field 'owner' newly required"]


def test_an_optional_property_becoming_required_is_reported() -> None:
    new = copy.deepcopy(BASE)
    new["required"] = ["name", "score", "tags"]
    assert incompatibilities(BASE, new) == ["field 'tags' newly required"]


def test_nullable_to_non_nullable_is_a_type_change() -> None:
    old = _schema({"email": {"anyOf": [{"type": "string"}, {"type": "null"}]}})
    new = _schema({"email": {"type": "string"}})
    assert incompatibilities(old, new) == ["field 'email' changed type null|string -> string"]


def _nested(contact_properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """The shape pydantic emits for a model with a nested model field."""
    schema = _schema({"name": {"type": "string"}, "contact": {"$ref": "#/$defs/Contact"}})
    schema["required"] = ["name", "contact"]
    schema["$defs"] = {
        "Contact": {
            "type": "object",
            "title": "Contact",
            "properties": contact_properties,
            "required": required,
        }
    }
    return schema


OLD_NESTED = _nested({"email": {"type": "string"}, "phone": {"type": "string"}}, ["email"])


def test_a_removed_nested_property_is_reported_with_a_dotted_path() -> None:
    new = _nested({"email": {"type": "string"}}, ["email"])
    assert incompatibilities(OLD_NESTED, new) == ["field 'contact.phone' removed"]


def test_nested_type_change_and_newly_required_are_reported_with_a_dotted_path() -> None:
    new = _nested({"email": {"type": "string"}, "phone": {"type": "integer"}}, ["email"])
    assert incompatibilities(OLD_NESTED, new) == [
        "field 'contact.phone' changed type string -> integer"
    ]
    new = _nested({"email": {"type": "string"}, "phone": {"type": "string"}}, ["email", "phone"])
    assert incompatibilities(OLD_NESTED, new) == ["field 'contact.phone' newly required"]


def test_an_added_optional_nested_property_is_compatible() -> None:
    new = _nested(
        {"email": {"type": "string"}, "phone": {"type": "string"}, "fax": {"type": "string"}},
        ["email"],
    )
    assert incompatibilities(OLD_NESTED, new) == []


class _InnerV1(BaseModel):
    email: str
    phone: str


class _InnerV2(BaseModel):
    email: str


class _DirectV1(BaseModel):
    contact: _InnerV1


class _DirectV2(BaseModel):
    contact: _InnerV2


def test_pydantic_nested_model_field_removal_is_reported() -> None:
    problems = incompatibilities(_DirectV1.model_json_schema(), _DirectV2.model_json_schema())
    assert problems == ["field 'contact.phone' removed"]


class _OptionalV1(BaseModel):
    contact: _InnerV1 | None = None


class _OptionalV2(BaseModel):
    contact: _InnerV2 | None = None


class _ListV1(BaseModel):
    contacts: list[_InnerV1]


class _ListV2(BaseModel):
    contacts: list[_InnerV2]


def test_removal_inside_an_optional_nested_model_is_reported() -> None:
    problems = incompatibilities(_OptionalV1.model_json_schema(), _OptionalV2.model_json_schema())
    assert problems == ["field 'contact.phone' removed"]


def test_removal_inside_a_list_item_model_is_reported() -> None:
    problems = incompatibilities(_ListV1.model_json_schema(), _ListV2.model_json_schema())
    assert problems
    assert "phone" in problems[0]


# --- the Partner catalogue ------------------------------------------------------


@pytest.fixture
def catalogue() -> EventCatalogue:
    return EventCatalogue("partner", [Partner])


@pytest.fixture
def registered() -> tuple[Partner.Registered, CommandContext]:
    ctx = CommandContext(actor=Actor("alice", "director"), correlation_id=uuid4())
    with command_context(ctx):
        partner = Partner.register(
            name="Fuzhou Software Ltd.",
            unified_social_credit_code=CREDIT_CODE,
            contact=CONTACT,  # type: ignore[arg-type]
            service_categories=["development", "operations"],
        )
    (event,) = partner.collect_events()
    assert isinstance(event, Partner.Registered)
    return event, ctx


def test_catalogue_lists_partner_registered(catalogue: EventCatalogue) -> None:
    assert "PartnerRegistered" in catalogue.by_type
    assert all(spec.aggregate_type == "Partner" for spec in catalogue.by_type.values())
    spec = catalogue.by_type["PartnerRegistered"]
    assert spec.aggregate_type == "Partner"
    assert spec.schema_version == 1
    assert spec.schema_filename == "PartnerRegistered.v1.json"


def test_envelope_of_partner_registered(
    catalogue: EventCatalogue, registered: tuple[Partner.Registered, CommandContext]
) -> None:
    event, ctx = registered
    envelope = catalogue.to_envelope(event)
    assert envelope.event_id == event.event_id
    assert envelope.event_type == "PartnerRegistered"
    assert envelope.schema_version == 1
    assert envelope.aggregate_type == "Partner"
    assert envelope.aggregate_id == event.originator_id
    assert envelope.aggregate_version == 1
    assert envelope.actor == ActorRef(user_id="alice", role="director")
    assert envelope.correlation_id == ctx.correlation_id
    assert envelope.causation_id is None
    assert envelope.recorded_at == event.timestamp
    assert envelope.occurred_at == event.occurred_at
    assert envelope.payload["name"] == "Fuzhou Software Ltd."
    assert envelope.payload["unified_social_credit_code"] == CREDIT_CODE
    assert envelope.payload["contact"] == CONTACT
    assert envelope.payload["service_categories"] == ["development", "operations"]


def test_envelope_payload_holds_exactly_the_event_fields(
    catalogue: EventCatalogue, registered: tuple[Partner.Registered, CommandContext]
) -> None:
    event, _ = registered
    envelope = catalogue.to_envelope(event)
    assert set(envelope.payload) == {
        "name",
        "unified_social_credit_code",
        "contact",
        "service_categories",
    }


def test_envelope_survives_the_wire(
    catalogue: EventCatalogue, registered: tuple[Partner.Registered, CommandContext]
) -> None:
    envelope = catalogue.to_envelope(registered[0])
    assert EventEnvelope.parse_message(envelope.to_json_bytes()) == envelope


def test_payload_validates_against_the_published_payload_model(
    catalogue: EventCatalogue, registered: tuple[Partner.Registered, CommandContext]
) -> None:
    event, _ = registered
    spec = catalogue.spec_of(event)
    model = catalogue.payload_model(spec)
    payload = catalogue.to_envelope(event).payload
    parsed = model.model_validate(payload)
    assert parsed.model_dump(mode="json") == {
        name: payload[name]
        for name in ("name", "unified_social_credit_code", "contact", "service_categories")
    }
    broken = {**payload, "service_categories": "not a list"}
    with pytest.raises(ValueError, match="service_categories"):
        model.model_validate(broken)


def test_published_schema_is_documented_and_compatible_with_itself(
    catalogue: EventCatalogue,
) -> None:
    spec = catalogue.by_type["PartnerRegistered"]
    schema = catalogue.payload_schema(spec)
    assert schema["x-event-type"] == "PartnerRegistered"
    assert schema["x-topic"] == "partner.events"
    assert schema["description"] == "A partner candidate was registered for due diligence (R2.1)."
    assert set(schema["required"]) == {
        "name",
        "unified_social_credit_code",
        "contact",
        "service_categories",
    }
    assert incompatibilities(schema, catalogue.payload_schema(spec)) == []
    shrunk = copy.deepcopy(schema)
    contact_def = shrunk["properties"]["contact"]["$ref"].removeprefix("#/$defs/")
    del shrunk["$defs"][contact_def]["properties"]["phone"]
    assert incompatibilities(schema, shrunk) == ["field 'contact.phone' removed"]


# --- catalogue construction errors -----------------------------------------------


class _UntypedAggregate(LedgerAggregate):
    """An aggregate that forgot its AGGREGATE_TYPE."""

    class Happened(LedgerAggregate.Created):
        EVENT_TYPE = "UntypedHappened"


class _TwinAggregate(LedgerAggregate):
    AGGREGATE_TYPE = "Twin"

    class Registered(LedgerAggregate.Created):
        EVENT_TYPE = "PartnerRegistered"  # clashes with Partner.Registered


def test_aggregate_without_type_is_refused() -> None:
    with pytest.raises(CatalogueError, match="_UntypedAggregate has no AGGREGATE_TYPE"):
        EventCatalogue("test", [_UntypedAggregate])


def test_event_type_defined_twice_is_refused() -> None:
    with pytest.raises(CatalogueError, match="PartnerRegistered defined twice"):
        EventCatalogue("test", [Partner, _TwinAggregate])


def test_event_outside_the_catalogue_is_refused(
    registered: tuple[Partner.Registered, CommandContext],
) -> None:
    catalogue = EventCatalogue("other", [_TwinAggregate])
    with pytest.raises(CatalogueError, match="not in the other catalogue"):
        catalogue.to_envelope(registered[0])
