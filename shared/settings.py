"""Runtime settings, read from the environment (pydantic-settings).

Every value has a default that works in embedded mode (`make run`), so a fresh
checkout needs no configuration. Production sets DATABASE_URL,
KAFKA_BOOTSTRAP_SERVERS and the JWT issuer/JWKS instead.
"""

from __future__ import annotations

import base64
import binascii
import re
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path
from typing import Literal, Self
from urllib.parse import parse_qs, quote, unquote, urlsplit

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PREFIX = re.compile(r"[A-Za-z0-9_]*")
#: A mailbox as the SMTP envelope needs it: no display name, no list, nothing
#: that could end a header line (header injection).
MAILBOX = re.compile(r"[^@\s<>,;:\"()\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_MAIL_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_ROLE_NAME = re.compile(r"[a-z][a-z_]{0,49}")
#: Key ids are stored next to every ciphertext (R4.1) and printed in errors,
#: so they stay short and plain.
CONTRACT_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,40}")
CONTRACT_KEY_BYTES = 32  # AES-256-GCM


def decode_contract_key(key_id: str, value: str) -> bytes:
    """The raw key of a configured contract key; the error names the key id
    only, never the material."""
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"contract key {key_id!r} is not valid base64") from None
    if len(key) != CONTRACT_KEY_BYTES:
        raise ValueError(
            f"contract key {key_id!r} must decode to {CONTRACT_KEY_BYTES} bytes (AES-256),"
            f" got {len(key)}"
        )
    return key


SERVICE_NAMES: tuple[str, ...] = ("partner", "approval", "docs", "kpi")
DEFAULT_PORTS: dict[str, int] = {"partner": 8001, "approval": 8002, "docs": 8003, "kpi": 8004}


class PostgresParams(BaseModel):
    """DATABASE_URL split into the keyword arguments both drivers understand."""

    host: str
    port: int
    user: str
    password: str
    dbname: str


def parse_database_url(url: str) -> PostgresParams:
    """Accepts `postgresql://user:pw@host:port/db` and the unix-socket form
    `postgresql://user@/db?host=/socket/dir` that embedded PostgreSQL hands out."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"DATABASE_URL must start with postgresql://, got {parts.scheme!r}")
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or ""])[0] or "127.0.0.1"
    port = int(query.get("port", [str(parts.port or 5432)])[0])
    dbname = unquote(parts.path.lstrip("/")) or "postgres"
    return PostgresParams(
        host=host,
        port=port,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        dbname=dbname,
    )


class Settings(BaseSettings):
    """One settings object for every process; services read the part they need."""

    # Inputs are kept out of validation errors: they would print contract keys
    # and passwords into logs (R4.1).
    model_config = SettingsConfigDict(
        env_prefix="PL_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    environment: Literal["development", "production"] = Field(
        default="development",
        description="production refuses the generated dev signing key (set a JWKS URL).",
    )
    data_dir: Path = Field(default=Path(".data"), description="Embedded data, keys and logs.")
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "PL_DATABASE_URL"),
        description="Unset: the embedded PostgreSQL under data_dir/pg (unix socket).",
    )
    database_name: str = Field(
        default="partnerledger", description="Database created in embedded mode."
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "PL_KAFKA_BOOTSTRAP_SERVERS"),
    )
    schema_prefix: str = Field(
        default="",
        description="Prefix for every schema, topic and consumer group (test isolation).",
    )
    topic_partitions: int = Field(
        # Not Tansu's default for auto-created topics (4): with 4, the suite's
        # replay test timed out on a stalling broker in 2 of 3 full runs
        # (2026-11-29); consumers find partitions a recreated topic adds by
        # their metadata refresh (shared/consumer.py).
        default=3,
        ge=1,
        le=256,
        description="Partitions of the topics this service creates.",
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=50, ge=1, le=5000, description="Tansu answers waiting fetches late: keep low."
    )
    kafka_request_timeout_ms: int = Field(default=10_000, ge=1000)
    # Kafka client security (deploy/k8s: SCRAM-SHA-512 over TLS on Strimzi;
    # the embedded Tansu broker is PLAINTEXT).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="SASL_SSL for a Kafka with SCRAM users over TLS."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = Field(default=None, repr=False)
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="CA certificates of the brokers; unset: the system's."
    )
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    relay_poll_interval_s: float = Field(default=0.5, gt=0)
    wake_coalesce_ms: float = Field(
        default=10,
        ge=0,
        le=1000,
        description=(
            "How long a relay, projector or consumer woken from idle waits for"
            " more events before reading: one read, transaction and publish for"
            " several events instead of one each (bench/slice.py)."
        ),
    )
    relay_reset_check_interval_s: float = Field(default=2.0, gt=0)
    consumer_max_records: int = Field(default=500, ge=1)
    db_pool_size: int = Field(
        default=8, ge=2, le=100, description="Event-store connections per process (psycopg)."
    )
    aggregate_cache_size: int = Field(
        default=1000,
        ge=0,
        le=1_000_000,
        description="Aggregates kept in memory per process (0: none). A cached aggregate"
        " is brought up to date from the store on every read, so replicas stay correct.",
    )
    db_async_pool_size: int = Field(
        default=5, ge=1, le=100, description="Projection/ops connections per process (asyncpg)."
    )
    host: str = "127.0.0.1"
    partner_port: int = DEFAULT_PORTS["partner"]
    approval_port: int = DEFAULT_PORTS["approval"]
    docs_port: int = DEFAULT_PORTS["docs"]
    kpi_port: int = DEFAULT_PORTS["kpi"]
    broker_port: int = Field(default=9092, description="Port of the embedded broker.")
    run_relay: bool = Field(default=True, description="Run the outbox relay in the API process.")
    run_consumers: bool = Field(default=True, description="Run the consumers in the API process.")
    run_projectors: bool = Field(
        default=True,
        description="Run local projections and the deadline engine in the API process.",
    )
    jwt_secret: str | None = Field(
        default=None, description="HS256 secret; unset: a dev key generated in data_dir."
    )
    jwt_issuer: str = "partnerledger-dev"
    jwt_audience: str = "partnerledger"
    jwt_jwks_url: str | None = Field(
        default=None, description="Production: verify RS256/EdDSA tokens against this JWKS."
    )
    jwt_leeway_s: int = Field(default=30, ge=0, le=300)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    tracing: bool = Field(
        default=True, description="Instrument FastAPI, psycopg, asyncpg and aiokafka."
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "PL_OTEL_ENDPOINT"),
    )
    trace_sample_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of traces started here that are recorded and exported "
        "(with an OTLP endpoint; a caller's sampling decision is followed).",
    )
    idempotency_ttl_hours: int = Field(default=24, ge=1)
    policy_file: Path | None = Field(
        default=None, description="Policy parameters (TOML); unset: config/policy.toml."
    )
    scorecard_file: Path | None = Field(
        default=None,
        description="Partner scorecard formulas (TOML, kpi service); unset: config/scorecard.toml.",
    )
    score_interval_s: float = Field(
        default=30.0, gt=0, description="How often the kpi service rescores partners."
    )
    chain_head_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="How often the active relay publishes its event chain head on audit.chain.",
    )

    # -- notifications (shared.notify, docs/notifications.md) -----------------------
    smtp_host: str | None = Field(
        default=None,
        description="SMTP server for email notifications; unset: no email is queued at all.",
    )
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_sender: str = Field(
        default="Partner Ledger <partnerledger@localhost>",
        max_length=300,
        description="From header (the address inside <> is the envelope sender).",
    )
    smtp_user: str | None = Field(
        default=None, description="SMTP AUTH user, if the relay needs it."
    )
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = Field(default=False, description="Upgrade the connection (port 587).")
    smtp_timeout_s: float = Field(default=30.0, gt=0, le=300)
    notify_email_domain: str | None = Field(
        default=None,
        description="A user id without '@' is mailed at user@<this domain>; unset: not mailed.",
    )
    notify_role_mailboxes: dict[str, str] = Field(
        default_factory=dict,
        description='Role -> mailbox, as JSON: {"director": "director@corp.example"}.',
    )
    notify_retry_base_s: float = Field(
        default=30.0, gt=0, description="Delay after the first failed attempt; doubles after each."
    )
    notify_retry_cap_s: float = Field(default=3600.0, gt=0, description="Longest delay.")
    notify_max_attempts: int = Field(
        default=8, ge=1, le=100, description="Attempts before a delivery is 'failed'."
    )
    notify_lease_s: float = Field(
        default=120.0,
        gt=0,
        description="A claimed delivery is retried after this long if its worker vanished.",
    )
    notify_poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    # -- contract archive (R4.1, services.docs.archive) -----------------------------
    contract_keys: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description=(
            "AES-256-GCM keys for contract files, as JSON key id -> base64 of 32 bytes:"
            ' {"2026-11": "..."}; unset: a dev key generated in data_dir (production refuses).'
        ),
    )
    contract_key_id: str | None = Field(
        default=None,
        description=(
            "Key id new contract files are sealed with; may be unset when exactly one key"
            " is configured. Older keys stay configured until the rotation command re-encrypted"
            " their files."
        ),
    )
    #: Webhooks to loopback, private, link-local or reserved addresses (a
    #: request forgery towards internal systems); unset: allowed outside
    #: production only.
    webhook_allow_private_targets: bool | None = None

    @property
    def webhooks_may_reach_private(self) -> bool:
        if self.webhook_allow_private_targets is not None:
            return self.webhook_allow_private_targets
        return self.environment != "production"

    @field_validator("schema_prefix")
    @classmethod
    def _prefix_is_identifier(cls, value: str) -> str:
        if not _PREFIX.fullmatch(value):
            raise ValueError("schema_prefix may hold only ASCII letters, digits and '_'")
        return value.lower()

    @field_validator("smtp_sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        address = parseaddr(value)[1]
        if "\n" in value or "\r" in value or not MAILBOX.fullmatch(address):
            raise ValueError("smtp_sender must be an address, optionally with a name: A <a@b.c>")
        return value.strip()

    @field_validator("notify_email_domain")
    @classmethod
    def _mail_domain(cls, value: str | None) -> str | None:
        value = (value or "").strip().lstrip("@")
        if not value:
            return None
        if not _MAIL_DOMAIN.fullmatch(value):
            raise ValueError("notify_email_domain must be a domain name such as corp.example")
        return value.lower()

    @field_validator("notify_role_mailboxes")
    @classmethod
    def _role_mailboxes(cls, value: dict[str, str]) -> dict[str, str]:
        cleaned: dict[str, str] = {}
        for role, mailbox in value.items():
            if not _ROLE_NAME.fullmatch(role):
                raise ValueError(f"notify_role_mailboxes: {role!r} is not a role name")
            if not MAILBOX.fullmatch(mailbox.strip()):
                raise ValueError(f"notify_role_mailboxes: {mailbox!r} is not a mailbox address")
            cleaned[role] = mailbox.strip()
        return cleaned

    @field_validator("contract_keys")
    @classmethod
    def _contract_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for number, (key_id, key) in enumerate(value.items(), start=1):
            if not CONTRACT_KEY_ID.fullmatch(key_id):
                # Not echoed: a key pasted where its id belongs would land in the log.
                raise ValueError(
                    f"contract_keys: the id of key #{number} is not 1-40 of A-Z a-z 0-9 _ . -"
                )
            decode_contract_key(key_id, key)
        return value

    @model_validator(mode="after")
    def _current_contract_key(self) -> Self:
        if self.contract_key_id is not None:
            if self.contract_key_id not in self.contract_keys:
                raise ValueError(
                    f"contract_key_id {self.contract_key_id[:40]!r} is not one of"
                    f" contract_keys ({', '.join(sorted(self.contract_keys)) or 'none configured'})"
                )
        elif len(self.contract_keys) == 1:
            # Frozen model: the validator is the one place that may settle the default.
            object.__setattr__(self, "contract_key_id", next(iter(self.contract_keys)))
        elif self.contract_keys:
            # Guessing would seal new contracts with a key the operator may be retiring.
            raise ValueError(
                "contract_key_id must name the key new contract files are sealed with"
                f" (configured: {', '.join(sorted(self.contract_keys))})"
            )
        return self

    @model_validator(mode="after")
    def _kafka_credentials(self) -> Self:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"kafka_security_protocol {self.kafka_security_protocol} needs"
                " kafka_sasl_username and kafka_sasl_password"
            )
        return self

    @model_validator(mode="after")
    def _notification_timing(self) -> Self:
        if self.notify_retry_cap_s < self.notify_retry_base_s:
            raise ValueError("notify_retry_cap_s must be at least notify_retry_base_s")
        # A lease shorter than a send would let a second worker send the same
        # delivery while the first is still waiting for its answer.
        if self.notify_lease_s <= max(self.smtp_timeout_s, self.webhook_timeout_s):
            raise ValueError("notify_lease_s must exceed smtp_timeout_s and webhook_timeout_s")
        return self

    @cached_property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        socket_dir = quote(str((self.data_dir / "pg").resolve()), safe="/")
        return f"postgresql://postgres@/{quote(self.database_name)}?host={socket_dir}"

    @property
    def postgres(self) -> PostgresParams:
        return parse_database_url(self.effective_database_url)

    def port_of(self, service: str) -> int:
        ports = {
            "partner": self.partner_port,
            "approval": self.approval_port,
            "docs": self.docs_port,
            "kpi": self.kpi_port,
        }
        return ports[service]

    def schema_of(self, service: str) -> str:
        return f"{self.schema_prefix}{service}"

    def topic_of(self, service: str) -> str:
        """`partner.events`, ... (prefixed for isolated test runs)."""
        return f"{self.schema_prefix}{service}.events"

    def consumer_group_of(self, service: str) -> str:
        return f"{self.schema_prefix}{service}"


def load_settings() -> Settings:
    return Settings()
