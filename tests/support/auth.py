"""Bearer tokens for tests, signed like the embedded dev tokens."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.auth import TokenIssuer
from shared.settings import Settings


def token_for(settings: Settings, user: str, role: str, partner_id: str | None = None) -> str:
    return TokenIssuer(settings).mint(user, role, partner_id=partner_id, now=datetime.now(UTC))


def auth(
    settings: Settings, user: str = "alice", role: str = "director", partner_id: str | None = None
) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(settings, user, role, partner_id)}"}
