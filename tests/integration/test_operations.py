"""Operations and security edges of every service (DESIGN.md sections 5-7):
health, readiness, metrics, the status endpoint's access, production token
verification against an issuer's JWKS, idempotency-key expiry, and a command
whose commit succeeded although the driver saw an error (R4.5: nothing lost,
nothing doubled)."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from partnerledger.embedded import free_port
from services.partner.application import PartnerApplication
from services.partner.domain.partner import Contact, Partner
from services.partner.service import SPEC as PARTNER
from shared.auth import AuthError, TokenVerifier
from shared.domain import Actor, command_context
from shared.runtime import forget_expired_keys
from shared.settings import Settings
from tests.support.apps import running
from tests.support.auth import auth
from tests.support.data import registration, uscc

pytestmark = pytest.mark.integration


async def test_health_readiness_and_metrics(settings: Settings) -> None:
    async with running(PARTNER, settings, relay=False, consumers=False) as partner:
        assert (await partner.client.get("/healthz")).json() == {"status": "ok"}
        ready = await partner.client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
        await partner.client.post("/v1/partners", json=registration(1), headers=auth(settings))
        metrics = (await partner.client.get("/metrics")).text
        assert 'pl_commands_total{command="register_partner",outcome="ok",service="partner"}' in (
            metrics
        )
        assert "pl_http_request_duration_seconds_bucket" in metrics


async def test_readiness_fails_without_the_broker(settings: Settings) -> None:
    dead_broker = settings.model_copy(
        update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"}
    )
    async with running(PARTNER, dead_broker, relay=False, consumers=False) as partner:
        ready = await partner.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        assert "broker: unreachable" in ready.json()["detail"]


@pytest.mark.parametrize(("role", "status"), [("director", 200), ("auditor", 200), ("ceo", 403)])
async def test_status_endpoint_needs_director_or_auditor(
    settings: Settings, role: str, status: int
) -> None:
    async with running(PARTNER, settings, relay=False, consumers=False) as partner:
        assert (await partner.client.get("/v1/ops/status")).status_code == 401
        answer = await partner.client.get("/v1/ops/status", headers=auth(settings, "u", role))
        assert answer.status_code == status


async def test_refused_read_by_another_partner_is_recorded(settings: Settings) -> None:
    async with running(PARTNER, settings, relay=False, consumers=False) as partner:
        mine = await partner.client.post(
            "/v1/partners", json=registration(1), headers=auth(settings)
        )
        other = await partner.client.post(
            "/v1/partners", json=registration(2), headers=auth(settings)
        )
        vendor = auth(settings, "vendor", "partner", partner_id=mine.json()["id"])
        answer = await partner.client.get(f"/v1/partners/{other.json()['id']}", headers=vendor)
        assert answer.status_code == 404
        row = await partner.runtime.pool.fetchrow("SELECT user_id, status FROM access_denials")
        assert dict(row) == {"user_id": "vendor", "status": 404}


async def test_lone_surrogates_are_422_not_500(settings: Settings) -> None:
    async with running(PARTNER, settings, relay=False, consumers=False) as partner:
        body = json.dumps(registration(3), ensure_ascii=False).replace("福州", "\\ud800")
        assert "\\ud800" in body
        answer = await partner.client.post(
            "/v1/partners",
            content=body,
            headers={**auth(settings), "Content-Type": "application/json"},
        )
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"] == "body.name"


async def test_a_commit_the_driver_missed_is_not_a_conflict(settings: Settings) -> None:
    """eventsourcing retries an insert after a connection error; if the first
    attempt had committed, the retry meets our own events: that is success."""
    async with running(PARTNER, settings, relay=False, consumers=False) as partner:
        app = partner.runtime.application
        assert isinstance(app, PartnerApplication)
        ctx = app.context(Actor("alice", "director"))
        with command_context(ctx):
            created = Partner.register(
                name="重试有限公司",
                unified_social_credit_code=uscc(4),
                contact=Contact(name="a", email="a@b.example", phone="13800138000"),
                service_categories=["运维外包"],
            )
        retry = copy.deepcopy(created)  # the same pending events, as a retry resends them
        app.save_in(ctx, created)
        assert app.save_in(ctx, retry) == []  # no error, nothing stored twice
        assert app.log_head() == 1
        with command_context(ctx):
            someone_else = Partner.register(
                name="别人有限公司",
                unified_social_credit_code=uscc(4),
                contact=Contact(name="b", email="b@b.example", phone="13800138000"),
                service_categories=["运维外包"],
            )
        with pytest.raises(Exception, match="duplicate key"):
            app.save_in(ctx, someone_else)


async def test_idempotency_keys_expire(settings: Settings) -> None:
    async with running(PARTNER, settings, relay=False, consumers=False) as partner:
        headers = {**auth(settings), "Idempotency-Key": "old"}
        await partner.client.post("/v1/partners", json=registration(5), headers=headers)
        pool = partner.runtime.pool
        await pool.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
        assert await forget_expired_keys(partner.runtime) == 1
        assert await pool.fetchval("SELECT count(*) FROM idempotency_keys") == 0


# -- production token verification --------------------------------------------------


@pytest.fixture
def issuer() -> Iterator[tuple[str, Ed25519PrivateKey, list[int]]]:
    """A real HTTP server publishing a JWKS, as an identity provider would."""
    key = Ed25519PrivateKey.generate()
    public = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    jwks = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "EdDSA"}]})
    fetches: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches.append(1)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(jwks.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/jwks.json", key, fetches
    server.shutdown()


def _claims(**over: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims = {
        "sub": "carol",
        "role": "finance",
        "iss": "https://idp.example",
        "aud": "partnerledger",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
    }
    claims.update(over)
    return claims


def test_production_tokens_verify_against_the_issuers_jwks(
    issuer: tuple[str, Ed25519PrivateKey, list[int]], tmp_path: Any
) -> None:
    url, key, fetches = issuer
    settings = Settings(
        environment="production",
        jwt_jwks_url=url,
        jwt_issuer="https://idp.example",
        data_dir=tmp_path,
    )
    verifier = TokenVerifier(settings)
    good = jwt.encode(_claims(), key, algorithm="EdDSA", headers={"kid": "k1"})
    assert verifier.verify(good).role == "finance"
    with pytest.raises(AuthError, match="issuer"):
        verifier.verify(
            jwt.encode(_claims(iss="evil"), key, algorithm="EdDSA", headers={"kid": "k1"})
        )
    stranger = Ed25519PrivateKey.generate()
    with pytest.raises(AuthError):
        verifier.verify(jwt.encode(_claims(), stranger, algorithm="EdDSA", headers={"kid": "k1"}))
    with pytest.raises(AuthError):  # a shared-secret token is no good here
        verifier.verify(jwt.encode(_claims(), "secret" * 8, algorithm="HS256"))
    before = len(fetches)
    for n in range(20):  # random key ids must not make us hammer the issuer
        with pytest.raises(AuthError):
            verifier.verify(
                jwt.encode(_claims(), stranger, algorithm="EdDSA", headers={"kid": f"x{n}"})
            )
    assert len(fetches) - before <= 1
    assert not list(tmp_path.iterdir())  # no development key was made


def test_production_refuses_the_development_key(tmp_path: Any) -> None:
    with pytest.raises(RuntimeError, match="production"):
        TokenVerifier(Settings(environment="production", data_dir=tmp_path))
