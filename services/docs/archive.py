"""File contents at rest: contracts sealed with AES-256-GCM (R4.1), every other
document stored plain, each row checked against its SHA-256 when read (R4.5).

A contract row keeps the id of the key that sealed it, so keys can rotate: new
contracts are sealed with the current key (`PL_CONTRACT_KEY_ID`), older ones stay
readable while their key is still configured, and `rotate` (the command
`partnerledger rotate-contract-key`) re-seals them under the current key so the
old one can be retired.

The associated data binds each ciphertext to its row's content id and SHA-256:
a ciphertext copied onto another document's row, or a digest swapped to match
substituted content, fails authentication instead of being served.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final
from uuid import UUID

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.db import DbConn, Migration, quote_ident
from shared.eventstore import Blob
from shared.settings import CONTRACT_KEY_BYTES, CONTRACT_KEY_ID, Settings, decode_contract_key

NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
DEV_KEY_ID: Final = "dev-1"
#: Versioned, so a future change of the associated data cannot be confused
#: with this one.
_AAD_PREFIX: Final = b"partnerledger/docs/contents/v1\x00"
_COLUMNS: Final = "id, sha256, size, key_id, nonce, data"


class ArchiveError(Exception):
    """Stored content cannot be trusted: unknown key id, failed authentication
    (tampered or swapped ciphertext), or a digest or size that does not match."""


class ContentNotFound(ArchiveError, KeyError):
    """No row for the content id."""

    def __str__(self) -> str:
        return Exception.__str__(self)


class RotationIncomplete(ArchiveError):
    """`rotate` re-sealed every row it could verify and refused the rest: those
    still need their old key (and an investigation) before it is retired."""

    def __init__(self, rotated: int, refused: Mapping[UUID, str]) -> None:
        self.rotated = rotated
        self.refused = dict(refused)
        listed = "; ".join(f"{cid}: {why}" for cid, why in sorted(self.refused.items()))
        super().__init__(
            f"re-encrypted {rotated}, refused {len(self.refused)} that failed verification"
            f" ({listed})"
        )


@dataclass(frozen=True)
class KeyRing:
    """Contract keys by id and the id new ciphertext is sealed with."""

    keys: Mapping[str, bytes]
    current: str

    def __post_init__(self) -> None:
        for key_id, key in self.keys.items():
            if not CONTRACT_KEY_ID.fullmatch(key_id):
                raise ValueError("a contract key id must be 1-40 of A-Z a-z 0-9 _ . -")
            if len(key) != CONTRACT_KEY_BYTES:
                raise ValueError(f"contract key {key_id!r} must be {CONTRACT_KEY_BYTES} bytes")
        if self.current not in self.keys:
            raise ValueError(f"current contract key {self.current!r} is not in the ring")
        # A read-only copy: a caller's dict changing later must not change the ring.
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))

    def __repr__(self) -> str:
        # Key rings end up in tracebacks and debug logs; the material must not.
        return f"KeyRing(current={self.current!r}, key_ids={sorted(self.keys)!r})"

    def key(self, key_id: str) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise ArchiveError(f"unknown contract key id {key_id!r}") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """The configured keys; in development with none configured, a dev key
        generated once into the data directory. Production refuses to seal
        contracts with a key that lives next to the data."""
        if settings.contract_keys:
            keys = {k: decode_contract_key(k, v) for k, v in settings.contract_keys.items()}
            current = settings.contract_key_id or next(iter(keys))
            return cls(keys, current)
        if settings.environment == "production":
            raise RuntimeError(
                "PL_ENVIRONMENT=production needs PL_CONTRACT_KEYS (and PL_CONTRACT_KEY_ID when"
                " more than one key is configured); the generated development key is refused"
            )
        return cls({DEV_KEY_ID: _dev_key(settings)}, DEV_KEY_ID)


def dev_key_path(settings: Settings) -> Path:
    return settings.data_dir / "keys" / "contract-dev.key"


def _dev_key(settings: Settings) -> bytes:
    path = dev_key_path(settings)
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.b64encode(secrets.token_bytes(CONTRACT_KEY_BYTES)).decode())
        try:
            # Atomic create: services starting together must all end up with the
            # first key written, or contracts sealed by one are unreadable by another.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    try:
        return decode_contract_key(DEV_KEY_ID, path.read_text())
    except ValueError as exc:
        raise RuntimeError(f"{path}: {exc}") from None


def _aad(content_id: UUID, sha256: str) -> bytes:
    return _AAD_PREFIX + content_id.bytes + sha256.encode("ascii")


def seal(ring: KeyRing, plaintext: bytes, *, content_id: UUID) -> Blob:
    """The ciphertext row of a contract file (R4.1), sealed with the current key
    under a fresh random nonce; `data` is ciphertext followed by the GCM tag."""
    sha = hashlib.sha256(plaintext).hexdigest()
    nonce = secrets.token_bytes(NONCE_BYTES)
    data = AESGCM(ring.key(ring.current)).encrypt(nonce, plaintext, _aad(content_id, sha))
    return Blob(
        id=content_id,
        sha256=sha,
        size=len(plaintext),
        data=data,
        key_id=ring.current,
        nonce=nonce,
    )


def plain(data: bytes, *, content_id: UUID) -> Blob:
    """The row of a document that is not a contract: stored as it is."""
    return Blob(id=content_id, sha256=hashlib.sha256(data).hexdigest(), size=len(data), data=data)


def unseal(ring: KeyRing | None, blob: Blob) -> bytes:
    """The verified content of a row: decrypted when it is sealed, and in every
    case checked against the row's SHA-256 and size."""
    if blob.key_id is None:
        if blob.nonce is not None:
            raise ArchiveError(f"content {blob.id} has a nonce but no key id")
        content = blob.data
    else:
        if ring is None:
            raise ArchiveError(f"content {blob.id} is encrypted and no contract keys were given")
        if blob.nonce is None or len(blob.nonce) != NONCE_BYTES:
            raise ArchiveError(f"content {blob.id} has no valid nonce")
        try:
            content = AESGCM(ring.key(blob.key_id)).decrypt(
                blob.nonce, blob.data, _aad(blob.id, blob.sha256)
            )
        except InvalidTag:
            raise ArchiveError(
                f"content {blob.id} failed authentication under key {blob.key_id!r}"
                " (tampered, moved from another row, or sealed with another key)"
            ) from None
    if len(content) != blob.size:
        raise ArchiveError(f"content {blob.id} is {len(content)} bytes, recorded {blob.size}")
    if hashlib.sha256(content).hexdigest() != blob.sha256:
        raise ArchiveError(f"content {blob.id} does not match its recorded SHA-256")
    return content


def _blob(row: asyncpg.Record) -> Blob:
    return Blob(
        id=UUID(str(row["id"])),
        sha256=row["sha256"],
        size=row["size"],
        data=bytes(row["data"]),
        key_id=row["key_id"],
        nonce=None if row["nonce"] is None else bytes(row["nonce"]),
    )


async def read_content(
    conn: asyncpg.Pool | DbConn, schema: str, content_id: UUID, ring: KeyRing | None
) -> bytes:
    """The verified content of `content_id` from `<schema>.contents`; raises
    ContentNotFound (a KeyError too) when there is no row, ArchiveError when
    the row cannot be trusted."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM {quote_ident(schema)}.contents WHERE id = $1", content_id
    )
    if row is None:
        raise ContentNotFound(f"no stored content {content_id}")
    return unseal(ring, _blob(row))


async def rotate(pool: asyncpg.Pool, schema: str, ring: KeyRing, *, batch: int = 100) -> int:
    """Re-seals every contract row whose key is not `ring.current` under the
    current key, a batch per transaction; returns how many were re-sealed.

    Each row is verified with its old key first, so a tampered row is never
    turned into a validly sealed one. Such rows are refused: the others are
    still re-sealed (a compromised key must be retirable even when one row is
    damaged), then RotationIncomplete names the refused ones. Rows are claimed
    with FOR UPDATE SKIP LOCKED, so two rotations running together share the
    work instead of waiting on or re-sealing each other's rows.

    Processes that still seal with the old key add rows behind the rotation:
    set PL_CONTRACT_KEY_ID everywhere first, then rotate.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    table = f"{quote_ident(schema)}.contents"
    rotated = 0
    refused: dict[UUID, str] = {}
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM {table}"
                " WHERE key_id IS NOT NULL AND key_id <> $1 AND NOT (id = ANY($2::uuid[]))"
                " ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
                ring.current,
                list(refused),
                batch,
            )
            if not rows:
                break
            updates = list(_resealed(ring, (_blob(r) for r in rows), refused))
            if updates:
                await conn.executemany(
                    f"UPDATE {table} SET key_id = $2, nonce = $3, data = $4, rotated_at = now()"
                    " WHERE id = $1",
                    updates,
                )
            rotated += len(updates)
    if refused:
        raise RotationIncomplete(rotated, refused)
    return rotated


def _resealed(
    ring: KeyRing, blobs: Iterable[Blob], refused: dict[UUID, str]
) -> Iterable[tuple[UUID, str, bytes, bytes]]:
    for old in blobs:
        try:
            content = unseal(ring, old)
        except ArchiveError as exc:
            refused[old.id] = str(exc)
            continue
        new = seal(ring, content, content_id=old.id)
        assert new.nonce is not None and new.key_id is not None
        yield new.id, new.key_id, new.nonce, new.data


CONTENTS_MIGRATION = Migration(
    110,
    "file contents (R4.1 encrypted contracts)",
    """
    CREATE TABLE {schema}.contents (
        id uuid PRIMARY KEY,
        sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]+$' AND length(sha256) = 64),
        size bigint NOT NULL CHECK (size >= 0),
        key_id text,
        nonce bytea,
        data bytea NOT NULL,
        stored_at timestamptz NOT NULL DEFAULT now(),
        rotated_at timestamptz,
        CHECK ((key_id IS NULL) = (nonce IS NULL))
    );
    CREATE INDEX contents_by_key ON {schema}.contents (key_id) WHERE key_id IS NOT NULL;
    """,
)

__all__ = [
    "CONTENTS_MIGRATION",
    "DEV_KEY_ID",
    "ArchiveError",
    "ContentNotFound",
    "KeyRing",
    "RotationIncomplete",
    "dev_key_path",
    "plain",
    "read_content",
    "rotate",
    "seal",
    "unseal",
]
