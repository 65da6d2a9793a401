"""Notifications (shared.notify) through the partner service, with a real SMTP
server (aiosmtpd) and a real HTTP receiver on this machine, a moved clock and
no sleeps:

- R3.2/R3.5: a signed contract mails the project managers' mailbox that the
  kickoff is due, and a missed kickoff mails them and the Director; a webhook
  subscribed to ContractSigned receives the published envelope, signed;
- a receiver that fails twice gets the delivery on the third attempt, after
  the backoff's delays and not before; one that is down for good ends
  'failed' after the last attempt, and the commands that caused it stand;
- re-reading the event store from position 0 queues and sends nothing twice;
- the webhook API is the Director's, the delivery log the Director's and the
  auditors', with validation, Idempotency-Key and cursor paging.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from partnerledger.embedded import free_port
from services.partner.application import PartnerApplication
from services.partner.service import SPEC as PARTNER
from shared.clock import ManualClock
from shared.envelope import EventEnvelope
from shared.notify import verify_signature
from shared.notify_outbox import NOTIFICATIONS_PROJECTOR
from shared.projector import LocalProjector
from shared.runtime import projector
from shared.settings import Settings
from tests.support.apps import RunningService, running
from tests.support.auth import auth
from tests.support.notifications import (
    DIRECTOR_BOX,
    PM_TEAM,
    Mailbox,
    Received,
    Receiver,
    dispatch,
    outbox,
    queue,
    with_notifications,
)
from tests.support.partner_flow import Flow
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SHANGHAI = timedelta(hours=8)
FRIDAY = date(2026, 11, 27)


def local(day: date, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC) - SHANGHAI


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(local(FRIDAY, 9))


def flow_of(service: RunningService, settings: Settings) -> Flow:
    app = service.runtime.application
    assert isinstance(app, PartnerApplication)
    flow = Flow(service.client, settings, app)
    flow.pool = service.runtime.pool
    return flow


@contextlib.asynccontextmanager
async def partner(
    settings: Settings, clock: ManualClock, *, workers: bool = False
) -> AsyncIterator[tuple[RunningService, Flow]]:
    """The partner service; without workers, tests queue and dispatch by hand."""
    async with running(
        PARTNER, settings, relay=False, consumers=False, projectors=workers, clock=clock
    ) as svc:
        yield svc, flow_of(svc, settings)


def director(settings: Settings) -> dict[str, str]:
    return auth(settings, "director.zhang", "director")


async def subscribe(
    svc: RunningService, settings: Settings, url: str, event_types: list[str]
) -> dict[str, Any]:
    answer = await svc.client.post(
        "/v1/notifications/webhooks",
        headers=director(settings),
        json={"url": url, "event_types": event_types, "description": "采购系统"},
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def assert_signed(request: Received, secret: str, now: datetime) -> EventEnvelope:
    signature = request.headers["X-PartnerLedger-Signature"]
    assert verify_signature(secret, signature, request.body, now), signature
    assert request.headers["Content-Type"] == "application/json"
    envelope = EventEnvelope.parse_message(request.body)
    assert request.headers["X-PartnerLedger-Event-Type"] == envelope.event_type
    assert request.headers["X-PartnerLedger-Event-Id"] == str(envelope.event_id)
    return envelope


# -- the tests ---------------------------------------------------------------------------


async def test_contract_signed_mails_the_kickoff_and_signs_the_webhook_R3_2(
    settings: Settings, clock: ManualClock, mailbox: Mailbox, receiver: Receiver
) -> None:
    """With the service's own workers running, as in production."""
    s = with_notifications(settings, mailbox.port)
    async with partner(s, clock, workers=True) as (svc, flow):
        hook = await subscribe(svc, s, receiver.url, ["ContractSigned"])
        partner_id = await flow.qualified_partner(1)
        project = await flow.contracted_project(partner_id, FRIDAY)

        async def arrived() -> bool:
            return bool(mailbox.to(PM_TEAM)) and len(receiver.requests) == 1

        await wait_until(arrived, within=20, what="the kickoff mail and the webhook")
        (mail,) = mailbox.to(PM_TEAM)
        assert mail["Subject"] == "Kickoff due by 2026-12-04 23:59: contract HT-2026-001 signed"
        assert mail["From"] == "Partner Ledger <ledger@corp.example>"
        assert mail["X-PartnerLedger-Event-Type"] == "ContractSigned"
        assert project in mail.get_content() and "R3.2" in mail.get_content()
        assert not mailbox.to(DIRECTOR_BOX)  # the Director hears of misses, not of every contract

        (request,) = receiver.requests
        envelope = assert_signed(request, hook["secret"], clock.now())
        assert envelope.event_type == "ContractSigned"
        assert envelope.aggregate_id == UUID(project)
        assert envelope.payload["contract_number"] == "HT-2026-001"
        assert envelope == flow.app.history(UUID(project))[-1]  # exactly what was published

        # R3.2/R3.5: the kickoff deadline passes; the PMs and the Director hear of it.
        async def clock_started() -> bool:
            due = await flow.pool.fetchval(
                "SELECT due_at FROM deadlines WHERE aggregate_id = $1 AND kind = 'kickoff'",
                UUID(project),
            )
            return due is not None

        await wait_until(clock_started, what="the kickoff clock")
        clock.set(local(date(2026, 12, 5), 0, 0, 1))
        assert svc.runtime.deadlines is not None
        await svc.runtime.deadlines.fire_due()  # (or the engine's own loop, whichever is first)

        async def overdue_mailed() -> bool:
            return bool(mailbox.to(DIRECTOR_BOX)) and len(mailbox.to(PM_TEAM)) == 2

        await wait_until(overdue_mailed, within=20, what="the overdue mails")
        (to_director,) = mailbox.to(DIRECTOR_BOX)
        assert to_director["Subject"] == "Kickoff overdue since 2026-12-04 23:59"
        assert "R3.5" in to_director.get_content()
        assert len(receiver.requests) == 1  # not subscribed to KickoffOverdue

        async def all_delivered() -> bool:  # 3 mails and the webhook, as the status shows
            return bool((await svc.status())["notifications"] == {"delivered": 4})

        await wait_until(all_delivered, within=10, what="the delivery log")


async def test_a_failing_receiver_gets_it_on_the_third_attempt_after_backoff(
    settings: Settings, clock: ManualClock, receiver: Receiver
) -> None:
    s = with_notifications(settings, None)  # no SMTP relay: no email is queued at all
    async with partner(s, clock) as (svc, flow):
        hook = await subscribe(svc, s, receiver.url, ["ContractSigned"])
        partner_id = await flow.qualified_partner(2)
        await flow.contracted_project(partner_id, FRIDAY)
        assert await queue(svc) > 0
        (row,) = await outbox(svc)
        assert (row["channel"], row["event_type"], row["status"]) == (
            "webhook",
            "ContractSigned",
            "pending",
        )
        assert row["recipient"] == hook["id"]

        receiver.fail_next = 2
        assert await dispatch(svc) == 1
        (row,) = await outbox(svc)
        assert (row["status"], row["attempts"]) == ("pending", 1)
        assert row["last_error"].startswith("HTTP 503")
        assert row["next_attempt_at"] == clock.now() + timedelta(seconds=60)

        assert await dispatch(svc) == 0  # not due yet
        clock.advance(timedelta(seconds=59))
        assert await dispatch(svc) == 0
        clock.advance(timedelta(seconds=1))
        assert await dispatch(svc) == 1  # second attempt, fails too
        (row,) = await outbox(svc)
        assert row["attempts"] == 2
        assert row["next_attempt_at"] == clock.now() + timedelta(seconds=120)

        clock.advance(timedelta(seconds=119))
        assert await dispatch(svc) == 0
        clock.advance(timedelta(seconds=1))
        assert await dispatch(svc) == 1
        (row,) = await outbox(svc)
        assert (row["status"], row["attempts"], row["last_error"]) == ("delivered", 3, None)
        assert row["delivered_at"] == clock.now()

        assert len(receiver.requests) == 3
        deliveries = {r.headers["X-PartnerLedger-Delivery"] for r in receiver.requests}
        assert deliveries == {str(row["id"])}  # one id for every attempt: receivers dedupe
        assert_signed(receiver.requests[-1], hook["secret"], clock.now())
        assert await dispatch(svc) == 0


async def test_a_receiver_down_for_good_fails_and_the_commands_stand(
    settings: Settings, clock: ManualClock, receiver: Receiver
) -> None:
    dead_port = free_port()  # nothing listens here: SMTP relay and receiver both down
    s = with_notifications(settings, dead_port, notify_max_attempts=3)
    async with partner(s, clock) as (svc, flow):
        await subscribe(svc, s, f"http://127.0.0.1:{dead_port}/hook", ["ContractSigned"])
        await subscribe(svc, s, receiver.url, ["*"])
        partner_id = await flow.qualified_partner(3)
        project = await flow.project_in_progress(partner_id, FRIDAY)  # contract and kickoff
        assert await queue(svc) > 0

        for _ in range(4):  # one more round than attempts: nothing happens in the last
            await dispatch(svc)
            clock.advance(timedelta(hours=1))

        rows = await outbox(svc)
        failed = [r for r in rows if r["status"] == "failed"]
        assert {(r["channel"], r["event_type"], r["attempts"]) for r in failed} == {
            ("email", "ContractSigned", 3),
            ("webhook", "ContractSigned", 3),
        }
        assert all(r["last_error"] for r in failed)
        assert all(r["next_attempt_at"] is None for r in failed)
        # The working receiver got every event recorded since it subscribed, once each.
        live = [r for r in rows if r["channel"] == "webhook" and r not in failed]
        assert {r["status"] for r in live} == {"delivered"}
        assert len(receiver.requests) == len(live) == len({r["event_id"] for r in live})
        # ... and the commands that caused all this were never held up or undone.
        types = [e.event_type for e in flow.app.history(UUID(project))]
        assert types[-2:] == ["ContractSigned", "KickoffHeld"]
        view = await flow.ok("GET", f"/v1/projects/{project}", flow.pm)
        assert view["status"] == "in_progress"


async def test_re_reading_the_event_store_queues_and_sends_nothing_twice(
    settings: Settings, clock: ManualClock, mailbox: Mailbox, receiver: Receiver
) -> None:
    s = with_notifications(settings, mailbox.port)
    async with partner(s, clock) as (svc, flow):
        await subscribe(svc, s, receiver.url, ["*"])
        partner_id = await flow.qualified_partner(4)
        project = await flow.contracted_project(partner_id, FRIDAY)
        await queue(svc)
        while await dispatch(svc):
            pass
        before = await outbox(svc)
        assert {r["status"] for r in before} == {"delivered"}
        mails, posts = len(mailbox.messages), len(receiver.requests)
        events = len(flow.app.history(UUID(partner_id))) + len(flow.app.history(UUID(project)))
        assert mails == 1 and posts == events

        # A rebuild: the position is gone, a new projector reads from 0.
        rt = svc.runtime
        await rt.pool.execute(
            "DELETE FROM projector_positions WHERE name = $1", NOTIFICATIONS_PROJECTOR
        )
        handlers = projector(rt, NOTIFICATIONS_PROJECTOR).handlers
        again = LocalProjector(rt.application, NOTIFICATIONS_PROJECTOR, handlers, rt.pool)
        assert await again.open()
        try:
            assert again.position == 0
            assert await again.catch_up() == flow.app.log_head()
        finally:
            await again.close()
        assert await outbox(svc) == before
        assert await dispatch(svc) == 0
        assert (len(mailbox.messages), len(receiver.requests)) == (mails, posts)


async def test_webhook_api_access_validation_idempotency_and_delivery_log(
    settings: Settings, clock: ManualClock, receiver: Receiver
) -> None:
    week = 7 * 24 * 3600.0  # a failed delivery waits longer than this test's clock moves
    s = with_notifications(settings, None, notify_retry_base_s=week, notify_retry_cap_s=week)
    async with partner(s, clock) as (svc, flow):
        client = svc.client
        hooks = "/v1/notifications/webhooks"
        body = {
            "url": receiver.url,
            "event_types": ["ContractSigned", "KickoffHeld", "MilestoneDelivered"],
        }

        # Only the Director manages subscriptions; the Director and auditors read.
        assert (await client.post(hooks, json=body)).status_code == 401
        for role in ("project_manager", "auditor", "ceo", "partner"):
            who = auth(s, "someone", role, partner_id="p" if role == "partner" else None)
            assert (await client.post(hooks, headers=who, json=body)).status_code == 403
        pm = auth(s, "pm.wang", "project_manager")
        for path in (hooks, "/v1/notifications/deliveries"):
            assert (await client.get(path, headers=pm)).status_code == 403
        denied = await flow.pool.fetchval(
            "SELECT count(*) FROM access_denials WHERE path LIKE '/v1/notifications/%'"
        )
        assert denied == 7

        # Validation names the field.
        async def invalid(payload: dict[str, Any]) -> dict[str, Any]:
            answer = await client.post(hooks, headers=director(s), json=payload)
            assert answer.status_code == 422, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            problem: dict[str, Any] = answer.json()
            return problem

        unknown = await invalid({**body, "event_types": ["ContractSigned", "ProcurementApproved"]})
        assert "partner publishes no ProcurementApproved" in unknown["detail"]
        assert unknown["errors"][0]["field"] == "body.event_types.1"
        ftp = await invalid({**body, "url": "ftp://erp.corp.example/x"})
        assert ftp["errors"][0]["field"] == "body.url"
        assert (await invalid({**body, "event_types": []}))["errors"][0]["field"] == (
            "body.event_types"
        )
        await invalid({**body, "secret": "mine"})  # the secret is always generated

        # Created once per Idempotency-Key; the secret is shown to its creator only.
        key = {**director(s), "Idempotency-Key": "hook-1"}
        first = await client.post(hooks, headers=key, json=body)
        assert first.status_code == 201, first.text
        created = first.json()
        assert created["secret"].startswith("whsec_") and created["active"] is True
        assert first.headers["Location"] == f"{hooks}/{created['id']}"
        again = await client.post(hooks, headers=key, json=body)
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == created
        reused = await client.post(hooks, headers=key, json={**body, "event_types": ["*"]})
        assert reused.status_code == 422
        auditor = auth(s, "audit.zhou", "auditor")
        listed = (await client.get(hooks, headers=auditor)).json()
        assert [h["id"] for h in listed["items"]] == [created["id"]]
        assert "secret" not in listed["items"][0]
        one = await client.get(f"{hooks}/{created['id']}", headers=auditor)
        assert one.status_code == 200 and "secret" not in one.json()

        # The delivery log, filtered and paged, newest first.
        partner_id = await flow.qualified_partner(5)
        project = await flow.contracted_project(partner_id, FRIDAY)
        await queue(svc)
        receiver.fail_next = 1
        assert await dispatch(svc) == 1  # ContractSigned fails once ...
        flow.advance_to(FRIDAY + timedelta(days=2))
        await flow.ok(
            "POST",
            f"/v1/projects/{project}/kickoff",
            flow.pm,
            json=flow.kickoff_body(FRIDAY + timedelta(days=2)),
        )
        await queue(svc)
        assert await dispatch(svc) == 1  # ... KickoffHeld arrives
        log = "/v1/notifications/deliveries"
        page = (await client.get(log, headers=auditor)).json()
        assert [(d["event_type"], d["status"], d["attempts"]) for d in page["items"]] == [
            ("KickoffHeld", "delivered", 1),
            ("ContractSigned", "pending", 1),
        ]
        pending = (await client.get(log, headers=auditor, params={"status": "pending"})).json()
        (waiting,) = pending["items"]
        assert waiting["last_error"].startswith("HTTP 503")
        assert waiting["next_attempt_at"] is not None
        assert waiting["aggregate_id"] == project and waiting["recipient"] == created["id"]
        first_page = (await client.get(log, headers=director(s), params={"limit": 1})).json()
        assert first_page["next_cursor"]
        second_page = (
            await client.get(
                log, headers=director(s), params={"limit": 1, "cursor": first_page["next_cursor"]}
            )
        ).json()
        assert second_page["next_cursor"] is None
        assert [d["id"] for d in first_page["items"] + second_page["items"]] == [
            d["id"] for d in page["items"]
        ]
        by_type = await client.get(log, headers=auditor, params={"event_type": "KickoffHeld"})
        assert [d["event_type"] for d in by_type.json()["items"]] == ["KickoffHeld"]
        assert (await client.get(log, headers=auditor, params={"cursor": "x"})).status_code == 422

        # Ended: its pending delivery is not sent, and nothing new is queued for it.
        assert (await client.delete(f"{hooks}/{created['id']}", headers=pm)).status_code == 403
        ended = await client.delete(f"{hooks}/{created['id']}", headers=director(s))
        assert ended.status_code == 200 and ended.json()["active"] is False
        assert ended.json()["deactivated_by"] == "director.zhang"
        failed = (await client.get(log, headers=auditor, params={"status": "failed"})).json()
        assert [d["last_error"] for d in failed["items"]] == ["subscription deactivated"]
        clock.advance(timedelta(hours=1))
        assert await dispatch(svc) == 0
        await flow.ok(
            "POST",
            f"/v1/projects/{project}/milestones/M1/deliveries",
            flow.pm,
            json={"delivered_on": str(FRIDAY + timedelta(days=2))},
        )
        await queue(svc)
        assert len(await outbox(svc)) == 2
        missing = await client.delete(f"{hooks}/{UUID(int=1)}", headers=director(s))
        assert missing.status_code == 404
