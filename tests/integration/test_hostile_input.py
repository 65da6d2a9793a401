"""Hostile input on a create endpoint of each service is refused cleanly
(DESIGN.md sections 5 and 6: 4xx problem+json, never a 5xx; R4.4 document
names, R4.5 uploads on record only when filed), on real PostgreSQL and a real
broker, the four services in process.

For every text field of POST /v1/partners, /v1/approvals, /v1/meetings and
/v1/kpi/staff: a 100k-character string, a NUL byte, a right-to-left override,
a lone surrogate and a blank value are each 4xx problem+json and store
nothing (the service's event log head and every table stay as they were);
SQL metacharacters are either refused the same way or taken as plain data
(stored and answered back verbatim, every table still there). For each of
these endpoints: 10,000 levels of nested JSON, broken JSON, a body over the
limit and bodies of the wrong content type are 4xx problem+json and store
nothing. The docs upload: hostile file names (`../../etc/passwd`, NUL, 300
characters, `CON`, a right-to-left override, backslash paths) are refused, or
filed under a single safe segment that the download's Content-Disposition
cannot turn into a path; hostile form fields are refused.
"""

from __future__ import annotations

import copy
import json
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.docs.service import SPEC as DOCS
from shared.clock import ManualClock
from shared.runtime import JSON_BODY_LIMIT
from shared.settings import Settings
from tests.support.apps import RunningService, four_services, running, table_counts
from tests.support.auth import auth
from tests.support.data import registration
from tests.support.docs_api import PROJECT_NAME, DocsApi

pytestmark = pytest.mark.integration

PROBLEM_JSON = "application/problem+json"
SQL = "'; DROP TABLE x; --"
#: Values no text field may take: refused (4xx), nothing stored.
REFUSED: dict[str, str] = {
    "100k characters": "x" * 100_000,
    "NUL byte": "a\x00b",
    "right-to-left override": "abc\u202edcba",
    "lone surrogate": "a\ud800b",
    "blank": "   ",
}
NOW = datetime(2026, 11, 23, 1, tzinfo=UTC)  # 09:00 in Shanghai

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Endpoint:
    service: str
    url: str
    role: str
    body: dict[str, Any]
    text_fields: tuple[Path, ...]


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            "partner",
            "/v1/partners",
            "project_manager",
            registration(71),
            (
                ("name",),
                ("unified_social_credit_code",),
                ("contact", "name"),
                ("contact", "email"),
                ("contact", "phone"),
                ("service_categories", 0),
            ),
        ),
        Endpoint(
            "approval",
            "/v1/approvals",
            "project_manager",
            {
                "kind": "procurement",
                "title": "核心系统运维外包",
                "amount": "250000.00",
                "currency": "CNY",
                "justification": "7x24 运维，现有人手不足",
            },
            (("title",), ("justification",), ("currency",), ("kind",), ("amount",)),
        ),
        Endpoint(
            "docs",
            "/v1/meetings",
            "director",
            {
                "kind": "weekly_department",
                "title": "部门周例会",
                "held_at": (NOW - timedelta(hours=1)).isoformat(),
                "attendees": ["pm.wang"],
                "resolutions": ["完成供应商季度评审"],
            },
            (("title",), ("attendees", 0), ("resolutions", 0), ("kind",), ("held_at",)),
        ),
        Endpoint(
            "kpi",
            "/v1/kpi/staff",
            "director",
            {
                "user_id": "director.zhang",
                "name": "张主任",
                "role": "director",
                "superior": None,
                "joined_on": "2026-10-01",
            },
            (("user_id",), ("name",), ("role",), ("joined_on",)),
        ),
    ]


def with_value(body: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    target: Any = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


def encoded(body: Any) -> bytes:
    """JSON as a client would send it (non-ASCII escaped, so a lone surrogate
    travels as `\\ud800`)."""
    return json.dumps(body).encode()


class Checker:
    """Sends a request and holds the service to a clean refusal: 4xx,
    problem+json, nothing stored."""

    def __init__(self, svc: RunningService) -> None:
        self.svc = svc

    async def refused(self, what: str, method: str, url: str, **kw: Any) -> int:
        head = self.svc.runtime.application.log_head()
        before = await table_counts(self.svc)
        response = await self.svc.client.request(method, url, **kw)
        status = response.status_code
        assert 400 <= status < 500, (what, status, response.text[:300])
        assert response.headers["content-type"] == PROBLEM_JSON, (what, response.text[:300])
        assert response.json()["status"] == status, what
        assert self.svc.runtime.application.log_head() == head, f"{what}: an event was stored"
        assert await table_counts(self.svc) == before, f"{what}: a table changed"
        return status


async def test_hostile_text_in_every_field_is_refused_cleanly_and_stores_nothing(
    settings: Settings,
) -> None:
    """Every text field of a create endpoint of each service, with each value
    of REFUSED: 4xx problem+json, nothing stored; SQL metacharacters: refused
    so, or stored as plain data and answered back verbatim, with every table
    still there (DESIGN.md sections 5 and 6)."""
    clock = ManualClock(NOW)
    async with four_services(settings, clock=clock) as svcs:
        fresh = iter(range(100, 200))
        for endpoint in endpoints():
            svc = svcs[endpoint.service]
            check = Checker(svc)
            headers = {
                **auth(settings, f"{endpoint.role}.hostile", endpoint.role),
                "content-type": "application/json",
            }
            for path in endpoint.text_fields:
                for label, value in REFUSED.items():
                    body = with_value(endpoint.body, path, value)
                    await check.refused(
                        f"{endpoint.url} {path}: {label}",
                        "POST",
                        endpoint.url,
                        headers=headers,
                        content=encoded(body),
                    )
                # SQL metacharacters: data, not code.
                tables = set(await table_counts(svc))
                base = endpoint.body
                if endpoint.service == "partner":  # a new registration, not a duplicate
                    base = registration(next(fresh))
                body = with_value(base, path, SQL)
                head = svc.runtime.application.log_head()
                response = await svc.client.post(
                    endpoint.url, headers=headers, content=encoded(body)
                )
                what = f"{endpoint.url} {path}: SQL"
                assert response.status_code < 500, (what, response.text[:300])
                if response.status_code < 300:
                    assert SQL in response.text, (what, response.text[:300])
                else:
                    assert response.status_code < 500
                    assert response.headers["content-type"] == PROBLEM_JSON, what
                    assert svc.runtime.application.log_head() == head, what
                assert set(await table_counts(svc)) == tables, f"{what}: a table went away"


async def test_malformed_nested_oversized_and_mistyped_bodies_are_refused(
    settings: Settings,
) -> None:
    """For a create endpoint of each service: 10,000 levels of nested JSON
    (in a field and as the whole body), broken JSON, bytes that are not
    UTF-8, a body over the JSON limit and the valid body sent as text/plain,
    XML, a form or multipart: each 4xx problem+json, nothing stored
    (DESIGN.md section 6)."""
    clock = ManualClock(NOW)
    deep = "[" * 10_000 + "]" * 10_000
    async with four_services(settings, clock=clock) as svcs:
        for endpoint in endpoints():
            svc = svcs[endpoint.service]
            check = Checker(svc)
            token = auth(settings, f"{endpoint.role}.hostile", endpoint.role)
            as_json = {**token, "content-type": "application/json"}
            valid = encoded(endpoint.body)
            field = str(endpoint.text_fields[0][0])
            bodies: dict[str, tuple[dict[str, str], bytes]] = {
                "nested 10,000 deep in a field": (
                    as_json,
                    valid[:-1] + f', "{field}x": {deep}}}'.encode(),
                ),
                "nested 10,000 deep as the field": (
                    as_json,
                    f'{{"{field}": {deep}}}'.encode(),
                ),
                "nested objects 10,000 deep": (
                    as_json,
                    ('{"a":' * 10_000 + "1" + "}" * 10_000).encode(),
                ),
                "nested 10,000 deep as the body": (as_json, deep.encode()),
                "broken JSON": (as_json, valid[: len(valid) // 2]),
                "not UTF-8": (as_json, b'{"title": "\xff\xfe\xfa"}'),
                "JSON null": (as_json, b"null"),
                "a JSON list": (as_json, b"[]"),
                "a huge number": (as_json, valid[:-1] + b', "n": ' + b"9" * 5000 + b"}"),
                "over the limit": (
                    as_json,
                    valid[:-1] + b', "pad": "' + b"x" * (JSON_BODY_LIMIT + 1) + b'"}',
                ),
                "text/plain": ({**token, "content-type": "text/plain"}, valid),
                "XML": (
                    {**token, "content-type": "application/xml"},
                    b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>"
                    b"<x>&e;</x>",
                ),
                "form": (
                    {**token, "content-type": "application/x-www-form-urlencoded"},
                    urllib.parse.urlencode({field: "x"}).encode(),
                ),
                "multipart": (
                    {**token, "content-type": "multipart/form-data; boundary=b"},
                    b'--b\r\nContent-Disposition: form-data; name="' + field.encode() + b'"\r\n\r\n'
                    b"x\r\n--b--\r\n",
                ),
            }
            for label, (headers, content) in bodies.items():
                await check.refused(
                    f"{endpoint.url}: {label}",
                    "POST",
                    endpoint.url,
                    headers=headers,
                    content=content,
                )


HOSTILE_FILE_NAMES = {
    "path traversal": "../../etc/passwd",
    "absolute path": "/etc/passwd",
    "windows path": "..\\..\\windows\\system32\\config\\sam",
    "NUL": "report\x00.pdf",
    "300 characters": "a" * 296 + ".pdf",
    "CON": "CON",
    "CON.pdf": "CON.pdf",
    "right-to-left override": "report\u202efdp.exe",
    "newline": "report\r\nX-Injected: 1.pdf",
    "quote": 'report".pdf',
    "parent directory": "..",
    "this directory": ".",
    "dots and spaces": ". . .",
}


async def test_hostile_file_names_never_become_paths(settings: Settings) -> None:
    """A document upload with a hostile file name: without a document name
    (so the file name would be it) the upload is 4xx problem+json and stores
    nothing (R4.4 names); with a good name it is refused the same way or filed
    under the file name's last segment, printable and bounded, and the
    download's Content-Disposition holds no path, control or format character
    (R4.5, DESIGN.md section 5)."""
    clock = ManualClock(NOW)
    async with running(DOCS, settings, relay=False, consumers=False, clock=clock) as svc:
        docs = DocsApi(svc, settings, clock)
        project = await docs.project(signed_on=NOW.date())
        good_name = f"{PROJECT_NAME}-2026年11月-周报"
        check = Checker(svc)
        for label, file_name in HOSTILE_FILE_NAMES.items():
            # The file name alone: never a valid document name.
            data = {"type": "weekly_report", "period": "2026-W48", "project_id": str(project)}
            await check.refused(
                f"upload {label} (no name)",
                "POST",
                "/v1/documents",
                headers=docs.specialist,
                data=data,
                files={"file": (file_name, b"report body", "application/pdf")},
            )
        # Hostile form fields of the upload: refused, nothing stored.
        for label, fields in {
            "name: path traversal": {"name": "../../etc/passwd"},
            "name: NUL": {"name": f"{good_name}\x00"},
            "name: 100k": {"name": "x" * 100_000},
            "name: right-to-left override": {"name": f"{good_name}\u202e"},
            "name: SQL": {"name": SQL},
            "type: SQL": {"type": SQL},
            "period: SQL": {"period": SQL},
            "project_id: SQL": {"project_id": SQL},
            "note: NUL": {"note": "a\x00b"},
        }.items():
            data = {
                "type": "weekly_report",
                "period": "2026-W48",
                "project_id": str(project),
                "name": good_name,
                **fields,
            }
            await check.refused(
                f"upload {label}",
                "POST",
                "/v1/documents",
                headers=docs.specialist,
                data=data,
                files={"file": ("report.pdf", b"report body", "application/pdf")},
            )
        # An upload endpoint sent JSON, or a form without its file.
        await check.refused(
            "upload as JSON",
            "POST",
            "/v1/documents",
            headers={**docs.specialist, "content-type": "application/json"},
            content=encoded({"type": "weekly_report", "period": "2026-W48", "name": good_name}),
        )
        await check.refused(
            "upload without a file",
            "POST",
            "/v1/documents",
            headers=docs.specialist,
            data={"type": "weekly_report", "period": "2026-W48", "name": good_name},
        )
        # With a good document name: refused, or filed under a safe name. Last,
        # since each download's read lands on record in the background.
        filed = 0
        for label, file_name in HOSTILE_FILE_NAMES.items():
            head = svc.runtime.application.log_head()
            response = await docs.upload(
                docs.specialist,
                name=good_name,
                doc_type="weekly_report",
                period="2026-W48",
                project_id=project,
                content=f"body {label}".encode(),
                file_name=file_name,
            )
            assert response.status_code < 500, (label, response.text)
            if response.status_code >= 400:
                assert response.headers["content-type"] == PROBLEM_JSON, label
                assert svc.runtime.application.log_head() == head, label
                continue
            filed += 1
            document = response.json()
            download = await svc.client.get(
                f"/v1/documents/{document['id']}/content", headers=docs.director
            )
            assert download.status_code == 200, (label, download.text)
            disposition = download.headers["content-disposition"]
            assert disposition.isascii() and disposition.isprintable(), (label, disposition)
            plain, _, extended = disposition.partition("; filename*=UTF-8''")
            assert all(c not in plain for c in "/\\\r\n\x00"), (label, disposition)
            stored = urllib.parse.unquote(extended)
            assert "/" not in stored and "\\" not in stored, (label, stored)
            assert stored.isprintable() and len(stored) <= 200, (label, stored)
            assert stored not in ("", ".", ".."), (label, stored)
        assert filed > 0, "no hostile file name was filed: the safe-name path went untested"
