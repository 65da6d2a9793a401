"""The garbage collector of a long-running service process (issue 9).

A service process holds over 100,000 objects once its framework, models and
routes are built, none of which ever become garbage. CPython's full
collection walks every one of them: 60-100 ms with the GIL held, several
times a minute under load, and each of those pauses stalls every request,
relay and projector of the process at once (bench/slice.py, measured with a
`gc.callbacks` hook: ten full collections of 60-104 ms in a minute at 300
commands/s). `settle()` moves what exists after startup into the
collector's permanent generation, so later collections walk only what the
process allocated since; cycles among new objects are still collected.

Every collection after settling is observed in `pl_gc_pause_seconds` (by
generation), so a regression is visible on /metrics and in Grafana (a
`--role workers` process settles too but serves no /metrics).
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Gauge, Histogram

GC_PAUSE = Histogram(
    "pl_gc_pause_seconds",
    "Time the garbage collector held the process, per collection",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
GC_FROZEN = Gauge("pl_gc_frozen_objects", "Objects moved out of the collector's reach at startup")

# Made once, here: a collection can start inside any allocation, also while
# `/metrics` holds the histogram's (non-reentrant) lock to copy its series,
# and `labels()` takes that lock. A series' own value lock is never held
# across an allocation that could start a collection.
_PAUSES = {generation: GC_PAUSE.labels(str(generation)) for generation in range(3)}
_started = [0.0]


def _observe(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        _PAUSES[info["generation"]].observe(time.perf_counter() - _started[0])


def observe_pauses() -> None:
    """Records every collection's pause (idempotent)."""
    if _observe not in gc.callbacks:
        gc.callbacks.append(_observe)


def settle() -> int:
    """Collects the garbage of startup once, then freezes what is left.
    Called when the process has built everything it keeps; returns how many
    objects are now frozen."""
    gc.collect()
    gc.freeze()
    observe_pauses()  # from here on: the settling collection itself is not a pause of service
    frozen = gc.get_freeze_count()
    GC_FROZEN.set(frozen)
    return frozen


def release() -> None:
    """Gives the frozen objects back to the collector (on shutdown, so what
    the service built is freed like anything else)."""
    gc.unfreeze()
    GC_FROZEN.set(0)
