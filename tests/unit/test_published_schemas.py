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


@pytest.mark.parametrize("service", [s.name for s in SPECS])
def test_no_published_event_type_disappeared(service: str) -> None:
    published = {p.name for p in (ROOT / service).glob("*.json") if not _agreed(p)}
    current = {s.schema_filename for s in CATALOGUES[service].by_type.values()}
    assert published <= current, f"published but gone from the code: {published - current}"


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
