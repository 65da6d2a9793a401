"""A replayed version compared with the live tables, row by row (shared.replay)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.db import DbConn, quote_ident


@dataclass
class RowDiff:
    table: str
    live_rows: int
    rebuilt_rows: int
    only_live: list[dict[str, Any]] = field(default_factory=list)
    only_rebuilt: list[dict[str, Any]] = field(default_factory=list)
    only_live_count: int = 0
    only_rebuilt_count: int = 0
    keys: tuple[str, ...] = ()

    @property
    def equal(self) -> bool:
        return self.only_live_count == 0 and self.only_rebuilt_count == 0


async def _columns(conn: DbConn, schema: str, table: str) -> tuple[list[str], list[str]]:
    """(compared columns, primary-key columns); columns filled by now() or a
    sequence differ by nature between a replay and the live table."""
    rows = await conn.fetch(
        "SELECT a.attname, pg_get_expr(d.adbin, d.adrelid) AS default_expr"
        " FROM pg_attribute a LEFT JOIN pg_attrdef d"
        " ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        f"{quote_ident(schema)}.{quote_ident(table)}",
    )
    volatile = ("now()", "nextval(", "clock_timestamp()", "CURRENT_TIMESTAMP")
    columns = [
        r["attname"] for r in rows if not any(v in (r["default_expr"] or "") for v in volatile)
    ]
    keys = await conn.fetch(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a"
        " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indrelid = $1::regclass AND i.indisprimary",
        f"{quote_ident(schema)}.{quote_ident(table)}",
    )
    return columns, [k["attname"] for k in keys if k["attname"] in columns]


async def compare_table(
    conn: DbConn, live: str, version: str, table: str, shown: int = 10
) -> RowDiff:
    columns, keys = await _columns(conn, live, table)
    cols = ", ".join(quote_ident(c) for c in columns)
    a = f"{quote_ident(live)}.{quote_ident(table)}"
    b = f"{quote_ident(version)}.{quote_ident(table)}"
    order = ", ".join(quote_ident(k) for k in keys) or "1"
    diff = RowDiff(
        table=table,
        live_rows=await conn.fetchval(f"SELECT count(*) FROM {a}"),
        rebuilt_rows=await conn.fetchval(f"SELECT count(*) FROM {b}"),
        keys=tuple(keys),
    )
    for one, other, attr in ((a, b, "only_live"), (b, a, "only_rebuilt")):
        missing = f"SELECT {cols} FROM {one} EXCEPT ALL SELECT {cols} FROM {other}"
        count = await conn.fetchval(f"SELECT count(*) FROM ({missing}) d")
        setattr(diff, f"{attr}_count", count)
        if count:
            rows = await conn.fetch(f"SELECT * FROM ({missing}) d ORDER BY {order} LIMIT {shown}")
            setattr(diff, attr, [dict(r) for r in rows])
    return diff


def render_diff(service: str, diffs: Sequence[RowDiff]) -> list[str]:
    """A diff a person reads: per table the counts, then rows paired by
    their primary key (what changed, column by column) or shown whole."""
    lines: list[str] = []
    for d in diffs:
        if d.equal:
            lines.append(f"{service}.{d.table}: equal ({d.live_rows} rows)")
            continue
        lines.append(
            f"{service}.{d.table}: DIFFERS - live {d.live_rows} rows, rebuilt {d.rebuilt_rows};"
            f" {d.only_live_count} only live, {d.only_rebuilt_count} only rebuilt"
        )

        def key(row: dict[str, Any], keys: tuple[str, ...] = d.keys) -> tuple[Any, ...]:
            return tuple(row.get(k) for k in keys)

        rebuilt = {key(r): r for r in d.only_rebuilt} if d.keys else {}
        paired: set[tuple[Any, ...]] = set()
        for row in d.only_live:
            other = rebuilt.get(key(row)) if d.keys else None
            label = ", ".join(f"{k}={row.get(k)}" for k in d.keys) or "row"
            if other is not None:
                paired.add(key(row))
                changes = [
                    f"{c}: live {row[c]!r} | rebuilt {other.get(c)!r}"
                    for c in row
                    if row[c] != other.get(c)
                ]
                lines.append(f"  changed ({label}): " + "; ".join(changes))
            else:
                lines.append(f"  only live ({label}): {_short(row)}")
        for row in d.only_rebuilt:
            if d.keys and key(row) in paired:
                continue
            label = ", ".join(f"{k}={row.get(k)}" for k in d.keys) or "row"
            lines.append(f"  only rebuilt ({label}): {_short(row)}")
        more = max(d.only_live_count - len(d.only_live), 0) + max(
            d.only_rebuilt_count - len(d.only_rebuilt), 0
        )
        if more:
            lines.append(f"  ... and {more} more rows")
    return lines


def _short(row: Mapping[str, Any], width: int = 300) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in row.items())
    return text if len(text) <= width else text[: width - 3] + "..."
