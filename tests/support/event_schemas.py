"""Hand-made event payloads held against the published schemas
(docs/events/), the way a producer sends them: every field of the schema
given, no other, in the published formats. Tests that feed events to a
consumer build payloads by hand; this keeps them honest."""

from __future__ import annotations

import copy
import json
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from uuid import UUID

import jsonschema

EVENTS = Path(__file__).resolve().parents[2] / "docs" / "events"


@cache
def schema_of(source: str, event_type: str, version: int = 1) -> dict[str, Any]:
    path = EVENTS / source / f"{event_type}.v{version}.json"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _strict(node: Any) -> Any:
    """Every object of the schema: all its properties required, no others
    (pydantic's schemas list optional fields too, and producers send them)."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if out.get("type") == "object" and "properties" in out:
            out["required"] = sorted(out["properties"])
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


_FORMATS = jsonschema.FormatChecker()


@_FORMATS.checks("date", raises=ValueError)
def _date(value: object) -> bool:
    return not isinstance(value, str) or (len(value) == 10 and bool(date.fromisoformat(value)))


@_FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


@_FORMATS.checks("uuid", raises=ValueError)
def _uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(UUID(value))


@cache
def _validator(source: str, event_type: str, version: int) -> jsonschema.Draft202012Validator:
    schema = _strict(copy.deepcopy(schema_of(source, event_type, version)))
    return jsonschema.Draft202012Validator(schema, format_checker=_FORMATS)


def assert_fits(
    source: str, event_type: str, payload: dict[str, Any], version: int = 1
) -> dict[str, Any]:
    """The payload, if it is one the producer could have published."""
    problems = sorted(
        f"{'.'.join(str(p) for p in e.absolute_path) or '(payload)'}: {e.message}"
        for e in _validator(source, event_type, version).iter_errors(payload)
    )
    assert not problems, f"{source} {event_type}.v{version}: {problems}"
    return payload
