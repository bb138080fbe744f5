"""Retention: old traces deleted in bounded batches with everything hanging off them, while
writers keep writing; ``tracejudge gc`` and MLflow's ``delete_traces`` on top."""

from __future__ import annotations

import threading
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from factories import make_trace
from tracejudge.cli.main import main
from tracejudge.entities import Feedback
from tracejudge.errors import InvalidArgumentError
from tracejudge.settings import parse_duration
from tracejudge.store import SqlTraceStore
from tracejudge.store import schema as s

DAY = 86_400_000
NOW = int(time.time() * 1000)


def _ids(store) -> set[str]:
    return {t.info.trace_id for t in store.search_traces(["0"], None, None, 10_000)}


def test_old_traces_go_in_batches_and_new_ones_stay(store):
    now = int(time.time() * 1000)
    old = [make_trace(timestamp_ms=now - 40 * DAY + i) for i in range(25)]
    new = [make_trace(timestamp_ms=now - DAY + i) for i in range(5)]
    for t in old[:3] + new[:1]:
        t.info.assessments.append(Feedback("trust", 0.5, trace_id=t.info.trace_id))
    store.log_traces(old + new)
    batches: list[int] = []
    deleted = store.delete_traces_before(
        now - 30 * DAY, None, batch_size=10, on_batch=batches.append
    )
    assert deleted == 25
    assert _ids(store) == {t.info.trace_id for t in new}
    assert store.get_trace(old[0].info.trace_id) is None
    assert store.get_trace(new[0].info.trace_id).info.assessments[0].value == 0.5
    assert sum(batches) == 25
    if isinstance(store, SqlTraceStore):  # through a server: one request covers its batches
        assert batches == [10, 10, 5]
    assert store.delete_traces_before(now - 30 * DAY) == 0


def test_nothing_is_left_behind_in_the_other_tables(sql_store):
    trace = make_trace(timestamp_ms=1000, tags={"k": "v"}, metadata={"m": "1"})
    trace.info.assessments.append(Feedback("trust", 0.5, trace_id=trace.info.trace_id))
    sql_store.log_traces([trace, make_trace(timestamp_ms=NOW)])
    assert sql_store.delete_traces_before(2000) == 1
    with sql_store.engine.connect() as conn:
        for table in (s.spans, s.trace_tags, s.trace_metadata, s.assessments):
            left = conn.execute(
                select(func.count())
                .select_from(table)
                .where(table.c.trace_id == trace.info.trace_id)
            ).scalar()
            assert left == 0, table.name
    sql_store.reclaim_space()
    assert sql_store.search_traces(["0"], "response MATCH 'a'")  # word search still consistent


def test_only_the_given_experiments(store):
    other = store.create_experiment("other")
    mine = make_trace(timestamp_ms=1000)
    theirs = make_trace(experiment_id=other.experiment_id, timestamp_ms=1000)
    store.log_traces([mine, theirs])
    assert store.delete_traces_before(2000, [other.experiment_id]) == 1
    assert store.get_trace(mine.info.trace_id) is not None
    assert store.get_trace(theirs.info.trace_id) is None


def test_writers_lose_nothing_while_retention_runs(store_uri):
    """One thread writes new traces while another deletes 3,000 old ones in batches: every new
    trace is there afterwards and every old one gone, whatever the interleaving."""
    store = SqlTraceStore(store_uri)
    store.log_traces([make_trace(timestamp_ms=1000 + i) for i in range(3000)])
    written: list[str] = []
    failures: list[BaseException] = []
    gc_done = threading.Event()

    def write() -> None:
        try:
            while not gc_done.is_set() or len(written) < 50:
                batch = [make_trace(timestamp_ms=NOW + len(written) + i) for i in range(10)]
                store.log_traces(batch)
                written.extend(t.info.trace_id for t in batch)
        except BaseException as exc:
            failures.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        deleted = store.delete_traces_before(2_000_000, batch_size=200)
    finally:
        gc_done.set()
        writer.join(timeout=300)
    assert not failures and deleted == 3000
    assert _ids(store) == set(written)
    store.close()


def test_gc_command(sqlite_uri):
    store = SqlTraceStore(sqlite_uri)
    now = int(time.time() * 1000)
    store.log_traces([make_trace(timestamp_ms=now - 3 * DAY), make_trace(timestamp_ms=now)])
    store.close()
    result = CliRunner().invoke(
        main, ["--tracking-uri", sqlite_uri, "gc", "--older-than", "2d", "--vacuum"]
    )
    assert result.exit_code == 0, result.output
    assert "deleted 1 traces older than 2d" in result.output
    bad = CliRunner().invoke(main, ["--tracking-uri", sqlite_uri, "gc", "--older-than", "soon"])
    assert bad.exit_code == 2 and "--older-than 'soon'" in bad.output
    store = SqlTraceStore(sqlite_uri)
    assert len(_ids(store)) == 1
    assert store.search_traces(["0"], "response MATCH 'a'")  # FTS rebuilt after the VACUUM
    store.close()


def test_mlflow_style_delete_traces(sqlite_tracking):
    import tracejudge
    from tracejudge.store import get_store

    store = get_store()
    traces = [make_trace(timestamp_ms=1000 + i) for i in range(5)] + [make_trace(timestamp_ms=NOW)]
    store.log_traces(traces)
    assert tracejudge.delete_traces("0", max_timestamp_millis=2000, max_traces=2) == 2
    assert tracejudge.delete_traces("0", max_timestamp_millis=2000) == 3
    assert tracejudge.delete_traces(trace_ids=[traces[-1].info.trace_id]) == 1
    with pytest.raises(InvalidArgumentError, match="exactly one"):
        tracejudge.delete_traces("0")


@pytest.mark.parametrize("text, seconds", [("30d", 2_592_000), ("12h", 43_200), ("1.5m", 90)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", "d", "-1d", "0h", "infd", "3y"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="positive number followed by"):
        parse_duration(text)


def test_server_applies_its_retention(sqlite_uri):
    """``tracejudge server --retention 2d``: old traces go as soon as the server starts."""
    from tracejudge.testing.server_process import ServerProcess

    store = SqlTraceStore(sqlite_uri)
    old, new = make_trace(timestamp_ms=NOW - 3 * DAY), make_trace(timestamp_ms=NOW)
    store.log_traces([old, new])
    server = ServerProcess(sqlite_uri, "--retention", "2d")
    try:
        deadline = time.monotonic() + 120
        while store.get_trace(old.info.trace_id) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert store.get_trace(old.info.trace_id) is None
        assert store.get_trace(new.info.trace_id) is not None
    finally:
        server.stop()
        store.close()


def test_server_refuses_a_bad_retention(sqlite_uri):
    result = CliRunner().invoke(
        main, ["server", "--backend-store-uri", sqlite_uri, "--retention", "forever"]
    )
    assert result.exit_code == 2 and "--retention 'forever'" in result.output


def test_unsized_batches_stay_within_their_bounds(sql_store, monkeypatch):
    """Without a batch size each batch is sized by how long the last one took, within bounds
    (pinned here, so that the sizes do not depend on this machine's speed)."""
    from tracejudge.store import sql_store as module

    monkeypatch.setattr(module, "GC_BATCH", 5)
    monkeypatch.setattr(module, "GC_BATCH_MIN", 7)
    monkeypatch.setattr(module, "GC_BATCH_MAX", 7)
    sql_store.log_traces([make_trace(timestamp_ms=1000 + i) for i in range(20)])
    batches: list[int] = []
    assert sql_store.delete_traces_before(5000, on_batch=batches.append) == 20
    assert batches == [5, 7, 7, 1]


def test_the_server_reports_done_only_when_nothing_is_left(sqlite_uri, monkeypatch):
    """A request deletes at most ``max_batches`` batches; ``done`` must not be claimed while old
    traces remain, whatever size the batches were sized to (pinned to 5 here)."""
    from fastapi.testclient import TestClient

    from tracejudge.server.app import create_app
    from tracejudge.store import sql_store as module

    for name in ("GC_BATCH", "GC_BATCH_MIN", "GC_BATCH_MAX"):
        monkeypatch.setattr(module, name, 5)
    store = SqlTraceStore(sqlite_uri)
    store.log_traces([make_trace(timestamp_ms=1000 + i) for i in range(30)])
    client = TestClient(create_app(store))
    replies = []
    while not replies or not replies[-1]["done"]:
        replies.append(
            client.post(
                "/api/v1/traces/delete-before", json={"before_ms": 5000, "max_batches": 2}
            ).json()
        )
    assert [r["deleted"] for r in replies][:3] == [10, 10, 10]
    assert sum(r["deleted"] for r in replies) == 30 and _ids(store) == set()
    store.close()
