"""The notification outbox (shared.notify): queueing exactly once, delivering
at least once.

Queueing. `NotificationEnqueuer` supplies the handlers of a local projector
named "notifications" (shared.projector) over the service's own event store.
For each event it inserts one `notification_outbox` row per email recipient
of the service's notice rule and one per active webhook subscription that
wants the event's type, in the projector's transaction. A row's id is derived
from (channel, event id, recipient, notice number), and the insert ignores an
existing id, so a crash, a restart or a projector re-run from position 0
queues nothing twice; the same id is sent along as `X-PartnerLedger-Delivery`
for receivers to deduplicate on.

Delivering. `NotificationDispatcher.dispatch_due()` claims due rows in one
short statement (`FOR UPDATE SKIP LOCKED`, moving `next_attempt_at` one lease
ahead and counting the attempt), sends them with no transaction open, then
records the outcome: delivered; or failed for now, due again after a backoff;
or failed for good after the last attempt. A replica never picks up a row
another one holds within its lease; a worker that died mid-send leaves the
row to be retried when the lease runs out (at-least-once). Due-ness is
decided on the injected clock, so tests move time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Final

import asyncpg
from prometheus_client import Counter

from shared.catalogue import EventCatalogue
from shared.clock import Clock
from shared.db import DbConn
from shared.notify import NoticeRule, backoff_delay, one_line, resolve_recipients
from shared.notify_channels import (
    EMAIL,
    WEBHOOK,
    Channel,
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
)
from shared.projector import ProjectionHandler
from shared.resilience import run_forever, sleep_unless
from shared.settings import Settings

log = logging.getLogger(__name__)

#: The name of the local projector that queues notifications (projector_positions).
NOTIFICATIONS_PROJECTOR: Final = "notifications"
DELIVERY_NAMESPACE: Final = uuid.UUID("9d3c1f1e-5c0b-5d61-8f0e-6a1f2b7c4e90")
#: Longest stored email body; a rule that writes more is cut, not refused.
MAX_BODY: Final = 100_000

NOTIFICATIONS = Counter(
    "pl_notifications_total",
    "Notification deliveries and what became of them",
    # queued | delivered | retry | failed | rule_error
    ["service", "channel", "outcome"],
)


def delivery_id(channel: str, event_id: uuid.UUID, recipient: str, notice_no: int = 0) -> uuid.UUID:
    """The outbox row id: the same on every re-read of the event store."""
    return uuid.uuid5(DELIVERY_NAMESPACE, f"{channel}/{event_id}/{recipient.lower()}/{notice_no}")


# -- queueing ----------------------------------------------------------------------------


class NotificationEnqueuer:
    """Turns stored events into outbox rows (inside the projector's transaction)."""

    def __init__(
        self,
        service: str,
        catalogue: EventCatalogue,
        rules: Mapping[str, NoticeRule],
        settings: Settings,
    ) -> None:
        unknown = sorted(set(rules) - set(catalogue.by_type))
        if unknown:
            raise ValueError(f"notice rules for event types {service} does not have: {unknown}")
        self.service = service
        self.catalogue = catalogue
        self.rules = dict(rules)
        self.email_domain = settings.notify_email_domain
        self.role_mailboxes = dict(settings.notify_role_mailboxes)
        self.email = bool(settings.smtp_host)
        if self.rules and not self.email:
            log.info(
                "%s: PL_SMTP_HOST is not set, so no email notifications are queued"
                " (webhooks still are)",
                service,
            )

    def handlers(self) -> dict[str, ProjectionHandler]:
        """One handler for every event type: webhooks may subscribe to any."""
        return {event_type: self.on_event for event_type in self.catalogue.by_type}

    async def on_event(self, conn: DbConn, event: Any) -> None:
        if self.email:
            await self._queue_email(conn, event)
        await self._queue_webhooks(conn, event)

    def _notices(self, event: Any) -> list[Any]:
        rule = self.rules.get(event.EVENT_TYPE)
        if rule is None:
            return []
        try:
            return list(rule(event))
        except Exception:
            # A bug in one rule must not stall the projector, and so every later
            # notification and webhook of the service: log it loudly, go on.
            NOTIFICATIONS.labels(self.service, EMAIL, "rule_error").inc()
            log.exception("notice rule for %s failed on event %s", event.EVENT_TYPE, event.event_id)
            return []

    async def _queue_email(self, conn: DbConn, event: Any) -> None:
        rows: list[tuple[Any, ...]] = []
        for notice_no, notice in enumerate(self._notices(event)):
            recipients = resolve_recipients(
                notice, email_domain=self.email_domain, role_mailboxes=self.role_mailboxes
            )
            for who in recipients.unresolved:
                log.warning(
                    "%s notice %r of event %s: no email address for %s (see PL_NOTIFY_EMAIL_DOMAIN"
                    " and PL_NOTIFY_ROLE_MAILBOXES)",
                    event.EVENT_TYPE,
                    notice.subject,
                    event.event_id,
                    who,
                )
            for address in recipients.addresses:
                rows.append(
                    (
                        delivery_id(EMAIL, event.event_id, address, notice_no),
                        EMAIL,
                        event.event_id,
                        event.EVENT_TYPE,
                        event.originator_id,
                        address,
                        None,
                        notice_no,
                        one_line(notice.subject),
                        notice.body[:MAX_BODY],
                        event.timestamp,
                    )
                )
        await self._insert(conn, rows)

    async def _queue_webhooks(self, conn: DbConn, event: Any) -> None:
        # A subscription receives the events recorded from its creation on: a
        # re-read of the store does not send it the history it never asked for.
        subscriptions = await conn.fetch(
            "SELECT id FROM webhook_subscriptions WHERE active AND created_at <= $1"
            " AND event_types && $2::text[]",
            event.timestamp,
            [event.EVENT_TYPE, "*"],
        )
        if not subscriptions:
            return
        envelope = self.catalogue.to_envelope(event).model_dump_json()
        rows = []
        for row in subscriptions:
            subscription = uuid.UUID(str(row["id"]))
            rows.append(
                (
                    delivery_id(WEBHOOK, event.event_id, str(subscription)),
                    WEBHOOK,
                    event.event_id,
                    event.EVENT_TYPE,
                    event.originator_id,
                    str(subscription),
                    subscription,
                    0,
                    event.EVENT_TYPE,
                    envelope,
                    event.timestamp,
                )
            )
        await self._insert(conn, rows)

    async def _insert(self, conn: DbConn, rows: Sequence[tuple[Any, ...]]) -> None:
        # The event's own time is when it becomes due: the injected clock, never now().
        for row in rows:
            status: str = await conn.execute(
                "INSERT INTO notification_outbox (id, channel, event_id, event_type, aggregate_id,"
                " recipient, subscription_id, notice_no, subject, body, next_attempt_at,"
                " created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $11)"
                " ON CONFLICT DO NOTHING",
                *row,
            )
            if status.endswith(" 1"):  # "INSERT 0 1": new; "INSERT 0 0": queued before
                NOTIFICATIONS.labels(self.service, row[1], "queued").inc()


async def start_at_head(pool: asyncpg.Pool, head: int) -> None:
    """A service that gets notifications for the first time starts at the head
    of its event store: switching them on must not mail about last year's
    contracts. Afterwards the stored position rules (a no-op)."""
    await pool.execute(
        "INSERT INTO projector_positions (name, position) VALUES ($1, $2)"
        " ON CONFLICT (name) DO NOTHING",
        NOTIFICATIONS_PROJECTOR,
        head,
    )


# -- delivering ----------------------------------------------------------------------------


class NotificationDispatcher:
    def __init__(
        self,
        service: str,
        pool: asyncpg.Pool,
        clock: Clock,
        settings: Settings,
        channels: Sequence[Channel],
        *,
        batch: int = 20,
    ) -> None:
        self.service = service
        self.pool = pool
        self.clock = clock
        self.channels = {c.name: c for c in channels}
        self.batch = batch
        self.base_s = settings.notify_retry_base_s
        self.cap_s = settings.notify_retry_cap_s
        self.max_attempts = settings.notify_max_attempts
        self.lease = timedelta(seconds=settings.notify_lease_s)
        self.interval_s = settings.notify_poll_interval_s
        self.sent = 0

    async def run(self, stop: asyncio.Event) -> None:
        async def loop() -> None:
            while not stop.is_set():
                while await self.dispatch_due() and not stop.is_set():
                    pass
                await sleep_unless(stop, self.interval_s)

        try:
            await run_forever(f"notifications {self.service}", loop, stop)
        finally:
            await self.close()

    async def close(self) -> None:
        for channel in self.channels.values():
            try:
                await channel.close()
            except Exception:  # closing is best effort at shutdown
                log.debug("closing channel %s failed", channel.name, exc_info=True)

    async def dispatch_due(self) -> int:
        """Attempts the deliveries due by now (one batch); returns how many."""
        now = self.clock.now()
        claimed = await self.pool.fetch(
            "WITH due AS (SELECT id FROM notification_outbox WHERE status = 'pending'"
            " AND next_attempt_at <= $1 AND channel = ANY($2::text[])"
            " ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)"
            " UPDATE notification_outbox o SET attempts = o.attempts + 1,"
            " next_attempt_at = $4, updated_at = $1 FROM due WHERE o.id = due.id"
            " RETURNING o.id, o.channel, o.recipient, o.subscription_id, o.subject, o.body,"
            " o.event_id, o.event_type, o.attempts",
            now,
            list(self.channels),
            self.batch,
            now + self.lease,
        )
        if not claimed:
            return 0
        subscription_ids = [r["subscription_id"] for r in claimed if r["subscription_id"]]
        subscriptions = {
            str(r["id"]): r
            for r in await self.pool.fetch(
                "SELECT id, url, secret, active FROM webhook_subscriptions WHERE id = ANY($1)",
                subscription_ids,
            )
        }
        outcomes = await asyncio.gather(
            *(self._attempt(row, subscriptions) for row in claimed), return_exceptions=True
        )
        for outcome in outcomes:  # all attempts ran; now let the loop see a database failure
            if isinstance(outcome, BaseException):
                raise outcome
        return len(claimed)

    async def _attempt(self, row: asyncpg.Record, subscriptions: Mapping[str, Any]) -> None:
        subscription = subscriptions.get(str(row["subscription_id"]))
        delivery = Delivery(
            id=uuid.UUID(str(row["id"])),
            channel=row["channel"],
            recipient=row["recipient"],
            subject=row["subject"],
            body=row["body"],
            event_id=uuid.UUID(str(row["event_id"])),
            event_type=row["event_type"],
            attempt=row["attempts"],
            url=subscription["url"] if subscription else None,
            secret=subscription["secret"] if subscription else None,
        )
        error: str | None = None
        final = False
        try:
            if row["channel"] == WEBHOOK and (subscription is None or not subscription["active"]):
                raise PermanentDeliveryError("subscription deactivated")
            # Per-operation socket timeouts do not bound a whole send: the lease
            # must, or a second worker would send it again meanwhile.
            await asyncio.wait_for(
                self.channels[row["channel"]].send(delivery, self.clock.now()),
                timeout=self.lease.total_seconds() * 0.8,
            )
        except TimeoutError:
            error = f"no answer within {self.lease.total_seconds() * 0.8:.0f} s"
        except PermanentDeliveryError as exc:
            error, final = str(exc) or type(exc).__name__, True
        except DeliveryError as exc:
            error = str(exc) or type(exc).__name__
        except Exception as exc:  # a bug in a channel is a failed attempt, not a dead worker
            log.exception("notification %s: channel %s failed", delivery.id, delivery.channel)
            error = f"{type(exc).__name__}: {exc}"[:300]
        await self._record(delivery, error, final)

    async def _record(self, delivery: Delivery, error: str | None, final: bool) -> None:
        now = self.clock.now()
        # `attempts = $2` fences out a worker whose lease ran out meanwhile: the
        # row belongs to whoever claimed it last.
        if error is None:
            outcome = "delivered"
            await self.pool.execute(
                "UPDATE notification_outbox SET status = 'delivered', delivered_at = $3,"
                " next_attempt_at = NULL, last_error = NULL, updated_at = $3"
                " WHERE id = $1 AND attempts = $2 AND status = 'pending'",
                delivery.id,
                delivery.attempt,
                now,
            )
            self.sent += 1
        elif final or delivery.attempt >= self.max_attempts:
            outcome = "failed"
            await self.pool.execute(
                "UPDATE notification_outbox SET status = 'failed', next_attempt_at = NULL,"
                " last_error = $3, updated_at = $4"
                " WHERE id = $1 AND attempts = $2 AND status = 'pending'",
                delivery.id,
                delivery.attempt,
                error,
                now,
            )
            log.warning(
                "notification %s (%s %s to %s) failed for good after %s attempts: %s",
                delivery.id,
                delivery.channel,
                delivery.event_type,
                delivery.recipient,
                delivery.attempt,
                error,
            )
        else:
            outcome = "retry"
            retry_at = now + backoff_delay(delivery.attempt, base_s=self.base_s, cap_s=self.cap_s)
            await self.pool.execute(
                "UPDATE notification_outbox SET next_attempt_at = $3, last_error = $4,"
                " updated_at = $5 WHERE id = $1 AND attempts = $2 AND status = 'pending'",
                delivery.id,
                delivery.attempt,
                retry_at,
                error,
                now,
            )
            log.info(
                "notification %s attempt %s failed (%s); next at %s",
                delivery.id,
                delivery.attempt,
                error,
                retry_at.isoformat(),
            )
        NOTIFICATIONS.labels(self.service, delivery.channel, outcome).inc()


async def outbox_counts(conn: DbConn) -> dict[str, int]:
    """Outbox rows by status (for the status endpoint)."""
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM notification_outbox GROUP BY status ORDER BY status"
    )
    return {r["status"]: int(r["n"]) for r in rows}
