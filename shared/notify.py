"""Notifications: the push side of the inboxes (R3.5: every process node has a
time limit, and the people who must act hear of it when it opens, is
escalated or passes).

What a service declares is small: for some of its event types, a `NoticeRule`
that says who should be told what (`ServiceSpec.notices`). Everything else is
shared and the same in every service (docs/notifications.md):

- `shared.notify_outbox.NotificationEnqueuer` follows the service's own event
  store as a local projector and queues one outbox row per email recipient
  and per matching webhook subscription, in the projector's transaction, so a
  delivery is queued exactly once across crashes and replays;
- `shared.notify_outbox.NotificationDispatcher` sends due rows through the
  channels of `shared.notify_channels` (SMTP, signed webhooks), retrying with
  backoff; the outbox is the delivery log;
- `shared.notify_api` lets the Director manage webhook subscriptions and
  read the log.

A notification never blocks or undoes a command: commands only store events;
notices are derived from stored events afterwards.

This module holds the parts without I/O (the interface, recipients, webhook
signatures, the retry schedule), so a receiver can import `verify_signature`
without the rest.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from shared.policy import Policy
from shared.settings import MAILBOX, Settings

# -- what a service declares -------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """One message about one event, to people named by user id or by role."""

    subject: str
    body: str
    to_users: tuple[str, ...] = ()  # user ids (token subjects)
    to_roles: tuple[str, ...] = ()  # role names (dept_head, finance, ceo, director, ...)

    def __post_init__(self) -> None:
        # A bare string would be read as a tuple of one-letter recipients.
        for name in ("to_users", "to_roles"):
            if isinstance(getattr(self, name), str):
                raise TypeError(f"Notice.{name} must be a tuple of strings, not a string")


#: Given a stored domain event of the service (a shared.domain.LedgerAggregate.Event
#: instance, with .EVENT_TYPE, .originator_id, .event_id, .timestamp and its payload
#: attributes), the notices it causes. A pure function of the event: it runs again
#: when the event store is re-read, and must then say the same.
NoticeRule = Callable[[Any], Sequence[Notice]]


def no_notices(policy: Policy) -> Mapping[str, NoticeRule]:
    """The default of `ServiceSpec.notices`: webhooks only."""
    return {}


# -- recipients -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipients:
    addresses: tuple[str, ...]
    #: Users and roles that have no address: logged, never an error (a
    #: missing mailbox must not stop the other recipients or the projector).
    unresolved: tuple[str, ...]


def resolve_recipients(
    notice: Notice, *, email_domain: str | None, role_mailboxes: Mapping[str, str]
) -> Recipients:
    """Email addresses of a notice: a user id containing '@' is an address
    already; another becomes user@email_domain; a role is its configured
    mailbox. Each address once, in the order named."""
    addresses: list[str] = []
    unresolved: list[str] = []

    def add(address: str, who: str) -> None:
        if not MAILBOX.fullmatch(address):
            unresolved.append(who)
        elif address.lower() not in (a.lower() for a in addresses):
            addresses.append(address)

    for raw in notice.to_users:
        user = raw.strip()
        if "@" in user:
            add(user, f"user {user}")
        elif email_domain and user:
            add(f"{user}@{email_domain}", f"user {user}")
        else:
            unresolved.append(f"user {user}")
    for role in notice.to_roles:
        mailbox = role_mailboxes.get(role)
        if mailbox:
            add(mailbox, f"role {role}")
        else:
            unresolved.append(f"role {role}")
    return Recipients(tuple(addresses), tuple(unresolved))


def one_line(text: str, limit: int = 200) -> str:
    """A subject as a mail header can carry it: one line, bounded."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# -- webhook signatures ---------------------------------------------------------------------

SIGNATURE_HEADER: Final = "X-PartnerLedger-Signature"
EVENT_TYPE_HEADER: Final = "X-PartnerLedger-Event-Type"
EVENT_ID_HEADER: Final = "X-PartnerLedger-Event-Id"
DELIVERY_HEADER: Final = "X-PartnerLedger-Delivery"
SIGNATURE_TOLERANCE_S: Final = 300


def new_secret() -> str:
    """A subscription's signing secret (256 bits)."""
    return "whsec_" + secrets.token_urlsafe(32)


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.
    The time is signed too, so a captured request cannot be replayed later."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes | str,
    now: datetime | float,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
) -> bool:
    """True if `header` signs exactly `body` with `secret`, at a time within
    `tolerance_s` of `now` (a datetime or unix seconds). Several v1 values are
    accepted (one per secret while a receiver rotates)."""
    raw = body.encode() if isinstance(body, str) else body
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = now.timestamp() if isinstance(now, datetime) else float(now)
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = _digest(secret, timestamp, raw)
    # compare_digest on each: no early exit that would leak how much matched
    return any(hmac.compare_digest(expected, c) for c in candidates)


class InvalidWebhookUrl(ValueError):
    pass


def check_webhook_url(url: str, *, production: bool) -> str:
    """A webhook target: http(s) with a host, no credentials (they would end up
    in logs and the API), no fragment; https only in production."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise InvalidWebhookUrl("the URL must start with https:// (or http:// outside production)")
    if production and parts.scheme != "https":
        raise InvalidWebhookUrl("production sends webhooks over https only")
    if not parts.hostname:
        raise InvalidWebhookUrl("the URL has no host")
    if parts.username or parts.password:
        raise InvalidWebhookUrl("put no credentials in the URL: verify the signature instead")
    if parts.fragment:
        raise InvalidWebhookUrl("the URL must not have a #fragment")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise InvalidWebhookUrl(str(exc)) from None
    return url.strip()


def _internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def check_public_target(url: str) -> None:
    """Refuses a webhook whose host is, or resolves to, a loopback, private,
    link-local (cloud metadata) or reserved address: a webhook must not be a
    way to make this service call internal systems. Resolves by DNS (blocking:
    call it in a thread)."""
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidWebhookUrl(f"the host {host!r} does not resolve ({exc})") from None
    internal = sorted({str(i[4][0]) for i in infos if _internal(str(i[4][0]))})
    if internal:
        raise InvalidWebhookUrl(
            f"the host {host!r} is an internal address ({', '.join(internal)});"
            " webhooks go to other systems' public endpoints"
        )


# -- the retry schedule ------------------------------------------------------------------


def backoff_delay(attempts: int, *, base_s: float, cap_s: float) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt: base, 2 base,
    4 base, ... up to the cap. No jitter: every replica computes the same time,
    and a receiver that comes back is not flooded because rows are claimed in
    batches in order of due time."""
    exponent = min(max(attempts, 1) - 1, 62)  # 2**62 s is past any cap
    return timedelta(seconds=min(base_s * (2**exponent), cap_s))


def retry_schedule(settings: Settings) -> list[timedelta]:
    """The delays between the attempts of one delivery (for docs and status)."""
    return [
        backoff_delay(n, base_s=settings.notify_retry_base_s, cap_s=settings.notify_retry_cap_s)
        for n in range(1, settings.notify_max_attempts)
    ]
