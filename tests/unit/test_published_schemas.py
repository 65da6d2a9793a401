"""The event contract (DESIGN.md section 3): every published schema is held
against the stored one, and every consumer against what producers publish.

- docs/events/ holds the current schema of every event type and version;
- a change to a published schema must stay backward compatible (else: a new
  class_version with an upcaster);
- consumers' reader models ask only for fields the producers promise, also
  for schemas agreed before their producer exists (`x-status: agreed`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from services.approval.consumers.contracts import CONTRACTS as APPROVAL_READS
from services.approval.service import SPEC as APPROVAL
from services.docs.consumers.contracts import CONTRACTS as DOCS_READS
from services.docs.service import SPEC as DOCS
from services.kpi.consumers.contracts import CONTRACTS as KPI_READS
from services.kpi.service import SPEC as KPI
from services.partner.consumers.contracts import CONTRACTS as PARTNER_READS
from services.partner.service import SPEC as PARTNER
from shared.catalogue import EventCatalogue, contract_problems, incompatibilities
from shared.envelope import envelope_json_schema

ROOT = Path(__file__).resolve().parents[2] / "docs" / "events"
SPECS = [PARTNER, APPROVAL, DOCS, KPI]
CATALOGUES = {s.name: EventCatalogue(s.name, s.application.AGGREGATES) for s in SPECS}
EVENTS = [(name, spec) for name, c in CATALOGUES.items() for spec in c.by_type.values()]
EXPORT = "run `make schemas` (partnerledger schemas) and commit docs/events/"


def test_envelope_schema_is_the_published_one() -> None:
    published = json.loads((ROOT / "envelope.v1.json").read_text())
    current = envelope_json_schema()
    assert incompatibilities(published, current) == [], "the envelope changed incompatibly"
    assert current == published, f"the envelope schema changed: {EXPORT}"


@pytest.mark.parametrize(("service", "spec"), EVENTS, ids=[s.event_type for _, s in EVENTS])
def test_event_schema_is_published_and_compatible(service: str, spec: object) -> None:
    catalogue = CATALOGUES[service]
    path = ROOT / service / spec.schema_filename  # type: ignore[attr-defined]
    assert path.exists(), f"{path.name} is not published: {EXPORT}"
    published = json.loads(path.read_text())
    current = catalogue.payload_schema(spec)  # type: ignore[arg-type]
    problems = incompatibilities(published, current)
    assert problems == [], (
        f"{path.name} changed incompatibly ({'; '.join(problems)}): add a new"
        " class_version with an upcaster instead"
    )
    assert current == published, f"{path.name} changed (compatibly): {EXPORT}"


def _agreed(path: Path) -> bool:
    return bool(json.loads(path.read_text()).get("x-status") == "agreed")


def _older_versions(service: str) -> list[tuple[object, int]]:
    """(current spec, an older published version of it)."""
    return [
        (spec, n)
        for spec in CATALOGUES[service].by_type.values()
        for n in range(1, spec.schema_version)
        if (ROOT / service / f"{spec.event_type}.v{n}.json").exists()
    ]


@pytest.mark.parametrize("service", [s.name for s in SPECS])
def test_no_published_event_type_disappeared(service: str) -> None:
    """A published version stays served: it is the current one, or an older
    one that the current class upcasts from (stored events of it exist)."""
    published = {p.name for p in (ROOT / service).glob("*.json") if not _agreed(p)}
    current = {s.schema_filename for s in CATALOGUES[service].by_type.values()}
    upcast = {
        f"{spec.event_type}.v{n}.json"  # type: ignore[attr-defined]
        for spec, n in _older_versions(service)
        if hasattr(spec.event_class, f"upcast_v{n}_v{n + 1}")  # type: ignore[attr-defined]
    }
    gone = published - current - upcast
    assert not gone, f"published but gone from the code (or not upcast): {gone}"


def _example(schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """A value the schema accepts, built from its required parts only."""
    if "$ref" in schema:
        return _example(root["$defs"][schema["$ref"].rsplit("/", 1)[-1]], root)
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return _example(schema["anyOf"][0], root)
    kind = schema.get("type")
    if kind == "object":
        return {k: _example(schema["properties"][k], root) for k in schema.get("required", [])}
    if kind == "array":
        return []
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    return {
        "date": "2026-03-05",
        "date-time": "2026-03-05T10:00:00+08:00",
        "uuid": "2f1e0c1a-7d3b-4c49-9a5e-0d4c3b2a1f00",
    }.get(schema.get("format", ""), "x" * max(1, int(schema.get("minLength", 1))))


OLDER = [(name, spec, n) for name in CATALOGUES for spec, n in _older_versions(name)]


@pytest.mark.parametrize(
    ("service", "spec", "version"),
    OLDER,
    ids=[f"{s.event_type}.v{n}" for _, s, n in OLDER],  # type: ignore[attr-defined]
)
def test_older_published_versions_upcast_to_the_current_schema(
    service: str, spec: Any, version: int
) -> None:
    """Schema evolution (DESIGN.md section 3): a payload of an older published
    version, run through the class's upcasters, is a valid current payload;
    the older schema file is kept as it was published."""
    older = json.loads((ROOT / service / f"{spec.event_type}.v{version}.json").read_text())
    assert older.get("x-schema-version") == version
    payload = _example(older, older)
    jsonschema.validate(payload, older)
    for n in range(version, spec.schema_version):
        getattr(spec.event_class, f"upcast_v{n}_v{n + 1}")(payload)
    current = json.loads((ROOT / service / spec.schema_filename).read_text())
    jsonschema.validate(payload, current)


def test_there_is_an_upcast_event() -> None:
    """The evolution path is exercised, not only written (issue 7)."""
    assert ("partner", "ComplaintReceived", 1) in {
        (name, s.event_type, n)
        for name, s, n in OLDER  # type: ignore[attr-defined]
    }


READS = [
    *[(f"kpi reads {k[1]}", k, r) for k, r in KPI_READS.items()],
    *[(f"partner reads {k[1]}", k, r) for k, r in PARTNER_READS.items()],
    *[(f"approval reads {k[1]}", k, r) for k, r in APPROVAL_READS.items()],
    *[(f"docs reads {k[1]}", k, r) for k, r in DOCS_READS.items()],
]


@pytest.mark.parametrize(("reader_name", "key", "reader"), READS, ids=[r[0] for r in READS])
def test_consumers_read_only_what_producers_publish(
    reader_name: str, key: tuple[str, str, int], reader: type
) -> None:
    producer, event_type, version = key
    path = ROOT / producer / f"{event_type}.v{version}.json"
    assert path.exists(), f"{reader_name} v{version}, which {producer} does not publish"
    problems = contract_problems(reader.model_json_schema(), json.loads(path.read_text()))  # type: ignore[attr-defined]
    assert problems == []


def test_contract_check_notices_a_reader_asking_for_too_much() -> None:
    published = {"properties": {"name": {"type": "string"}}, "required": []}
    reader = {
        "properties": {"name": {"type": "string"}, "size": {"type": "integer"}},
        "required": ["name"],
    }
    assert contract_problems(reader, published) == [
        "requires 'name', which the producer may leave out",
        "reads 'size', which the producer does not publish",
    ]
