"""`partnerledger up`: the embedded stack in one command.

Starts PostgreSQL (data in .data/pg, kept between runs) unless DATABASE_URL is
set, the Tansu broker unless KAFKA_BOOTSTRAP_SERVERS is set, creates the
database, schemas and topics, then runs each service as its own process
(`python -m services.<name>`) with its relay and consumers, and restarts what
dies. Ctrl-C stops everything in reverse order.

The broker keeps topics in memory. When it comes back empty, each relay sees
that its last published record is gone and republishes its event store; the
consumers' event-id check keeps every projection exact.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO

import httpx
from rich.console import Console

from partnerledger.embedded import (
    EmbeddedBroker,
    EmbeddedPostgres,
    die_with_parent,
    port_open,
    wait_or_kill,
)
from shared import kafka
from shared.auth import TokenIssuer
from shared.db import ensure_database
from shared.settings import Settings, parse_database_url


@dataclass
class Child:
    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    restarts: list[float] = field(default_factory=list)


class Supervisor:
    def __init__(self, settings: Settings, services: list[str], console: Console) -> None:
        self.settings = settings
        self.services = services
        self.console = console
        self.data_dir = settings.data_dir.resolve()
        self.log_dir = self.data_dir / "logs"
        self.postgres: EmbeddedPostgres | None = None
        self.broker: EmbeddedBroker | None = None
        self.children: list[Child] = []
        self.env = dict(os.environ)
        self._stopping = False

    # -- start -----------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            self._start_infrastructure()
            for name in self.services:
                child = Child(name, self.settings.port_of(name), self.log_dir / f"{name}.log")
                self.children.append(child)
                self._spawn(child)
            self._wait_ready()
            self._banner()
            self._watch()
            return 0
        except KeyboardInterrupt:
            return 0
        except RuntimeError as exc:
            self.console.print(f"[red]partnerledger up failed:[/red] {exc}")
            return 1
        finally:
            self._shutdown()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:  # a second signal must not cut the orderly shutdown short
            return
        self._stopping = True
        raise KeyboardInterrupt

    def _preflight(self) -> None:
        """Refuses to start next to a running stack (and to touch its database)."""
        host = self.settings.host
        taken = [
            f"{name} port {self.settings.port_of(name)}"
            for name in self.services
            if port_open(host, self.settings.port_of(name))
        ]
        if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and port_open(
            "127.0.0.1", self.settings.broker_port
        ):
            taken.append(f"broker port {self.settings.broker_port}")
        if taken:
            raise RuntimeError(
                f"already in use: {', '.join(taken)}. Is Partner Ledger running already?"
                " Stop it, or set PL_<SERVICE>_PORT / PL_BROKER_PORT."
            )

    def _start_infrastructure(self) -> None:
        self._preflight()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env["PL_DATA_DIR"] = str(self.data_dir)
        if self.settings.database_url:
            database_url = self.settings.database_url
            self.console.print(f"PostgreSQL: external ({_redact(database_url)})")
        else:
            self.console.print("PostgreSQL: starting the embedded server in .data/pg ...")
            self.postgres = EmbeddedPostgres(self.data_dir / "pg")
            self.postgres.start()
            database_url = self.postgres.uri(self.settings.database_name)
        self.env["DATABASE_URL"] = database_url
        asyncio.run(ensure_database(parse_database_url(database_url)))
        if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
            self.console.print(f"Kafka: external ({bootstrap})")
        else:
            self.console.print(
                f"Kafka: starting the Tansu broker on port {self.settings.broker_port}"
            )
            self.broker = EmbeddedBroker(self.settings.broker_port, self.log_dir / "broker.log")
            self.broker.start()
            bootstrap = self.broker.bootstrap
        self.env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
        self._create_topics(bootstrap)

    def _create_topics(self, bootstrap: str) -> None:
        settings = self.settings.model_copy(update={"kafka_bootstrap_servers": bootstrap})
        topics = [settings.topic_of(name) for name in ("partner", "approval", "docs", "kpi")]
        asyncio.run(kafka.ensure_topics(settings, topics))

    def _spawn(self, child: Child) -> None:
        child.log = child.log_path.open("ab")
        child.process = subprocess.Popen(  # noqa: S603 - our own module
            [sys.executable, "-m", f"services.{child.name}"],
            env=self.env,
            stdout=child.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only sets a process attribute
        )

    def _wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        pending = {c.name: c for c in self.children}
        while pending:
            for name, child in list(pending.items()):
                assert child.process is not None
                if child.process.poll() is not None:
                    raise RuntimeError(f"{name} exited at start; see {child.log_path}")
                try:
                    url = f"http://{self.settings.host}:{child.port}/readyz"
                    if httpx.get(url, timeout=2).status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout_s:.0f}s: {', '.join(pending)}")
            time.sleep(0.3)

    def _banner(self) -> None:
        host = self.settings.host
        self.console.print("\n[bold green]Partner Ledger is running.[/bold green]")
        lines = []
        for child in self.children:
            base = f"http://{host}:{child.port}"
            lines.append(f"  {child.name:<9} {base}/docs   status: {base}/v1/ops/status")
        kpi = f"http://{host}:{self.settings.kpi_port}"
        partner = f"http://{host}:{self.settings.partner_port}"
        if "kpi" in self.services and self.settings.environment != "production":
            # The KPI board; a development auditor token (8 h) in the fragment, never sent.
            board = TokenIssuer(self.settings).mint("board", "auditor", now=datetime.now(UTC))
            lines.append(f"  {'kpi board':<9} {kpi}/#token={board}")
        lines += [
            "",
            "Get a token (roles: director, project_manager, specialist, dept_head, finance,",
            "ceo, auditor, partner):",
            "  export TOKEN=$(.venv/bin/partnerledger token --user alice --role director)",
            "Register a partner and see it counted:",
            f'  curl -X POST {partner}/v1/partners -H "Authorization: Bearer $TOKEN" \\',
            '    -H \'Content-Type: application/json\' -d \'{"name": "福州云栈信息技术有限公司",',
            '    "unified_social_credit_code": "91350100M000100Y43", "contact": {"name":',
            '    "林晓", "email": "lin@example.com", "phone": "13800138000"},',
            '    "service_categories": ["运维外包"]}\'',
            f'  curl -H "Authorization: Bearer $TOKEN" {kpi}/v1/kpi/partners/summary',
            "Positions and lag: .venv/bin/partnerledger status",
            f"Logs: {self.log_dir}/",
            "Ctrl-C stops everything; data stays in .data/ for the next run.",
            "",
        ]
        for line in lines:
            self.console.print(line, soft_wrap=True, highlight=False, markup=False)

    # -- supervise ---------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stopping:
            time.sleep(0.5)
            if self.broker is not None and not self.broker.alive():
                self.console.print("[yellow]broker died; restarting it (relays will republish)[/]")
                self.broker.stop()
                self.broker.start()
                self._create_topics(self.broker.bootstrap)
            for child in self.children:
                assert child.process is not None
                code = child.process.poll()
                if code is None:
                    continue
                now = time.monotonic()
                child.restarts = [t for t in child.restarts if now - t < 60] + [now]
                if len(child.restarts) > 5:
                    raise RuntimeError(f"{child.name} keeps dying; see {child.log_path}")
                self.console.print(
                    f"[yellow]{child.name} exited with {code}; restarting "
                    f"(see {child.log_path})[/yellow]"
                )
                if child.log is not None:
                    child.log.close()
                self._spawn(child)

    # -- stop --------------------------------------------------------------------

    def _shutdown(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if self.children:
            self.console.print("Stopping services ...")
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                child.process.terminate()
        for child in self.children:
            if child.process is not None:
                wait_or_kill(child.process, 15)
            if child.log is not None:
                child.log.close()
        if self.broker is not None:
            self.console.print("Stopping the broker ...")
            self.broker.stop()
        if self.postgres is not None:
            self.console.print("Stopping PostgreSQL ...")
            self.postgres.stop()
        self.console.print("Stopped.")


def _redact(url: str) -> str:
    params = parse_database_url(url)
    return f"{params.user}@{params.host}:{params.port}/{params.dbname}"
