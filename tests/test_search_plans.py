"""The search picks a plan per query on SQLite (word hits few or many, a time range narrow or
wide): every plan must return the same traces in the same order."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from factories import make_trace
from tracejudge.store import sql_store, text_search
from tracejudge.store.schema import VALUE_PREFIX


@pytest.fixture
def filled(sql_store):
    words = ["refund policy", "refund", "policy refund later", "nothing here"]
    traces = [
        make_trace(
            timestamp_ms=1_700_000_000_000 + i * 1000,
            duration_ms=(i * 37) % 11 * 10,
            inputs={"question": f"q{i}"},
            outputs=words[i % 4],
            tags={"env": "prod" if i % 2 else "dev"},
        )
        for i in range(40)
    ]
    sql_store.log_traces(traces)
    return sql_store


QUERIES = [
    ("response MATCH 'refund policy'", ["timestamp DESC"]),
    ("response MATCH 'refund' AND tag.env = 'prod'", ["execution_time DESC"]),
    ("response NOT MATCH 'refund' OR tag.env = 'dev'", None),
    ("span.content MATCH 'policy'", ["timestamp ASC"]),
    ("timestamp >= 1700000010000", ["execution_time DESC"]),
    ("timestamp >= 1700000010000 AND timestamp < 1700000030000", ["execution_time ASC"]),
]


def _ids(store, flt, order):
    pages, token = [], None
    while True:  # small pages: the keyset continuation is exercised under each plan too
        page = store.search_traces(["0"], flt, order, 7, token, include_spans=False)
        pages += [t.info.trace_id for t in page]
        token = page.token
        if token is None:
            return pages


@pytest.mark.parametrize("flt, order", QUERIES)
def test_every_plan_gives_the_same_pages(filled, monkeypatch, flt, order):
    default = _ids(filled, flt, order)
    assert default
    monkeypatch.setattr(text_search, "FEW_HITS", 1)  # every word "common": probed row by row
    monkeypatch.setattr(sql_store, "FEW_ROWS", 1)  # every time range "wide"
    assert _ids(filled, flt, order) == default
    monkeypatch.setattr(text_search, "FEW_HITS", 10**9)  # every word "rare": from the hits
    monkeypatch.setattr(sql_store, "FEW_ROWS", 10**9)  # every range "narrow": read and sorted
    assert _ids(filled, flt, order) == default


def test_tag_values_longer_than_the_indexed_prefix_compare_in_full(sql_store):
    """PostgreSQL's value index holds a prefix of each value (``schema.VALUE_PREFIX``); the
    filter compares the prefix and, for long values, the whole value."""
    n = VALUE_PREFIX
    values = {"long": "x" * (n + 50), "longer": "x" * (n + 50) + "y", "exact": "x" * n}
    values["short"] = "x" * (n - 1)
    traces = {
        name: make_trace(
            timestamp_ms=1_700_000_000_000 + i, tags={"k": value}, metadata={"k": value}
        )
        for i, (name, value) in enumerate(values.items())
    }
    sql_store.log_traces(list(traces.values()))

    def found(flt):
        page = sql_store.search_traces(["0"], flt, None, 10, include_spans=False)
        return {
            name for name, t in traces.items() if t.info.trace_id in {p.info.trace_id for p in page}
        }

    for kind in ("tag", "metadata"):
        assert found(f"{kind}.k = '{values['long']}'") == {"long"}
        assert found(f"{kind}.k = '{values['exact']}'") == {"exact"}
        assert found(f"{kind}.k IN ('{values['longer']}', '{values['short']}')") == {
            "longer",
            "short",
        }
        assert found(f"{kind}.k != '{values['long']}'") == {"longer", "exact", "short"}


def _page_queries(store, search):
    """The page queries (``SELECT traces.…``) that ``search()`` sends, with their parameters,
    and what it returned."""
    sent = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("SELECT traces."):
            sent.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        return sent, search()
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


@pytest.mark.postgres
def test_postgresql_reads_a_tag_inside_an_or_from_the_value_index(postgres_uri):
    store = sql_store.SqlTraceStore(postgres_uri)
    store.log_traces([make_trace(tags={"user": "u7"})])
    flt = "tag.user = 'u7' OR feedback.trust < 0.1"
    sent, _ = _page_queries(store, lambda: store.search_traces(["0"], flt, None, 10))
    statement, parameters = sent[0]
    with store.engine.begin() as conn:
        cursor = conn.connection.driver_connection.cursor()
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: ask for an index
        cursor.execute("EXPLAIN " + statement, parameters)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    lines = plan.splitlines()
    at = next(i for i, line in enumerate(lines) if "using ix_trace_tags_value" in line)
    # the value itself narrows the index scan, not just the key
    assert "substr(value, 1, 200) = 'u7'" in lines[at + 1], plan


@pytest.mark.postgres
def test_postgresql_checks_a_walked_rows_words_on_its_stored_vector(postgres_uri):
    """Slowest first with a common word: the rows walked in duration order are checked against
    the stored word vector, not tokenised again (migration 0010)."""
    store = sql_store.SqlTraceStore(postgres_uri)
    store.log_traces([make_trace(outputs="refund later", tags={"env": "prod"})])
    flt = "response MATCH 'refund' AND tag.env = 'prod'"
    sent, page = _page_queries(
        store, lambda: store.search_traces(["0"], flt, ["execution_time DESC"], 10)
    )
    assert len(page) == 1
    statement, _ = sent[0]
    assert "traces.response_words @@" in statement and "to_tsvector" not in statement


@pytest.mark.postgres
def test_postgresql_plans_a_page_without_jit_or_parallel_workers(postgres_uri):
    """A page query is planned as the short query it is (``engine.plan_as_short_query``), in
    its own transaction only: the next user of the pooled connection gets the defaults."""
    store = sql_store.SqlTraceStore(postgres_uri)
    store.log_traces([make_trace(tags={"env": "prod"})])
    seen = []
    settings = "SELECT current_setting('jit'), current_setting('max_parallel_workers_per_gather')"

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("SELECT traces."):
            with cursor.connection.cursor() as probe:
                probe.execute(settings)
                seen.append(probe.fetchone())

    event.listen(store.engine, "before_cursor_execute", record)
    page = store.search_traces(["0"], "tag.env = 'prod'", ["timestamp DESC"], 10)
    event.remove(store.engine, "before_cursor_execute", record)
    assert len(page) == 1
    assert seen == [("off", "0")]
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql(settings).one() != ("off", "0")
    store.close()
