"""R4.1 contract archive against a real PostgreSQL (`services.docs.archive`).

Proves, in a fresh schema migrated with CONTENTS_MIGRATION, that a contract
row written the way LedgerRecorder writes it reads back verified; that the
stored bytes do not contain the plaintext (no 16-byte window of a multi-KB
contract) and are not the plain file; that rotating from k1 to k2 re-seals
exactly the encrypted rows under k2 with new nonces, leaves plain rows alone,
keeps every file readable, makes k1 alone useless and is idempotent; that two
rotations running together share the rows (FOR UPDATE SKIP LOCKED) and
re-seal each once; that a row tampered with SQL (a flipped byte, a row copied
onto another id, a swapped digest) is refused by read_content; and that
rotation refuses a tampered row without hiding it: every verifiable row is
re-sealed, the tampered one keeps its old key and bytes, and
RotationIncomplete names it. The rotation command's exit codes are checked
through `services.docs.rotate.main`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from services.docs import rotate as rotate_command
from services.docs.archive import (
    CONTENTS_MIGRATION,
    ArchiveError,
    ContentNotFound,
    KeyRing,
    RotationIncomplete,
    plain,
    read_content,
    rotate,
    seal,
)
from shared.db import connect, create_pool, migrate, quote_ident
from shared.eventstore import Blob
from shared.settings import Settings
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

K1 = bytes(range(32))
K2 = bytes(range(200, 232))
RING1 = KeyRing({"k1": K1}, "k1")
RING12 = KeyRing({"k1": K1, "k2": K2}, "k2")
RING2 = KeyRing({"k2": K2}, "k2")


def contract_text(n: int) -> bytes:
    """A distinctive multi-KB contract: numbered clauses, so every 16-byte
    window is specific to it."""
    clauses = [
        f"第{i}条 XX项目外包服务合同 clause {i:04d}: 乙方对甲方资料负有保密义务 #{i * 7919:08d}\n"
        for i in range(n)
    ]
    return "".join(clauses).encode()


@dataclass
class Archive:
    settings: Settings
    schema: str
    pool: asyncpg.Pool

    @property
    def table(self) -> str:
        return f"{quote_ident(self.schema)}.contents"

    async def store(self, blob: Blob) -> None:
        # The statement LedgerRecorder._insert_events runs in the events' transaction.
        await self.pool.execute(
            f"INSERT INTO {self.table} (id, sha256, size, key_id, nonce, data)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            blob.id,
            blob.sha256,
            blob.size,
            blob.key_id,
            blob.nonce,
            blob.data,
        )

    async def row(self, content_id: uuid.UUID) -> asyncpg.Record:
        row = await self.pool.fetchrow(f"SELECT * FROM {self.table} WHERE id = $1", content_id)
        assert row is not None
        return row


@pytest.fixture
async def archive(infra: Infra) -> AsyncIterator[Archive]:
    settings = infra.settings()
    schema = settings.schema_of("docs")
    conn = await connect(settings.postgres, application_name="tests")
    try:
        assert await migrate(conn, schema, [CONTENTS_MIGRATION]) == [CONTENTS_MIGRATION.version]
    finally:
        await conn.close()
    pool = await create_pool(settings.postgres, application_name="tests", schema=schema)
    try:
        yield Archive(settings, schema, pool)
    finally:
        await pool.close()
        conn = await connect(settings.postgres, application_name="tests")
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
        finally:
            await conn.close()


async def test_r4_1_contract_is_stored_encrypted_and_reads_back(archive: Archive) -> None:
    text = contract_text(120)
    assert len(text) > 8 * 1024
    blob = seal(RING1, text, content_id=uuid.uuid4())
    await archive.store(blob)

    assert await read_content(archive.pool, archive.schema, blob.id, RING1) == text
    async with archive.pool.acquire() as conn:  # a single connection reads the same
        assert await read_content(conn, archive.schema, blob.id, RING1) == text

    row = await archive.row(blob.id)
    data = bytes(row["data"])
    assert row["key_id"] == "k1" and len(row["nonce"]) == 12
    assert row["sha256"] == hashlib.sha256(text).hexdigest() and row["size"] == len(text)
    assert text not in data
    leaked = [i for i in range(len(text) - 15) if text[i : i + 16] in data]
    assert leaked == [], f"plaintext windows found at offsets {leaked[:5]}"
    assert hashlib.sha256(data).hexdigest() != row["sha256"]
    assert row["stored_at"] is not None and row["rotated_at"] is None


async def test_r4_1_encrypted_row_is_unreadable_without_the_key(archive: Archive) -> None:
    blob = seal(RING1, contract_text(3), content_id=uuid.uuid4())
    await archive.store(blob)
    with pytest.raises(ArchiveError, match="no contract keys"):
        await read_content(archive.pool, archive.schema, blob.id, None)
    with pytest.raises(ArchiveError, match="unknown contract key id 'k1'"):
        await read_content(archive.pool, archive.schema, blob.id, RING2)


async def test_missing_content_is_content_not_found(archive: Archive) -> None:
    with pytest.raises(ContentNotFound) as caught:
        await read_content(archive.pool, archive.schema, uuid.uuid4(), RING1)
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, ArchiveError)


async def test_r4_1_table_refuses_a_key_id_without_nonce(archive: Archive) -> None:
    blob = seal(RING1, b"x", content_id=uuid.uuid4())
    with pytest.raises(asyncpg.CheckViolationError):
        await archive.store(Blob(blob.id, blob.sha256, blob.size, blob.data, "k1", None))


async def test_r4_1_rotation_reseals_contracts_under_the_new_key(archive: Archive) -> None:
    contracts = [seal(RING1, contract_text(5 + i), content_id=uuid.uuid4()) for i in range(5)]
    report = plain("XX项目-2026年11月-周报".encode(), content_id=uuid.uuid4())
    for blob in [*contracts, report]:
        await archive.store(blob)
    before = {b.id: await archive.row(b.id) for b in [*contracts, report]}

    assert await rotate(archive.pool, archive.schema, RING12, batch=2) == 5

    for blob in contracts:
        row = await archive.row(blob.id)
        assert row["key_id"] == "k2"
        assert row["nonce"] != before[blob.id]["nonce"]
        assert row["data"] != before[blob.id]["data"]
        assert row["sha256"] == blob.sha256 and row["size"] == blob.size
        assert row["rotated_at"] is not None
        plaintext = contract_text(5 + contracts.index(blob))
        assert await read_content(archive.pool, archive.schema, blob.id, RING12) == plaintext
        assert await read_content(archive.pool, archive.schema, blob.id, RING2) == plaintext
        with pytest.raises(ArchiveError, match="unknown contract key id 'k2'"):
            await read_content(archive.pool, archive.schema, blob.id, RING1)
    untouched = await archive.row(report.id)
    assert dict(untouched) == dict(before[report.id])
    assert await read_content(archive.pool, archive.schema, report.id, None) == report.data

    assert await rotate(archive.pool, archive.schema, RING12) == 0


async def test_r4_1_two_rotations_together_reseal_each_row_once(archive: Archive) -> None:
    contracts = [seal(RING1, contract_text(2), content_id=uuid.uuid4()) for _ in range(40)]
    for blob in contracts:
        await archive.store(blob)
    counts = await asyncio.gather(
        rotate(archive.pool, archive.schema, RING12, batch=3),
        rotate(archive.pool, archive.schema, RING12, batch=3),
    )
    assert sum(counts) == 40
    keys = await archive.pool.fetch(f"SELECT DISTINCT key_id FROM {archive.table}")
    assert [r["key_id"] for r in keys] == ["k2"]


async def test_r4_1_tampering_with_sql_is_detected(archive: Archive) -> None:
    text = contract_text(4)
    original = seal(RING1, text, content_id=uuid.uuid4())
    other = seal(RING1, b"another contract", content_id=uuid.uuid4())
    await archive.store(original)
    await archive.store(other)

    # A row copied onto another content id.
    moved = uuid.uuid4()
    await archive.pool.execute(
        f"INSERT INTO {archive.table} (id, sha256, size, key_id, nonce, data)"
        f" SELECT $2, sha256, size, key_id, nonce, data FROM {archive.table} WHERE id = $1",
        original.id,
        moved,
    )
    with pytest.raises(ArchiveError, match="failed authentication"):
        await read_content(archive.pool, archive.schema, moved, RING1)

    # The other file's digest and size swapped in.
    await archive.pool.execute(
        f"UPDATE {archive.table} SET sha256 = $2, size = $3 WHERE id = $1",
        original.id,
        other.sha256,
        other.size,
    )
    with pytest.raises(ArchiveError, match="failed authentication"):
        await read_content(archive.pool, archive.schema, original.id, RING1)

    # Restored, then one byte of ciphertext flipped in place.
    await archive.pool.execute(
        f"UPDATE {archive.table} SET sha256 = $2, size = $3 WHERE id = $1",
        original.id,
        original.sha256,
        original.size,
    )
    assert await read_content(archive.pool, archive.schema, original.id, RING1) == text
    await archive.pool.execute(
        f"UPDATE {archive.table} SET data = set_byte(data, 100, get_byte(data, 100) # 1)"
        " WHERE id = $1",
        original.id,
    )
    with pytest.raises(ArchiveError, match="failed authentication"):
        await read_content(archive.pool, archive.schema, original.id, RING1)


async def test_r4_1_rotation_refuses_a_tampered_row_and_reseals_the_rest(
    archive: Archive,
) -> None:
    """Chosen behaviour: a tampered row is never re-sealed (that would launder
    it into a valid ciphertext under the new key) and never blocks the
    others, since a compromised key must be retirable; it keeps its old key
    and bytes, and RotationIncomplete names it, so the old key is kept until
    it is restored."""
    good = [seal(RING1, contract_text(3), content_id=uuid.uuid4()) for _ in range(6)]
    bad = seal(RING1, contract_text(3), content_id=uuid.uuid4())
    for blob in [*good, bad]:
        await archive.store(blob)
    await archive.pool.execute(
        f"UPDATE {archive.table} SET data = set_byte(data, 0, get_byte(data, 0) # 128)"
        " WHERE id = $1",
        bad.id,
    )
    tampered = await archive.row(bad.id)

    with pytest.raises(RotationIncomplete) as caught:
        await rotate(archive.pool, archive.schema, RING12, batch=2)
    assert caught.value.rotated == 6
    assert list(caught.value.refused) == [bad.id]
    assert "failed authentication" in caught.value.refused[bad.id]
    assert str(bad.id) in str(caught.value)

    assert dict(await archive.row(bad.id)) == dict(tampered)
    for blob in good:
        assert (await archive.row(blob.id))["key_id"] == "k2"
        assert await read_content(archive.pool, archive.schema, blob.id, RING2) == contract_text(3)

    # Run again: nothing left to re-seal, the tampered row is still reported.
    with pytest.raises(RotationIncomplete) as again:
        await rotate(archive.pool, archive.schema, RING12)
    assert again.value.rotated == 0 and list(again.value.refused) == [bad.id]


def _command_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, **keys: bytes) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("PL_SCHEMA_PREFIX", settings.schema_prefix)
    monkeypatch.setenv("PL_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv(
        "PL_CONTRACT_KEYS",
        "{" + ", ".join(f'"{k}": "{base64.b64encode(v).decode()}"' for k, v in keys.items()) + "}",
    )
    monkeypatch.setenv("PL_CONTRACT_KEY_ID", list(keys)[-1])


async def test_r4_1_rotation_command(
    archive: Archive, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(3):
        await archive.store(seal(RING1, contract_text(2), content_id=uuid.uuid4()))
    _command_env(monkeypatch, archive.settings, k1=K1, k2=K2)
    # main() runs its own event loop, as it does from the shell.
    assert await asyncio.to_thread(rotate_command.main, []) == 0
    assert "re-encrypted 3 contract files under key k2" in capsys.readouterr().out
    assert await asyncio.to_thread(rotate_command.main, []) == 0
    assert "re-encrypted 0 contract files under key k2" in capsys.readouterr().out

    bad = seal(RING12, b"tampered later", content_id=uuid.uuid4())
    await archive.store(
        Blob(bad.id, bad.sha256, bad.size, bytes([bad.data[0] ^ 1]) + bad.data[1:], "k2", bad.nonce)
    )
    _command_env(monkeypatch, archive.settings, k2=K2, k3=bytes(32))
    assert await asyncio.to_thread(rotate_command.main, []) == 1
    out, err = capsys.readouterr()
    assert "re-encrypted 3 contract files under key k3" in out
    assert str(bad.id) in err and "failed authentication" in err


async def test_r4_1_rotation_command_needs_the_table_and_valid_keys(
    infra: Infra, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = infra.settings()
    _command_env(monkeypatch, settings, k1=K1)
    assert await asyncio.to_thread(rotate_command.main, []) == 1
    assert "does not exist" in capsys.readouterr().err
    monkeypatch.setenv("PL_CONTRACT_KEYS", '{"k1": "c2hvcnQ="}')
    assert await asyncio.to_thread(rotate_command.main, []) == 2
    err = capsys.readouterr().err
    assert "contract key 'k1' must decode to 32 bytes" in err and "c2hvcnQ=" not in err
