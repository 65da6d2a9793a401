"""Oversized bodies are refused with 413 before they are parsed or spooled
(DESIGN.md section 6; R4.5 uploads up to the policy's limit), whether the
client declares the length or streams without one, and nothing is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.docs.service import SPEC as DOCS
from shared.runtime import JSON_BODY_LIMIT, MULTIPART_OVERHEAD
from shared.settings import Settings
from tests.support.apps import RunningService, running
from tests.support.auth import auth

pytestmark = pytest.mark.integration


@pytest.fixture
async def svc(settings: Settings) -> AsyncIterator[RunningService]:
    async with running(DOCS, settings, relay=False, consumers=False, projectors=False) as svc:
        yield svc


async def test_json_over_the_limit_is_413_R4_5(svc: RunningService, settings: Settings) -> None:
    headers = {**auth(settings, "director.zhang", "director"), "content-type": "application/json"}
    before = svc.runtime.application.log_head()
    body = b'{"kind": "weekly_department", "title": "' + b"x" * JSON_BODY_LIMIT + b'"}'
    response = await svc.client.post("/v1/meetings", headers=headers, content=body)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"

    async def stream() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(3):
            yield b" " * (JSON_BODY_LIMIT // 2)

    streamed = await svc.client.post("/v1/meetings", headers=headers, content=stream())
    assert streamed.status_code == 413
    assert svc.runtime.application.log_head() == before


async def test_upload_over_the_policy_limit_is_413_before_parsing_R4_5(
    svc: RunningService, settings: Settings
) -> None:
    limit = svc.runtime.policy.documents.max_upload_bytes + MULTIPART_OVERHEAD
    headers = {
        **auth(settings, "director.zhang", "director"),
        "content-type": "multipart/form-data; boundary=x",
        "content-length": str(limit + 1),
    }

    async def endless() -> AsyncIterator[bytes]:
        yield b"--x\r\n"

    response = await svc.client.post("/v1/documents", headers=headers, content=endless())
    assert response.status_code == 413
    assert "at most" in response.json()["detail"]
