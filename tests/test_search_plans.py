"""The search picks a plan per query on SQLite (word hits few or many, a time range narrow or
wide): every plan must return the same traces in the same order."""

from __future__ import annotations

import pytest

from factories import make_trace
from tracejudge.store import sql_store, text_search


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
