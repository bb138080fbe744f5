import pytest

from tracejudge.errors import InvalidFilterError, InvalidOrderByError
from tracejudge.query import And, Comparison, Or, parse_filter, parse_order_by


def test_blank_filter_is_none():
    assert parse_filter(None) is None
    assert parse_filter("   ") is None


@pytest.mark.parametrize(
    ("text", "kind", "key", "op", "value"),
    [
        ("timestamp > 1700000000000", "attribute", "timestamp_ms", ">", 1700000000000),
        ("trace.timestamp_ms <= 5", "attribute", "timestamp_ms", "<=", 5),
        ("execution_time_ms >= 2.5", "attribute", "execution_time_ms", ">=", 2.5),
        ("status = 'ERROR'", "attribute", "status", "=", "ERROR"),
        ('attributes.status != "OK"', "attribute", "status", "!=", "OK"),
        ("name LIKE 'ans%'", "attribute", "name", "LIKE", "ans%"),
        ("run_id = 'r1'", "attribute", "run_id", "=", "r1"),
        ("tag.env = 'prod'", "tag", "env", "=", "prod"),
        ("tags.`my.key` ILIKE '%x%'", "tag", "my.key", "ILIKE", "%x%"),
        ("metadata.tracejudge.sourceRun = 'r'", "metadata", "tracejudge.sourceRun", "=", "r"),
        ('request_metadata."a b" IS NULL', "metadata", "a b", "IS NULL", None),
        ("feedback.trustworthiness < 0.5", "feedback", "trustworthiness", "<", 0.5),
        ("feedback.grounded = 'yes'", "feedback", "grounded", "=", "yes"),
        ("feedback.ok = TRUE", "feedback", "ok", "=", True),
        (
            "expectation.expected_response IS NOT NULL",
            "expectation",
            "expected_response",
            "IS NOT NULL",
            None,
        ),
        ("span.name = 'retrieve'", "span", "name", "=", "retrieve"),
        ("span.type IN ('RETRIEVER', 'LLM')", "span", "type", "IN", ("RETRIEVER", "LLM")),
        ("span.type NOT IN ('TOOL')", "span", "type", "NOT IN", ("TOOL",)),
        ("tag.env NOT LIKE 'dev%'", "tag", "env", "NOT LIKE", "dev%"),
        ("tag.q = 'it''s'", "tag", "q", "=", "it's"),
        ("tag.q = 'a\\'b'", "tag", "q", "=", "a'b"),
    ],
)
def test_comparisons(text, kind, key, op, value):
    expr = parse_filter(text)
    assert isinstance(expr, Comparison)
    assert (expr.field.kind, expr.field.key, expr.op, expr.value) == (kind, key, op, value)


def test_and_or_parentheses_and_precedence():
    expr = parse_filter("tag.a = 'x' OR tag.b = 'y' AND tag.c = 'z'")
    assert isinstance(expr, Or)  # AND binds tighter than OR
    assert isinstance(expr.items[1], And)
    grouped = parse_filter("(tag.a = 'x' OR tag.b = 'y') and tag.c = 'z'")
    assert isinstance(grouped, And) and isinstance(grouped.items[0], Or)
    nested = parse_filter("((feedback.t < 0.5))")
    assert isinstance(nested, Comparison)


@pytest.mark.parametrize(
    ("text", "column", "needle"),
    [
        ("timestamp >", 12, "expected a number"),
        ("tag.env = ", 11, "end of filter"),
        ("(tag.a = 'x'", 13, "expected ')'"),
        ("tag.a = 'x' AND", 16, "a field name"),
        ("tag.a = 'x' OR OR", 16, "unexpected 'OR'"),
        ("tag.a ~ 3", 7, "unexpected '~'"),
        ("tag.a = 'open", 9, "unterminated string"),
        ("foo = 1", 1, "Unknown field 'foo'"),
        ("bogus.x = 1", 1, "Unknown field prefix 'bogus'"),
        ("span.color = 'red'", 1, "Unknown span field"),
        ("timestamp LIKE 'x'", 11, "cannot be used on timestamp_ms"),
        ("tag.env > 'a'", 9, "cannot be used on tag.env"),
        ("tag.env = 1", 9, "takes a quoted string"),
        ("timestamp = 'yesterday'", 11, "takes a number"),
        ("feedback.x > 'high'", 12, "needs a number"),
        ("run_id LIKE 'r%'", 8, "cannot be used on run_id"),
    ],
)
def test_errors_name_position_and_expectation(text, column, needle):
    with pytest.raises(InvalidFilterError) as info:
        parse_filter(text)
    assert info.value.position == column
    assert needle in str(info.value)
    assert "^" in str(info.value)  # points at the place


def test_error_lists_expected_tokens():
    with pytest.raises(InvalidFilterError) as info:
        parse_filter("tag.a")
    assert "a comparison operator (=, !=, <, <=, >, >=)" in info.value.expected
    assert "IN" in info.value.expected


def test_invalid_filter_is_a_value_error():
    with pytest.raises(ValueError):
        parse_filter("((")


def test_order_by():
    keys = parse_order_by(["timestamp DESC", "feedback.trustworthiness", "execution_time asc"])
    assert [(k.field.key, k.ascending) for k in keys] == [
        ("timestamp_ms", False),
        ("trustworthiness", True),
        ("execution_time_ms", True),
    ]
    assert parse_order_by("name") and parse_order_by(None) == []


@pytest.mark.parametrize(
    "bad", ["tag.env", "timestamp sideways", "expectation.x DESC", "", "feedback."]
)
def test_order_by_errors(bad):
    with pytest.raises(InvalidOrderByError):
        parse_order_by([bad])


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("tag.a = 'x' AND " * 600 + "tag.a = 'x'", "comparisons; at most 500"),
        ("(" * 600 + "tag.a = 'x'" + ")" * 600, "nests parentheses 600 deep"),
        ("tag.a = '" + "x" * 30_000 + "'", "characters long"),
    ],
)
def test_oversized_filters_are_refused_with_a_reason(text, needle):
    with pytest.raises(InvalidFilterError, match=needle):
        parse_filter(text)


def test_parentheses_inside_strings_do_not_count_as_nesting():
    assert parse_filter("tag.a = '" + "(" * 100 + "'") is not None


@pytest.mark.parametrize("bad", [123, b"tag.a = 'x'", ["tag.a = 'x'"]])
def test_a_filter_that_is_not_a_string_is_an_invalid_filter(bad):
    with pytest.raises(InvalidFilterError, match="must be a string"):
        parse_filter(bad)


@pytest.mark.parametrize("bad", [[1], [None], 5, {"timestamp": "DESC"}])
def test_order_by_that_is_not_strings_is_an_invalid_order_by(bad):
    with pytest.raises(InvalidOrderByError):
        parse_order_by(bad)
