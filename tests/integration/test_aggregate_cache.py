"""The aggregate cache (PL_AGGREGATE_CACHE_SIZE, shared/eventstore.py): a
cached aggregate is brought up to date from the store on every read, so a
replica sees what another replica saved (R6.4: nothing read stale), and it is
handed out as a copy, so a command that fails after changing it leaves the
cache as the store has it (DESIGN.md non-negotiable 4: a refused step changes
nothing)."""

from __future__ import annotations

import pytest

from services.partner.application import PartnerApplication
from services.partner.domain.partner import Partner
from services.partner.service import SPEC
from shared.clock import SystemClock
from shared.domain import Actor, command_context
from shared.eventstore import eventsourcing_env
from shared.runtime import prepare_schema
from shared.settings import Settings
from tests.support.events import register

pytestmark = pytest.mark.integration

DIRECTOR = Actor("alice", "director")


async def test_a_replica_reads_what_another_replica_saved(settings: Settings) -> None:
    a = await prepare_schema(SPEC, settings, SystemClock())
    b = PartnerApplication(settings)
    try:
        assert isinstance(a, PartnerApplication)
        assert b.repository.cache is not None
        pid = register(a, 1)
        assert b.get_as(Partner, pid).version == 1  # now in b's cache
        a.reject_partner(a.context(DIRECTOR), pid, reason="R2.1: documents incomplete")
        seen = b.get_as(Partner, pid)
        assert seen.version == 2
        assert seen.status == a.get_as(Partner, pid).status == "rejected"
    finally:
        a.close()
        b.close()


async def test_a_change_that_is_not_saved_does_not_reach_the_cache(settings: Settings) -> None:
    app = await prepare_schema(SPEC, settings, SystemClock())
    try:
        assert isinstance(app, PartnerApplication)
        pid = register(app, 2)
        changed = app.get_as(Partner, pid)
        with command_context(app.context(DIRECTOR)):
            changed.reject(reason="never saved")
        assert changed.version == 2
        again = app.get_as(Partner, pid)
        assert again.version == 1
        assert again.status == "candidate"
    finally:
        app.close()


def test_a_cache_size_of_zero_keeps_no_aggregate() -> None:
    assert "AGGREGATE_CACHE_MAXSIZE" not in eventsourcing_env(
        Settings(aggregate_cache_size=0), "partner"
    )
    assert eventsourcing_env(Settings(), "partner")["AGGREGATE_CACHE_MAXSIZE"] == "1000"
