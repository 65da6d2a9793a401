"""R4.1: contract files are archived encrypted, `services.docs.archive`.

Proves that a sealed contract round-trips and is AES-256-GCM ciphertext under
the current key id with a fresh 12-byte nonce; that a wrong key, a flipped bit
of ciphertext or nonce, a ciphertext moved onto another content id, a swapped
SHA-256 or size, an unknown key id or a missing key ring are all refused with
ArchiveError; that plain (non-contract) rows are verified against their digest
too; that the contract key settings refuse bad base64, keys that are not 32
bytes, unknown or ambiguous current key ids, and never echo key material; that
the development key is created once (mode 0600) and production refuses to run
without configured keys; and that a key ring's repr hides its keys.
Property: every byte string round-trips through seal/unseal.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import stat
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.docs.archive import (
    DEV_KEY_ID,
    NONCE_BYTES,
    TAG_BYTES,
    ArchiveError,
    KeyRing,
    dev_key_path,
    plain,
    seal,
    unseal,
)
from shared.settings import Settings

K1 = bytes(range(32))
K2 = bytes(range(100, 132))
CONTRACT = "XX项目 外包服务合同 第1条 保密义务\n".encode() * 40


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.fixture(autouse=True)
def _no_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PL_") or name in {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"}:
            monkeypatch.delenv(name)


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing({"k1": K1, "k2": K2}, "k1")


# --- seal / unseal ---------------------------------------------------------------


def test_r4_1_sealed_contract_round_trips(ring: KeyRing) -> None:
    cid = uuid.uuid4()
    blob = seal(ring, CONTRACT, content_id=cid)
    assert blob.id == cid
    assert blob.key_id == "k1"
    assert blob.nonce is not None and len(blob.nonce) == NONCE_BYTES
    assert blob.size == len(CONTRACT)
    assert len(blob.data) == len(CONTRACT) + TAG_BYTES
    assert CONTRACT[:64] not in blob.data
    assert unseal(ring, blob) == CONTRACT


def test_r4_1_every_seal_uses_a_fresh_nonce(ring: KeyRing) -> None:
    cid = uuid.uuid4()
    first, second = seal(ring, CONTRACT, content_id=cid), seal(ring, CONTRACT, content_id=cid)
    assert first.nonce != second.nonce
    assert first.data != second.data


def test_r4_1_sealed_under_the_current_key_read_with_the_whole_ring() -> None:
    old = seal(KeyRing({"k1": K1}, "k1"), CONTRACT, content_id=uuid.uuid4())
    after_rotation = KeyRing({"k1": K1, "k2": K2}, "k2")
    assert unseal(after_rotation, old) == CONTRACT
    assert seal(after_rotation, CONTRACT, content_id=uuid.uuid4()).key_id == "k2"


def test_r4_1_wrong_key_under_the_same_id_is_refused() -> None:
    blob = seal(KeyRing({"k1": K1}, "k1"), CONTRACT, content_id=uuid.uuid4())
    with pytest.raises(ArchiveError, match="failed authentication"):
        unseal(KeyRing({"k1": K2}, "k1"), blob)


def test_r4_1_unknown_key_id_is_refused(ring: KeyRing) -> None:
    blob = seal(ring, CONTRACT, content_id=uuid.uuid4())
    with pytest.raises(ArchiveError, match="unknown contract key id 'k1'"):
        unseal(KeyRing({"k2": K2}, "k2"), blob)


@pytest.mark.parametrize("at", [0, 100, -1])
def test_r4_1_tampered_ciphertext_is_refused(ring: KeyRing, at: int) -> None:
    blob = seal(ring, CONTRACT, content_id=uuid.uuid4())
    tampered = dataclasses.replace(blob, data=flip(blob.data, at % len(blob.data)))
    with pytest.raises(ArchiveError, match="failed authentication"):
        unseal(ring, tampered)


def test_r4_1_truncated_ciphertext_is_refused(ring: KeyRing) -> None:
    blob = seal(ring, CONTRACT, content_id=uuid.uuid4())
    with pytest.raises(ArchiveError):
        unseal(ring, dataclasses.replace(blob, data=blob.data[:-1]))


def test_r4_1_tampered_nonce_is_refused(ring: KeyRing) -> None:
    blob = seal(ring, CONTRACT, content_id=uuid.uuid4())
    assert blob.nonce is not None
    with pytest.raises(ArchiveError, match="failed authentication"):
        unseal(ring, dataclasses.replace(blob, nonce=flip(blob.nonce)))
    with pytest.raises(ArchiveError, match="no valid nonce"):
        unseal(ring, dataclasses.replace(blob, nonce=blob.nonce[:8]))


def test_r4_1_ciphertext_moved_to_another_content_id_is_refused(ring: KeyRing) -> None:
    """A row copied onto another document's content id must not be served as
    that document: the content id is authenticated with the ciphertext."""
    blob = seal(ring, CONTRACT, content_id=uuid.uuid4())
    with pytest.raises(ArchiveError, match="failed authentication"):
        unseal(ring, dataclasses.replace(blob, id=uuid.uuid4()))


def test_r4_1_swapped_sha256_is_refused(ring: KeyRing) -> None:
    """The digest (also recorded in the document's events) is authenticated:
    swapping it together with the ciphertext of another file fails."""
    cid = uuid.uuid4()
    blob = seal(ring, CONTRACT, content_id=cid)
    other = seal(ring, b"another contract", content_id=cid)
    with pytest.raises(ArchiveError, match="failed authentication"):
        unseal(ring, dataclasses.replace(blob, sha256=other.sha256))
    # Ciphertext of the other file under this row's digest: refused as well.
    with pytest.raises(ArchiveError, match="failed authentication"):
        unseal(ring, dataclasses.replace(other, sha256=blob.sha256, size=blob.size))


def test_r4_1_wrong_size_is_refused(ring: KeyRing) -> None:
    blob = seal(ring, CONTRACT, content_id=uuid.uuid4())
    with pytest.raises(ArchiveError, match="recorded"):
        unseal(ring, dataclasses.replace(blob, size=blob.size + 1))


def test_r4_1_encrypted_content_needs_a_key_ring(ring: KeyRing) -> None:
    blob = seal(ring, CONTRACT, content_id=uuid.uuid4())
    with pytest.raises(ArchiveError, match="encrypted"):
        unseal(None, blob)


def test_plain_documents_are_stored_as_they_are_and_verified() -> None:
    """Not contracts (R4.4 reports, minutes): plain, but the digest still holds."""
    blob = plain(b"weekly report", content_id=uuid.uuid4())
    assert (blob.key_id, blob.nonce, blob.data) == (None, None, b"weekly report")
    assert unseal(None, blob) == b"weekly report"
    with pytest.raises(ArchiveError, match="SHA-256"):
        unseal(None, dataclasses.replace(blob, data=b"weekly rep0rt"))
    with pytest.raises(ArchiveError, match="nonce but no key id"):
        unseal(None, dataclasses.replace(blob, nonce=b"x" * NONCE_BYTES))


@given(st.binary(max_size=4096), st.uuids())
def test_r4_1_any_bytes_round_trip(content: bytes, cid: uuid.UUID) -> None:
    ring = KeyRing({"k1": K1}, "k1")
    blob = seal(ring, content, content_id=cid)
    assert blob.size == len(content)
    assert unseal(ring, blob) == content


# --- key ring ------------------------------------------------------------------------


def test_r4_1_key_ring_repr_hides_the_keys(ring: KeyRing) -> None:
    text = repr(ring) + str(ring)
    assert "k1" in text and "k2" in text
    for key in (K1, K2):
        assert repr(key) not in text
        assert b64(key) not in text
        assert key.hex() not in text


def test_r4_1_key_ring_refuses_bad_keys() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        KeyRing({"k1": K1[:16]}, "k1")
    with pytest.raises(ValueError, match="not in the ring"):
        KeyRing({"k1": K1}, "k2")


def test_r4_1_key_ring_is_not_changed_through_the_callers_dict() -> None:
    keys = {"k1": K1}
    ring = KeyRing(keys, "k1")
    keys["k1"] = K2
    assert ring.keys["k1"] == K1


def test_r4_1_key_ring_from_configured_keys(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, contract_keys={"k1": b64(K1), "k2": b64(K2)}, contract_key_id="k2"
    )
    ring = KeyRing.from_settings(settings)
    assert ring.current == "k2"
    assert dict(ring.keys) == {"k1": K1, "k2": K2}
    assert not dev_key_path(settings).exists()


# --- settings -------------------------------------------------------------------------


def test_r4_1_one_configured_key_is_the_current_one() -> None:
    settings = Settings(contract_keys={"2026-11": b64(K1)})
    assert settings.contract_key_id == "2026-11"


def test_r4_1_keys_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PL_CONTRACT_KEYS", f'{{"a": "{b64(K1)}", "b": "{b64(K2)}"}}')
    monkeypatch.setenv("PL_CONTRACT_KEY_ID", "b")
    settings = Settings()
    assert settings.contract_key_id == "b"
    assert KeyRing.from_settings(settings).keys == {"a": K1, "b": K2}


@pytest.mark.parametrize(
    ("keys", "current", "message"),
    [
        ({"k1": "not base64!"}, None, "contract key 'k1' is not valid base64"),
        ({"k1": b64(K1[:16])}, None, "contract key 'k1' must decode to 32 bytes"),
        ({"k1": b64(K1 + b"x")}, None, "contract key 'k1' must decode to 32 bytes"),
        ({"k1": b64(K1)}, "k9", "contract_key_id 'k9' is not one of contract_keys"),
        ({}, "k1", "contract_key_id 'k1' is not one of contract_keys"),
        ({"k1": b64(K1), "k2": b64(K2)}, None, "contract_key_id must name the key"),
        ({"bad id": b64(K1)}, None, "the id of key #1"),
        ({"x" * 41: b64(K1)}, None, "the id of key #1"),
    ],
)
def test_r4_1_contract_key_settings_are_validated(
    keys: dict[str, str], current: str | None, message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        Settings(contract_keys=keys, contract_key_id=current)
    for key in keys.values():
        assert key not in str(caught.value)


def test_r4_1_settings_never_show_key_material() -> None:
    settings = Settings(contract_keys={"k1": b64(K1)})
    assert b64(K1) not in repr(settings)
    assert b64(K1) not in str(settings)
    with pytest.raises(ValidationError) as caught:
        Settings(contract_keys={"k1": b64(K1)}, contract_key_id="k2")
    assert b64(K1) not in str(caught.value)


# --- development key, production --------------------------------------------------------


def test_r4_1_dev_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = KeyRing.from_settings(settings)
    path = dev_key_path(settings)
    assert path == tmp_path / "keys" / "contract-dev.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.current == DEV_KEY_ID
    second = KeyRing.from_settings(settings)
    assert second.keys == first.keys
    assert len(first.keys[DEV_KEY_ID]) == 32
    assert [p.name for p in path.parent.iterdir()] == ["contract-dev.key"]  # no temp left


def test_r4_1_dev_key_reads_across_restarts(tmp_path: Path) -> None:
    blob = seal(
        KeyRing.from_settings(Settings(data_dir=tmp_path)), CONTRACT, content_id=uuid.uuid4()
    )
    assert unseal(KeyRing.from_settings(Settings(data_dir=tmp_path)), blob) == CONTRACT


def test_r4_1_corrupt_dev_key_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    dev_key_path(settings).parent.mkdir(parents=True)
    dev_key_path(settings).write_text(b64(K1[:16]))
    with pytest.raises(RuntimeError, match="32 bytes"):
        KeyRing.from_settings(settings)


def test_r4_1_production_refuses_to_run_without_contract_keys(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, environment="production")
    with pytest.raises(RuntimeError, match="PL_CONTRACT_KEYS"):
        KeyRing.from_settings(settings)
    assert not dev_key_path(settings).exists()


def test_r4_1_production_uses_configured_keys(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, environment="production", contract_keys={"prod-1": b64(K2)}
    )
    assert KeyRing.from_settings(settings) == KeyRing({"prod-1": K2}, "prod-1")
