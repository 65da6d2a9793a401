"""Re-encrypts archived contract files under the current key (R4.1 key rotation).

    python -m services.docs.rotate [--batch N]
    partnerledger rotate-contract-key [--batch N]

Steps: add the new key to PL_CONTRACT_KEYS and point PL_CONTRACT_KEY_ID at it on
every docs process (new contracts are then sealed with it), run this command,
and only after it reports success remove the old key. It needs the docs
service's tables (the service creates them when it starts); it never migrates.

Exit codes: 0 all rotated; 1 some files failed verification (the others were
rotated; keep the old key until they are dealt with) or the database is not
ready; 2 the key configuration is unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import asyncpg
from pydantic import ValidationError

from services.docs.archive import ArchiveError, KeyRing, RotationIncomplete, rotate
from shared.db import create_pool, quote_ident
from shared.settings import Settings, load_settings

SERVICE = "docs"


class NotReady(Exception):
    """The database has no contents table for this schema prefix."""


async def run(settings: Settings, ring: KeyRing, *, batch: int) -> int:
    schema = settings.schema_of(SERVICE)
    pool = await create_pool(
        settings.postgres,
        application_name="partnerledger-rotate-contract-key",
        schema=schema,
        min_size=1,
        max_size=2,
    )
    try:
        table = f"{quote_ident(schema)}.contents"
        if await pool.fetchval("SELECT to_regclass($1)", table) is None:
            raise NotReady(
                f"{table} does not exist in database {settings.postgres.dbname!r}:"
                " start the docs service once (it creates its tables), or check"
                " DATABASE_URL and PL_SCHEMA_PREFIX"
            )
        return await rotate(pool, schema, ring, batch=batch)
    finally:
        await pool.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.docs.rotate",
        description="Re-encrypt contract files under PL_CONTRACT_KEY_ID (R4.1).",
    )
    parser.add_argument("--batch", type=int, default=100, help="rows per transaction")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    try:
        settings = load_settings()
        ring = KeyRing.from_settings(settings)
    except (ValidationError, RuntimeError) as exc:
        sys.stderr.write(f"contract keys are not usable: {exc}\n")
        return 2
    try:
        count = asyncio.run(run(settings, ring, batch=args.batch))
    except RotationIncomplete as exc:
        sys.stdout.write(f"re-encrypted {exc.rotated} contract files under key {ring.current}\n")
        sys.stderr.write(
            f"refused {len(exc.refused)} contract files that failed verification;"
            " keep their old key configured until they are restored:\n"
        )
        for content_id, why in sorted(exc.refused.items()):
            sys.stderr.write(f"  {content_id}: {why}\n")
        return 1
    except ArchiveError as exc:
        sys.stderr.write(f"rotation stopped: {exc}\n")
        return 1
    except (NotReady, OSError, asyncpg.PostgresError) as exc:
        sys.stderr.write(f"database not ready: {exc}\n")
        return 1
    sys.stdout.write(f"re-encrypted {count} contract files under key {ring.current}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
