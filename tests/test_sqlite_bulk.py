"""SQLite writes of traces and spans as one statement per batch (``store.sqlite_bulk``): the
rows stored, the rows replaced and the word index must be what row-by-row inserts give."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from factories import make_trace
from tracejudge.store import SqlTraceStore, rows, sqlite_bulk
from tracejudge.store import schema as s


def _rows(store: SqlTraceStore, table) -> list[dict]:
    with store.engine.connect() as conn:
        query = select(table).order_by(*table.primary_key.columns)
        return [dict(r) for r in conn.execute(query).mappings()]


def _found(store: SqlTraceStore, filter_string: str) -> set[str]:
    return {t.info.trace_id for t in store.search_traces(["0"], filter_string, None, 1000)}


def _batch():
    return [
        make_trace(inputs={"question": "Where is my refund?"}, outputs="In two days."),
        make_trace(inputs={"question": "naïve café ☕ — \x00 NUL"}, outputs=None),
        make_trace(inputs={"n": 2**62}, outputs=[1.5, True, None], name="x" * 300),
    ]


def test_a_batch_stores_exactly_what_row_by_row_inserts_store(tmp_path, monkeypatch):
    batch = _batch()
    bulk = SqlTraceStore(f"sqlite:///{tmp_path / 'bulk.db'}")
    bulk.log_traces(batch)
    one_by_one = SqlTraceStore(f"sqlite:///{tmp_path / 'rows.db'}")

    def refuse(*args):
        raise TypeError("the row-by-row path, for comparison")

    monkeypatch.setattr(sqlite_bulk, "encode_rows", refuse)
    one_by_one.log_traces(batch)
    monkeypatch.undo()
    for table in (s.traces, s.spans):
        assert _rows(bulk, table) == _rows(one_by_one, table)
    stored = bulk.get_trace(batch[2].info.trace_id)
    assert stored is not None and stored.data.spans[0].inputs == {"n": 2**62}
    assert _found(bulk, "request MATCH 'refund'") == {batch[0].info.trace_id}
    assert _found(bulk, "span.content MATCH 'café'") == {batch[1].info.trace_id}


def test_a_batch_replaces_stored_rows_and_their_words(tmp_path):
    store = SqlTraceStore(f"sqlite:///{tmp_path / 'bulk.db'}")
    first, second = make_trace(outputs="old answer"), make_trace(outputs="kept")
    store.log_traces([first, second])
    first.data.response = '"new answer"'
    store.log_traces([first, second])
    assert len(_rows(store, s.traces)) == 2
    assert _found(store, "response MATCH 'new'") == {first.info.trace_id}
    assert _found(store, "response MATCH 'old'") == set()


def test_a_large_batch_goes_in_several_statements(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_bulk, "MAX_STATEMENT_BYTES", 2_000)
    batch = [make_trace(outputs=f"answer {i} " + "words " * 50) for i in range(30)]
    store = SqlTraceStore(f"sqlite:///{tmp_path / 'bulk.db'}")
    chunks = sqlite_bulk.encode_rows(s.traces, [rows.trace_row(t) for t in batch])
    assert len(chunks) >= 10 and all(len(c) < 2_000 for c in chunks)
    store.log_traces(batch)
    assert len(_rows(store, s.traces)) == 30
    assert len(_found(store, "response MATCH 'words'")) == 30


def test_values_json_cannot_carry_are_refused_before_anything_is_written():
    with pytest.raises(TypeError):
        sqlite_bulk.encode_rows(s.traces, [{"trace_id": "ok"}, {"trace_id": "bad \ud800"}])
    with pytest.raises(TypeError):
        sqlite_bulk.encode_rows(s.spans, [{"trace_id": "t", "start_time_ns": 2**70}])
