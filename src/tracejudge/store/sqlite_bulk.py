"""Many rows into a word-searched SQLite table in one statement, not one statement per row.

The FTS5 triggers of ``traces`` and ``spans`` (``text_search``) make every statement that fires
them pay a fixed cost on top of the indexing itself. Measured on 40,000 span rows with the
``spans_fts`` trigger: ``executemany`` 140-190 µs per row, one ``INSERT … SELECT … FROM
json_each(?)`` over the same rows 46-73 µs per row (without the trigger the two are 18 and
25 µs, so tables without word search keep ``executemany``). The rows travel as one JSON array
of arrays, which SQLite unpacks with ``json_each``. One statement is also one call into the
driver, which releases the GIL for the whole batch: the traced application runs meanwhile,
where ``executemany`` took the GIL back after every row.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Table

MAX_STATEMENT_BYTES = 8_000_000
"""Rows are sent in chunks of about this much JSON (SQLite's own limit on one value is 1 GB)."""


@functools.cache
def _upsert_sql(table: Table, keys: tuple[str, ...]) -> str:
    columns = [c.name for c in table.columns]
    values = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(columns)))
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    # "WHERE true" tells SQLite's parser that ON CONFLICT is the upsert clause, not a join's ON
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"SELECT {values} FROM json_each(?) WHERE true "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


def encode_rows(table: Table, rows: Sequence[dict[str, Any]]) -> list[bytes]:
    """The rows as JSON arrays in the table's column order, in chunks of at most about
    ``MAX_STATEMENT_BYTES``. Raises ``TypeError`` for a value JSON cannot carry exactly (text
    with lone surrogates, say), so the caller can use the row-by-row path instead."""
    columns = [c.name for c in table.columns]
    chunks: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    for row in rows:
        part = orjson.dumps([row.get(c) for c in columns])
        if parts and size + len(part) > MAX_STATEMENT_BYTES:
            chunks.append(b"[" + b",".join(parts) + b"]")
            parts, size = [], 0
        parts.append(part)
        size += len(part) + 1
    if parts:
        chunks.append(b"[" + b",".join(parts) + b"]")
    return chunks


def upsert(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert ``rows`` into ``table``, replacing those whose ``keys`` exist, a chunk per
    statement. Rows must already fit the table (``sanitize.fit_rows``) and be unique on keys."""
    sql = _upsert_sql(table, tuple(keys))
    for chunk in encode_rows(table, rows):
        conn.exec_driver_sql(sql, (chunk.decode(),))
