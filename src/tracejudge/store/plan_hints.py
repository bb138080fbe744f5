"""Hints that steer SQLite's planner where, without statistics, it would pick a slow index.

SQLite plans from the shape of a query when no ``ANALYZE`` has run (a fresh or growing store):
it prefers the index whose leading columns match the most constants. A per-trace probe of the
current verdict (``trace_id = traces.trace_id AND kind = 'feedback' AND name = ? AND latest``)
then goes through ``ix_assessments_sort`` (kind, name, latest, …) and scans every verdict of
that name for each trace: quadratic. Hiding one column from it leaves the per-trace index.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.ext.compiler import compiles


class NotIndexed(ColumnElement[Any]):
    """A column SQLite must not use an index for: rendered ``+col`` there, ``col`` elsewhere."""

    inherit_cache = True

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.column = column
        self.type = column.type


@compiles(NotIndexed)
def _render_plain(element: NotIndexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column, **kw))


@compiles(NotIndexed, "sqlite")
def _render_unary_plus(element: NotIndexed, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(element.column, **kw))
