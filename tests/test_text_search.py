"""Searching traces by what was said: request / response / span.content with LIKE, ILIKE and
MATCH, on SQLite (FTS5), PostgreSQL (tsvector + GIN) and through the tracking server."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import insert, text

from factories import make_trace
from tracejudge.errors import InvalidFilterError
from tracejudge.store import SqlTraceStore, rows, schema


def _said(store, question: str, answer: str, **kwargs):
    trace = make_trace(inputs={"question": question}, outputs=answer, **kwargs)
    store.log_traces([trace])
    return trace.info.trace_id


def _found(store, filter_string: str) -> set[str]:
    return {t.info.trace_id for t in store.search_traces(["0"], filter_string, None, 1000)}


@pytest.fixture
def said(store):
    ids = {
        "refund": _said(store, "Can I get my money back?", "Our Refund Policy allows 30 days."),
        "policy_first": _said(store, "returns?", "The policy on a refund: 30 days."),
        "refunds": _said(store, "refunds?", "Refunds take a week."),
        "alice": _said(store, "Is Alice Martin's order late?", "It ships tomorrow."),
        "quote": _said(store, 'He said "stop" OR NEAR(x)', "noted"),
    }
    return store, ids


def test_match_finds_every_word_in_any_order_and_case(said):
    store, ids = said
    assert _found(store, "response MATCH 'refund policy'") == {ids["refund"], ids["policy_first"]}
    assert _found(store, "response MATCH 'POLICY'") == {ids["refund"], ids["policy_first"]}


def test_match_is_whole_words_and_per_column(said):
    store, ids = said
    assert _found(store, "response MATCH 'refunds'") == {ids["refunds"]}  # no stemming
    assert _found(store, "response MATCH 'refun'") == set()  # no partial words
    assert _found(store, "request MATCH 'alice martin'") == {ids["alice"]}
    assert _found(store, "response MATCH 'alice'") == set()  # the words are in the request


def test_like_and_ilike_on_the_full_texts(said):
    store, ids = said
    assert _found(store, "response LIKE '%Refund Policy%'") == {ids["refund"]}
    assert _found(store, "response LIKE '%refund policy%'") == set()
    assert _found(store, "response ILIKE '%refund policy%'") == {ids["refund"]}
    assert ids["refund"] not in _found(store, "response NOT ILIKE '%refund%'")


def test_query_syntax_of_the_index_is_taken_literally(said):
    store, ids = said
    assert _found(store, "request MATCH 'said \"stop\" OR NEAR(x)'") == {ids["quote"]}
    assert _found(store, "request MATCH 'AND'") == set()


def test_not_match_and_composition_with_other_fields(store):
    prod = _said(store, "refund please", "ok", tags={"env": "prod"})
    dev = _said(store, "refund please", "ok", tags={"env": "dev"})
    other = _said(store, "hello", "hi", tags={"env": "prod"})
    assert _found(store, "request MATCH 'refund' AND tag.env = 'prod'") == {prod}
    assert _found(store, "request MATCH 'refund' OR tag.env = 'prod'") == {prod, dev, other}
    assert _found(store, "request NOT MATCH 'refund'") == {other}


def test_span_content_is_searched_through_the_spans(store):
    trace = make_trace(inputs={"question": "q"}, outputs="a")
    trace.data.spans[1] = dataclasses.replace(
        trace.data.spans[1], outputs={"documents": ["Invoice 4471 for Globex Corporation"]}
    )
    store.log_traces([trace])
    _said(store, "Globex?", "no")  # the word only in a request, not in a span's payload
    assert _found(store, "span.content MATCH 'globex corporation'") == {trace.info.trace_id}
    assert _found(store, "span.content LIKE '%Invoice 4471%'") == {trace.info.trace_id}


def test_a_rewritten_or_deleted_trace_leaves_no_stale_words(store):
    trace = make_trace(inputs={"question": "q"}, outputs="the first answer")
    store.log_traces([trace])
    trace.data.response = '"a second reply"'
    store.log_traces([trace])  # the same trace logged again, its response changed
    assert _found(store, "response MATCH 'first'") == set()
    assert _found(store, "response MATCH 'second reply'") == {trace.info.trace_id}
    store.delete_traces([trace.info.trace_id])
    newer = _said(store, "q", "unrelated")  # may take the deleted row's place on disk
    assert _found(store, "response MATCH 'second'") == set()
    assert _found(store, "response MATCH 'unrelated'") == {newer}


def _with_document(trace, text: str):
    trace.data.spans[1] = dataclasses.replace(trace.data.spans[1], outputs={"documents": [text]})
    return trace


def test_span_words_follow_rewrites_moves_and_deletes(store):
    """A span logged again with a new payload is found by its new words only; a trace logged
    again with another start time is still found by its spans' words; a deleted trace by
    none."""
    day_ms = 86_400_000
    trace = _with_document(make_trace(timestamp_ms=1_700_000_000_000), "quarterly Globex report")
    other_day = _with_document(make_trace(timestamp_ms=1_700_000_000_000 + 3 * day_ms), "Globex")
    store.log_traces([trace, other_day])
    assert _found(store, "span.content MATCH 'globex'") == {
        trace.info.trace_id,
        other_day.info.trace_id,
    }
    _with_document(trace, "annual Initech summary")
    store.log_traces([trace])
    assert _found(store, "span.content MATCH 'quarterly'") == set()
    assert _found(store, "span.content MATCH 'initech summary'") == {trace.info.trace_id}
    trace.info.request_time = 1_700_000_000_000 - 40 * day_ms
    store.log_traces([trace])
    assert _found(store, "span.content MATCH 'initech'") == {trace.info.trace_id}
    store.delete_traces([trace.info.trace_id, other_day.info.trace_id])
    assert _found(store, "span.content MATCH 'globex'") == set()
    assert _found(store, "span.content MATCH 'initech'") == set()


@pytest.mark.parametrize(
    "bad, says",
    [
        ("tag.env MATCH 'x'", "Operator MATCH cannot be used on tag.env"),
        ("response MATCH '  ...  '", "needs at least one word"),
        ("response = 'x'", "Operator = cannot be used on response"),
        ("span.contents MATCH 'x'", "Unknown span field"),
        ("response MATCH 3", "expected"),
    ],
)
def test_misused_text_fields_are_clear_errors(sql_store, bad, says):
    with pytest.raises(InvalidFilterError, match=says):
        sql_store.search_traces(["0"], bad)


def test_a_store_made_before_word_search_is_indexed_by_the_migration(store_uri):
    """Open a store at revision 0005, write traces the old way, then open it with this code:
    the migration indexes the traces already there."""
    from alembic import command

    from tracejudge.store.engine import _alembic_config, create_store_engine

    engine = create_store_engine(store_uri)
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
        conn.execute(
            text(
                "INSERT INTO traces (trace_id, experiment_id, timestamp_ms, status, request, response)"
                " VALUES ('tr-old', 0, 1, 'OK', '\"where is my parcel\"', '\"it left the depot\"')"
            )
        )
        span = _with_document(make_trace(), "tracking number ZX81").data.spans[1]
        conn.execute(
            insert(schema.spans), [rows.span_row(dataclasses.replace(span, trace_id="tr-old"))]
        )
    engine.dispose()
    store = SqlTraceStore(store_uri)
    try:
        assert _found(store, "response MATCH 'depot'") == {"tr-old"}
        assert _found(store, "request MATCH 'parcel where'") == {"tr-old"}
        assert _found(store, "span.content MATCH 'zx81 tracking'") == {"tr-old"}
    finally:
        store.close()


def test_compacting_word_search_keeps_every_match(sql_store):
    ids = [_said(sql_store, f"question {i}", f"answer {i} about the refund") for i in range(40)]
    sql_store.delete_traces(ids[:10])
    before = _found(sql_store, "response MATCH 'refund'")
    assert before == set(ids[10:])
    steps = sql_store.compact_word_search()
    assert _found(sql_store, "response MATCH 'refund'") == before
    assert _found(sql_store, "response MATCH 'answer 17'") == {ids[17]}
    if sql_store.dialect == "sqlite":  # 40 one-trace transactions left many small segments
        assert steps > 2
        assert sql_store.compact_word_search() == 2  # one step per index finds nothing to do
        sql_store.reclaim_space()  # compacts too, after a retention delete
    else:
        assert steps == 0
