"""Fixtures shared by all test levels."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from shared.settings import Settings
from shared.telemetry import configure_tracing
from tests.support.infra import Infra, create_topics, drop_schemas, start_infra


@pytest.fixture(scope="session", autouse=True)
def tracing() -> None:
    """Real tracing, as in the services, so trace context can be asserted."""
    configure_tracing("tests", Settings())


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    infra = start_infra(tmp_path_factory.mktemp("infra"))
    yield infra
    if infra.broker is not None:
        infra.broker.stop()
    if infra.postgres is not None:
        infra.postgres.stop()


@pytest.fixture
async def settings(infra: Infra) -> AsyncIterator[Settings]:
    """Settings with a prefix of this test's own: schemas, topics, groups."""
    s = infra.settings()
    await create_topics(s)
    yield s
    await drop_schemas(s)
