"""A real SMTP server (aiosmtpd) and a real HTTP receiver for notification
tests, and the settings and steps that drive a service's notifications by hand."""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shared.notify_outbox import NOTIFICATIONS_PROJECTOR
from shared.runtime import projector
from shared.settings import Settings
from tests.support.apps import RunningService

PM_TEAM = "pm-team@corp.example"
DIRECTOR_BOX = "director@corp.example"


class Mailbox:
    """aiosmtpd handler: keeps what it was sent."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpts, m in self.messages if address in rcpts]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP endpoint of another enterprise system; can be told to fail."""

    requests: list[Received] = field(default_factory=list)
    fail_next: int = 0
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/partnerledger"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(Received(dict(self.headers.items()), body))
                failing = receiver.fail_next > 0
                receiver.fail_next -= 1 if failing else 0
                self.send_response(503 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def with_notifications(settings: Settings, smtp_port: int | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1" if smtp_port else None,
        "smtp_port": smtp_port or 25,
        "smtp_sender": "Partner Ledger <ledger@corp.example>",
        "smtp_timeout_s": 5.0,
        "notify_email_domain": "corp.example",
        "notify_role_mailboxes": {"project_manager": PM_TEAM, "director": DIRECTOR_BOX},
        "notify_retry_base_s": 60.0,
        "notify_retry_cap_s": 3600.0,
        "notify_max_attempts": 5,
        "notify_poll_interval_s": 0.05,
        "webhook_timeout_s": 5.0,
    }
    values.update(overrides)
    return Settings(**{**settings.model_dump(), **values})


async def queue(svc: RunningService) -> int:
    return await projector(svc.runtime, NOTIFICATIONS_PROJECTOR).catch_up()


async def dispatch(svc: RunningService) -> int:
    assert svc.runtime.notifications is not None
    return await svc.runtime.notifications.dispatch_due()


async def outbox(svc: RunningService) -> list[dict[str, Any]]:
    rows = await svc.runtime.pool.fetch(
        "SELECT * FROM notification_outbox ORDER BY created_at, channel, recipient, id"
    )
    return [dict(r) for r in rows]
