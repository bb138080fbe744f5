"""Issue 9.9: bad input to the public API gets one of tracejudge's typed errors, whatever it is.

Property-based (Hypothesis): filters built from the grammar's own pieces and from arbitrary
text, and arbitrary values for the arguments people pass, against a real SQLite store. The
only exceptions allowed out are :class:`~tracejudge.errors.TraceJudgeError` subclasses.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracejudge
from tracejudge.entities import Feedback
from tracejudge.errors import (
    InvalidArgumentError,
    InvalidFilterError,
    InvalidOrderByError,
    InvalidPageTokenError,
    InvalidTrackingURIError,
    TraceJudgeError,
)
from tracejudge.query import parse_filter
from tracejudge.store import SqlTraceStore
from tracejudge.store.registry import normalize_uri

FIELDS = [
    "tag.env",
    "metadata.user",
    "feedback.groundedness",
    "feedback.`odd name`",
    "expectation.expected_response",
    "span.name",
    "span.type",
    "status",
    "name",
    "timestamp_ms",
    "execution_time_ms",
    "trace_id",
    "run_id",
    "client_request_id",
    "nosuchfield",
    "tag",
]
OPS = ["=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "IN", "NOT IN", "IS", "IS NOT", "=="]
VALUES = [
    "'x'",
    "'it''s'",
    '"d"',
    "1",
    "-2.5",
    "1e400",
    "true",
    "NULL",
    "('a', 'b')",
    "(1)",
    "''",
    "99999999999999999999999",
    "9223372036854775808",
    "-9223372036854775809",
    "(1, 99999999999999999999999)",
]
JOIN = [" AND ", " OR ", " and ", " ", " AND NOT ", ""]

clause = st.builds(
    lambda f, o, v: f"{f} {o} {v}",
    st.sampled_from(FIELDS),
    st.sampled_from(OPS),
    st.sampled_from(VALUES),
)


@st.composite
def filters(draw) -> str:
    parts = draw(st.lists(clause, min_size=1, max_size=6))
    text = parts[0]
    for part in parts[1:]:
        text += draw(st.sampled_from(JOIN)) + part
        if draw(st.booleans()):
            text = "(" * draw(st.integers(0, 3)) + text + ")" * draw(st.integers(0, 3))
    return text


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    st_ = SqlTraceStore(f"sqlite:///{tmp_path_factory.mktemp('typed') / 'typed.db'}")
    yield st_
    st_.close()


QUICK = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@QUICK
@given(text=st.one_of(filters(), st.text(max_size=80)))
def test_any_filter_text_parses_or_raises_invalid_filter(store, text):
    try:
        parse_filter(text)
    except InvalidFilterError:
        return
    store.search_traces(filter_string=text, max_results=2)  # a parsed filter runs as SQL


@QUICK
@given(
    filter_string=st.one_of(st.none(), st.integers(), st.binary(max_size=5), filters()),
    order_by=st.one_of(
        st.none(),
        st.text(max_size=20),
        st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=20)), max_size=3),
        st.sampled_from([["timestamp DESC"], ["feedback.x ASC", "name"], ["trace_id sideways"]]),
    ),
    max_results=st.one_of(
        st.none(), st.integers(min_value=-5, max_value=10**22), st.floats(), st.text(max_size=3)
    ),
)
def test_search_arguments_are_used_or_refused_with_a_typed_error(
    store, filter_string, order_by, max_results
):
    with contextlib.suppress(InvalidFilterError, InvalidOrderByError, InvalidArgumentError):
        store.search_traces(filter_string=filter_string, order_by=order_by, max_results=max_results)


def _token(payload) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)
    ),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=6,
)


@QUICK
@given(
    token=st.one_of(
        st.text(max_size=60),
        st.builds(lambda v, q: _token({"v": v, "q": q}), json_values, st.text(max_size=8)),
        st.builds(lambda v: v, st.lists(json_values, min_size=2, max_size=2)),
    )
)
def test_any_page_token_is_used_or_refused_as_invalid(store, token):
    if isinstance(token, list):  # values for the default order, with the search's own digest
        from tracejudge.store import keyset

        token = _token({"v": token, "q": keyset.search_digest(None, None, None)})
    with contextlib.suppress(InvalidPageTokenError):
        store.search_traces(page_token=token)


@QUICK
@given(
    value=st.one_of(
        json_values,
        st.integers(min_value=-(10**400), max_value=10**400),
        st.floats(),
        st.just(object()),
    ),
    metadata=st.one_of(
        st.none(), st.text(max_size=3), st.dictionaries(st.text(max_size=3), json_values)
    ),
    rationale=st.one_of(st.none(), st.text(max_size=10), st.integers()),
)
def test_feedback_values_are_stored_or_refused_with_a_typed_error(value, metadata, rationale):
    try:
        fb = Feedback("f", value, metadata=metadata, rationale=rationale)
    except InvalidArgumentError:
        return
    if isinstance(fb.value, float):
        assert math.isfinite(fb.value)


@QUICK
@given(
    uri=st.one_of(st.text(max_size=30), st.sampled_from(["", "  ", "databricks", "uc", "http://x"]))
)
def test_tracking_uris_normalise_or_raise_invalid_tracking_uri(uri):
    with contextlib.suppress(InvalidTrackingURIError):
        normalize_uri(uri)


def test_the_reported_cases(store, sqlite_tracking):
    """The exact inputs issue 9 listed, each with the error it should get."""
    with pytest.raises(InvalidFilterError):
        parse_filter(123)  # type: ignore[arg-type]
    for bad in ([1], [None]):
        with pytest.raises(InvalidOrderByError):
            store.search_traces(order_by=bad)
    with pytest.raises(InvalidFilterError, match="nests parentheses"):
        store.search_traces(filter_string="(" * 600 + "status = 'OK'" + ")" * 600)
    assert len(store.search_traces(max_results=10**20)) == 0  # capped, not an OverflowError
    from tracejudge.store import keyset

    digest = keyset.search_digest(None, None, None)
    for values in ([10**30, "tr-1"], [[1], "tr-1"], ["soon", "tr-1"], [1, 2]):
        with pytest.raises(InvalidPageTokenError):
            store.search_traces(page_token=_token({"v": values, "q": digest}))
    with pytest.raises(InvalidArgumentError, match="64 bits"):
        Feedback("f", 10**400)
    with pytest.raises(InvalidArgumentError, match="finite"):
        Feedback("f", float("nan"))
    for nested in ([1.0, float("nan")], {"score": float("inf")}, {"n": [10**400]}):
        with pytest.raises(InvalidArgumentError, match=r"value\["):
            Feedback("f", nested)
    with pytest.raises(InvalidArgumentError, match="metadata must be a dict"):
        Feedback("f", 1, metadata="x")  # type: ignore[arg-type]
    for uri in ("", "databricks"):
        with pytest.raises(InvalidTrackingURIError):
            tracejudge.set_tracking_uri(uri)
    with pytest.raises(InvalidArgumentError, match="max_results"):
        tracejudge.search_traces(max_results=-1)
    with pytest.raises(TypeError):  # keyword-only after the experiments, as the module function
        tracejudge.Client().search_traces(None, "status = 'OK'")  # type: ignore[misc]
    with pytest.raises(TypeError):
        tracejudge.search_traces(None, "status = 'OK'")  # type: ignore[misc]
    for huge in ("99999999999999999999999", "9223372036854775808", "(1, 10000000000000000000)"):
        op = "IN" if huge.startswith("(") else ">"
        with pytest.raises(InvalidFilterError, match="out of range"):
            store.search_traces(filter_string=f"execution_time_ms {op} {huge}")


def test_a_bad_queue_size_in_the_environment_does_not_break_import(tmp_path):
    import subprocess
    import sys

    for raw in ("lots", "0", "-3"):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "import tracejudge.tracing.export as e; print(e.get_exporter()._queue.maxsize)",
            ],
            env={"TRACEJUDGE_TRACE_QUEUE_SIZE": raw, "PATH": ""},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "10000" and "expected a positive integer" in done.stderr


def test_typed_errors_share_one_base():
    assert issubclass(InvalidPageTokenError, TraceJudgeError)


def test_settings_are_read_when_used_and_name_the_variable(monkeypatch):
    from click.testing import CliRunner

    from tracejudge import settings
    from tracejudge.cli.main import main

    monkeypatch.setenv("TRACEJUDGE_CALL_CACHE", "sometimes")
    with pytest.raises(settings.InvalidSettingError, match="TRACEJUDGE_CALL_CACHE='sometimes'"):
        settings.CALL_CACHE.get()
    monkeypatch.setenv("TRACEJUDGE_CALL_CACHE", "off")
    assert settings.CALL_CACHE.get() is False
    monkeypatch.setenv("TRACEJUDGE_EXIT_FLUSH_TIMEOUT", "-1")
    assert settings.EXIT_FLUSH_TIMEOUT_S.get_or_default() == 30.0  # the tracing path goes on
    result = CliRunner().invoke(main, ["settings"])
    assert result.exit_code == 1 and "TRACEJUDGE_EXIT_FLUSH_TIMEOUT='-1'" in result.output
    assert all(s.name in result.output for s in settings.ALL)


anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    st.text(max_size=12),
    st.binary(max_size=4),
    st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), json_values, max_size=3),
    st.just(object()),
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    filter_string=st.one_of(anything, filters()),
    order_by=anything,
    max_results=anything,
    return_type=anything,
    name=anything,
    value=anything,
    rationale=anything,
    metadata=anything,
    span_name=anything,
    span_type=anything,
    attributes=anything,
    tags=anything,
)
def test_the_public_functions_raise_only_typed_errors_and_tracing_never_raises(
    sqlite_tracking,
    filter_string,
    order_by,
    max_results,
    return_type,
    name,
    value,
    rationale,
    metadata,
    span_name,
    span_type,
    attributes,
    tags,
):
    """The functions people call, with arbitrary arguments: tracing records what it can and never
    raises; search and assessments either work or raise a TraceJudgeError."""
    with tracejudge.start_span(span_name, span_type=span_type, attributes=attributes) as span:
        span.set_inputs(value)
        span.set_attribute(str(name), value)
        tracejudge.update_current_trace(tags=tags, metadata=metadata)
    trace_id = tracejudge.get_last_active_trace_id()
    assert trace_id is not None
    with contextlib.suppress(TraceJudgeError):
        tracejudge.search_traces(
            filter_string=filter_string,
            order_by=order_by,
            max_results=max_results,
            return_type=return_type,
        )
    with contextlib.suppress(TraceJudgeError):
        tracejudge.log_feedback(
            trace_id, name=name, value=value, rationale=rationale, metadata=metadata
        )
