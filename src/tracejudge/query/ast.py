"""The parsed form of a trace-search filter: comparisons joined by AND / OR.

Nodes carry the 1-based column where they start so that the store can name the place of a
semantic error (say, ``LIKE`` on a timestamp) just as the parser names syntax errors.
"""

from __future__ import annotations

from dataclasses import dataclass

Literal = str | int | float | bool
Value = Literal | tuple[Literal, ...] | None

# What may follow the prefix of a field. ``attribute`` fields are columns of the trace row.
ATTRIBUTE_FIELDS = {
    "timestamp": "timestamp_ms",
    "timestamp_ms": "timestamp_ms",
    "request_time": "timestamp_ms",
    "execution_time": "execution_time_ms",
    "execution_time_ms": "execution_time_ms",
    "execution_duration": "execution_time_ms",
    "status": "status",
    "state": "status",
    "name": "name",
    "run_id": "run_id",
    "trace_id": "trace_id",
    "request_id": "trace_id",
    "client_request_id": "client_request_id",
    "request": "request",
    "response": "response",
}
SPAN_FIELDS = {
    "name": "name",
    "type": "type",
    "span_type": "type",
    "status": "status",
    "content": "content",
}
TEXT_FIELDS = {("attribute", "request"), ("attribute", "response"), ("span", "content")}
"""Fields holding free text (a trace's full request and response, a span's payload): searched
with LIKE / ILIKE or by words with MATCH, never compared whole."""

# Prefix spellings (MLflow's included) and the kind of field each one selects.
PREFIXES = {
    "attribute": "attribute",
    "attributes": "attribute",
    "trace": "attribute",
    "tag": "tag",
    "tags": "tag",
    "metadata": "metadata",
    "request_metadata": "metadata",
    "feedback": "feedback",
    "expectation": "expectation",
    "span": "span",
}

NUMERIC_ATTRIBUTES = {"timestamp_ms", "execution_time_ms"}

COMPARISON_OPS = ("=", "!=", "<", "<=", ">", ">=")
ORDER_OPS = ("<", "<=", ">", ">=")
SET_OPS = ("IN", "NOT IN")
PATTERN_OPS = ("LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE")
WORD_OPS = ("MATCH", "NOT MATCH")
NULL_OPS = ("IS NULL", "IS NOT NULL")


@dataclass(frozen=True)
class Field:
    """What a comparison looks at: ``kind`` is attribute | tag | metadata | feedback | expectation | span."""

    kind: str
    key: str
    position: int

    def __str__(self) -> str:
        return self.key if self.kind == "attribute" else f"{self.kind}.{self.key}"


@dataclass(frozen=True)
class Comparison:
    field: Field
    op: str
    value: Value
    position: int


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


Expr = Comparison | And | Or


@dataclass(frozen=True)
class OrderKey:
    field: Field
    ascending: bool
