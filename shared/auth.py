"""Bearer JWT authentication and role checks (DESIGN.md section 5).

Embedded mode signs HS256 tokens with a dev key generated once into the data
directory (`partnerledger token` mints them). Production sets PL_JWT_JWKS_URL
and verifies RS256/ES256/EdDSA tokens from the configured issuer; then no
shared secret exists at all.

Claims: `sub` (user id), `role` (one of ROLES), `partner_id` (required for
the `partner` role: an external vendor sees only its own projects), `iss`,
`aud`, `iat`, `exp` (required), `nbf` (optional).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import jwt

from shared.domain import Actor
from shared.settings import Settings

DIRECTOR: Final = "director"
PROJECT_MANAGER: Final = "project_manager"
SPECIALIST: Final = "specialist"
DEPT_HEAD: Final = "dept_head"
FINANCE: Final = "finance"
CEO: Final = "ceo"
AUDITOR: Final = "auditor"
PARTNER: Final = "partner"

ROLES: tuple[str, ...] = (
    DIRECTOR,
    PROJECT_MANAGER,
    SPECIALIST,
    DEPT_HEAD,
    FINANCE,
    CEO,
    AUDITOR,
    PARTNER,
)
#: The outsourcing department itself (R2.2): Director -> PM -> Specialist.
DEPARTMENT: tuple[str, ...] = (DIRECTOR, PROJECT_MANAGER, SPECIALIST)

ASYMMETRIC_ALGORITHMS = ["RS256", "ES256", "EdDSA"]


class AuthError(Exception):
    """The request carries no valid credentials (401)."""


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: str
    partner_id: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.user_id, role=self.role, partner_id=self.partner_id)


def dev_key_path(settings: Settings) -> Path:
    return settings.data_dir / "keys" / "jwt-dev.key"


def signing_secret(settings: Settings) -> str:
    """The HS256 secret: configured, or the dev key (created on first use)."""
    if settings.jwt_secret:
        return settings.jwt_secret
    if settings.environment == "production":
        raise RuntimeError(
            "PL_ENVIRONMENT=production needs PL_JWT_JWKS_URL (or PL_JWT_SECRET);"
            " the generated development key is refused"
        )
    path = dev_key_path(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # atomic create: the first process to start wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


class TokenIssuer:
    """Mints dev tokens (embedded mode and tests)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._secret = signing_secret(settings)

    def mint(
        self,
        user_id: str,
        role: str,
        *,
        now: datetime,
        partner_id: str | None = None,
        ttl: timedelta = timedelta(hours=8),
        extra: dict[str, Any] | None = None,
    ) -> str:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        if role == PARTNER and not partner_id:
            raise ValueError("a partner token needs --partner-id")
        claims: dict[str, Any] = {
            "sub": user_id,
            "role": role,
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
        }
        if partner_id:
            claims["partner_id"] = partner_id
        claims.update(extra or {})
        return jwt.encode(claims, self._secret, algorithm="HS256")


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._jwks: jwt.PyJWKClient | None = None
        self._secret: str | None = None
        if settings.jwt_jwks_url:
            # The JWK set is cached; an unknown key id refetches it at most once
            # per cooldown, so random key ids cannot make us hammer the issuer.
            self._jwks = jwt.PyJWKClient(
                settings.jwt_jwks_url, cache_keys=True, timeout=5, cooldown_duration=30
            )
        else:
            self._secret = signing_secret(settings)

    def verify(self, token: str) -> Principal:
        try:
            if self._jwks is not None:
                key: Any = self._jwks.get_signing_key_from_jwt(token).key
                algorithms = ASYMMETRIC_ALGORITHMS
            else:
                key = self._secret
                algorithms = ["HS256"]
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                leeway=self.settings.jwt_leeway_s,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthError("token not yet valid") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError("token audience is not this system") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError("token issuer is not trusted") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        role = claims.get("role")
        if role not in ROLES:
            raise AuthError(f"token role {role!r} is not one of {', '.join(ROLES)}")
        partner_id = claims.get("partner_id")
        if partner_id is not None and (not isinstance(partner_id, str) or len(partner_id) > 200):
            raise AuthError("partner_id must be a string")
        if role == PARTNER and not partner_id:
            raise AuthError("a partner token must carry partner_id")
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub or len(sub) > 200:
            raise AuthError("token subject must be a non-empty string")
        return Principal(user_id=sub, role=role, partner_id=partner_id)
