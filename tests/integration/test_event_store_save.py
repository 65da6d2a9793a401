"""The recorder's save (shared.eventstore.LedgerRecorder) on real PostgreSQL:
a save is all or nothing, however it is sent (one query message, or a
pipeline when it carries file contents), and every event it stores is linked
in the hash chain in notification order (R4.5, ADR 0012, issue 9).

- a version conflict anywhere in a save stores none of it: no event, no
  idempotency record, no file content, no link; the next save goes through;
- a reused idempotency key refuses the save the same way;
- the ids returned are the stored events' notification ids, in order, and
  the chain the database computed verifies in Python (`verify_chain`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from services.docs.service import SPEC as DOCS
from services.partner.domain.partner import CRITERIA, Partner
from shared.audit_chain import verify_chain
from shared.clock import SystemClock
from shared.db import connect, quote_ident
from shared.domain import Actor, CommandContext, command_context
from shared.eventstore import Blob, LedgerApplication
from shared.idempotency import IdempotencyKey, IdempotencyRecord
from shared.runtime import prepare_schema
from shared.settings import Settings
from tests.support.data import uscc

pytestmark = pytest.mark.integration


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[LedgerApplication]:
    """The docs service's store: its schema has the contents table."""
    application = await prepare_schema(DOCS, settings, SystemClock())
    yield application
    application.close()


def partner_events(app: LedgerApplication, n: int, evaluations: int = 1) -> list[StoredEvent]:
    """A partner registered (R2.1) and evaluated, as the recorder stores it."""
    ctx = CommandContext(actor=Actor("alice", "director"), correlation_id=uuid.uuid4())
    with command_context(ctx):
        partner = Partner.register(
            name=f"福州云栈信息技术有限公司{n}",
            unified_social_credit_code=uscc(n + 1),
            contact={"name": "林晓", "email": f"lin{n}@example.com", "phone": "13800138000"},
            service_categories=["运维外包"],
        )
        for _ in range(evaluations):
            partner.evaluate(
                evaluation_id=uuid.uuid4(),
                scores=dict.fromkeys(CRITERIA, 4),
                qualifications=[],
                summary="XX项目-2026年11月-周报",
            )
    return [app.mapper.to_stored_event(e) for e in partner.collect_events()]


def record(key: str, aggregate: Any) -> IdempotencyRecord:
    return IdempotencyRecord(IdempotencyKey("alice", key, "hash"), aggregate, 1)


async def counts(settings: Settings) -> dict[str, int]:
    schema = quote_ident(settings.schema_of("docs"))
    conn = await connect(settings.postgres, application_name="test-save")
    try:
        return {
            table: await conn.fetchval(f"SELECT count(*) FROM {schema}.{table}")
            for table in ("docs_events", "event_chain", "idempotency_keys", "contents")
        }
    finally:
        await conn.close()


async def chain_ok(settings: Settings, events: int) -> None:
    conn = await connect(settings.postgres, application_name="test-save")
    try:
        report = await verify_chain(conn, settings.schema_of("docs"), "docs")
    finally:
        await conn.close()
    assert report.ok, report.describe()
    assert (report.events, report.links) == (events, events)


def blob(data: bytes) -> Blob:
    import hashlib  # noqa: PLC0415

    return Blob(uuid.uuid4(), hashlib.sha256(data).hexdigest(), len(data), data)


@pytest.mark.parametrize("with_contents", [False, True], ids=["one-message", "pipeline"])
async def test_a_save_is_all_or_nothing_and_linked_in_order(
    app: LedgerApplication, settings: Settings, with_contents: bool
) -> None:
    recorder = app.recorder
    first = partner_events(app, 1, evaluations=2) + partner_events(app, 2)

    def extra() -> dict[str, Any]:
        return {"blobs": (blob(b"\x00minutes\xff" * 100),)} if with_contents else {}

    ids = recorder.insert_events(first, idempotency=record("k1", first[0].originator_id), **extra())
    stored = recorder.select_notifications(start=0, limit=100)
    assert list(ids or []) == [n.id for n in stored]
    assert [(n.originator_id, n.originator_version) for n in stored] == [
        (e.originator_id, e.originator_version) for e in first
    ]
    before = await counts(settings)
    assert before == {
        "docs_events": 5,
        "event_chain": 5,
        "idempotency_keys": 1,
        "contents": 1 if with_contents else 0,
    }

    # A fresh aggregate saved with one whose version is taken: nothing of it stays.
    fresh = partner_events(app, 3)
    with pytest.raises(IntegrityError):
        recorder.insert_events(
            fresh + first[1:2], idempotency=record("k2", fresh[0].originator_id), **extra()
        )
    # The same key again, on new events: refused, nothing stays.
    with pytest.raises(IntegrityError):
        recorder.insert_events(fresh, idempotency=record("k1", fresh[0].originator_id), **extra())
    assert await counts(settings) == before
    await chain_ok(settings, 5)

    # The connection and the chain go on after the refusals.
    later = recorder.insert_events(fresh, idempotency=record("k3", fresh[0].originator_id))
    assert later and min(later) > max(ids or [0])
    await chain_ok(settings, 7)
