"""Translate a parsed search filter into a SQLAlchemy expression over the ``traces`` table.

Each comparison on a related table (tags, metadata, spans, assessments) becomes a correlated
EXISTS, so AND / OR / parentheses compose without joins that would duplicate rows, and values
are always bound parameters: no SQL is ever built from strings.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable, Collection, Mapping
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, exists, false, func, not_, or_, select, true

from tracejudge.query import And, Comparison, Expr, Or
from tracejudge.query.ast import ORDER_OPS, WORD_OPS
from tracejudge.store import schema as s
from tracejudge.store import text_search
from tracejudge.store.plan_hints import NotIndexed

RUN_METADATA_KEY = "tracejudge.sourceRun"

_TRACE_COLUMNS = {
    "timestamp_ms": s.traces.c.timestamp_ms,
    "execution_time_ms": s.traces.c.execution_time_ms,
    "status": s.traces.c.status,
    "name": s.traces.c.name,
    "trace_id": s.traces.c.trace_id,
    "client_request_id": s.traces.c.client_request_id,
    "request": s.traces.c.request,
    "response": s.traces.c.response,
}
_SPAN_COLUMNS = {
    "name": s.spans.c.name,
    "type": s.spans.c.span_type,
    "status": s.spans.c.status,
    "content": s.spans.c.content,
}


PER_ROW_ABOVE = 8
"""A filter with more related-table clauses than this checks them row by row (see ``_exists``)."""
_per_row: contextvars.ContextVar[bool] = contextvars.ContextVar("per_row", default=False)


def _exists(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """EXISTS correlated with the outer ``traces`` row only (the outer query may join other tables).

    PostgreSQL turns each top-level EXISTS into a semi-join and searches join orders over all
    of them: planning 60 such clauses took 53 s and 200 over a minute, before reading a row.
    Past ``PER_ROW_ABOVE`` clauses each EXISTS is written ``EXISTS (…) IS true``, which the
    planner keeps as a per-row check (200 clauses plan in under 0.1 s); few clauses keep the
    semi-joins, whose index-driven plans serve selective filters best.
    """
    check = exists().where(*conditions).correlate(s.traces)
    return check.is_(true()) if _per_row.get() else check


def _apply(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    """``column <op> value`` for the comparison operators of the grammar."""
    if op == "=":
        return column == value
    if op == "!=":
        return column != value
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    if op == ">=":
        return column >= value
    if op == "IN":
        return column.in_(list(value))
    if op == "NOT IN":
        return column.not_in(list(value))
    if op == "LIKE":
        return column.like(value)
    if op == "NOT LIKE":
        return column.not_like(value)
    if op == "ILIKE":
        return column.ilike(value)
    if op == "NOT ILIKE":
        return column.not_ilike(value)
    raise AssertionError(f"unhandled operator {op}")  # the parser admits no other


def _key_value(table: Table, cmp: Comparison) -> ColumnElement[bool]:
    has_key = and_(table.c.trace_id == s.traces.c.trace_id, table.c.key == cmp.field.key)
    if cmp.op == "IS NULL":
        return not_(_exists(has_key))
    if cmp.op == "IS NOT NULL":
        return _exists(has_key)
    if cmp.op in ("=", "IN"):
        return _exists(has_key, _value_equals(table, cmp.value))
    return _exists(has_key, _apply(table.c.value, cmp.op, cmp.value))


def _value_equals(table: Table, value: Any) -> ColumnElement[bool]:
    """``value = v`` (or ``IN``) written on the value's prefix, which PostgreSQL's value index
    holds (``schema.VALUE_PREFIX``): a value shorter than the prefix is decided by it alone,
    so the index answers without reading rows; a longer one is checked in full as well."""
    values = value if isinstance(value, tuple) else (value,)
    if not all(isinstance(v, str) for v in values):
        return _apply(table.c.value, "IN" if isinstance(value, tuple) else "=", value)
    prefix = func.substr(table.c.value, 1, s.VALUE_PREFIX)
    short = [v for v in values if len(v) < s.VALUE_PREFIX]
    long = [v for v in values if len(v) >= s.VALUE_PREFIX]
    terms = []
    if short:
        terms.append(prefix == short[0] if len(short) == 1 else prefix.in_(short))
    for v in long:
        terms.append(and_(prefix == v[: s.VALUE_PREFIX], table.c.value == v))
    return terms[0] if len(terms) == 1 else or_(*terms)


def _assessment_value(cmp: Comparison) -> ColumnElement[bool]:
    """Numbers and booleans compare with the numeric mirror (true = 1), text with the string form."""
    a = s.assessments.c
    values = cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)
    converted: tuple[Any, ...]
    if all(isinstance(v, (bool, int, float)) for v in values):
        column, converted = a.numeric_value, tuple(float(v) for v in values)  # type: ignore[arg-type]
    else:
        column, converted = (
            a.string_value,
            tuple(v if isinstance(v, str) else json.dumps(v) for v in values),
        )
    return _apply(column, cmp.op, converted if isinstance(cmp.value, tuple) else converted[0])


def _assessment(cmp: Comparison) -> ColumnElement[bool]:
    a = s.assessments.c
    base = and_(
        a.trace_id == s.traces.c.trace_id,
        # hiding ``kind`` keeps SQLite on the per-trace index (see plan_hints)
        NotIndexed(a.kind) == cmp.field.kind,
        a.name == cmp.field.key,
        a.latest == true(),  # the current verdict: the newest valid one of that name
    )
    if cmp.op == "IS NULL":
        return not_(_exists(base, a.value_json.is_not(None)))
    if cmp.op == "IS NOT NULL":
        return _exists(base, a.value_json.is_not(None))
    return _exists(base, _assessment_value(cmp))


def _run_id(cmp: Comparison) -> ColumnElement[bool]:
    """A trace belongs to a run when the run produced it or wrote an assessment on it."""
    m, a = s.trace_metadata.c, s.assessments.c
    produced = _exists(
        m.trace_id == s.traces.c.trace_id,
        m.key == RUN_METADATA_KEY,
        _apply(m.value, cmp.op, cmp.value),
    )
    assessed = _exists(
        a.trace_id == s.traces.c.trace_id,
        a.run_id.is_not(None),
        _apply(a.run_id, cmp.op, cmp.value),
    )
    return or_(produced, assessed)


_word_plans: contextvars.ContextVar[Mapping[Comparison, bool] | None] = contextvars.ContextVar(
    "word_plans", default=None
)
_unindexed: contextvars.ContextVar[Collection[Comparison] | None] = contextvars.ContextVar(
    "unindexed", default=None
)


def word_comparisons(expr: Expr | None) -> list[Comparison]:
    """Every MATCH / NOT MATCH comparison in the filter."""
    if expr is None:
        return []
    if isinstance(expr, Comparison):
        return [expr] if expr.op in WORD_OPS else []
    return [c for e in expr.items for c in word_comparisons(e)]


def _required(expr: Expr | None, keep: Callable[[Comparison], bool]) -> list[Comparison]:
    """The comparisons kept by ``keep`` that every result must satisfy (top-level AND terms)."""
    if isinstance(expr, Comparison):
        return [expr] if keep(expr) else []
    if isinstance(expr, And):
        return [c for e in expr.items for c in _required(e, keep)]
    return []


def is_time_bound(cmp: Comparison) -> bool:
    """Whether ``cmp`` bounds the start time (``timestamp <, <=, >, >= …``)."""
    return cmp.field.kind == "attribute" and cmp.field.key == "timestamp_ms" and cmp.op in ORDER_OPS


def time_bounds(expr: Expr | None) -> list[Comparison]:
    """The start-time bounds every result must satisfy."""
    return _required(expr, is_time_bound)


def required_matches(expr: Expr | None) -> list[Comparison]:
    """The MATCH comparisons every result must satisfy."""
    return _required(expr, lambda c: c.op == "MATCH")


def _word_match(cmp: Comparison) -> ColumnElement[bool]:
    """``MATCH``: on the trace row for request/response, through its spans for span.content.

    The plan (``to_sql``'s ``word_plans``) says per comparison whether its hits are few: then
    the rows are found from the hit list, else the index is probed row by row.
    """
    words = str(cmp.value)
    via_hits = (_word_plans.get() or {}).get(cmp, True)
    if cmp.field.kind == "span":
        span_hits = text_search.matches(s.spans, "content", words, via_hits)
        if via_hits:  # the traces of the matching spans, looked up from them
            found: ColumnElement[bool] = s.traces.c.trace_id.in_(
                select(s.spans.c.trace_id).where(span_hits)
            )
        else:
            found = _exists(s.spans.c.trace_id == s.traces.c.trace_id, span_hits)
    else:
        found = text_search.matches(s.traces, cmp.field.key, words, via_hits)
    return not_(found) if cmp.op == "NOT MATCH" else found


def _comparison(cmp: Comparison) -> ColumnElement[bool]:
    kind = cmp.field.kind
    if cmp.op in WORD_OPS:
        return _word_match(cmp)
    if kind == "attribute":
        if cmp.field.key == "run_id":
            return _run_id(cmp)
        column: Any = _TRACE_COLUMNS[cmp.field.key]
        if cmp in (_unindexed.get() or ()):
            column = NotIndexed(column)
        return _apply(column, cmp.op, cmp.value)
    if kind == "tag":
        return _key_value(s.trace_tags, cmp)
    if kind == "metadata":
        return _key_value(s.trace_metadata, cmp)
    if kind in ("feedback", "expectation"):
        return _assessment(cmp)
    if kind == "span":
        column = _SPAN_COLUMNS[cmp.field.key]
        return _exists(s.spans.c.trace_id == s.traces.c.trace_id, _apply(column, cmp.op, cmp.value))
    raise AssertionError(f"unhandled field kind {kind}")


def to_sql(
    expr: Expr | None,
    word_plans: Mapping[Comparison, bool] | None = None,
    unindexed: Collection[Comparison] = (),
) -> ColumnElement[bool]:
    """The WHERE condition for a parsed filter (``true()`` when there is none).

    ``word_plans``: for each MATCH comparison, whether it has few hits (see ``_word_match``);
    a comparison not in it is served from its hit list. ``unindexed``: trace-column comparisons
    SQLite must not drive the search with (see ``plan_hints``).
    """
    token = _per_row.set(_related_clauses(expr) > PER_ROW_ABOVE)
    plans = _word_plans.set(word_plans or {})
    hidden = _unindexed.set(unindexed)
    try:
        return _condition(expr)
    finally:
        _unindexed.reset(hidden)
        _word_plans.reset(plans)
        _per_row.reset(token)


def _related_clauses(expr: Expr | None) -> int:
    """Comparisons that need another table (everything but the trace's own columns)."""
    if expr is None:
        return 0
    if isinstance(expr, Comparison):
        own = expr.field.kind == "attribute" and expr.field.key != "run_id"
        return 0 if own else 1
    return sum(_related_clauses(e) for e in expr.items)


def _condition(expr: Expr | None) -> ColumnElement[bool]:
    if expr is None:
        return true()
    if isinstance(expr, Comparison):
        return _comparison(expr)
    if isinstance(expr, And):
        return and_(*(_condition(e) for e in expr.items)) if expr.items else true()
    if isinstance(expr, Or):
        return or_(*(_condition(e) for e in expr.items)) if expr.items else false()
    raise AssertionError(f"unhandled node {expr!r}")
