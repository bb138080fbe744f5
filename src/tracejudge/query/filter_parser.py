"""Parse trace-search filter strings (and ``order_by`` clauses) with a lark LALR grammar.

Unlike MLflow's AND-only filters, clauses may be joined with AND and OR and grouped with
parentheses. Syntax errors and misuse of a field both raise :class:`InvalidFilterError`
naming the column and what was expected there.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from tracejudge.errors import InvalidFilterError, InvalidOrderByError
from tracejudge.query.ast import (
    ATTRIBUTE_FIELDS,
    COMPARISON_OPS,
    NULL_OPS,
    NUMERIC_ATTRIBUTES,
    ORDER_OPS,
    PATTERN_OPS,
    PREFIXES,
    SET_OPS,
    SPAN_FIELDS,
    TEXT_FIELDS,
    WORD_OPS,
    And,
    Comparison,
    Expr,
    Field,
    Literal,
    Or,
    OrderKey,
    Value,
)

_GRAMMAR = r"""
    filter: or_expr
    order_key: field DIRECTION?

    ?or_expr: and_expr (OR and_expr)*
    ?and_expr: atom (AND atom)*
    ?atom: comparison
         | LPAR or_expr RPAR -> group

    comparison: field COMP_OP value             -> compare
              | field IN value_list             -> in_list
              | field NOT IN value_list         -> not_in_list
              | field LIKE_OP STRING            -> like
              | field NOT LIKE_OP STRING        -> not_like
              | field MATCH STRING              -> match
              | field NOT MATCH STRING          -> not_match
              | field IS NULL                   -> is_null
              | field IS NOT NULL               -> is_not_null

    field: NAME (DOT key)*
    key: NAME | QUOTED_KEY | STRING

    value: STRING | NUMBER | TRUE | FALSE
    value_list: LPAR value (COMMA value)* RPAR

    AND.2: /and\b/i
    OR.2: /or\b/i
    NOT.2: /not\b/i
    IN.2: /in\b/i
    IS.2: /is\b/i
    NULL.2: /null\b/i
    TRUE.2: /true\b/i
    FALSE.2: /false\b/i
    LIKE_OP.2: /i?like\b/i
    MATCH.2: /match\b/i
    DIRECTION.2: /(asc|desc)\b/i

    COMP_OP: "==" | "!=" | "<>" | "<=" | ">=" | "=" | "<" | ">"
    NAME: /[A-Za-z_][A-Za-z0-9_\-]*/
    QUOTED_KEY: /`[^`]*`/
    STRING: /'(?:[^'\\]|\\.|'')*'/ | /"(?:[^"\\]|\\.)*"/
    NUMBER: /[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/
    LPAR: "("
    RPAR: ")"
    COMMA: ","
    DOT: "."

    %import common.WS
    %ignore WS
"""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_EXPECTED_WORDS = {
    "AND": "AND",
    "OR": "OR",
    "NOT": "NOT",
    "IN": "IN",
    "IS": "IS",
    "NULL": "NULL",
    "TRUE": "true",
    "FALSE": "false",
    "LIKE_OP": "LIKE/ILIKE",
    "MATCH": "MATCH",
    "DIRECTION": "ASC/DESC",
    "COMP_OP": "a comparison operator (=, !=, <, <=, >, >=)",
    "NAME": "a field name",
    "QUOTED_KEY": "a `quoted key`",
    "STRING": "a quoted string",
    "NUMBER": "a number",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "DOT": "'.'",
    "$END": "the end of the filter",
}
_KEYWORDS = {
    "and": "AND",
    "or": "OR",
    "not": "NOT",
    "in": "IN",
    "is": "IS",
    "null": "NULL",
    "true": "TRUE",
    "false": "FALSE",
    "like": "LIKE_OP",
    "ilike": "LIKE_OP",
    "match": "MATCH",
}


def _reserve_keywords(tok: Token) -> Token:
    """Keywords are reserved: ``OR`` where a field name should be is a syntax error, not a field."""
    kind = _KEYWORDS.get(tok.lower())
    return Token.new_borrow_pos(kind, tok, tok) if kind else tok


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(
        _GRAMMAR,
        start=["filter", "order_key"],
        parser="lalr",
        propagate_positions=True,
        lexer_callbacks={"NAME": _reserve_keywords},
    )


def _unquote(text: str) -> str:
    quote, body = text[0], text[1:-1]
    if quote == "'":
        body = body.replace("''", "'")
    return re.sub(r"\\(.)", r"\1", body)


def _describe_expected(names: set[str] | frozenset[str]) -> list[str]:
    words = {_EXPECTED_WORDS.get(n, n) for n in names if not n.startswith("__")}
    return sorted(words)


def _syntax_error(text: str, exc: UnexpectedInput, *, start: str = "filter") -> InvalidFilterError:
    column = getattr(exc, "column", None)
    column = column if isinstance(column, int) and column > 0 else len(text) + 1
    expected_names: set[str] = set()
    if isinstance(exc, UnexpectedToken):
        expected_names = set(exc.expected)
        found = "end of filter" if exc.token.type == "$END" else repr(str(exc.token))
        if exc.token.type == "$END":
            column = len(text) + 1
    elif isinstance(exc, UnexpectedCharacters):
        expected_names = set(exc.allowed or set())
        pos = exc.pos_in_stream or 0
        char = text[pos] if pos < len(text) else ""
        found = "unterminated string" if char in "'\"`" and char else repr(char)
    elif isinstance(exc, UnexpectedEOF):
        expected_names = set(exc.expected)
        found = "end of filter"
        column = len(text) + 1
    else:  # pragma: no cover - lark raises only the three above
        found = "input"
    if start == "filter":  # the two start rules share lexer states; ASC/DESC only ends order_by
        expected_names.discard("DIRECTION")
    expected = _describe_expected(expected_names)
    message = f"Invalid filter: unexpected {found}"
    if expected:
        message += "; expected " + " or ".join(expected)
    return InvalidFilterError(message, filter_string=text, position=column, expected=expected)


def _make_field(tok: Token, keys: list[str], text: str) -> Field:
    head = str(tok)
    position = tok.column or 1
    if not keys:
        attr = ATTRIBUTE_FIELDS.get(head.lower())
        if attr is None:
            raise InvalidFilterError(
                f"Unknown field {head!r}; expected one of {', '.join(sorted(set(ATTRIBUTE_FIELDS)))} "
                "or a prefixed field such as tag.<key>, metadata.<key>, feedback.<name>, span.name",
                filter_string=text,
                position=position,
            )
        return Field("attribute", attr, position)
    kind = PREFIXES.get(head.lower())
    if kind is None:
        raise InvalidFilterError(
            f"Unknown field prefix {head!r}; expected one of {', '.join(sorted(PREFIXES))}",
            filter_string=text,
            position=position,
        )
    key = ".".join(keys)
    if kind == "attribute":
        attr = ATTRIBUTE_FIELDS.get(key.lower())
        if attr is None:
            raise InvalidFilterError(
                f"Unknown trace attribute {key!r}", filter_string=text, position=position
            )
        return Field("attribute", attr, position)
    if kind == "span":
        span_field = SPAN_FIELDS.get(key.lower())
        if span_field is None:
            raise InvalidFilterError(
                f"Unknown span field {key!r}; expected span.name, span.type, span.status "
                "or span.content",
                filter_string=text,
                position=position,
            )
        return Field("span", span_field, position)
    if not key:
        raise InvalidFilterError(f"Empty key after {head}.", filter_string=text, position=position)
    return Field(kind, key, position)


def _allowed_ops(field: Field) -> tuple[str, ...]:
    if (field.kind, field.key) in TEXT_FIELDS:
        return (*PATTERN_OPS, *WORD_OPS)
    if field.kind == "attribute" and field.key in NUMERIC_ATTRIBUTES:
        return COMPARISON_OPS + SET_OPS
    if field.kind in ("feedback", "expectation"):
        return COMPARISON_OPS + SET_OPS + PATTERN_OPS + NULL_OPS
    if field.kind in ("tag", "metadata"):
        return ("=", "!=", *SET_OPS, *PATTERN_OPS, *NULL_OPS)
    if field.kind == "attribute" and field.key == "run_id":
        return ("=", "!=", *SET_OPS)
    return ("=", "!=", *SET_OPS, *PATTERN_OPS)


def _check(field: Field, op: str, value: Value, position: int, text: str) -> Comparison:
    allowed = _allowed_ops(field)
    if op not in allowed:
        raise InvalidFilterError(
            f"Operator {op} cannot be used on {field}; expected one of {', '.join(allowed)}",
            filter_string=text,
            position=position,
            expected=list(allowed),
        )
    if op in WORD_OPS and not re.search(r"\w", str(value)):
        raise InvalidFilterError(
            f"{op} on {field} needs at least one word to look for, not {value!r}",
            filter_string=text,
            position=position,
            expected=["a quoted string of words"],
        )
    values = value if isinstance(value, tuple) else (value,)
    numeric_field = field.kind == "attribute" and field.key in NUMERIC_ATTRIBUTES
    for v in values:
        if v is None:
            continue
        is_number = isinstance(v, (int, float)) and not isinstance(v, bool)
        if numeric_field and not is_number:
            raise InvalidFilterError(
                f"{field} takes a number, not {v!r}",
                filter_string=text,
                position=position,
                expected=["a number"],
            )
        if (
            not numeric_field
            and field.kind not in ("feedback", "expectation")
            and not isinstance(v, str)
        ):
            raise InvalidFilterError(
                f"{field} takes a quoted string, not {v!r}",
                filter_string=text,
                position=position,
                expected=["a quoted string"],
            )
        if op in ORDER_OPS and field.kind in ("feedback", "expectation") and not is_number:
            raise InvalidFilterError(
                f"{op} on {field} needs a number, not {v!r}",
                filter_string=text,
                position=position,
                expected=["a number"],
            )
    return Comparison(field, op, value, position)


class _ToAst(Transformer[Token, Any]):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, items: list[Any]) -> Expr:
        return items[0]

    def order_key(self, items: list[Any]) -> OrderKey:
        direction = str(items[1]).upper() if len(items) > 1 else "ASC"
        return OrderKey(items[0], direction == "ASC")

    def or_expr(self, items: list[Any]) -> Or:
        return Or(tuple(i for i in items if not isinstance(i, Token)))

    def and_expr(self, items: list[Any]) -> And:
        return And(tuple(i for i in items if not isinstance(i, Token)))

    def group(self, items: list[Any]) -> Expr:
        return items[1]

    def field(self, items: list[Any]) -> Field:
        keys = [k for k in items[1:] if not (isinstance(k, Token) and k.type == "DOT")]
        return _make_field(items[0], keys, self.text)

    def key(self, items: list[Token]) -> str:
        tok = items[0]
        if tok.type == "QUOTED_KEY":
            return str(tok)[1:-1]
        if tok.type == "STRING":
            return _unquote(str(tok))
        return str(tok)

    @v_args(inline=True)
    def value(self, tok: Token) -> Value:
        if tok.type == "STRING":
            return _unquote(str(tok))
        if tok.type == "TRUE":
            return True
        if tok.type == "FALSE":
            return False
        text = str(tok)
        if re.fullmatch(r"[+-]?\d+", text):
            integer = int(text)
            if not _INT64_MIN <= integer <= _INT64_MAX:  # no database column holds it
                raise InvalidFilterError(
                    f"The number {text} is out of range (a filter number fits in 64 bits).",
                    filter_string=self.text,
                    position=tok.column or 0,
                    expected=["a number between -2**63 and 2**63 - 1"],
                )
            return integer
        number = float(text)
        if not math.isfinite(number):
            raise InvalidFilterError(
                f"The number {text} is out of range.",
                filter_string=self.text,
                position=tok.column or 0,
                expected=["a finite number"],
            )
        return number

    def value_list(self, items: list[Any]) -> tuple[Literal, ...]:
        return tuple(i for i in items if not isinstance(i, Token))

    @v_args(inline=True)
    def compare(self, field: Field, op: Token, value: Value) -> Comparison:
        symbol = {"==": "=", "<>": "!="}.get(str(op), str(op))
        return _check(field, symbol, value, op.column or field.position, self.text)

    @v_args(inline=True)
    def in_list(self, field: Field, op: Token, values: tuple[Literal, ...]) -> Comparison:
        return _check(field, "IN", values, op.column or field.position, self.text)

    @v_args(inline=True)
    def not_in_list(
        self, field: Field, op: Token, _in: Token, values: tuple[Literal, ...]
    ) -> Comparison:
        return _check(field, "NOT IN", values, op.column or field.position, self.text)

    @v_args(inline=True)
    def like(self, field: Field, op: Token, pattern: Token) -> Comparison:
        return _check(field, str(op).upper(), _unquote(str(pattern)), op.column or 1, self.text)

    @v_args(inline=True)
    def not_like(self, field: Field, op: Token, like: Token, pattern: Token) -> Comparison:
        name = f"NOT {str(like).upper()}"
        return _check(field, name, _unquote(str(pattern)), op.column or 1, self.text)

    @v_args(inline=True)
    def match(self, field: Field, op: Token, words: Token) -> Comparison:
        return _check(field, "MATCH", _unquote(str(words)), op.column or 1, self.text)

    @v_args(inline=True)
    def not_match(self, field: Field, op: Token, _match: Token, words: Token) -> Comparison:
        return _check(field, "NOT MATCH", _unquote(str(words)), op.column or 1, self.text)

    @v_args(inline=True)
    def is_null(self, field: Field, op: Token, _null: Token) -> Comparison:
        return _check(field, "IS NULL", None, op.column or 1, self.text)

    @v_args(inline=True)
    def is_not_null(self, field: Field, op: Token, _not: Token, _null: Token) -> Comparison:
        return _check(field, "IS NOT NULL", None, op.column or 1, self.text)


MAX_FILTER_CHARS = 20_000
MAX_FILTER_CLAUSES = 500
MAX_FILTER_DEPTH = 50
"""Bounds on a filter: past them a search would cost the database far more than any person
means to ask (and deep nesting would exhaust the parser's stack)."""

_QUOTED = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`")


def _check_size(text: str) -> None:
    if len(text) > MAX_FILTER_CHARS:
        raise InvalidFilterError(
            f"The filter is {len(text):,} characters long; at most {MAX_FILTER_CHARS:,} are allowed."
        )
    depth = deepest = 0
    for ch in _QUOTED.sub("", text):
        if ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    if deepest > MAX_FILTER_DEPTH:
        raise InvalidFilterError(
            f"The filter nests parentheses {deepest} deep; at most {MAX_FILTER_DEPTH} are allowed."
        )


def _count_clauses(expr: Expr) -> int:
    if isinstance(expr, Comparison):
        return 1
    return sum(_count_clauses(e) for e in expr.items)


def parse_filter(text: str | None) -> Expr | None:
    """Parse a filter string into an expression tree; ``None`` or blank text means no filter."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidFilterError(f"A filter must be a string, not {type(text).__name__}.")
    if not text.strip():
        return None
    _check_size(text)
    try:
        tree = _parser().parse(text, start="filter")
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    try:
        expr: Expr = _ToAst(text).transform(tree)
    except Exception as exc:  # lark wraps errors raised in callbacks
        inner = getattr(exc, "orig_exc", exc)
        if isinstance(inner, InvalidFilterError):
            raise inner from None
        raise
    clauses = _count_clauses(expr)
    if clauses > MAX_FILTER_CLAUSES:
        raise InvalidFilterError(
            f"The filter has {clauses} comparisons; at most {MAX_FILTER_CLAUSES} are allowed."
        )
    return expr


ORDERABLE = {"timestamp_ms", "execution_time_ms", "status", "name", "trace_id"}


def parse_order_by(clauses: Sequence[str] | str | None) -> list[OrderKey]:
    """Parse ``["timestamp DESC", "feedback.trustworthiness ASC"]`` into order keys."""
    if clauses is None:
        return []
    if isinstance(clauses, str):
        clauses = [clauses]
    if not isinstance(clauses, (list, tuple)):
        raise InvalidOrderByError(
            f"order_by must be a list of strings such as ['timestamp DESC'], not {type(clauses).__name__}."
        )
    keys = []
    for clause in clauses:
        if not isinstance(clause, str):
            raise InvalidOrderByError(
                f"Each order_by clause must be a string such as 'timestamp DESC', not {clause!r}."
            )
        try:
            tree = _parser().parse(clause, start="order_key")
            key: OrderKey = _ToAst(clause).transform(tree)
        except UnexpectedInput as exc:
            raise InvalidOrderByError(str(_syntax_error(clause, exc, start="order_key"))) from None
        except Exception as exc:
            inner = getattr(exc, "orig_exc", exc)
            if isinstance(inner, InvalidFilterError):
                raise InvalidOrderByError(str(inner)) from None
            raise
        kind, name = key.field.kind, key.field.key
        if not (kind == "feedback" or (kind == "attribute" and name in ORDERABLE)):
            raise InvalidOrderByError(
                f"Cannot order by {key.field}; expected timestamp, execution_time, status, name, "
                "trace_id or feedback.<name>, optionally followed by ASC or DESC"
            )
        keys.append(key)
    return keys
