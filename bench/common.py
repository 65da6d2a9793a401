"""What the benchmarks share: the machine they ran on, and stopping the
infrastructure they started."""

from __future__ import annotations

import os
import platform
from typing import Any

from tests.support.infra import Infra


def machine() -> dict[str, Any]:
    """The machine and the infrastructure (embedded or external) of a run."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgres": "external" if os.environ.get("DATABASE_URL") else "embedded 18",
        "broker": "external" if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else "Tansu 0.6",
    }


def stop_infra(infra: Infra) -> None:
    """Stops the embedded broker and PostgreSQL, where they were started."""
    if infra.broker is not None:
        infra.broker.stop()
    if infra.postgres is not None:
        infra.postgres.stop()
