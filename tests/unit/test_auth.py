"""DESIGN.md section 5 (security) and R2.2 (the roles of the department):
bearer JWT authentication.

Proves that `shared.auth.TokenVerifier` accepts exactly the HS256 tokens that
`TokenIssuer` mints for this system (right signature, audience, issuer, time
window, a known role, a partner id for the `partner` role, a subject) and
rejects every other token with an `AuthError` saying why; that the issuer
refuses to mint a token the verifier would reject; and that embedded mode's
dev signing key is created once, private to its owner (mode 0600) and reused.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from shared.auth import (
    DEPARTMENT,
    DIRECTOR,
    PARTNER,
    ROLES,
    AuthError,
    Principal,
    TokenIssuer,
    TokenVerifier,
    dev_key_path,
    signing_secret,
)
from shared.domain import Actor
from shared.settings import Settings

SECRET = "unit-secret-" + "x" * 40
OTHER_SECRET = "other-secret-" + "y" * 40


def _now() -> datetime:
    # Read at use: PyJWT checks against the real clock, and collection may be long before.
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _no_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults under test must not be overridden by the developer's shell."""
    for name in list(os.environ):
        if name.startswith("PL_") or name in {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"}:
            monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(jwt_secret=SECRET, data_dir=tmp_path)


@pytest.fixture
def verifier(settings: Settings) -> TokenVerifier:
    return TokenVerifier(settings)


def _claims(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Valid claims for `alice` the director; an override of `...` drops the claim."""
    claims: dict[str, Any] = {
        "sub": "alice",
        "role": DIRECTOR,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": int(_now().timestamp()),
        "exp": int((_now() + timedelta(hours=1)).timestamp()),
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not ...}


def _sign(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def _b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _ts(delta: timedelta) -> int:
    return int((_now() + delta).timestamp())


# --- accepted tokens ------------------------------------------------------------


@pytest.mark.parametrize("role", [r for r in ROLES if r != PARTNER])
def test_minted_internal_token_verifies_to_its_principal(
    settings: Settings, verifier: TokenVerifier, role: str
) -> None:
    token = TokenIssuer(settings).mint("alice", role, now=_now())
    assert verifier.verify(token) == Principal(user_id="alice", role=role, partner_id=None)


def test_minted_partner_token_carries_the_partner_id(
    settings: Settings, verifier: TokenVerifier
) -> None:
    token = TokenIssuer(settings).mint("vendor-1", PARTNER, partner_id="p-42", now=_now())
    principal = verifier.verify(token)
    assert principal == Principal(user_id="vendor-1", role=PARTNER, partner_id="p-42")
    assert principal.actor == Actor(user_id="vendor-1", role=PARTNER, partner_id="p-42")


def test_minted_token_has_the_configured_issuer_audience_and_lifetime(settings: Settings) -> None:
    token = TokenIssuer(settings).mint("alice", DIRECTOR, now=_now(), ttl=timedelta(minutes=5))
    claims = jwt.decode(
        token,
        SECRET,
        algorithms=["HS256"],
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert claims["iss"] == settings.jwt_issuer
    assert claims["aud"] == settings.jwt_audience
    assert claims["iat"] == claims["nbf"] == int(_now().timestamp())
    assert claims["exp"] == int((_now() + timedelta(minutes=5)).timestamp())
    assert "partner_id" not in claims


def test_department_roles_are_the_three_levels_of_r2_2() -> None:
    assert DEPARTMENT == ("director", "project_manager", "specialist")
    assert set(DEPARTMENT) <= set(ROLES)


def test_expiry_within_the_leeway_is_still_accepted(
    settings: Settings, verifier: TokenVerifier
) -> None:
    assert settings.jwt_leeway_s == 30
    token = _sign(_claims(settings, exp=_ts(timedelta(seconds=-10))))
    assert verifier.verify(token).user_id == "alice"


# --- rejected tokens ------------------------------------------------------------


def _rejected(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(AuthError) as info:
        verifier.verify(token)
    return str(info.value)


def test_wrong_signature_is_rejected(settings: Settings, verifier: TokenVerifier) -> None:
    message = _rejected(verifier, _sign(_claims(settings), OTHER_SECRET))
    assert "invalid token" in message
    assert "signature" in message.lower()


def test_tampered_payload_is_rejected(settings: Settings, verifier: TokenVerifier) -> None:
    header, _, signature = _sign(_claims(settings)).split(".")
    forged = ".".join([header, _b64url(_claims(settings, sub="mallory")), signature])
    assert "signature" in _rejected(verifier, forged).lower()


def test_expired_token_is_rejected(settings: Settings, verifier: TokenVerifier) -> None:
    token = _sign(_claims(settings, exp=_ts(timedelta(seconds=-60))))
    assert _rejected(verifier, token) == "token expired"


def test_token_minted_long_ago_is_expired(settings: Settings, verifier: TokenVerifier) -> None:
    token = TokenIssuer(settings).mint("alice", DIRECTOR, now=_now() - timedelta(hours=9))
    assert _rejected(verifier, token) == "token expired"


def test_token_not_yet_valid_is_rejected(settings: Settings, verifier: TokenVerifier) -> None:
    token = _sign(_claims(settings, nbf=_ts(timedelta(seconds=60))))
    assert _rejected(verifier, token) == "token not yet valid"


def test_unsigned_alg_none_token_is_rejected(settings: Settings, verifier: TokenVerifier) -> None:
    token = _b64url({"alg": "none", "typ": "JWT"}) + "." + _b64url(_claims(settings)) + "."
    message = _rejected(verifier, token)
    assert "invalid token" in message
    assert "alg" in message


def test_other_hmac_algorithm_is_rejected(settings: Settings, verifier: TokenVerifier) -> None:
    token = jwt.encode(_claims(settings), SECRET + SECRET, algorithm="HS512")
    assert "alg" in _rejected(verifier, token)


def test_wrong_audience_is_rejected(settings: Settings, verifier: TokenVerifier) -> None:
    token = _sign(_claims(settings, aud="some-other-system"))
    assert _rejected(verifier, token) == "token audience is not this system"


def test_wrong_issuer_is_rejected(settings: Settings, verifier: TokenVerifier) -> None:
    token = _sign(_claims(settings, iss="https://evil.example"))
    assert _rejected(verifier, token) == "token issuer is not trusted"


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "iss", "aud"])
def test_token_missing_a_required_claim_is_rejected(
    settings: Settings, verifier: TokenVerifier, claim: str
) -> None:
    message = _rejected(verifier, _sign(_claims(settings, **{claim: ...})))
    assert "invalid token" in message
    assert f'"{claim}"' in message


@pytest.mark.parametrize("role", ["king", "Director", "", None, ["director"]])
def test_unknown_role_is_rejected(settings: Settings, verifier: TokenVerifier, role: Any) -> None:
    message = _rejected(verifier, _sign(_claims(settings, role=role)))
    assert message.startswith(f"token role {role!r} is not one of")


def test_token_without_role_is_rejected(settings: Settings, verifier: TokenVerifier) -> None:
    assert "is not one of" in _rejected(verifier, _sign(_claims(settings, role=...)))


@pytest.mark.parametrize("partner_id", [..., "", None])
def test_partner_role_without_partner_id_is_rejected(
    settings: Settings, verifier: TokenVerifier, partner_id: Any
) -> None:
    token = _sign(_claims(settings, role=PARTNER, partner_id=partner_id))
    assert _rejected(verifier, token) == "a partner token must carry partner_id"


@pytest.mark.parametrize("partner_id", [42, ["p-1"], {"id": "p-1"}, True])
def test_partner_id_that_is_not_a_string_is_rejected(
    settings: Settings, verifier: TokenVerifier, partner_id: Any
) -> None:
    token = _sign(_claims(settings, role=PARTNER, partner_id=partner_id))
    with pytest.raises(AuthError):
        verifier.verify(token)


@pytest.mark.parametrize("sub", ["", "x" * 201])
def test_empty_or_oversized_subject_is_rejected(
    settings: Settings, verifier: TokenVerifier, sub: str
) -> None:
    message = _rejected(verifier, _sign(_claims(settings, sub=sub)))
    assert message == "token subject must be a non-empty string"


def test_token_of_another_deployment_is_rejected(tmp_path: Path, settings: Settings) -> None:
    """An HS256 token signed for one secret means nothing to a verifier of another."""
    token = TokenIssuer(settings).mint("alice", DIRECTOR, now=_now())
    other = TokenVerifier(Settings(jwt_secret=OTHER_SECRET, data_dir=tmp_path / "other"))
    assert "signature" in _rejected(other, token).lower()


def test_garbage_is_rejected(verifier: TokenVerifier) -> None:
    for token in ["", "not-a-jwt", "a.b.c"]:
        assert _rejected(verifier, token).startswith("invalid token")


# --- the issuer refuses what the verifier would refuse -------------------------------


def test_issuer_refuses_an_unknown_role(settings: Settings) -> None:
    with pytest.raises(ValueError, match="unknown role 'king'"):
        TokenIssuer(settings).mint("alice", "king", now=_now())


@pytest.mark.parametrize("partner_id", [None, ""])
def test_issuer_refuses_a_partner_token_without_partner_id(
    settings: Settings, partner_id: str | None
) -> None:
    with pytest.raises(ValueError, match="partner token needs"):
        TokenIssuer(settings).mint("vendor-1", PARTNER, partner_id=partner_id, now=_now())


# --- the embedded dev key -------------------------------------------------------


def test_dev_key_is_created_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(jwt_secret=None, data_dir=tmp_path)
    path = dev_key_path(settings)
    assert path == tmp_path / "keys" / "jwt-dev.key"
    assert not path.exists()

    first = signing_secret(settings)

    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 64
    int(first, 16)  # hex
    assert path.read_text().strip() == first
    assert signing_secret(settings) == first
    assert signing_secret(Settings(jwt_secret=None, data_dir=tmp_path)) == first
    assert sorted(p.name for p in path.parent.iterdir()) == ["jwt-dev.key"]  # no temp file left


def test_dev_key_signs_and_verifies_across_instances(tmp_path: Path) -> None:
    token = TokenIssuer(Settings(data_dir=tmp_path)).mint(
        "bob", PARTNER, partner_id="p", now=_now()
    )
    assert TokenVerifier(Settings(data_dir=tmp_path)).verify(token).partner_id == "p"
    elsewhere = TokenVerifier(Settings(data_dir=tmp_path / "elsewhere"))
    with pytest.raises(AuthError):
        elsewhere.verify(token)


def test_configured_secret_is_used_and_no_dev_key_is_written(tmp_path: Path) -> None:
    settings = Settings(jwt_secret=SECRET, data_dir=tmp_path)
    assert signing_secret(settings) == SECRET
    assert not dev_key_path(settings).exists()
