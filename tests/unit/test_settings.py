"""Runtime settings (DESIGN.md: embedded mode works without configuration;
production sets DATABASE_URL) and the per-run isolation prefix that keeps
every service's schema, topic and consumer group apart.

Proves that `shared.settings.parse_database_url` reads both the TCP and the
unix-socket forms of a PostgreSQL URL (credentials percent-decoded) and
refuses other databases; that `Settings` refuses an unsafe schema prefix and
applies it to schemas, topics and consumer groups; and that the default
database URL points at the embedded PostgreSQL's socket under `data_dir/pg`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.settings import PostgresParams, Settings, parse_database_url


@pytest.fixture(autouse=True)
def _no_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults under test must not be overridden by the developer's shell."""
    for name in list(os.environ):
        if name.startswith("PL_") or name in {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"}:
            monkeypatch.delenv(name)


# --- parse_database_url ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://postgres@127.0.0.1:5432/test",
            PostgresParams(
                host="127.0.0.1", port=5432, user="postgres", password="", dbname="test"
            ),
        ),
        (
            "postgresql://u:p%40ss@db.example:6543/ledger",
            PostgresParams(
                host="db.example", port=6543, user="u", password="p@ss", dbname="ledger"
            ),
        ),
        (
            "postgresql://postgres:@/partnerledger?host=/tmp/pg/data",
            PostgresParams(
                host="/tmp/pg/data", port=5432, user="postgres", password="", dbname="partnerledger"
            ),
        ),
        (
            "postgres://ledger:s3cret@db.internal/partnerledger",
            PostgresParams(
                host="db.internal",
                port=5432,
                user="ledger",
                password="s3cret",
                dbname="partnerledger",
            ),
        ),
        (
            "postgresql://app@/ledger?host=%2Fvar%2Frun%2Fpostgresql&port=6000",
            PostgresParams(
                host="/var/run/postgresql", port=6000, user="app", password="", dbname="ledger"
            ),
        ),
        (
            "postgresql://u%C3%A9:pw%3A%2F%3F@[::1]:5433/my%20db",
            PostgresParams(host="::1", port=5433, user="ué", password="pw:/?", dbname="my db"),
        ),
        (
            "postgresql://",
            PostgresParams(
                host="127.0.0.1", port=5432, user="postgres", password="", dbname="postgres"
            ),
        ),
    ],
    ids=[
        "tcp",
        "password-decoded",
        "unix-socket",
        "postgres-scheme",
        "socket-and-port",
        "ipv6",
        "all-defaults",
    ],
)
def test_parse_database_url(url: str, expected: PostgresParams) -> None:
    assert parse_database_url(url) == expected


@pytest.mark.parametrize(
    "url",
    ["mysql://root:pw@localhost:3306/ledger", "sqlite:///ledger.db", "127.0.0.1:5432/ledger"],
)
def test_parse_database_url_refuses_other_databases(url: str) -> None:
    with pytest.raises(ValueError, match="must start with postgresql://"):
        parse_database_url(url)


# --- schema prefix --------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["Bad-Prefix", "a b", "x;drop", "schéma", 'q"uote', "a.b"])
def test_unsafe_schema_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValidationError, match="schema_prefix"):
        Settings(schema_prefix=prefix)


@pytest.mark.parametrize("prefix", ["_", "__"])
def test_underscore_only_prefix_is_accepted(prefix: str) -> None:
    assert Settings(schema_prefix=prefix).schema_prefix == prefix


def test_prefix_is_applied_to_schema_topic_and_consumer_group() -> None:
    settings = Settings(schema_prefix="T_Run42_")
    assert settings.schema_prefix == "t_run42_"
    assert settings.schema_of("partner") == "t_run42_partner"
    assert settings.topic_of("approval") == "t_run42_approval.events"
    assert settings.consumer_group_of("kpi") == "t_run42_kpi"


def test_without_prefix_names_are_the_service_names() -> None:
    settings = Settings()
    assert settings.schema_prefix == ""
    assert settings.schema_of("docs") == "docs"
    assert settings.topic_of("partner") == "partner.events"
    assert settings.consumer_group_of("partner") == "partner"


def test_prefix_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PL_SCHEMA_PREFIX", "ci7_")
    assert Settings().topic_of("kpi") == "ci7_kpi.events"


# --- database URL ---------------------------------------------------------------


def test_default_database_url_is_the_embedded_socket_under_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    socket_dir = (tmp_path / "pg").resolve()
    assert settings.effective_database_url == (
        f"postgresql://postgres@/partnerledger?host={socket_dir}"
    )
    assert settings.postgres == PostgresParams(
        host=str(socket_dir), port=5432, user="postgres", password="", dbname="partnerledger"
    )


def test_relative_data_dir_gives_an_absolute_socket_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    host = Settings(data_dir=Path("rel"), database_name="other").postgres
    assert host.host == str(tmp_path.resolve() / "rel" / "pg")
    assert host.dbname == "other"


@pytest.mark.parametrize("dirname", ["with+plus", "with#hash", "a&b", "pct%41"])
def test_socket_dir_with_url_special_characters_survives(tmp_path: Path, dirname: str) -> None:
    settings = Settings(data_dir=tmp_path / dirname)
    assert settings.postgres.host == str((tmp_path / dirname / "pg").resolve())


@pytest.mark.parametrize("dirname", ["plain", "with space", "semi;colon"])
def test_socket_dir_with_ordinary_characters_survives(tmp_path: Path, dirname: str) -> None:
    settings = Settings(data_dir=tmp_path / dirname)
    assert settings.postgres.host == str((tmp_path / dirname / "pg").resolve())


def test_configured_database_url_wins(tmp_path: Path) -> None:
    url = "postgresql://ledger:pw@db.example:5433/prod"
    settings = Settings(data_dir=tmp_path, database_url=url)
    assert settings.effective_database_url == url
    assert settings.postgres.host == "db.example"
    assert settings.postgres.port == 5433


def test_database_url_is_read_from_the_conventional_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5432/fromenv")
    assert Settings().postgres.dbname == "fromenv"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.schema_prefix = "other"  # type: ignore[misc]
