"""Kafka client security (issue 8): plain for the embedded broker, SCRAM over
TLS for Strimzi's listener (deploy/k8s)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared import kafka
from shared.settings import Settings


def test_the_embedded_broker_is_plain() -> None:
    assert kafka.security(Settings()) == {"security_protocol": "PLAINTEXT"}


def test_scram_over_tls_with_the_cluster_ca() -> None:
    ca = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="pl-partner",
        kafka_sasl_password="s3cret",
        kafka_ssl_cafile=ca,
    )
    options = kafka.security(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "pl-partner",
        "s3cret",
    )
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert "s3cret" not in repr(settings)


def test_sasl_without_credentials_is_refused() -> None:
    with pytest.raises(ValidationError, match="kafka_sasl_username and kafka_sasl_password"):
        Settings(kafka_security_protocol="SASL_SSL")
