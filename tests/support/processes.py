"""The real service processes (`python -m services.<name>`), for e2e tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx

from partnerledger.embedded import die_with_parent, stop_process


class ServiceProcess:
    def __init__(
        self,
        name: str,
        env: dict[str, str],
        port: int,
        log_dir: Path,
        role: str = "all",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.headers = headers or {}
        self.env = env
        self.port = port
        self.role = role
        self.log_path = log_dir / f"{name}-{role}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}", "--role", self.role],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only sets a process attribute
        )
        return self

    async def wait_ready(self, within: float = 60.0) -> None:
        """Ready = /readyz answers 200 (database and broker reachable)."""
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"{self.name} exited; log:\n{self.log_tail()}")
                try:
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.name} not ready; log:\n{self.log_tail()}")
                await asyncio.sleep(0.1)

    async def status(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"{self.url}/v1/ops/status", headers=self.headers)
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        stop_process(self.process, grace_s=20)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
