"""Bearer JWT authentication refuses every bad token on every service
(DESIGN.md sections 5 and 6; R2.2 roles), on real
PostgreSQL and a real broker, the four services in process:

wrong signature, another HMAC algorithm, `alg: none`, expired, not yet valid
(nbf in the future), wrong audience, wrong issuer, an unknown role, a partner
token without its partner id, a token without `exp`, malformed tokens and a
missing or non-bearer Authorization header are each answered 401 with an
`application/problem+json` body and a `WWW-Authenticate: Bearer` challenge,
on a read and on a command whose body is valid (so only the token stands
between it and a stored event). Nothing is stored (each service's event log
head and every table but the denials stay as they were), and every refusal is
on record in `access_denials` (DESIGN.md section 5: every denial is recorded).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from services.partner.service import SPEC as PARTNER
from shared.auth import signing_secret
from shared.settings import Settings
from tests.support.apps import RunningService, four_services, running, table_counts
from tests.support.auth import token_for
from tests.support.data import registration

pytestmark = pytest.mark.integration

PROBLEM_JSON = "application/problem+json"


def _now() -> datetime:
    return datetime.now(UTC)


#: Per service: a read and a command with a valid body (each would answer
#: 200/201 with a good token: checked first, so a 401 is the token's doing).
def routes(now: datetime) -> dict[str, list[tuple[str, str, dict[str, Any] | None]]]:
    return {
        "partner": [
            ("GET", "/v1/partners", None),
            ("POST", "/v1/partners", registration(41)),
        ],
        "approval": [
            ("GET", "/v1/approvals", None),
            (
                "POST",
                "/v1/approvals",
                {
                    "kind": "procurement",
                    "title": "核心系统运维外包",
                    "amount": "250000.00",
                    "currency": "CNY",
                    "justification": "7x24 运维，现有人手不足",
                },
            ),
        ],
        "docs": [
            ("GET", "/v1/meetings", None),
            (
                "POST",
                "/v1/meetings",
                {
                    "kind": "weekly_department",
                    "title": "部门周例会",
                    "held_at": (now - timedelta(hours=1)).isoformat(),
                    "attendees": ["pm.wang"],
                    "resolutions": ["完成供应商季度评审"],
                },
            ),
        ],
        "kpi": [
            ("GET", "/v1/kpi/staff", None),
            (
                "POST",
                "/v1/kpi/staff",
                {
                    "user_id": "director.zhang",
                    "name": "张主任",
                    "role": "director",
                    "superior": None,
                    "joined_on": "2026-10-01",
                },
            ),
        ],
    }


def claims(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """The claims of a good Director token, with some replaced (None: removed)."""
    now = int(_now().timestamp())
    base: dict[str, Any] = {
        "sub": "director.zhang",
        "role": "director",
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def bad_tokens(settings: Settings) -> dict[str, str]:
    """Each a token that must not authenticate anyone, named by its flaw."""
    secret = signing_secret(settings)
    now = int(_now().timestamp())
    beyond = settings.jwt_leeway_s + 600  # well past the allowed clock skew

    def signed(**overrides: Any) -> str:
        return jwt.encode(claims(settings, **overrides), secret, algorithm="HS256")

    good = signed()
    with warnings.catch_warnings():  # the dev key is short for HS512: refused anyway
        warnings.simplefilter("ignore")
        hs512 = jwt.encode(claims(settings), secret, algorithm="HS512")
    header, payload, signature = good.split(".")
    tampered_payload = jwt.encode(
        claims(settings, role="director", sub="mallory"), "x" * 32, algorithm="HS256"
    ).split(".")[1]
    return {
        "wrong signature (other key)": jwt.encode(
            claims(settings), "not-the-key-" + "0" * 40, algorithm="HS256"
        ),
        "signature of another token": f"{header}.{tampered_payload}.{signature}",
        "signature cut off": f"{header}.{payload}.",
        "HS512 with the right key": hs512,
        "alg none": jwt.encode(claims(settings), "", algorithm="none"),
        "expired": signed(iat=now - 2 * beyond, nbf=now - 2 * beyond, exp=now - beyond),
        "not yet valid (nbf in the future)": signed(nbf=now + beyond, exp=now + 2 * beyond),
        "wrong audience": signed(aud="some-other-system"),
        "wrong issuer": signed(iss="https://evil.example"),
        "no exp": signed(exp=None),
        "no sub": signed(sub=None),
        "unknown role": signed(role="superuser"),
        "role of another case": signed(role="DIRECTOR"),
        "partner without partner_id": signed(role="partner"),
        "partner_id not a string": signed(role="partner", partner_id=["a", "b"]),
        "malformed: one segment": "not-a-jwt",
        "malformed: garbage segments": "abc.def.ghi",
        "malformed: bad base64 header": "%%%." + payload + "." + signature,
        "malformed: huge": "a" * 20_000,
    }


def bad_headers(settings: Settings) -> dict[str, dict[str, str]]:
    """Authorization headers that carry no bearer token."""
    good = token_for(settings, "director.zhang", "director")
    return {
        "no Authorization header": {},
        "empty Authorization": {"Authorization": ""},
        "Bearer without a token": {"Authorization": "Bearer "},
        "Basic scheme": {"Authorization": "Basic ZGlyZWN0b3I6c2VjcmV0"},
        "token without scheme": {"Authorization": good},
        "Token scheme": {"Authorization": f"Token {good}"},
    }


async def denials(svc: RunningService) -> list[tuple[str | None, int]]:
    rows = await svc.runtime.pool.fetch("SELECT user_id, status FROM access_denials ORDER BY id")
    return [(r["user_id"], r["status"]) for r in rows]


def assert_unauthenticated(response: Any, what: str) -> None:
    assert response.status_code == 401, (what, response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM_JSON, what
    body = response.json()
    assert body["status"] == 401 and body["title"] == "Unauthenticated", (what, body)
    assert body["type"].endswith("/unauthenticated"), (what, body)
    assert response.headers["www-authenticate"].startswith("Bearer"), what


async def refused_everywhere(
    svcs: dict[str, RunningService],
    settings: Settings,
    cases: dict[str, dict[str, str]],
    check: Callable[[Any, str], None],
) -> None:
    """Every case on every route of every service: refused, on record, nothing stored."""
    for name, svc in svcs.items():
        head = svc.runtime.application.log_head()
        before = await table_counts(svc)
        recorded = len(await denials(svc))
        sent = 0
        for method, url, body in routes(_now())[name]:
            for case, headers in cases.items():
                kw: dict[str, Any] = {} if body is None else {"json": body}
                response = await svc.client.request(method, url, headers=headers, **kw)
                check(response, f"{name} {method} {url}: {case}")
                sent += 1
        assert svc.runtime.application.log_head() == head, f"{name}: an event was stored"
        assert await table_counts(svc) == before, f"{name}: a table changed"
        new = (await denials(svc))[recorded:]
        assert new == [(None, 401)] * sent, f"{name}: every refusal is on record"


async def test_good_tokens_pass_so_the_routes_are_the_real_thing(settings: Settings) -> None:
    """The control: with a good Director token each route used below answers
    2xx (the reads and the commands), so the refusals that follow are the
    token's doing alone (DESIGN.md section 5)."""
    async with four_services(settings) as svcs:
        token = token_for(settings, "director.zhang", "director")
        for name, svc in svcs.items():
            for method, url, body in routes(_now())[name]:
                kw: dict[str, Any] = {} if body is None else {"json": body}
                response = await svc.client.request(
                    method, url, headers={"Authorization": f"Bearer {token}"}, **kw
                )
                assert response.status_code in (200, 201), (name, method, url, response.text)


async def test_bad_tokens_are_401_problem_json_and_store_nothing(settings: Settings) -> None:
    """Forged, expired, premature, foreign, role-less and malformed tokens are
    each 401 problem+json with a Bearer challenge, on every service, on a read
    and on a valid command; nothing is stored and each refusal is on record
    (DESIGN.md section 5)."""
    async with four_services(settings) as svcs:
        cases = {
            case: {"Authorization": f"Bearer {token}"}
            for case, token in bad_tokens(settings).items()
        }
        await refused_everywhere(svcs, settings, cases, assert_unauthenticated)


async def test_missing_bearer_is_401_problem_json_and_stores_nothing(settings: Settings) -> None:
    """No Authorization header, an empty one, a Bearer scheme without a token,
    Basic credentials, a token without its scheme: 401 problem+json on every
    service, nothing stored, each on record (DESIGN.md section 5)."""
    async with four_services(settings) as svcs:
        await refused_everywhere(svcs, settings, bad_headers(settings), assert_unauthenticated)


async def test_the_refusal_names_why(settings: Settings) -> None:
    """The problem's detail says which check failed (expired, not yet valid,
    audience, issuer, role), so a client can tell its misconfiguration apart
    (DESIGN.md sections 5 and 6)."""
    tokens = bad_tokens(settings)
    expected = {
        "expired": "token expired",
        "not yet valid (nbf in the future)": "token not yet valid",
        "wrong audience": "token audience is not this system",
        "wrong issuer": "token issuer is not trusted",
        "unknown role": "token role 'superuser' is not one of",
        "partner without partner_id": "a partner token must carry partner_id",
        "alg none": "invalid token",
        "wrong signature (other key)": "invalid token",
    }
    async with running(PARTNER, settings, relay=False, consumers=False, projectors=False) as svc:
        for case, detail in expected.items():
            response = await svc.client.get(
                "/v1/partners", headers={"Authorization": f"Bearer {tokens[case]}"}
            )
            assert response.status_code == 401, case
            assert response.json()["detail"].startswith(detail), (case, response.json())
        missing = await svc.client.get("/v1/partners")
        assert missing.json()["detail"].startswith("missing bearer token")
