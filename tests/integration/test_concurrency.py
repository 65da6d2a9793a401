"""Optimistic concurrency under real parallel load (issue 9), through the real
HTTP stack: each service runs as its own process (`python -m services.<name>`,
uvicorn, real TCP) on the real PostgreSQL and broker, and 20 commands on one
aggregate are sent at once.

DESIGN.md section 2.2: the event store takes an event only on top of the
version it was decided on; a stale version is a 409, never a lost update.
DESIGN.md section 6: 409 for an illegal transition or a version conflict, as
application/problem+json naming the rule.

- approval (R3.1): the decision API takes the version the caller decided on
  (`expected_version`); 20 signatures carrying the same version: exactly one
  wins, every other one is a 409 citing R3.1 with the request's current
  version; three rounds walk the whole chain (department head -> Finance ->
  CEO), each round's version taken from the previous winner.
- partner (R2.1 evaluations), docs (R5.5 resolutions), kpi (R2.3 staffing:
  every hire is an event of the one Department aggregate): every command
  takes `If-Match: "<version>"` (the ETag a command answered with,
  shared/http.py); three rounds of 20 commands naming the current version:
  exactly one wins per version (its ETag the next version), every other one
  is a 409 version-conflict problem (with the current version when it found
  the aggregate moved on; without, when it lost the insert race);
- the same without If-Match, 20 at once: never a lost update: every answer is
  a 2xx or a 409 problem+json, each success is exactly one new event at a
  version of its own (its ETag), and nothing else is stored.

In every case the aggregate's stored events have versions 1..N with no gap and
no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from partnerledger.embedded import free_port
from services.kpi.domain.staff import DEPARTMENT_ID
from shared.db import connect, quote_ident
from shared.problems import PROBLEM_JSON
from shared.settings import SERVICE_NAMES, Settings
from tests.support.auth import auth
from tests.support.data import registration
from tests.support.infra import Infra, create_topics, drop_schemas
from tests.support.partner_flow import PM, SPECIALIST, scores
from tests.support.processes import ServiceProcess
from tests.support.scenario import SIGNATURES, meeting_body, procurement_body, staff_body

pytestmark = pytest.mark.integration

PARALLEL = 20
DIRECTOR = "director.zhang"


@contextlib.asynccontextmanager
async def processes(infra: Infra, tmp: Path) -> AsyncIterator[tuple[Settings, dict[str, str]]]:
    """The four services as real processes on free ports; yields their URLs."""
    ports = {f"{n}_port": free_port() for n in SERVICE_NAMES}
    settings = infra.settings(**ports)  # type: ignore[arg-type]
    await create_topics(settings)
    started = [
        ServiceProcess(n, infra.env(settings), settings.port_of(n), tmp / "logs").start()
        for n in SERVICE_NAMES
    ]
    try:
        await asyncio.gather(*(p.wait_ready(within=90) for p in started))
        yield settings, {p.name: p.url for p in started}
    finally:
        for p in started:
            p.stop()
        await drop_schemas(settings)


async def stored_versions(settings: Settings, service: str, aggregate_id: UUID) -> list[int]:
    """The aggregate's event versions as stored (the record of truth)."""
    conn = await connect(settings.postgres, application_name="tests")
    try:
        table = f"{quote_ident(settings.schema_of(service))}.{quote_ident(service + '_events')}"
        rows = await conn.fetch(
            f"SELECT originator_version FROM {table} WHERE originator_id = $1"
            " ORDER BY originator_version",
            aggregate_id,
        )
        return [r["originator_version"] for r in rows]
    finally:
        await conn.close()


async def at_once(calls: list[Callable[[], Awaitable[httpx.Response]]]) -> list[httpx.Response]:
    """Starts every call together (a barrier), over separate connections."""
    gate = asyncio.Event()

    async def one(call: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        await gate.wait()
        return await call()

    tasks = [asyncio.create_task(one(c)) for c in calls]
    await asyncio.sleep(0)
    gate.set()
    return list(await asyncio.gather(*tasks))


def assert_problem_409(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == 409
    return body


def etag_version(response: httpx.Response) -> int:
    return int(response.headers["ETag"].strip('"'))


def assert_gap_free(versions: list[int]) -> None:
    assert versions == list(range(1, len(versions) + 1)), versions


async def no_lost_update(
    settings: Settings,
    service: str,
    aggregate_id: UUID,
    send: Callable[[int], Awaitable[httpx.Response]],
) -> Counter[int]:
    """PARALLEL commands at once, each adding one event to the aggregate."""
    before = await stored_versions(settings, service, aggregate_id)
    assert_gap_free(before)
    responses = await at_once([lambda i=i: send(i) for i in range(PARALLEL)])  # type: ignore[misc]
    statuses = Counter(r.status_code for r in responses)
    winners = [r for r in responses if r.status_code in (200, 201)]
    for response in responses:
        if response not in winners:
            body = assert_problem_409(response)
            assert body["type"].endswith(("/version-conflict", "/rule-violation")), body
    after = await stored_versions(settings, service, aggregate_id)
    assert_gap_free(after)
    # Each success is one new event at a version of its own; nothing else was stored.
    assert sorted(etag_version(r) for r in winners) == after[len(before) :], statuses
    assert winners, statuses
    return statuses


async def one_wins_per_version(
    settings: Settings,
    service: str,
    aggregate_id: UUID,
    version: int,
    send: Callable[[int, int], Awaitable[httpx.Response]],
    *,
    rounds: int = 3,
) -> int:
    """`rounds` times PARALLEL commands at once, each with `If-Match` naming the
    aggregate's current version: exactly one wins per version, the others are
    409 version conflicts; returns the final version."""
    for n in range(rounds):
        responses = await at_once(
            [lambda i=n * PARALLEL + i, v=version: send(i, v) for i in range(PARALLEL)]  # type: ignore[misc]
        )
        winners = [r for r in responses if r.status_code in (200, 201)]
        assert len(winners) == 1, (service, Counter(r.status_code for r in responses))
        new_version = etag_version(winners[0])
        assert new_version == version + 1, (service, version, new_version)
        for response in responses:
            if response is not winners[0]:
                problem = assert_problem_409(response)
                assert problem["type"].endswith("/version-conflict"), problem
                # Found the new version already, or lost the insert race on the old one.
                assert problem.get("current_version") in (None, new_version), problem
        version = new_version
    stored = await stored_versions(settings, service, aggregate_id)
    assert_gap_free(stored)
    assert stored[-1] == version
    return version


async def raced(
    settings: Settings,
    service: str,
    aggregate_id: UUID,
    version: int,
    send: Callable[[int, int], Awaitable[httpx.Response]],
    *,
    unpinned: Callable[[int], Awaitable[httpx.Response]],
) -> dict[int, int]:
    """`one_wins_per_version` with `send` (If-Match), then `no_lost_update`
    with `unpinned` (no If-Match); returns the statuses of the latter."""
    await one_wins_per_version(settings, service, aggregate_id, version, send)
    return dict(await no_lost_update(settings, service, aggregate_id, unpinned))


async def test_parallel_commands_on_one_aggregate_never_lose_an_update(
    infra: Infra, tmp_path: Path
) -> None:
    """DESIGN.md sections 2.2 and 6; R3.1 (approval chain, expected version),
    R2.1, R5.5, R2.3 (the aggregates raced in partner, docs, kpi, If-Match)."""
    started = time.monotonic()
    # A connection per request: no idle keep-alive connection that uvicorn may
    # close just as the client reuses it (a ReadError, not an answer).
    limits = httpx.Limits(max_connections=PARALLEL * 2, max_keepalive_connections=0)
    async with (
        processes(infra, tmp_path) as (settings, urls),
        httpx.AsyncClient(timeout=60, limits=limits) as client,
    ):
        director = auth(settings, DIRECTOR, "director")
        pm = auth(settings, PM, "project_manager")
        specialist = auth(settings, SPECIALIST, "specialist")
        outcome: dict[str, dict[int, int]] = {}

        async def ok(url: str, headers: dict[str, str], body: Any) -> dict[str, Any]:
            response = await client.post(url, headers=headers, json=body)
            assert response.status_code in (200, 201), f"{url}: {response.text}"
            found: dict[str, Any] = response.json()
            return found

        # -- approval: the caller's expected version; exactly one wins per version -------
        request = await ok(f"{urls['approval']}/v1/approvals", pm, procurement_body())
        request_id, version = UUID(request["id"]), request["version"]
        decisions = f"{urls['approval']}/v1/approvals/{request_id}/decisions"
        rounds: list[int] = []
        for user, role, step in SIGNATURES:
            headers = auth(settings, user, role)
            body = {"decision": "approve", "step": step, "expected_version": version}
            responses = await at_once(
                [
                    lambda h=headers, b=body: client.post(decisions, headers=h, json=b)  # type: ignore[misc]
                    for _ in range(PARALLEL)
                ]
            )
            winners = [r for r in responses if r.status_code == 200]
            assert len(winners) == 1, Counter(r.status_code for r in responses)
            new_version = winners[0].json()["version"]
            assert new_version > version
            for response in responses:
                if response is winners[0]:
                    continue
                problem = assert_problem_409(response)
                assert problem["rule"] == "R3.1", problem
                assert problem["current_version"] == new_version, problem
            rounds.append(PARALLEL - 1)
            version = new_version
        final = (
            await client.get(f"{urls['approval']}/v1/approvals/{request_id}", headers=pm)
        ).json()
        assert final["state"] == "approved", final
        assert final["version"] == version
        assert_gap_free(await stored_versions(settings, "approval", request_id))
        assert len(await stored_versions(settings, "approval", request_id)) == version
        outcome["approval"] = {200: 3, 409: sum(rounds)}

        # -- partner: evaluations of one partner ---------------------------------------
        registered = await client.post(
            f"{urls['partner']}/v1/partners", headers=pm, json=registration(1)
        )
        partner = registered.json()
        evaluations = f"{urls['partner']}/v1/partners/{partner['id']}/evaluations"

        def evaluate(i: int, version: int | None = None) -> Awaitable[httpx.Response]:
            headers = specialist if version is None else {**specialist, "If-Match": f'"{version}"'}
            body = {"scores": scores(1 + i % 5), "qualifications": [], "summary": f"#{i}"}
            return client.post(evaluations, headers=headers, json=body)

        outcome["partner"] = await raced(
            settings,
            "partner",
            UUID(partner["id"]),
            etag_version(registered),
            evaluate,
            unpinned=evaluate,
        )

        # -- docs: resolutions added to one meeting ------------------------------------
        # Held an hour ago: no minutes or owner deadline passes during the test.
        held = await client.post(
            f"{urls['docs']}/v1/meetings",
            headers=director,
            json=meeting_body(datetime.now(UTC) - timedelta(hours=1), [PM, SPECIALIST]),
        )
        meeting = held.json()
        resolutions = f"{urls['docs']}/v1/meetings/{meeting['id']}/resolutions"

        def resolve(i: int, version: int | None = None) -> Awaitable[httpx.Response]:
            headers = director if version is None else {**director, "If-Match": f'"{version}"'}
            return client.post(
                resolutions, headers=headers, json={"text": f"第{i}项决议：按期跟进"}
            )

        outcome["docs"] = await raced(
            settings, "docs", UUID(meeting["id"]), etag_version(held), resolve, unpinned=resolve
        )

        # -- kpi: hires, all events of the one Department aggregate --------------------
        staff = f"{urls['kpi']}/v1/kpi/staff"

        def hire(i: int, version: int | None = None) -> Awaitable[httpx.Response]:
            headers = director if version is None else {**director, "If-Match": f'"{version}"'}
            body = {
                "user_id": f"sp.n{i:02d}",
                "name": f"专员{i}",
                "role": "specialist",
                "superior": PM,
                "joined_on": "2026-11-01",
            }
            return client.post(staff, headers=headers, json=body)

        hired: httpx.Response | None = None
        for user, role, superior in (
            (DIRECTOR, "director", None),
            (PM, "project_manager", DIRECTOR),
        ):
            hired = await client.post(
                staff, headers=director, json=staff_body(user, role, superior)
            )
            assert hired.status_code == 201, hired.text
        assert hired is not None
        outcome["kpi"] = await raced(
            settings,
            "kpi",
            DEPARTMENT_ID,
            etag_version(hired),
            hire,
            unpinned=lambda i: hire(100 + i),
        )
        print(f"concurrency: {outcome} in {time.monotonic() - started:.1f}s")
