"""Make rows fit their table before they reach the database, so one odd value cannot fail a batch.

PostgreSQL rejects a NUL character in any text and a string longer than its ``VARCHAR(n)``;
SQLite accepts both; neither accepts a lone surrogate, which UTF-8 cannot encode (a Python
string can hold one: bytes decoded with ``surrogateescape``, a ``"\\ud800"`` escape in JSON
sent to the server). A single such value would fail the whole transaction it is written in (up
to 200 traces in one export batch). Every row the store writes passes through :func:`fit_rows`:
NUL and lone surrogates become U+FFFD (visible, never silently joined text), strings in bounded
columns are clipped with a trailing ``…``, and what was changed is reported so the store can
record it on the trace. Both databases then store the same thing.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, Table

from tracejudge.entities._json import is_valid_text, valid_text

NUL = "\x00"
NUL_REPLACEMENT = "\ufffd"
ELLIPSIS = "…"


@dataclass(frozen=True)
class Change:
    """One value changed to fit: which table and column, of which trace (if any), and how."""

    table: str
    column: str
    trace_id: str | None
    what: str  # "NUL replaced" or "clipped from N to M characters"

    def describe(self) -> str:
        return f"{self.table}.{self.column} {self.what}"


@functools.cache
def _limits(table: Table) -> dict[str, int]:
    return {
        c.name: c.type.length
        for c in table.columns
        if isinstance(c.type, String) and c.type.length is not None
    }


def fit_text(value: str, limit: int | None = None) -> tuple[str, list[str]]:
    """``value`` without NUL and at most ``limit`` characters, with what was done to it."""
    notes = []
    if NUL in value:
        value = value.replace(NUL, NUL_REPLACEMENT)
        notes.append("NUL replaced")
    if not is_valid_text(value):
        value = valid_text(value)
        notes.append("lone surrogates replaced")
    if limit is not None and len(value) > limit:
        notes.append(f"clipped from {len(value)} to {limit} characters")
        value = value[: limit - len(ELLIPSIS)] + ELLIPSIS
    return value, notes


def fit_rows(
    table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str] | None = None
) -> tuple[list[dict[str, Any]], list[Change]]:
    """Rows that fit ``table``, deduplicated on ``keys`` (default: its primary key; the last row
    wins), and the changes made.

    Deduplication matters because PostgreSQL refuses an ``INSERT … ON CONFLICT DO UPDATE`` that
    touches the same row twice, and clipping can make two keys equal.
    """
    limits = _limits(table)
    keys = list(keys) if keys is not None else [c.name for c in table.primary_key.columns]
    changes: list[Change] = []
    fitted: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        clean = row
        for column, value in row.items():
            # the common case in one cheap test: valid text with no NUL, within its column's limit
            if not isinstance(value, str) or (
                NUL not in value
                and len(value) <= limits.get(column, len(value))
                and is_valid_text(value)
            ):
                continue
            new, notes = fit_text(value, limits.get(column))
            if clean is row:
                clean = dict(row)  # copied only when something changes
            clean[column] = new
            changes.extend(Change(table.name, column, row.get("trace_id"), n) for n in notes)
        key = tuple(clean.get(k) for k in keys)
        fitted.pop(key, None)  # keep the order of the last occurrence
        fitted[key] = clean
    return list(fitted.values()), changes


def fit_value(table: Table, column: str, value: Any) -> Any:
    """``value`` as it is stored in ``table.column`` (to look a written row up again)."""
    if not isinstance(value, str):
        return value
    return fit_text(value, _limits(table).get(column))[0]


def fit_row(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """One row fitted to ``table`` (for single-row inserts and updates)."""
    return fit_rows(table, [row])[0][0]


def describe(changes: Iterable[Change], limit: int = 10) -> str:
    """A short note listing the changes (for a trace's ``tracejudge.sanitized`` metadata)."""
    parts = sorted({c.describe() for c in changes})
    more = f"; and {len(parts) - limit} more" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more
