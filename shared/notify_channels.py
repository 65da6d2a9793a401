"""The ways a notification leaves the system (shared.notify): email over SMTP
and HMAC-signed webhooks. A channel sends one delivery and raises on failure;
whether and when to try again is the dispatcher's business
(shared.notify_outbox), so a channel holds no retry logic of its own.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Final, Protocol
from uuid import UUID

import httpx

from shared.notify import (
    DELIVERY_HEADER,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    InvalidWebhookUrl,
    check_public_target,
    check_webhook_url,
    sign,
)
from shared.settings import Settings

EMAIL: Final = "email"
WEBHOOK: Final = "webhook"
USER_AGENT: Final = "PartnerLedger-Notifications/1"
#: How much of a receiver's answer is kept in the delivery log.
ERROR_EXCERPT: Final = 300


@dataclass(frozen=True)
class Delivery:
    """One outbox row being attempted."""

    id: UUID
    channel: str
    recipient: str  # an email address, or the subscription id
    subject: str
    body: str
    event_id: UUID
    event_type: str
    attempt: int
    url: str | None = None  # webhooks
    secret: str | None = None  # webhooks


class DeliveryError(Exception):
    """This attempt failed; a later one may succeed."""


class PermanentDeliveryError(DeliveryError):
    """No later attempt can succeed (a mailbox the server refuses for good,
    a deactivated subscription): the delivery fails now."""


class Channel(Protocol):
    name: str

    async def send(self, delivery: Delivery, now: datetime) -> None:
        """Delivers or raises DeliveryError; `now` is the injected clock's."""
        ...

    async def close(self) -> None: ...


class SmtpChannel:
    """Email through the configured SMTP relay (stdlib smtplib: one short
    connection per message; the volume is a few mails per deadline, not a
    newsletter). It runs on threads of its own: a relay that hangs until the
    timeout must not take the default executor's few threads, which the
    projectors and the deadline engine need."""

    name = EMAIL

    def __init__(self, settings: Settings) -> None:
        if not settings.smtp_host:
            raise ValueError("SmtpChannel needs PL_SMTP_HOST")
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.sender = settings.smtp_sender
        self.envelope_sender = parseaddr(settings.smtp_sender)[1] or settings.smtp_sender
        self.user = settings.smtp_user
        self.password = settings.smtp_password
        self.starttls = settings.smtp_starttls
        self.timeout = settings.smtp_timeout_s
        self.domain = self.envelope_sender.rpartition("@")[2] or "partnerledger"
        # One thread per message of a batch: a queued send would eat its lease waiting.
        self._threads = ThreadPoolExecutor(max_workers=20, thread_name_prefix="smtp")

    def message(self, delivery: Delivery, now: datetime) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = delivery.recipient
        msg["Subject"] = delivery.subject
        msg["Date"] = format_datetime(now)
        # The same Message-ID on every attempt: mail systems drop a duplicate
        # when an attempt did arrive but its answer was lost.
        msg["Message-ID"] = f"<{delivery.id}@{self.domain}>"
        msg[EVENT_TYPE_HEADER] = delivery.event_type
        msg[EVENT_ID_HEADER] = str(delivery.event_id)
        msg[DELIVERY_HEADER] = str(delivery.id)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
        msg.set_content(delivery.body)
        return msg

    async def send(self, delivery: Delivery, now: datetime) -> None:
        message = self.message(delivery, now)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._threads, self._send, message, delivery.recipient)

    def _send(self, message: EmailMessage, recipient: str) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    password = self.password.get_secret_value() if self.password else ""
                    smtp.login(self.user, password)
                smtp.send_message(message, from_addr=self.envelope_sender, to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            error = f"recipient refused: {exc.recipients}"[:ERROR_EXCERPT]
            if codes and all(500 <= code < 600 for code in codes):
                raise PermanentDeliveryError(error) from None
            raise DeliveryError(error) from None
        except smtplib.SMTPResponseException as exc:
            error = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:ERROR_EXCERPT]
            # 5xx is the server's final word on this message (RFC 5321 4.2.1); 4xx
            # is "later". A refused login, sender or greeting is our configuration,
            # not the message: retried, so fixing it delivers what waits.
            ours = (
                smtplib.SMTPAuthenticationError,
                smtplib.SMTPSenderRefused,
                smtplib.SMTPHeloError,
                smtplib.SMTPConnectError,
            )
            if 500 <= exc.smtp_code < 600 and not isinstance(exc, ours):
                raise PermanentDeliveryError(error) from None
            raise DeliveryError(error) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}"[:ERROR_EXCERPT]) from None

    async def close(self) -> None:
        self._threads.shutdown(wait=False)


class WebhookChannel:
    """POSTs the event's envelope (JSON) to a subscription's URL, signed with
    its secret. 2xx is delivered; any other answer, a redirect, a timeout or a
    connection failure is a failed attempt."""

    name = WEBHOOK

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self.production = settings.environment == "production"
        self.allow_private = settings.webhooks_may_reach_private
        self._client = client or httpx.AsyncClient(
            timeout=settings.webhook_timeout_s,
            follow_redirects=False,  # a redirect could lead the signed body anywhere
            headers={"User-Agent": USER_AGENT},
        )

    def headers(self, delivery: Delivery, body: bytes, now: datetime) -> dict[str, str]:
        assert delivery.secret is not None
        return {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(delivery.secret, body, int(now.timestamp())),
            EVENT_TYPE_HEADER: delivery.event_type,
            EVENT_ID_HEADER: str(delivery.event_id),
            DELIVERY_HEADER: str(delivery.id),
        }

    async def send(self, delivery: Delivery, now: datetime) -> None:
        if delivery.url is None or delivery.secret is None:
            raise PermanentDeliveryError("the subscription is gone")
        try:
            url = check_webhook_url(delivery.url, production=self.production)
            if not self.allow_private:  # checked again: DNS may have changed since
                await asyncio.to_thread(check_public_target, url)
        except InvalidWebhookUrl as exc:
            raise PermanentDeliveryError(f"refused URL: {exc}") from None
        body = delivery.body.encode()
        try:
            async with self._client.stream(
                "POST", url, content=body, headers=self.headers(delivery, body, now)
            ) as response:
                if 200 <= response.status_code < 300:
                    return
                excerpt = b""
                async for chunk in response.aiter_bytes():
                    excerpt += chunk
                    if len(excerpt) >= ERROR_EXCERPT:
                        break  # a receiver's error page is not worth reading whole
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}"[:ERROR_EXCERPT]) from None
        text = excerpt[:ERROR_EXCERPT].decode(errors="replace")
        raise DeliveryError(f"HTTP {response.status_code}: {text}"[:ERROR_EXCERPT])

    async def close(self) -> None:
        await self._client.aclose()


def channels_for(settings: Settings) -> list[Channel]:
    """The channels a service runs with: webhooks always, email when an SMTP
    relay is configured."""
    channels: list[Channel] = [WebhookChannel(settings)]
    if settings.smtp_host:
        channels.append(SmtpChannel(settings))
    return channels
