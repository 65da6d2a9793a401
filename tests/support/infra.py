"""Starts the real infrastructure for the tests, unless given from outside.

DATABASE_URL set: use that PostgreSQL (e.g. the machine's PostgreSQL 15);
otherwise an embedded PostgreSQL in a temporary directory. The same for
KAFKA_BOOTSTRAP_SERVERS and a Tansu broker on a free port. Every test gets its
own schema/topic/group prefix, so runs never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from partnerledger.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from shared import kafka
from shared.db import connect, ensure_database, quote_ident
from shared.settings import SERVICE_NAMES, Settings, parse_database_url

JWT_SECRET = "test-secret-" + "x" * 40
TEST_DATABASE = "partnerledger_test"


@dataclass
class Infra:
    database_url: str
    bootstrap: str
    tmp: Path
    postgres: EmbeddedPostgres | None = None
    broker: EmbeddedBroker | None = None

    def settings(self, prefix: str | None = None, **overrides: Any) -> Settings:
        prefix = prefix or f"t{uuid.uuid4().hex[:10]}_"
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "kafka_bootstrap_servers": self.bootstrap,
            "schema_prefix": prefix,
            "jwt_secret": JWT_SECRET,
            "data_dir": self.tmp / prefix,
            "log_json": False,
            "relay_poll_interval_s": 0.2,
            "relay_reset_check_interval_s": 1.0,
        }
        values.update(overrides)
        return Settings(**values)

    def env(self, settings: Settings) -> dict[str, str]:
        """Environment for a service process with these settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PL_")}
        env.update(
            {
                "DATABASE_URL": settings.effective_database_url,
                "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
                "PL_SCHEMA_PREFIX": settings.schema_prefix,
                "PL_JWT_SECRET": settings.jwt_secret or "",
                "PL_DATA_DIR": str(settings.data_dir),
                "PL_LOG_JSON": "true",
                "PL_LOG_LEVEL": settings.log_level,
                "PL_TRACING": str(settings.tracing).lower(),
                "PL_RELAY_BATCH_SIZE": str(settings.relay_batch_size),
                "PL_RELAY_POLL_INTERVAL_S": str(settings.relay_poll_interval_s),
                "PL_RELAY_RESET_CHECK_INTERVAL_S": str(settings.relay_reset_check_interval_s),
            }
        )
        for name in SERVICE_NAMES:
            env[f"PL_{name.upper()}_PORT"] = str(settings.port_of(name))
        return env


def start_infra(tmp: Path) -> Infra:
    database_url = os.environ.get("DATABASE_URL")
    postgres = None
    if not database_url:
        postgres = EmbeddedPostgres(tmp / "pg")
        postgres.start()
        database_url = postgres.uri(TEST_DATABASE)
        asyncio.run(ensure_database(parse_database_url(database_url)))
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None
    if not bootstrap:
        broker = EmbeddedBroker(free_port(), tmp / "broker.log")
        broker.start()
        bootstrap = broker.bootstrap
    return Infra(database_url, bootstrap, tmp, postgres, broker)


def private_broker(tmp: Path) -> EmbeddedBroker:
    """A broker of the test's own, for tests that stop and restart it."""
    broker = EmbeddedBroker(free_port(), tmp / f"broker-{uuid.uuid4().hex[:6]}.log")
    broker.start()
    return broker


async def create_topics(settings: Settings, services: tuple[str, ...] = SERVICE_NAMES) -> None:
    await kafka.ensure_topics(settings, [settings.topic_of(s) for s in services])


async def drop_schemas(settings: Settings) -> None:
    conn = await connect(settings.postgres, application_name="tests")
    try:
        for name in SERVICE_NAMES:
            await conn.execute(
                f"DROP SCHEMA IF EXISTS {quote_ident(settings.schema_of(name))} CASCADE"
            )
    finally:
        await conn.close()
