"""Notifications without I/O (shared.notify): the webhook signature a receiver
checks, the retry schedule, who an email goes to, which webhook URLs are
accepted, and the notification settings.

Proves that a signed body verifies with its secret and the signed time, and
that a changed body, another secret, an old or future time, a malformed
header or a replayed header on another body are refused; that retries wait
base, 2 base, 4 base ... up to the cap; that user ids become addresses in the
configured domain (an id with '@' is one already), roles their mailboxes, each
address once, and that whoever has no address is reported, not guessed; that
webhook URLs are http(s) only, https only in production, without credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from shared.notify import (
    InvalidWebhookUrl,
    Notice,
    backoff_delay,
    check_public_target,
    check_webhook_url,
    new_secret,
    one_line,
    resolve_recipients,
    retry_schedule,
    sign,
    verify_signature,
)
from shared.notify_channels import Delivery, SmtpChannel
from shared.notify_outbox import delivery_id
from shared.settings import Settings

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
BODY = b'{"event_type": "ContractSigned", "payload": {"value": "980000.00"}}'


@pytest.fixture(autouse=True)
def _no_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PL_"):
            monkeypatch.delenv(name)


# -- signatures ---------------------------------------------------------------------------


def test_a_signature_verifies_with_its_secret_body_and_time() -> None:
    secret = new_secret()
    header = sign(secret, BODY, int(NOW.timestamp()))
    assert header.startswith(f"t={int(NOW.timestamp())},v1=")
    assert verify_signature(secret, header, BODY, NOW)
    assert verify_signature(secret, header, BODY.decode(), NOW.timestamp())  # str body, unix time
    assert verify_signature(secret, header, BODY, NOW + timedelta(seconds=299))


def test_the_signature_is_hmac_sha256_of_time_dot_body() -> None:
    """What the docs tell receivers to compute, checked independently."""
    t = int(NOW.timestamp())
    expected = hmac.new(b"s3cret", f"{t}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign("s3cret", BODY, t) == f"t={t},v1={expected}"


@pytest.mark.parametrize(
    "tamper",
    [
        "body",
        "secret",
        "too old",
        "from the future",
        "time changed",
        "no v1",
        "no t",
        "garbage",
        "empty",
    ],
)
def test_a_tampered_or_stale_signature_is_refused(tamper: str) -> None:
    secret = new_secret()
    t = int(NOW.timestamp())
    header = sign(secret, BODY, t)
    body, key, now = BODY, secret, NOW
    if tamper == "body":
        body = BODY.replace(b"980000.00", b"1.00")
    elif tamper == "secret":
        key = new_secret()
    elif tamper == "too old":
        now = NOW + timedelta(seconds=301)
    elif tamper == "from the future":
        now = NOW - timedelta(seconds=301)
    elif tamper == "time changed":  # a captured signature with a fresh time
        header = header.replace(f"t={t}", f"t={t + 60}")
        now = NOW + timedelta(seconds=60)
    elif tamper == "no v1":
        header = f"t={t}"
    elif tamper == "no t":
        header = header.split(",", 1)[1]
    elif tamper == "garbage":
        header = "t=abc,v1=zz"
    elif tamper == "empty":
        header = ""
    assert not verify_signature(key, header, body, now)


def test_several_signatures_verify_while_a_secret_rotates() -> None:
    old, new = new_secret(), new_secret()
    t = int(NOW.timestamp())
    header = f"{sign(old, BODY, t)},v1={sign(new, BODY, t).split('v1=')[1]}"
    assert verify_signature(old, header, BODY, NOW)
    assert verify_signature(new, header, BODY, NOW)
    assert not verify_signature(new_secret(), header, BODY, NOW)


def test_the_receiver_snippet_of_the_docs_verifies_our_signatures() -> None:
    """docs/notifications.md shows receivers how to verify: that code must work."""
    doc = (Path(__file__).parents[2] / "docs" / "notifications.md").read_text()
    section = doc.split("### Verifying the signature", 1)[1]
    snippet = section.split("```python", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "docs/notifications.md", "exec"), namespace)
    verify = namespace["verify"]
    secret = new_secret()
    header = sign(secret, BODY, int(time.time()))
    assert verify(secret, header, BODY) is True
    assert verify(secret, header, BODY + b" ") is False
    assert verify(new_secret(), header, BODY) is False
    assert verify(secret, sign(secret, BODY, int(time.time()) - 301), BODY) is False


def test_secrets_are_long_and_unique() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(len(s) >= 40 for s in secrets)


# -- retries ----------------------------------------------------------------------------


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    delays = [backoff_delay(n, base_s=30, cap_s=600).total_seconds() for n in range(1, 9)]
    assert delays == [30, 60, 120, 240, 480, 600, 600, 600]
    assert backoff_delay(10_000, base_s=30, cap_s=600) == timedelta(seconds=600)


def test_the_schedule_has_one_delay_between_each_two_attempts() -> None:
    settings = Settings(notify_retry_base_s=30, notify_retry_cap_s=3600, notify_max_attempts=8)
    schedule = [d.total_seconds() for d in retry_schedule(settings)]
    assert schedule == [30, 60, 120, 240, 480, 960, 1920]  # 7 waits, 8 attempts, ~63 minutes


# -- recipients ---------------------------------------------------------------------------

MAILBOXES = {"director": "director@corp.example", "project_manager": "pm-team@corp.example"}


def test_users_and_roles_become_addresses_each_once() -> None:
    notice = Notice(
        "Kickoff due",
        "...",
        to_users=("pm.wang", "Lin.Xiao@vendor.example", "pm.wang"),
        to_roles=("project_manager", "director"),
    )
    resolved = resolve_recipients(notice, email_domain="corp.example", role_mailboxes=MAILBOXES)
    assert resolved.addresses == (
        "pm.wang@corp.example",
        "Lin.Xiao@vendor.example",
        "pm-team@corp.example",
        "director@corp.example",
    )
    assert resolved.unresolved == ()


def test_who_has_no_address_is_reported_not_guessed() -> None:
    notice = Notice("s", "b", to_users=("pm.wang", "bad@@x", ""), to_roles=("ceo",))
    resolved = resolve_recipients(notice, email_domain=None, role_mailboxes=MAILBOXES)
    assert resolved.addresses == ()
    assert resolved.unresolved == ("user pm.wang", "user bad@@x", "user ", "role ceo")


def test_an_address_that_could_inject_a_header_is_refused() -> None:
    notice = Notice("s", "b", to_users=("eve@corp.example\r\nBcc: all@corp.example",))
    resolved = resolve_recipients(notice, email_domain="corp.example", role_mailboxes={})
    assert resolved.addresses == ()


def test_recipients_must_be_tuples_not_strings() -> None:
    with pytest.raises(TypeError, match="to_roles"):
        Notice("s", "b", to_roles="director")  # type: ignore[arg-type]


def test_a_subject_is_one_bounded_line() -> None:
    assert one_line("Kickoff\r\nBcc: x@y.z  due") == "Kickoff Bcc: x@y.z due"
    assert len(one_line("长" * 500)) == 200


def test_a_mail_says_which_event_and_delivery_it_is() -> None:
    settings = Settings(smtp_host="127.0.0.1", smtp_sender="Partner Ledger <ledger@corp.example>")
    event_id = uuid4()
    delivery = Delivery(
        id=delivery_id("email", event_id, "pm@corp.example"),
        channel="email",
        recipient="pm@corp.example",
        subject="启动会截止 2026-12-04",
        body="请在截止前召开启动会。",
        event_id=event_id,
        event_type="ContractSigned",
        attempt=1,
    )
    message = SmtpChannel(settings).message(delivery, NOW)
    assert message["Subject"] == "启动会截止 2026-12-04"
    assert message["Message-ID"] == f"<{delivery.id}@corp.example>"
    assert message["X-PartnerLedger-Event-Id"] == str(event_id)
    assert message.get_content().strip() == "请在截止前召开启动会。"


def test_delivery_ids_are_stable_per_channel_event_recipient_and_notice() -> None:
    event = uuid4()
    assert delivery_id("email", event, "A@corp.example") == delivery_id(
        "email", event, "a@corp.example"
    )
    distinct = {
        delivery_id("email", event, "a@corp.example"),
        delivery_id("email", event, "a@corp.example", 1),
        delivery_id("email", event, "b@corp.example"),
        delivery_id("webhook", event, "a@corp.example"),
        delivery_id("email", uuid4(), "a@corp.example"),
    }
    assert len(distinct) == 5


# -- webhook URLs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["https://erp.corp.example/hooks/pl", "http://127.0.0.1:8080/hook", "https://h:443/p?q=1"],
)
def test_http_and_https_urls_are_accepted(url: str) -> None:
    assert check_webhook_url(url, production=False) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://files.corp.example/x", "https://"),
        ("file:///etc/passwd", "https://"),
        ("javascript:alert(1)", "https://"),
        ("https://", "no host"),
        ("https://user:pw@erp.corp.example/h", "credentials"),
        ("https://erp.corp.example/h#frag", "fragment"),
        ("https://erp.corp.example:99999/h", "range"),
    ],
)
def test_other_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(InvalidWebhookUrl, match=reason):
        check_webhook_url(url, production=False)


def test_production_sends_over_https_only() -> None:
    with pytest.raises(InvalidWebhookUrl, match="https only"):
        check_webhook_url("http://erp.corp.example/h", production=True)
    assert check_webhook_url("https://erp.corp.example/h", production=True)


# -- settings ---------------------------------------------------------------------------


def test_notification_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PL_SMTP_HOST", "smtp.corp.example")
    monkeypatch.setenv("PL_SMTP_PORT", "587")
    monkeypatch.setenv("PL_SMTP_STARTTLS", "true")
    monkeypatch.setenv("PL_SMTP_PASSWORD", "pw")
    monkeypatch.setenv("PL_NOTIFY_EMAIL_DOMAIN", "@Corp.Example")
    monkeypatch.setenv("PL_NOTIFY_ROLE_MAILBOXES", '{"director": "director@corp.example"}')
    settings = Settings()
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_starttls) == (
        "smtp.corp.example",
        587,
        True,
    )
    assert settings.notify_email_domain == "corp.example"
    assert settings.notify_role_mailboxes == {"director": "director@corp.example"}
    assert "pw" not in repr(settings)  # the SMTP password is a secret


@pytest.mark.parametrize(
    "overrides",
    [
        {"notify_role_mailboxes": {"director": "not an address"}},
        {"notify_role_mailboxes": {"Director!": "d@corp.example"}},
        {"notify_email_domain": "corp example"},
        {"notify_retry_base_s": 60, "notify_retry_cap_s": 30},
        {"notify_lease_s": 5, "webhook_timeout_s": 10},
        {"smtp_sender": "Partner Ledger"},
        {"smtp_sender": "ledger@corp.example\r\nBcc: all@corp.example"},
    ],
)
def test_bad_notification_settings_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5432/",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://localhost/hook",
        "https://0.0.0.0/hook",
    ],
)
def test_webhooks_never_reach_internal_addresses(url: str) -> None:
    """A webhook is not a way to make the service call internal systems (loopback,
    private, link-local cloud metadata, reserved), however the address is written."""
    with pytest.raises(InvalidWebhookUrl, match="internal address"):
        check_public_target(url)


def test_a_public_address_is_a_webhook_target() -> None:
    check_public_target("https://93.184.216.34/hooks")  # a global address, no DNS needed


def test_private_targets_are_refused_in_production_unless_allowed() -> None:
    assert Settings(environment="development").webhooks_may_reach_private
    assert not Settings(environment="production").webhooks_may_reach_private
    assert Settings(
        environment="production", webhook_allow_private_targets=True
    ).webhooks_may_reach_private
