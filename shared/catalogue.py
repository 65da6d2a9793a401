"""The event catalogue: every event type a service publishes, with its schema.

Built from the service's aggregate classes, it turns stored domain events into
envelopes (for the relay), exports JSON Schemas to docs/events/, and checks that
a changed schema stays backward compatible with the published one.
"""

from __future__ import annotations

import inspect
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model
from pydantic_core import to_jsonable_python

from shared.domain import ENVELOPE_FIELDS, LedgerAggregate, event_payload_fields
from shared.envelope import ActorRef, EventEnvelope


@dataclass(frozen=True)
class EventSpec:
    event_class: type[LedgerAggregate.Event]
    event_type: str
    schema_version: int
    aggregate_type: str

    @property
    def schema_filename(self) -> str:
        return f"{self.event_type}.v{self.schema_version}.json"


class CatalogueError(Exception):
    pass


def _event_classes(aggregate: type[LedgerAggregate]) -> list[type[LedgerAggregate.Event]]:
    found: list[type[LedgerAggregate.Event]] = []
    for value in vars(aggregate).values():
        # eventsourcing redefines nested events as subclasses: EVENT_TYPE is inherited.
        is_event = isinstance(value, type) and issubclass(value, LedgerAggregate.Event)
        if is_event and value.EVENT_TYPE:
            found.append(value)
    return found


def _redeclared_envelope_fields(cls: type[Any]) -> list[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is LedgerAggregate.Event or not issubclass(klass, LedgerAggregate.Event):
            continue
        names |= set(inspect.get_annotations(klass))
    return sorted(names & (ENVELOPE_FIELDS - {"originator_topic"}))


class EventCatalogue:
    def __init__(self, service: str, aggregates: typing.Sequence[type[LedgerAggregate]]) -> None:
        self.service = service
        self.by_class: dict[type[Any], EventSpec] = {}
        self.by_type: dict[str, EventSpec] = {}
        for aggregate in aggregates:
            if not aggregate.AGGREGATE_TYPE:
                raise CatalogueError(f"{aggregate.__qualname__} has no AGGREGATE_TYPE")
            for cls in _event_classes(aggregate):
                clash = _redeclared_envelope_fields(cls)
                if clash:
                    raise CatalogueError(
                        f"{cls.__qualname__} declares {', '.join(clash)}, which the envelope"
                        " holds already: rename the payload field"
                    )
                spec = EventSpec(
                    event_class=cls,
                    event_type=cls.EVENT_TYPE,
                    schema_version=int(getattr(cls, "class_version", 1)),
                    aggregate_type=aggregate.AGGREGATE_TYPE,
                )
                if spec.event_type in self.by_type:
                    raise CatalogueError(f"event type {spec.event_type} defined twice")
                self.by_class[cls] = spec
                self.by_type[spec.event_type] = spec

    def spec_of(self, event: object) -> EventSpec:
        try:
            return self.by_class[type(event)]
        except KeyError:
            raise CatalogueError(
                f"{type(event).__qualname__} is not in the {self.service} catalogue "
                "(missing EVENT_TYPE?)"
            ) from None

    def to_envelope(self, event: LedgerAggregate.Event) -> EventEnvelope:
        spec = self.spec_of(event)
        payload = {name: getattr(event, name) for name in event_payload_fields(type(event))}
        return EventEnvelope(
            event_id=event.event_id,
            event_type=spec.event_type,
            schema_version=spec.schema_version,
            aggregate_type=spec.aggregate_type,
            aggregate_id=event.originator_id,
            aggregate_version=event.originator_version,
            occurred_at=event.occurred_at,
            recorded_at=event.timestamp,
            actor=ActorRef(user_id=event.actor_id, role=event.actor_role),
            correlation_id=event.correlation_id,
            causation_id=event.causation_id,
            payload=to_jsonable_python(payload),
        )

    def payload_model(self, spec: EventSpec) -> type[BaseModel]:
        hints = typing.get_type_hints(spec.event_class)
        fields: dict[str, Any] = {
            name: (hints[name], ...) for name in event_payload_fields(spec.event_class)
        }
        doc = describe(spec.event_class)
        return create_model(
            f"{spec.event_type}Payload",
            __config__=ConfigDict(
                title=f"{spec.event_type} payload",
                json_schema_extra={
                    "description": doc,
                    "x-event-type": spec.event_type,
                    "x-schema-version": spec.schema_version,
                    "x-aggregate-type": spec.aggregate_type,
                    "x-topic": f"{self.service}.events",
                },
            ),
            **fields,
        )

    def payload_schema(self, spec: EventSpec) -> dict[str, Any]:
        return self.payload_model(spec).model_json_schema()

    def export(self, root: Path) -> list[Path]:
        """Writes one file per event type and version; refuses an incompatible
        rewrite of an already published version (bump the version instead)."""
        target = root / self.service
        target.mkdir(parents=True, exist_ok=True)
        written = []
        for spec in sorted(self.by_type.values(), key=lambda s: s.event_type):
            path = target / spec.schema_filename
            new = self.payload_schema(spec)
            if path.exists():
                old = json.loads(path.read_text())
                # An agreed schema has no stored events yet: only what breaks
                # its consumers counts, a new field may be required.
                stored = old.get("x-status") != "agreed"
                problems = incompatibilities(old, new, events_stored=stored)
                if problems:
                    raise CatalogueError(
                        f"{path}: incompatible change to a published schema: "
                        + "; ".join(problems)
                        + ". Add a new class_version with an upcaster instead."
                    )
            path.write_text(json.dumps(new, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
            written.append(path)
        index = target / "README.md"
        index.write_text(self.index_markdown() + self.agreed_markdown(target))
        written.append(index)
        return written

    def index_markdown(self) -> str:
        lines = [
            f"# `{self.service}.events`",
            "",
            "Generated by `partnerledger schemas`; do not edit. Every message is an",
            "[envelope](../envelope.v1.json) whose `payload` follows the schema below.",
            "",
            "| event type | version | aggregate | meaning | schema |",
            "|---|---|---|---|---|",
        ]
        for spec in sorted(self.by_type.values(), key=lambda s: s.event_type):
            meaning = (describe(spec.event_class).splitlines() or [""])[0]
            lines.append(
                f"| `{spec.event_type}` | {spec.schema_version} | {spec.aggregate_type} |"
                f" {meaning} | [{spec.schema_filename}]({spec.schema_filename}) |"
            )
        if not self.by_type:
            lines.append("| (none yet) | | | | |")
        return "\n".join(lines) + "\n"

    def agreed_markdown(self, folder: Path) -> str:
        """Schemas agreed with consumers before this service produces them."""
        rows = []
        for path in sorted(folder.glob("*.json")):
            schema = json.loads(path.read_text())
            if schema.get("x-status") == "agreed":
                rows.append(
                    f"| `{schema.get('x-event-type')}` | {schema.get('x-schema-version')} |"
                    f" {schema.get('description', '')} | [{path.name}]({path.name}) |"
                )
        if not rows:
            return ""
        head = [
            "",
            "Agreed with consumers, not produced yet (contract tests hold both sides):",
            "",
            "| event type | version | meaning | schema |",
            "|---|---|---|---|",
        ]
        return "\n".join([*head, *rows]) + "\n"


def describe(event_class: type[Any]) -> str:
    """The event's own docstring (eventsourcing's redefined subclass and the
    dataclass machinery put a generated signature there instead)."""
    for cls in event_class.__mro__:
        doc = (cls.__dict__.get("__doc__") or "").strip()
        if doc and not doc.startswith(f"{cls.__name__}("):
            return doc
    return ""


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        resolved: dict[str, Any] = schema.get("$defs", {})[ref.removeprefix("#/$defs/")]
        return resolved
    return node


def _type_signature(schema: dict[str, Any], node: dict[str, Any]) -> str:
    node = _resolve(schema, node)
    if "anyOf" in node:
        return "|".join(sorted(_type_signature(schema, n) for n in node["anyOf"]))
    sig = str(node.get("type", "any"))
    if "format" in node:
        sig += f"<{node['format']}>"
    if node.get("type") == "array" and "items" in node:
        sig += f"[{_type_signature(schema, node['items'])}]"
    return sig


def _nested_object(schema: dict[str, Any], node: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The object schema a field holds, if any: directly, as an optional
    (`anyOf [object, null]`) or as list items; with the path suffix to show."""
    node = _resolve(schema, node)
    if "anyOf" in node:
        objects = [_resolve(schema, n) for n in node["anyOf"] if n.get("type") != "null"]
        if len(objects) == 1:
            return _nested_object(schema, objects[0])
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        inner, suffix = _nested_object(schema, node["items"])
        return inner, "[]" + suffix
    if node.get("type") == "object" and "properties" in node:
        return node, ""
    return {}, ""


def incompatibilities(
    old: dict[str, Any], new: dict[str, Any], path: str = "", *, events_stored: bool = True
) -> list[str]:
    """What makes `new` unable to describe events written under `old`, or
    makes consumers written against `old` break on events under `new`:
    a removed field, a changed type, a field newly required (when events
    under `old` are stored), at any depth (nested objects, optional objects,
    objects in lists)."""
    problems: list[str] = []
    old_props: dict[str, Any] = old.get("properties", {})
    new_props: dict[str, Any] = new.get("properties", {})
    for name, old_node in old_props.items():
        where = f"{path}{name}"
        if name not in new_props:
            problems.append(f"field '{where}' removed")
            continue
        old_sig = _type_signature(old, old_node)
        new_sig = _type_signature(new, new_props[name])
        if old_sig != new_sig:
            problems.append(f"field '{where}' changed type {old_sig} -> {new_sig}")
            continue
        old_obj, suffix = _nested_object(old, old_node)
        new_obj, _ = _nested_object(new, new_props[name])
        if old_obj:
            merged_old = {**old_obj, "$defs": old.get("$defs", {})}
            merged_new = {**new_obj, "$defs": new.get("$defs", {})}
            problems += incompatibilities(
                merged_old, merged_new, f"{where}{suffix}.", events_stored=events_stored
            )
    if not events_stored:
        return problems
    newly_required = set(new.get("required", [])) - set(old.get("required", []))
    problems += [f"field '{path}{name}' newly required" for name in sorted(newly_required)]
    return problems


def contract_problems(reader: dict[str, Any], published: dict[str, Any]) -> list[str]:
    """What a consumer's reader model expects that the published schema does
    not promise: a field it reads that may be missing or of another type."""
    problems: list[str] = []
    published_props: dict[str, Any] = published.get("properties", {})
    promised = set(published.get("required", []))
    for name, node in reader.get("properties", {}).items():
        if name not in published_props:
            problems.append(f"reads '{name}', which the producer does not publish")
            continue
        want, have = (
            _type_signature(reader, node),
            _type_signature(published, published_props[name]),
        )
        if want != have:
            problems.append(f"reads '{name}' as {want}, the producer publishes {have}")
        if name in reader.get("required", []) and name not in promised:
            problems.append(f"requires '{name}', which the producer may leave out")
    return problems
