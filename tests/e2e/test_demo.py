"""`partnerledger demo` against the real processes, over HTTP and Kafka (issue 6):
the four services run on the test PostgreSQL and broker, the demo runs as a
subprocess in a small size, and what it reports having created is there to
read in the partner, docs and kpi services.

Waits are on the demo's own exit (it waits on conditions read over HTTP,
never fixed sleeps).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from partnerledger.embedded import free_port
from tests.support.auth import auth
from tests.support.infra import Infra, create_topics, drop_schemas
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
#: Two partners (one rejected), three projects (completed, running with a data
#: leak, terminated), a quarter of history.
SMALL = ("--partners", "2", "--projects", "3", "--months", "3", "--seed", "2026")
DEMO_TIMEOUT_S = 240  # it takes about 30 s on an idle 2-core machine


def run_demo(env: dict[str, str]) -> tuple[int, str]:
    """`python -m partnerledger demo` as a newcomer runs it; its output (also
    when it hangs) for the assertion message."""
    command = [sys.executable, "-m", "partnerledger", "demo", *SMALL]
    with subprocess.Popen(
        command,
        env={**env, "COLUMNS": "120"},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        try:
            output, _ = process.communicate(timeout=DEMO_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            raise AssertionError(
                f"the demo did not finish within {DEMO_TIMEOUT_S} s:\n{output[-8000:]}"
            ) from None
    return process.returncode, output


async def get(client: httpx.AsyncClient, url: str, headers: dict[str, str], **params: str) -> Any:
    response = await client.get(url, headers=headers, params=params)
    response.raise_for_status()
    return response.json()


async def test_demo_loads_a_year_through_the_apis(infra: Infra, tmp_path: Path) -> None:
    """R1.2, R6.1 (and R2.1-R6.4 along the way): `partnerledger demo` in a small
    size exits 0, and the partner service lists its partners and
    projects (one completed, one running, one terminated), the docs service its
    contracts, minutes and reports, the kpi service its staff directory."""
    ports = {f"{n}_port": free_port() for n in ("partner", "approval", "docs", "kpi")}
    settings = infra.settings(**ports)  # type: ignore[arg-type]
    await create_topics(settings)
    env = infra.env(settings)
    operator = auth(settings, "operator", "director")
    procs = [
        ServiceProcess(name, env, settings.port_of(name), tmp_path / "logs", headers=operator)
        for name in ("partner", "approval", "docs", "kpi")
    ]
    try:
        for proc in procs:
            proc.start()
        await asyncio.gather(*(proc.wait_ready() for proc in procs))
        code, output = await asyncio.to_thread(run_demo, env)
        assert code == 0, output[-8000:]
        assert "Where to look" in output and "errors" in output

        director = auth(settings, "director.zhang", "director")
        async with httpx.AsyncClient(timeout=30) as client:
            partner_url, docs_url, kpi_url = (
                f"http://127.0.0.1:{settings.port_of(n)}" for n in ("partner", "docs", "kpi")
            )
            partners = (await get(client, f"{partner_url}/v1/partners", director))["items"]
            assert len(partners) == 2
            assert {p["status"] for p in partners} == {"rejected", "probation"}

            projects = (await get(client, f"{partner_url}/v1/projects", director))["items"]
            assert len(projects) == 3
            assert sorted(p["outcome"] or p["status"] for p in projects) == [
                "completed",
                "in_progress",
                "terminated",
            ]

            documents = (await get(client, f"{docs_url}/v1/documents", director, limit="500"))[
                "items"
            ]
            types = {d["doc_type"] for d in documents}
            assert {"合同", "启动会纪要", "验收报告", "周报", "月报", "会议纪要"} <= types
            titles = {p["title"] for p in projects}
            assert all(
                d["project_id"] is None or d["name"].split("-")[0] in titles for d in documents
            )

            staff = await get(client, f"{kpi_url}/v1/kpi/staff", director)
            assert len(staff) == 10
            assert {p["role"] for p in staff} == {"director", "project_manager", "specialist"}
    finally:
        for proc in procs:
            proc.stop()
        await drop_schemas(settings)
