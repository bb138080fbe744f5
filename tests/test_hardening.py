"""Issue 9: one bad trace must not sink a batch, forked workers must not lose traces, and odd
arguments to the tracing API are recorded and ignored, never raised into the app."""

from __future__ import annotations

import json
import multiprocessing
import textwrap
from concurrent.futures import ProcessPoolExecutor

import httpx
import pytest

import tracejudge
from tracejudge.entities import Feedback
from tracejudge.store import SqlTraceStore, get_store, set_tracking_uri
from tracejudge.store.sql_store import SANITIZED_METADATA_KEY
from tracejudge.tracing.export import ExportItem, TraceExporter, get_exporter


def _search(uri: str, **kwargs):
    return SqlTraceStore(uri).search_traces(max_results=1000, include_spans=False, **kwargs)


def test_odd_values_in_one_trace_do_not_drop_its_batch(tracking):
    with get_exporter().paused():  # everything below lands in one export batch
        for i in range(40):
            with tracejudge.start_span(f"good-{i}"):
                pass
        with tracejudge.start_span("nul\x00name") as span:
            span.set_inputs({"q": "a\x00b"})
            tracejudge.update_current_trace(tags={"t": "v\x00"}, metadata={"m\x00": "x"})
        with tracejudge.start_span("n" * 300):
            tracejudge.update_current_trace(tags={"k" * 300: "long key"})
        with tracejudge.start_span("client-id"):
            tracejudge.update_current_trace(client_request_id="c" * 300)
        with tracejudge.start_span(123):  # type: ignore[arg-type]
            pass
    assert tracejudge.flush()
    found = _search(tracking)
    assert len(found) == 44
    names = {t.info.name for t in found}
    assert "nul\ufffdname" in names and "123" in names
    clipped = next(t for t in found if t.info.name and t.info.name.startswith("nnn"))
    assert len(clipped.info.name) == 256 and clipped.info.name.endswith("…")
    note = clipped.info.trace_metadata[SANITIZED_METADATA_KEY]
    assert "traces.name clipped from 300 to 256 characters" in note
    assert "trace_tags.key clipped from 300 to 250" in note
    nul = next(t for t in found if t.info.name == "nul\ufffdname")
    assert (
        nul.info.tags["t"] == "v\ufffd"
        and "NUL replaced" in (nul.info.trace_metadata[SANITIZED_METADATA_KEY])
    )
    full = get_store(tracking).get_trace(nul.info.trace_id)
    assert full is not None and full.data.spans[0].inputs == {"q": "a\x00b"}  # JSON keeps it


LONE = "caf\udce9"  # bytes decoded with errors="surrogateescape"
SPLIT_PAIR = "\ud83d\ude00"  # an emoji as two UTF-16 code units


def _trace_with_lone_surrogates() -> None:
    @tracejudge.trace(name=f"name {LONE}", attributes={f"key {LONE}": LONE})
    def answer(question: str) -> str:
        tracejudge.update_current_trace(tags={f"tag {LONE}": LONE}, metadata={"m": LONE})
        return question + SPLIT_PAIR

    assert answer(f"q {LONE}") == f"q {LONE}{SPLIT_PAIR}"  # the app gets its values unchanged


def _assert_stored_with_replacements(store_uri_or_url: str) -> None:
    [found] = get_store(store_uri_or_url).search_traces(max_results=10)
    assert found.info.name == "name caf\ufffd"
    assert found.info.tags["tag caf\ufffd"] == "caf\ufffd"
    [span] = found.data.spans
    assert span.inputs == {"question": "q caf\ufffd"}
    assert span.outputs == "q caf\ufffd\U0001f600"  # a split pair is joined again
    assert span.attributes["key caf\ufffd"] == "caf\ufffd"


def test_lone_surrogates_do_not_lose_the_trace(tracking):
    """UTF-8 cannot encode a lone surrogate; one used to make orjson and the database refuse
    the whole trace. Each becomes U+FFFD, and the trace says what was replaced."""
    _trace_with_lone_surrogates()
    assert tracejudge.flush()
    _assert_stored_with_replacements(tracking)
    [info] = _search(tracking)
    assert "lone surrogates replaced" in info.info.trace_metadata[SANITIZED_METADATA_KEY]


def test_lone_surrogates_reach_a_tracking_server(tracking_server):
    set_tracking_uri(tracking_server)
    dropped = get_exporter().stats.dropped
    try:
        _trace_with_lone_surrogates()
        assert tracejudge.flush()
        assert get_exporter().stats.dropped == dropped
        _assert_stored_with_replacements(tracking_server)
    finally:
        set_tracking_uri(None)


def test_a_lone_surrogate_escape_sent_to_the_rest_api_is_stored_replaced(tracking_server):
    """A client other than ours may send ``"\\udce9"`` in JSON: the server stores U+FFFD."""
    set_tracking_uri(tracking_server)
    try:
        with tracejudge.start_span("judged"):
            pass
        assert tracejudge.flush()
        trace_id = tracejudge.get_last_active_trace_id()
    finally:
        set_tracking_uri(None)
    feedback = Feedback(name="polite", value=False, rationale=f"rude: {LONE}", trace_id=trace_id)
    body = json.dumps({"assessments": [feedback.to_dict()]}).encode()  # escapes the surrogate
    with httpx.Client(base_url=tracking_server) as http:
        reply = http.post(
            "/api/v1/assessments/batch", content=body, headers={"Content-Type": "application/json"}
        )
    assert reply.status_code == 200, reply.text
    [stored] = get_store(tracking_server).get_trace(trace_id).info.assessments
    assert stored.rationale == "rude: caf\ufffd"


def test_a_nul_in_a_rationale_is_stored(tracking):
    with tracejudge.start_span("judged"):
        pass
    tracejudge.flush()
    trace_id = tracejudge.get_last_active_trace_id()
    tracejudge.log_feedback(trace_id, name="q\x00", value=True, rationale="because\x00of NUL")
    [a] = get_store(tracking).get_trace(trace_id).info.assessments
    assert a.rationale == "because\ufffdof NUL" and a.name == "q\ufffd"


def _refuse_trace_named(store_uri: str, name: str) -> None:
    """A trigger that makes the database itself refuse one trace (the SQL store sanitises what
    a database would refuse on its own, so a trigger is how a real refusal is reached)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(store_uri)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON traces "
                    f"WHEN NEW.name = '{name}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.name = '{name}' THEN RAISE check_violation USING MESSAGE = 'refused'; "
                    "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON traces FOR EACH ROW EXECUTE FUNCTION refuse()"
                )
            )
    engine.dispose()


def test_a_refused_batch_is_retried_trace_by_trace(tracking):
    """The database refuses one trace of a batch: the other traces are written, the refused one
    is dropped and counted, with the database's reason."""
    get_store(tracking)  # migrated, so the trigger has its table
    _refuse_trace_named(tracking, "poison")
    exporter = TraceExporter()
    items = []
    with get_exporter().paused():
        for i in range(5):
            with tracejudge.start_span("poison" if i == 2 else f"t{i}"):
                pass
        while not get_exporter()._queue.empty():
            items.append(get_exporter()._queue.get_nowait())
            get_exporter()._queue.task_done()
    assert len(items) == 5
    broken = ExportItem(items[0].store_uri, None, spans=[])  # assembles into nothing: raises
    exporter._write([*items, broken])
    assert exporter.stats.exported == 4 and exporter.stats.dropped_store_error == 2
    assert "DataRefusedError" in (exporter.stats.last_error or "")
    names = sorted(t.info.name for t in _search(tracking))
    assert names == ["t0", "t1", "t3", "t4"]


# ------------------------------------------------------------------ processes


def _traced_work(n: int) -> int:
    for i in range(n):
        with tracejudge.start_span(f"child-{i}"):
            pass
    return n


def _child_main(uri: str, n: int) -> None:
    tracejudge.set_tracking_uri(uri)
    _traced_work(n)


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_multiprocessing_children_write_their_traces(store_uri, method):
    """multiprocessing ends children with os._exit (no atexit): their traces must still land."""
    tracejudge.set_tracking_uri(store_uri)
    try:
        with tracejudge.start_span("parent"):  # the parent has a store and a pool before forking
            pass
        tracejudge.flush()
        ctx = multiprocessing.get_context(method)
        children = [ctx.Process(target=_child_main, args=(store_uri, 50)) for _ in range(2)]
        for p in children:
            p.start()
        for p in children:
            p.join(timeout=300)
            assert p.exitcode == 0
        with tracejudge.start_span("parent-after"):  # the parent's connections still work
            pass
        assert tracejudge.flush()
    finally:
        tracejudge.set_tracking_uri(None)
    assert len(_search(store_uri)) == 102


def _pool_init(uri: str) -> None:
    tracejudge.set_tracking_uri(uri)


def test_process_pool_workers_write_their_traces(store_uri):
    tracejudge.set_tracking_uri(store_uri)
    try:
        with tracejudge.start_span("parent"):  # the parent holds a pool before forking
            pass
        assert tracejudge.flush()
        with ProcessPoolExecutor(
            max_workers=2,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_pool_init,
            initargs=(store_uri,),
        ) as pool:
            assert sum(pool.map(_traced_work, [20] * 10)) == 200
    finally:
        tracejudge.set_tracking_uri(None)
    assert len(_search(store_uri)) == 201


# -------------------------------------------------------- odd arguments to tracing


def test_odd_arguments_to_the_tracing_api_are_ignored_not_raised(sqlite_tracking, caplog):
    class Unprintable:
        def __str__(self) -> str:
            raise ValueError("no str")

    with tracejudge.start_span("s", attributes="x") as span:  # type: ignore[arg-type]
        span.set_attributes("y")  # type: ignore[arg-type]
        span.set_attribute(Unprintable(), 1)  # type: ignore[arg-type]
        tracejudge.update_current_trace(tags="x")  # type: ignore[arg-type]
        tracejudge.update_current_trace(metadata=["a"])  # type: ignore[arg-type]
        tracejudge.update_current_trace(tags={"ok": "1", "bad": Unprintable()})
        tracejudge.update_current_trace(client_request_id=Unprintable())
    tracejudge.flush()
    trace = tracejudge.get_trace(tracejudge.get_last_active_trace_id())
    assert trace.info.tags.get("ok") == "1" and "bad" not in trace.info.tags
    assert "must be a dict" in caplog.text


class _Service:
    @tracejudge.trace
    def positional_only(self, /, x):
        return x

    @tracejudge.trace
    def keyword_only(self, /, *, x):
        return x

    @classmethod
    @tracejudge.trace
    def klass(cls, /, y, *rest):
        return y


def test_trace_on_methods_with_positional_only_self(sqlite_tracking):
    svc = _Service()
    assert svc.positional_only(1) == 1
    assert _last_inputs() == {"x": 1}
    assert svc.keyword_only(x=2) == 2
    assert _last_inputs() == {"x": 2}
    assert _Service.klass(3, 4) == 3
    assert _last_inputs() == {"y": 3, "rest": (4,)} or _last_inputs() == {"y": 3, "rest": [4]}
    with pytest.raises(TypeError):  # a wrong call: recorded as given, without the receiver
        svc.positional_only(1, 2)  # type: ignore[call-arg]
    assert _last_inputs() == {"args": [1, 2], "kwargs": {}}


def _last_inputs():
    tracejudge.flush()
    trace = tracejudge.get_trace(tracejudge.get_last_active_trace_id())
    return trace.data.spans[0].inputs


def test_a_forked_child_flushes_through_os_exit_paths(tmp_path, sqlite_uri):
    """A plain os.fork child that ends with sys.exit still flushes (atexit), and the parent's
    exporter thread keeps running after the fork."""
    script = tmp_path / "fork_child.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, sys
            import tracejudge
            tracejudge.set_tracking_uri({sqlite_uri!r})
            with tracejudge.start_span("before"):
                pass
            tracejudge.flush()
            pid = os.fork()
            with tracejudge.start_span("child" if pid == 0 else "parent"):
                pass
            if pid == 0:
                sys.exit(0)
            os.waitpid(pid, 0)
            """
        )
    )
    import subprocess
    import sys

    subprocess.run([sys.executable, str(script)], check=True, timeout=300)
    assert sorted(t.info.name for t in _search(sqlite_uri)) == ["before", "child", "parent"]


def test_a_migration_killed_midway_leaves_a_usable_sqlite_file(tmp_path):
    """The process dies after the first CREATE TABLE; the next open must finish the schema."""
    db = tmp_path / "killed.db"
    script = tmp_path / "die_in_migration.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os
            from alembic.operations import ops, toimpl

            real = toimpl.create_table
            made = []

            def dying_create_table(operations, operation):
                real(operations, operation)
                made.append(operation.table_name)
                if len(made) == 2:
                    os._exit(3)  # killed midway: no rollback, no cleanup

            from alembic.operations import Operations
            Operations.implementation_for(ops.CreateTableOp, replace=True)(dying_create_table)
            from tracejudge.store import SqlTraceStore
            SqlTraceStore({f"sqlite:///{db}"!r})
            """
        )
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(script)], timeout=300)
    assert done.returncode == 3  # it did die inside the migration
    store = SqlTraceStore(f"sqlite:///{db}")
    assert store.get_or_create_experiment("after").name == "after"
    store.close()


def test_a_judge_rationale_with_nul_is_stored_and_the_run_finishes(tracking, monkeypatch):
    """Issue 9.4: on PostgreSQL this lost every verdict and left the run RUNNING."""
    from tracejudge.entities import RunStatus
    from tracejudge.models import reset_models
    from tracejudge.scorers import Safety
    from tracejudge.testing import ChatServer, Reply

    monkeypatch.setenv("TRACEJUDGE_PROGRESS", "0")
    reset_models()
    reply = '{"rationale": "fine\\u0000 really", "verdict": "yes"}'
    with ChatServer(lambda request: Reply(reply)) as server:
        judge = f"openai-compatible:/judge?base_url={server.base_url}"
        rows = [{"inputs": f"q{i}", "outputs": "a"} for i in range(3)]
        result = tracejudge.evaluate(rows, scorers=[Safety(model=judge)])
    reset_models()
    assert result.run.status == RunStatus.FINISHED
    assert tracejudge.get_run(result.run.run_id).status == RunStatus.FINISHED
    stored = tracejudge.search_traces(filter_string="feedback.safety = 'yes'")
    assert len(stored) == 3
    rationale = stored.trace[0].search_assessments("safety")[0].rationale
    assert "\x00" not in rationale and "really" in rationale


# ------------------------------------------------------------- filters and timeouts


def _mixed_filter(n: int) -> str:
    kinds = [
        "tag.k{i} = 'v'",
        "metadata.m{i} = 'x'",
        "feedback.f{i} = 'yes'",
        "span.name = 's{i}'",
        "execution_time_ms > {i}",
    ]
    return " AND ".join(kinds[i % 5].format(i=i) for i in range(n))


def test_a_filter_with_hundreds_of_clauses_does_not_tie_up_the_database(store_uri, monkeypatch):
    """Issue 9.5: 200 ANDs kept PostgreSQL planning for about a minute. The statement timeout
    (20 s here, a hundred times what the search needs) turns a relapse into a failure."""
    monkeypatch.setenv("TRACEJUDGE_STATEMENT_TIMEOUT_S", "20")
    store = SqlTraceStore(store_uri)
    try:
        assert len(store.search_traces(filter_string=_mixed_filter(200), max_results=5)) == 0
        assert len(store.search_traces(filter_string=_mixed_filter(500), max_results=5)) == 0
    finally:
        store.close()


def test_many_clauses_select_the_same_traces_as_few(store_uri):
    """The row-by-row form used past 8 related clauses selects exactly what the semi-joins do."""
    set_uri = tracejudge.set_tracking_uri
    set_uri(store_uri)
    try:
        for i in range(4):
            with tracejudge.start_span(f"t{i}"):
                tracejudge.update_current_trace(tags={f"k{j}": "v" for j in range(i * 4)})
        tracejudge.flush()
    finally:
        set_uri(None)
    store = SqlTraceStore(store_uri)
    try:
        for n in (4, 8, 9, 12):
            wanted = " AND ".join(f"tag.k{j} = 'v'" for j in range(n))
            names = sorted(t.info.name for t in store.search_traces(filter_string=wanted))
            assert names == [f"t{i}" for i in range(4) if i * 4 >= n]
            either = f"({wanted}) OR trace.name = 't0'"
            names = sorted(t.info.name for t in store.search_traces(filter_string=either))
            assert names == sorted({"t0", *(f"t{i}" for i in range(4) if i * 4 >= n)})
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_sessions_carry_a_statement_timeout(postgres_uri, monkeypatch):
    from sqlalchemy import text

    from tracejudge.settings import InvalidSettingError

    monkeypatch.setenv("TRACEJUDGE_STATEMENT_TIMEOUT_S", "1")
    store = SqlTraceStore(postgres_uri)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "1s"
        monkeypatch.setenv("TRACEJUDGE_STATEMENT_TIMEOUT_S", "soon")
        store.engine.dispose()
        with pytest.raises(InvalidSettingError, match="TRACEJUDGE_STATEMENT_TIMEOUT_S='soon'"):
            store.list_experiments()
    finally:
        store.close()


def test_a_database_that_accepts_but_never_answers_fails_instead_of_hanging():
    """Issue 9.5: a server that accepted the connection and said nothing blocked for ever."""
    import socket
    import threading

    from tracejudge.errors import StoreError

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    outcome: list[BaseException | None] = []

    def open_store() -> None:
        try:
            SqlTraceStore(f"postgresql+psycopg://nobody@127.0.0.1:{port}/none")
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=open_store, daemon=True)
    worker.start()
    worker.join(timeout=120)  # the connect timeout is 10 s; generous for a loaded machine
    silent.close()
    assert not worker.is_alive(), "opening the store hung"
    assert isinstance(outcome[0], StoreError)


def _judge_in_child(uri: str, base_url: str) -> str:
    from tracejudge.judges import is_grounded

    tracejudge.set_tracking_uri(uri)
    return str(
        is_grounded("q", "r", "ctx", model=f"openai-compatible:/j?base_url={base_url}").value
    )


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_multiprocessing_child_writes_its_model_call_cache(sqlite_uri, method):
    """The call cache is written in the background too: a child's entries must land."""
    from tracejudge.testing import ChatServer, Reply

    def reply(request):  # the one-word probes get one word, so that every reply is cacheable
        one_word = request.get("max_tokens") == 2
        return Reply("no" if one_word else '{"rationale": "ok", "verdict": "yes"}')

    with ChatServer(reply) as server:
        ctx = multiprocessing.get_context(method)
        child = ctx.Process(target=_judge_in_child, args=(sqlite_uri, server.base_url))
        child.start()  # it ends right after its judgement, before the writer's next batch
        child.join(timeout=300)
        assert child.exitcode == 0
        calls = server.request_count
        assert calls >= 1
        assert _judge_in_child(sqlite_uri, server.base_url) == "yes"  # here: from the cache
        assert server.request_count == calls


@pytest.mark.postgres
def test_trace_locks_serialise_across_connections(postgres_uri):
    """The OTLP merge's cross-process lock: a second holder waits until the first lets go."""
    import threading

    first, second = SqlTraceStore(postgres_uri), SqlTraceStore(postgres_uri)
    order: list[str] = []
    entered = threading.Event()

    def later() -> None:
        entered.wait(timeout=60)
        with second.trace_locks(["tr-b", "tr-a"]):
            order.append("second")

    try:
        thread = threading.Thread(target=later)
        thread.start()
        with first.trace_locks(["tr-a"]):
            entered.set()
            # the other holder cannot get in while this one holds tr-a, whatever the timing
            thread.join(timeout=2)
            order.append("first")
        thread.join(timeout=60)
        assert order == ["first", "second"]
    finally:
        first.close()
        second.close()
