"""Tamper evidence (issue 7; R4.5 everything on record, R1.1 compliance shown
to an auditor): each service's hash chain over its stored events.

- every stored event gets its link in its own transaction, in notification
  order, also for several events in one transaction, across the gaps refused
  commands leave, and under concurrent saves from many threads;
- a direct SQL edit of the stored events is caught and located: the exact
  event that was modified, deleted, inserted or reordered, whatever the
  verifier's batch size;
- a chain recomputed after a change passes on its own (whoever can write the
  tables can compute links) but not against the heads published on
  `audit.chain`; the published head equals the verified head;
- `partnerledger audit verify` exits 1 naming the event; 0 with the head;
- a store from before the chain gets its links on the first start (backfill,
  resumable), and never again: later unlinked rows stay visible.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import struct
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from services.partner.application import PartnerApplication
from services.partner.domain.partner import Contact, Partner
from services.partner.service import SPEC as PARTNER
from shared.audit_chain import (
    Anchor,
    ChainHead,
    ChainHeadPublisher,
    ChainReport,
    backfill_chain,
    chain_head_json_schema,
    chain_link,
    chain_topic,
    genesis_link,
    read_published_heads,
    verify_chain,
)
from shared.clock import SystemClock
from shared.db import connect, quote_ident
from shared.domain import Actor, AlreadyExists, command_context
from shared.settings import Settings
from tests.support.apps import RunningService, running
from tests.support.data import registration
from tests.support.events import read_topic, register
from tests.support.infra import Infra, create_topics, drop_schemas
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def partner_app(service: RunningService) -> PartnerApplication:
    app = service.runtime.application
    assert isinstance(app, PartnerApplication)
    return app


def tables(settings: Settings) -> tuple[str, str]:
    schema = quote_ident(settings.schema_of("partner"))
    return f"{schema}.partner_events", f"{schema}.event_chain"


async def sql(settings: Settings, statement: str, *args: Any) -> Any:
    """A direct SQL edit or read, as someone with database access would do it."""
    conn = await connect(settings.postgres, application_name="tamper")
    try:
        if statement.lstrip().upper().startswith("SELECT"):
            return await conn.fetch(statement, *args)
        return await conn.execute(statement, *args)
    finally:
        await conn.close()


async def verify(settings: Settings, **kwargs: Any) -> ChainReport:
    conn = await connect(settings.postgres, application_name="verify")
    try:
        return await verify_chain(conn, settings.schema_of("partner"), "partner", **kwargs)
    finally:
        await conn.close()


async def event_ids(settings: Settings) -> dict[int, uuid.UUID]:
    """notification id -> event id, as the recorder named them in the links."""
    _, chain = tables(settings)
    rows = await sql(settings, f"SELECT notification_id, event_id FROM {chain}")
    return {r["notification_id"]: r["event_id"] for r in rows}


async def store(settings: Settings, count: int, first: int = 0) -> None:
    """`count` partner registrations through the partner service, in process."""
    async with running(PARTNER, settings, relay=False, consumers=False, projectors=False) as svc:
        app = partner_app(svc)
        for n in range(first, first + count):
            await asyncio.to_thread(register, app, n)


def register_two_at_once(app: PartnerApplication, n: int) -> None:
    """Two aggregates saved in one command: two events in one transaction."""
    ctx = app.context(Actor("alice", "director"))
    with command_context(ctx):
        partners = [
            Partner.register(
                name=body["name"],
                unified_social_credit_code=body["unified_social_credit_code"],
                contact=Contact(**body["contact"]),
                service_categories=body["service_categories"],
            )
            for body in (registration(n), registration(n + 1))
        ]
    app.save_in(ctx, *partners)


# -- the format --------------------------------------------------------------------------


def test_link_format_is_stable() -> None:
    """The canonical bytes of docs/adr/0012; every stored link depends on them."""
    topic, state = "services.partner.domain.partner:Partner.Registered", b'{"a":1}'
    genesis = genesis_link("partner")
    assert genesis == hashlib.sha256(b"partner").digest()
    canonical = (
        struct.pack(">q", 1)
        + uuid.UUID(int=1).bytes
        + struct.pack(">qI", 1, len(topic))
        + topic.encode()
        + struct.pack(">Q", len(state))
        + state
    )
    by_hand = hashlib.sha256(genesis + hashlib.sha256(canonical).digest()).digest()
    link = chain_link(genesis, 1, uuid.UUID(int=1), 1, topic, state)
    assert link == by_hand
    assert link.hex() == "5fd329ed39c3e66cdd1cce08aa8a309cccda4d27e8a963c277b66fc84a6724c9"


def test_chain_head_schema_is_the_published_one() -> None:
    published = json.loads((ROOT / "docs" / "events" / "chain-head.v1.json").read_text())
    assert chain_head_json_schema() == published, "run `make schemas` (partnerledger schemas)"


# -- writing -------------------------------------------------------------------------------


async def test_every_stored_event_is_linked_in_notification_order(settings: Settings) -> None:
    async with running(PARTNER, settings, relay=False, consumers=False, projectors=False) as svc:
        app = partner_app(svc)
        ids = [await asyncio.to_thread(register, app, n) for n in range(4)]
        await asyncio.to_thread(register_two_at_once, app, 10)
        with pytest.raises(AlreadyExists):  # refused: its notification id is never used
            await asyncio.to_thread(register, app, 0)
        ids.append(await asyncio.to_thread(register, app, 20))
        stored = {e.event_id for i in ids for e in app.history(i)}
    events, chain = tables(settings)
    rows = await sql(
        settings,
        f"SELECT c.*, e.notification_id IS NOT NULL AS stored FROM {chain} c"
        f" LEFT JOIN {events} e USING (notification_id) ORDER BY notification_id",
    )
    assert len(rows) == 7 and all(r["stored"] for r in rows)
    assert [r["notification_id"] for r in rows] != list(range(1, 8)), "a gap is expected"
    assert bytes(rows[0]["prev"]) == genesis_link("partner")
    for before, after in itertools.pairwise(rows):
        assert bytes(after["prev"]) == bytes(before["link"])
    assert stored <= {r["event_id"] for r in rows}
    report = await verify(settings)
    assert report.ok, report.describe()
    assert (report.events, report.links) == (7, 7)
    assert report.head_notification_id == rows[-1]["notification_id"]
    assert report.head_link == bytes(rows[-1]["link"])
    assert report.backfill_through == 0  # a new store: linked from the first event


async def test_concurrent_saves_keep_one_valid_chain(settings: Settings) -> None:
    """Saves from many threads interleave; the table lock keeps the chain in
    notification order."""
    async with running(PARTNER, settings, relay=False, consumers=False, projectors=False) as svc:
        app = partner_app(svc)

        def work(worker: int) -> None:
            for n in range(15):
                register(app, 1000 * worker + n)

        with ThreadPoolExecutor(max_workers=8) as pool:
            await asyncio.gather(*(asyncio.wrap_future(pool.submit(work, w)) for w in range(8)))
        head = app.log_head()
    report = await verify(settings, batch=37)
    assert report.ok, report.describe()
    assert (report.events, report.links, report.head_notification_id) == (120, 120, head)


# -- tampering ----------------------------------------------------------------------------

Tamper = Callable[[Settings, str, str], Awaitable[None]]


async def modify_state(s: Settings, events: str, chain: str) -> None:
    await sql(
        s,
        f"UPDATE {events} SET state = convert_to(replace(convert_from(state, 'UTF8'),"
        " '林晓', '王五'), 'UTF8') WHERE notification_id = 3",
    )


async def modify_version(s: Settings, events: str, chain: str) -> None:
    await sql(s, f"UPDATE {events} SET originator_version = 7 WHERE notification_id = 3")


async def modify_link(s: Settings, events: str, chain: str) -> None:
    await sql(s, f"UPDATE {chain} SET link = sha256(link) WHERE notification_id = 3")


async def delete_event(s: Settings, events: str, chain: str) -> None:
    await sql(s, f"DELETE FROM {events} WHERE notification_id = 3")


async def insert_copy(s: Settings, events: str, chain: str) -> None:
    """A forged row copying another event (its notification id comes from the
    table's sequence, as any INSERT's would)."""
    await sql(
        s,
        f"INSERT INTO {events} (originator_id, originator_version, topic, state)"
        f" SELECT gen_random_uuid(), 1, topic, state FROM {events} WHERE notification_id = 3",
    )


async def swap_events(s: Settings, events: str, chain: str) -> None:
    for old, new in ((3, -3), (5, 3), (-3, 5)):
        await sql(s, f"UPDATE {events} SET notification_id = {new} WHERE notification_id = {old}")


async def swap_events_and_links(s: Settings, events: str, chain: str) -> None:
    await swap_events(s, events, chain)
    for old, new in ((3, -3), (5, 3), (-3, 5)):
        await sql(s, f"UPDATE {chain} SET notification_id = {new} WHERE notification_id = {old}")


async def move_event_to_the_end(s: Settings, events: str, chain: str) -> None:
    await sql(s, f"UPDATE {events} SET notification_id = 100 WHERE notification_id = 3")


#: tamper -> (kind, notification id named, whose event id: the one stored at
#: that notification id before the edit, by notification id; None: none)
TAMPERING: dict[str, tuple[Tamper, str, int, int | None]] = {
    "modified state": (modify_state, "modified", 3, 3),
    "modified version": (modify_version, "modified", 3, 3),
    "modified link": (modify_link, "modified", 3, 3),
    "deleted": (delete_event, "deleted", 3, 3),
    "inserted copy": (insert_copy, "inserted", 7, 3),  # the copy carries 3's event id
    "swapped": (swap_events, "reordered", 3, 3),
    "swapped with links": (swap_events_and_links, "reordered", 3, 5),
    "moved to the end": (move_event_to_the_end, "reordered", 3, 3),
}


@pytest.mark.parametrize("case", list(TAMPERING))
async def test_a_direct_sql_edit_is_caught_and_located(settings: Settings, case: str) -> None:
    tamper, kind, nid, whose = TAMPERING[case]
    await store(settings, 6)
    before = await verify(settings)
    assert before.ok and before.events == 6, before.describe()
    named = await event_ids(settings)
    events, chain = tables(settings)
    await tamper(settings, events, chain)
    for batch in (1000, 2):  # batch edges must not hide or move anything
        report = await verify(settings, batch=batch)
        problem = report.problem
        assert problem is not None, f"{case} not caught"
        assert (problem.kind, problem.notification_id) == (kind, nid), problem.describe()
        assert problem.event_id == (named[whose] if whose else None), problem.describe()
        # Verified up to the event before it.
        assert report.links == report.head_notification_id == nid - 1


async def test_an_event_deleted_with_its_link_is_located_between_its_neighbours(
    settings: Settings,
) -> None:
    await store(settings, 6)
    events, chain = tables(settings)
    await sql(settings, f"DELETE FROM {events} WHERE notification_id = 3")
    await sql(settings, f"DELETE FROM {chain} WHERE notification_id = 3")
    problem = (await verify(settings)).problem
    assert problem is not None
    assert (problem.kind, problem.notification_id) == ("deleted", 4)
    assert "between notification 2 and this one" in problem.detail


async def test_a_forged_link_between_two_events_is_named_inserted(settings: Settings) -> None:
    """Someone who computes links: a forged event and link put into the
    middle of the chain (notification ids renumbered to make room)."""
    await store(settings, 4)
    events, chain = tables(settings)
    for nid in (4, 3):
        await sql(
            settings,
            f"UPDATE {events} SET notification_id = {nid + 1} WHERE notification_id = {nid}",
        )
        await sql(
            settings,
            f"UPDATE {chain} SET notification_id = {nid + 1} WHERE notification_id = {nid}",
        )
    row = (await sql(settings, f"SELECT link FROM {chain} WHERE notification_id = 2"))[0]
    forged = uuid.uuid4()
    await sql(
        settings,
        f"INSERT INTO {events} (originator_id, originator_version, topic, state,"
        " notification_id) VALUES ($1, 1, 'x:Forged', '{}', 3)",
        forged,
    )
    link = chain_link(bytes(row["link"]), 3, forged, 1, "x:Forged", b"{}")
    await sql(
        settings,
        f"INSERT INTO {chain} (notification_id, originator_id, originator_version, prev, link)"
        " VALUES (3, $1, 1, $2, $3)",
        forged,
        bytes(row["link"]),
        link,
    )
    problem = (await verify(settings)).problem
    assert problem is not None
    assert (problem.kind, problem.notification_id, problem.originator_id) == (
        "inserted",
        3,
        forged,
    )


async def recompute_chain(settings: Settings) -> None:
    """What someone who knows the format can do after changing an event."""
    events, chain = tables(settings)
    rows = await sql(settings, f"SELECT * FROM {events} ORDER BY notification_id")
    prev = genesis_link("partner")
    for r in rows:
        link = chain_link(
            prev,
            r["notification_id"],
            r["originator_id"],
            r["originator_version"],
            r["topic"],
            bytes(r["state"]),
        )
        await sql(
            settings,
            f"UPDATE {chain} SET prev = $2, link = $3 WHERE notification_id = $1",
            r["notification_id"],
            prev,
            link,
        )
        prev = link


async def publish_head(settings: Settings) -> ChainHead:
    async with running(PARTNER, settings, relay=False, consumers=False, projectors=False) as svc:
        publisher = ChainHeadPublisher("partner", settings, svc.runtime.pool, SystemClock())
        try:
            return await publisher.publish_once()
        finally:
            await publisher.close()


async def test_a_recomputed_chain_does_not_match_the_published_heads(settings: Settings) -> None:
    await store(settings, 6)
    published = await publish_head(settings)
    assert published.notification_id == 6
    await modify_state(settings, *tables(settings))
    await recompute_chain(settings)
    assert (await verify(settings)).ok, "the database alone cannot show a recomputed chain"
    anchors = (await read_published_heads(settings, ["partner"]))["partner"]
    assert [(a.notification_id, a.link.hex()) for a in anchors] == [(6, published.link)]
    problem = (await verify(settings, anchors=anchors)).problem
    assert problem is not None
    assert (problem.kind, problem.notification_id) == ("rewritten", 6)


async def test_events_removed_from_the_end_are_caught_by_the_published_head(
    settings: Settings,
) -> None:
    await store(settings, 6)
    await publish_head(settings)
    events, chain = tables(settings)
    await sql(settings, f"DELETE FROM {events} WHERE notification_id > 4")
    await sql(settings, f"DELETE FROM {chain} WHERE notification_id > 4")
    assert (await verify(settings)).ok
    anchors = (await read_published_heads(settings, ["partner"]))["partner"]
    report = await verify(settings, anchors=anchors)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.notification_id) == ("deleted", 6)
    assert "the chain ends at 4" in report.problem.detail


# -- publication ----------------------------------------------------------------------------


@pytest.fixture
async def fast_heads(infra: Infra) -> AsyncIterator[Settings]:
    s = infra.settings(chain_head_interval_s=0.1)
    await create_topics(s)
    yield s
    await drop_schemas(s)


async def test_the_active_relay_publishes_the_verified_head(fast_heads: Settings) -> None:
    settings = fast_heads
    async with running(PARTNER, settings, consumers=False, projectors=False) as svc:
        app = partner_app(svc)
        for n in range(5):
            await asyncio.to_thread(register, app, n)
        head = app.log_head()
        anchors: list[Anchor] = []

        async def published_at_head() -> bool:
            # Read up to the high watermark (the loop keeps publishing).
            anchors[:] = (await read_published_heads(settings, ["partner"]))["partner"]
            return any(a.notification_id == head for a in anchors)

        await wait_until(published_at_head, within=30, what="the head on audit.chain")
    report = await verify(settings, anchors=anchors)
    assert report.ok, report.describe()
    assert report.anchors_checked >= 1
    at_head = {a.link for a in anchors if a.notification_id == head}
    assert at_head == {report.head_link}
    records = await read_topic(settings, chain_topic(settings))  # the loop has stopped
    last = ChainHead.model_validate_json(
        next(r.value for r in reversed(records) if r.key == b"partner")
    )
    assert (last.service, last.notification_id, last.link) == (
        "partner",
        head,
        report.head_link.hex(),
    )


# -- the CLI --------------------------------------------------------------------------------


def audit_verify(infra: Infra, settings: Settings) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "partnerledger.cli", "audit", "verify", "--service", "partner"],
        env={**infra.env(settings), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


async def test_cli_exits_1_naming_the_tampered_event(infra: Infra, settings: Settings) -> None:
    await store(settings, 5)
    report = await verify(settings)
    ok = await asyncio.to_thread(audit_verify, infra, settings)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "partner: OK" in ok.stdout and report.head_link.hex() in ok.stdout
    named = await event_ids(settings)
    await modify_state(settings, *tables(settings))
    failed = await asyncio.to_thread(audit_verify, infra, settings)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "MODIFIED" in failed.stdout and "notification 3" in failed.stdout
    assert str(named[3]) in failed.stdout


# -- stores from before the chain --------------------------------------------------------------


async def forget_the_chain(settings: Settings) -> None:
    """The state of a store written before the chain's migration."""
    schema = quote_ident(settings.schema_of("partner"))
    await sql(settings, f"DELETE FROM {schema}.event_chain")
    await sql(settings, f"DELETE FROM {schema}.event_chain_origin")


async def test_a_store_from_before_the_chain_is_linked_on_first_start(settings: Settings) -> None:
    await store(settings, 12)
    await forget_the_chain(settings)
    await store(settings, 2, first=100)  # the first start with the chain links the 12 first
    report = await verify(settings)
    assert report.ok, report.describe()
    assert (report.events, report.links, report.backfill_through) == (14, 14, 12)
    assert set((await event_ids(settings)).values()).isdisjoint({None})


async def test_an_interrupted_backfill_resumes_and_never_runs_again(settings: Settings) -> None:
    await store(settings, 12)
    await forget_the_chain(settings)
    schema = settings.schema_of("partner")
    events, chain = tables(settings)
    conn = await connect(settings.postgres, application_name="backfill")
    try:
        assert await backfill_chain(conn, schema, "partner", batch=5) == 12
        # Interrupted after the first batch: the origin says how far to go.
        await conn.execute(f"DELETE FROM {chain} WHERE notification_id > 5")
        await conn.execute(
            f"UPDATE {quote_ident(schema)}.event_chain_origin SET backfilled_at = NULL"
        )
        assert await backfill_chain(conn, schema, "partner", batch=5) == 7
        assert (await verify(settings)).ok
        # Complete: a row written behind the store's back is never linked later.
        await insert_copy(settings, events, chain)
        assert await backfill_chain(conn, schema, "partner") == 0
    finally:
        await conn.close()
    await store(settings, 1, first=200)
    problem = (await verify(settings)).problem
    assert problem is not None and (problem.kind, problem.notification_id) == ("inserted", 13)
