"""Time and identity come from here, injected, so tests move time and fix ids."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """An aware datetime in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to (tests, simulations)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment.astimezone(UTC)


IdFactory = Callable[[], uuid.UUID]


def random_ids() -> uuid.UUID:
    return uuid.uuid4()


class SequentialIds:
    """Deterministic ids for tests: uuid5 over a namespace and a counter."""

    def __init__(self, namespace: str = "partnerledger-test") -> None:
        self._ns = uuid.uuid5(uuid.NAMESPACE_URL, namespace)
        self._n = 0
        self._lock = threading.Lock()

    def __call__(self) -> uuid.UUID:
        with self._lock:
            self._n += 1
            return uuid.uuid5(self._ns, str(self._n))
