"""Idempotency keys (DESIGN.md section 6): a retried POST is not applied twice.

The key is stored in the same transaction as the command's events (see
shared.eventstore.LedgerRecorder), with the aggregate id and version the command
produced, so the retry is answered with that very version of the resource.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True)
class IdempotencyKey:
    """An `Idempotency-Key` header, scoped to the caller and the request."""

    principal: str
    key: str
    request_hash: str
    success_status: int = 201


@dataclass(frozen=True)
class IdempotencyRecord:
    key: IdempotencyKey
    aggregate_id: UUID
    aggregate_version: int


class IdempotencyKeyReused(Exception):
    """The same key came with a different request (a client bug, 422)."""
