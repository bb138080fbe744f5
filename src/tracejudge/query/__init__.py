"""The trace-search language: filter strings and order-by clauses, parsed into a small AST."""

from tracejudge.query.ast import And, Comparison, Expr, Field, Or, OrderKey
from tracejudge.query.filter_parser import parse_filter, parse_order_by

__all__ = ["And", "Comparison", "Expr", "Field", "Or", "OrderKey", "parse_filter", "parse_order_by"]
