"""The SQL store, run on a real SQLite file and on the PostgreSQL server alike."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from factories import make_trace
from tracejudge.entities import AssessmentSource, Expectation, Feedback, TraceState
from tracejudge.errors import (
    AssessmentNotFoundError,
    ExperimentNotFoundError,
    InvalidArgumentError,
    InvalidFilterError,
    InvalidOrderByError,
    InvalidPageTokenError,
    StoreError,
    TraceNotFoundError,
)
from tracejudge.store import SqlTraceStore, schema


def ids(traces):
    return [t.info.trace_id for t in traces]


def test_open_creates_schema_and_default_experiment(store):
    experiments = store.list_experiments()
    assert [(e.experiment_id, e.name) for e in experiments] == [("0", "Default")]


def test_reopening_an_up_to_date_store_migrates_nothing(sql_store):
    again = SqlTraceStore(sql_store.uri)  # re-opening an up-to-date store migrates nothing
    assert again.list_experiments()[0].name == "Default"
    again.close()


def test_experiments(store):
    rag = store.get_or_create_experiment("rag-app")
    assert store.get_or_create_experiment("rag-app") == rag
    assert store.get_experiment(rag.experiment_id).name == "rag-app"
    assert store.get_experiment_by_name("nope") is None
    with pytest.raises(InvalidArgumentError, match="already exists"):
        store.create_experiment("rag-app")
    with pytest.raises(ExperimentNotFoundError):
        store.get_experiment("999")
    with pytest.raises(ExperimentNotFoundError):
        store.get_experiment("not-a-number")


def test_experiment_activity_counts_traces_and_the_latest(store):
    assert store.experiment_activity() == {}
    rag = store.get_or_create_experiment("rag-app")
    store.log_traces(
        [
            make_trace(timestamp_ms=1_000),
            make_trace(timestamp_ms=5_000),
            make_trace(experiment_id=rag.experiment_id, timestamp_ms=3_000),
        ]
    )
    assert store.experiment_activity() == {
        "0": {"trace_count": 2, "last_trace_ms": 5_000},
        rag.experiment_id: {"trace_count": 1, "last_trace_ms": 3_000},
    }


def test_log_and_get_trace_round_trip(store):
    trace = make_trace(tags={"env": "prod"}, metadata={"user": "u1"})
    store.log_traces([trace])
    got = store.get_trace(trace.info.trace_id)
    assert got.info.tags == {"env": "prod"} and got.info.trace_metadata == {"user": "u1"}
    assert [s.to_dict() for s in got.data.spans] == [s.to_dict() for s in trace.data.spans]
    assert got.data.request == trace.data.request and got.info.execution_duration == 100
    light = store.get_trace(trace.info.trace_id, include_spans=False)
    assert light.data.spans == [] and light.data.inputs == {"question": "q"}
    assert store.get_trace("tr-" + "0" * 32) is None


def test_log_traces_is_an_upsert_and_late_spans_append(store):
    trace = make_trace()
    store.log_traces([trace])
    trace.info.tags["again"] = "1"
    store.log_traces([trace])  # same trace twice: updated, not duplicated
    late = make_trace().data.spans[1]
    late = type(late).from_dict(
        {**late.to_dict(), "trace_id": trace.info.trace_id, "span_id": "f" * 16}
    )
    store.log_spans(trace.info.trace_id, [late])
    got = store.get_trace(trace.info.trace_id)
    assert got.info.tags == {"again": "1"} and len(got.data.spans) == 3
    with pytest.raises(TraceNotFoundError):
        store.log_spans("tr-" + "1" * 32, [late])


@pytest.fixture
def populated(store):
    """Nine traces with distinct times, tags, feedback and span types."""
    return _populate(store)


def _populate(store):
    exp = store.get_or_create_experiment("search").experiment_id
    traces = []
    for i in range(9):
        t = make_trace(
            experiment_id=exp,
            timestamp_ms=1_000 + i,
            duration_ms=None if i == 8 else 10 * (i % 4),
            state=TraceState.ERROR if i % 3 == 0 else TraceState.OK,
            name="answer" if i % 2 else "Chat",
            tags={"env": "prod" if i < 5 else "dev", **({"vip": "yes"} if i == 2 else {})},
            metadata={"user": f"u{i}"},
            span_types=("RETRIEVER", "LLM") if i % 2 else ("TOOL",),
        )
        traces.append(t)
    store.log_traces(traces)
    for i, t in enumerate(traces[:6]):
        store.log_assessment(Feedback("trust", i / 10, trace_id=t.info.trace_id))
    store.log_assessment(Feedback("grounded", "yes", trace_id=traces[0].info.trace_id))
    store.log_assessment(Feedback("grounded", "no", trace_id=traces[1].info.trace_id))
    store.log_assessment(Feedback("flag", True, trace_id=traces[2].info.trace_id))
    store.log_assessment(
        Expectation("expected_response", "Paris", trace_id=traces[3].info.trace_id)
    )
    return exp, traces


def search(store, exp, flt=None, order_by=None, n=100):
    return ids(store.search_traces([exp], flt, order_by, n))


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (None, [8, 7, 6, 5, 4, 3, 2, 1, 0]),
        ("timestamp >= 1006", [8, 7, 6]),
        ("timestamp_ms IN (1000, 1004)", [4, 0]),
        ("execution_time_ms > 15", [7, 6, 3, 2]),
        ("status = 'ERROR'", [6, 3, 0]),
        ("status != 'ERROR'", [8, 7, 5, 4, 2, 1]),
        ("name = 'Chat'", [8, 6, 4, 2, 0]),
        ("name LIKE 'chat'", []),  # LIKE is case-sensitive on both databases
        ("name ILIKE 'chat'", [8, 6, 4, 2, 0]),
        ("name NOT IN ('Chat')", [7, 5, 3, 1]),
        ("tag.env = 'prod'", [4, 3, 2, 1, 0]),
        ("tag.env != 'prod'", [8, 7, 6, 5]),
        ("tag.vip IS NOT NULL", [2]),
        ("tag.vip IS NULL AND tag.env = 'prod'", [4, 3, 1, 0]),
        ("tag.env LIKE 'pr%'", [4, 3, 2, 1, 0]),
        ("metadata.user IN ('u1', 'u7')", [7, 1]),
        ("feedback.trust < 0.25", [2, 1, 0]),
        ("feedback.trust >= 0.4 AND feedback.trust <= 0.5", [5, 4]),
        ("feedback.trust IS NULL", [8, 7, 6]),
        ("feedback.grounded = 'yes'", [0]),
        ("feedback.grounded = 1", [0]),  # yes/no verdicts have a numeric mirror
        ("feedback.flag = true", [2]),
        ("feedback.grounded IN ('no', 'maybe')", [1]),
        ("expectation.expected_response = 'Paris'", [3]),
        ("expectation.expected_response IS NOT NULL", [3]),
        ("span.type = 'LLM'", [7, 5, 3, 1]),
        ("span.name = 'tool_step'", [8, 6, 4, 2, 0]),
        ("span.type IN ('TOOL') AND tag.env = 'dev'", [8, 6]),
        # OR and parentheses, which MLflow's grammar lacks
        ("tag.vip = 'yes' OR status = 'ERROR'", [6, 3, 2, 0]),
        ("(tag.env = 'dev' OR feedback.trust < 0.15) AND span.type = 'LLM'", [7, 5, 1]),
        ("tag.env = 'dev' AND (status = 'ERROR' OR name = 'answer')", [7, 6, 5]),
        (
            "((feedback.grounded = 'no') OR (feedback.flag = true)) AND NOT_A_TAG IS NULL".replace(
                " AND NOT_A_TAG IS NULL", ""
            ),
            [2, 1],
        ),
    ],
)
def test_filters(store, populated, flt, expected):
    exp, traces = populated
    assert search(store, exp, flt) == [traces[i].info.trace_id for i in expected]


def test_filter_values_are_parameters_not_sql(store, populated):
    exp, _ = populated
    assert search(store, exp, "tag.env = 'prod'' OR 1=1 --'") == []
    assert len(search(store, exp)) == 9  # nothing was dropped


def test_run_id_filter(store, populated):
    exp, traces = populated
    store.log_assessment(Feedback("trust", 0.9, trace_id=traces[7].info.trace_id, run_id="run-1"))
    produced = make_trace(experiment_id=exp, metadata={"tracejudge.sourceRun": "run-1"})
    store.log_traces([produced])
    assert set(search(store, exp, "run_id = 'run-1'")) == {
        traces[7].info.trace_id,
        produced.info.trace_id,
    }
    assert search(store, exp, "run_id = 'other'") == []


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        (["timestamp ASC"], [0, 1, 2, 3, 4, 5, 6, 7, 8]),
        (
            ["execution_time_ms DESC", "timestamp ASC"],
            [3, 7, 2, 6, 1, 5, 0, 4, 8],
        ),  # running trace last
        (
            ["feedback.trust ASC", "timestamp DESC"],
            [0, 1, 2, 3, 4, 5, 8, 7, 6],
        ),  # no feedback: last
        (["feedback.trust DESC", "timestamp DESC"], [5, 4, 3, 2, 1, 0, 8, 7, 6]),
        (["name ASC", "timestamp DESC"], [8, 6, 4, 2, 0, 7, 5, 3, 1]),
    ],
)
def test_order_by(store, populated, order_by, expected):
    exp, traces = populated
    assert search(store, exp, order_by=order_by) == [traces[i].info.trace_id for i in expected]


def test_order_by_uses_newest_valid_feedback(store, populated):
    exp, traces = populated
    old = store.search_traces([exp], "feedback.trust = 0", None, 1)[0].info.assessments[0]
    store.override_assessment(traces[0].info.trace_id, old.assessment_id, Feedback("trust", 0.95))
    order = search(store, exp, "feedback.trust IS NOT NULL", ["feedback.trust DESC"])
    assert order[0] == traces[0].info.trace_id
    assert search(store, exp, "feedback.trust = 0") == []  # the overridden value no longer matches


@pytest.mark.parametrize(
    "order_by",
    [
        None,
        ["timestamp ASC"],
        ["feedback.trust ASC"],
        ["execution_time DESC"],
        ["execution_time ASC"],
        ["name DESC"],
        ["name ASC"],
    ],
)
def test_pages_cover_everything_exactly_once(store, populated, order_by):
    exp, _ = populated
    everything = search(store, exp, order_by=order_by)
    pages, token = [], None
    while True:
        page = store.search_traces([exp], None, order_by, 2, token)
        pages.append(ids(page))
        token = page.token
        if token is None:
            break
    assert [i for p in pages for i in p] == everything
    assert all(len(p) == 2 for p in pages[:-1])


def test_the_current_verdict_is_the_newest_valid_one(store):
    trace = make_trace()
    store.log_traces([trace])
    tid = trace.info.trace_id
    first = store.log_assessment(
        Feedback("trust", 0.3, trace_id=tid, run_id="run-1", create_time_ms=1000)
    )
    second = store.log_assessment(
        Feedback("trust", 0.8, trace_id=tid, run_id="run-2", create_time_ms=2000)
    )
    assert search(store, "0", "feedback.trust < 0.5") == []
    assert search(store, "0", "feedback.trust > 0.5") == [tid]
    page = store.search_traces(["0"], None, ["feedback.trust ASC"])
    assert [a.value for a in page[0].search_assessments("trust")] == [0.3, 0.8]  # both stay valid
    store.update_assessment(tid, second.assessment_id, {"valid": False})
    assert search(store, "0", "feedback.trust < 0.5") == [tid]
    store.update_assessment(tid, second.assessment_id, {"valid": True})
    store.delete_assessment(tid, second.assessment_id)
    assert search(store, "0", "feedback.trust < 0.5") == [tid]
    store.log_assessment(Feedback("trust", "not a number", trace_id=tid, create_time_ms=3000))
    assert search(store, "0", "feedback.trust < 0.5") == []
    other = make_trace()
    store.log_traces([other])
    store.log_assessment(Feedback("trust", 0.1, trace_id=other.info.trace_id))
    # a trace whose current verdict is not a number sorts with those that have none: last
    assert search(store, "0", None, ["feedback.trust ASC"]) == [other.info.trace_id, tid]
    assert first.assessment_id


def test_pagination_neither_skips_nor_repeats_while_traces_arrive(store):
    exp = store.get_or_create_experiment("live").experiment_id
    store.log_traces([make_trace(experiment_id=exp, timestamp_ms=10_000 + i) for i in range(20)])
    existing = search(store, exp)
    seen, token, clock = [], None, 20_000
    while True:
        page = store.search_traces([exp], None, None, 3, token)
        seen.extend(ids(page))
        # new, newer traces arrive between page requests (and one with an old timestamp tie)
        store.log_traces([make_trace(experiment_id=exp, timestamp_ms=clock)])
        clock += 1
        token = page.token
        if token is None:
            break
    assert seen == existing


def test_bad_page_token_and_arguments(store, populated):
    exp, _ = populated
    page = store.search_traces([exp], "tag.env = 'prod'", None, 2)
    with pytest.raises(InvalidPageTokenError, match="different search"):
        store.search_traces([exp], "tag.env = 'dev'", None, 2, page.token)
    with pytest.raises(InvalidPageTokenError, match="Malformed"):
        store.search_traces([exp], None, None, 2, "!!not-a-token!!")
    with pytest.raises(InvalidFilterError):
        store.search_traces([exp], "tag.env = ")
    with pytest.raises(InvalidOrderByError):
        store.search_traces([exp], None, ["tag.env"])
    with pytest.raises(InvalidArgumentError):
        store.search_traces([exp], None, None, 0)
    with pytest.raises(ExperimentNotFoundError):
        store.search_traces(["x"])


def test_search_without_spans_never_reads_span_json(sql_store):
    store = sql_store
    exp, _ = _populate(store)
    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        traces = store.search_traces(
            [exp], "span.type = 'LLM'", None, 100, None, include_spans=False
        )
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert len(traces) == 4 and all(t.data.spans == [] for t in traces)
    assert not any("content" in s for s in statements)
    assert all(t.data.inputs == {"question": "q"} for t in traces)


def test_search_across_experiments(store, populated):
    exp, _ = populated
    store.log_traces([make_trace(experiment_id="0")])
    assert len(store.search_traces(None)) == 10
    assert len(store.search_traces([exp, "0"])) == 10
    assert len(store.search_traces(["0"])) == 1


def test_tags(store):
    trace = make_trace()
    store.log_traces([trace])
    tid = trace.info.trace_id
    store.set_trace_tag(tid, "reviewed", "yes")
    store.set_trace_tag(tid, "reviewed", "twice")
    assert store.get_trace(tid).info.tags == {"reviewed": "twice"}
    store.delete_trace_tag(tid, "reviewed")
    assert store.get_trace(tid).info.tags == {}
    with pytest.raises(InvalidArgumentError, match="no tag"):
        store.delete_trace_tag(tid, "reviewed")
    with pytest.raises(TraceNotFoundError):
        store.set_trace_tag("tr-" + "9" * 32, "k", "v")
    with pytest.raises(InvalidArgumentError):
        store.set_trace_tag(tid, "", "v")


def test_assessment_lifecycle(store):
    trace = make_trace()
    store.log_traces([trace])
    tid = trace.info.trace_id
    judge = AssessmentSource("LLM_JUDGE", "openai:/gpt-4.1-mini")
    fb = store.log_assessment(
        Feedback(
            "grounded",
            "no",
            trace_id=tid,
            source=judge,
            rationale="unsupported",
            metadata={"tokens": 10},
            span_id=trace.data.spans[1].span_id,
        )
    )
    assert fb.assessment_id.startswith("a-")
    got = store.get_assessment(tid, fb.assessment_id)
    assert got.to_dict() == fb.to_dict()
    updated = store.update_assessment(
        tid, fb.assessment_id, {"rationale": "checked again", "value": "yes"}
    )
    assert updated.value == "yes" and updated.rationale == "checked again"
    assert store.get_assessment(tid, fb.assessment_id).value == "yes"
    with pytest.raises(InvalidArgumentError, match="Cannot update"):
        store.update_assessment(tid, fb.assessment_id, {"name": "other"})
    with pytest.raises(InvalidArgumentError):
        store.update_assessment(tid, fb.assessment_id, {"value": object()})

    human = store.override_assessment(
        tid,
        fb.assessment_id,
        Feedback("ignored-name", "no", source=AssessmentSource("HUMAN", "ana")),
    )
    assert human.overrides == fb.assessment_id and human.valid
    assert human.span_id == trace.data.spans[1].span_id
    old = store.get_assessment(tid, fb.assessment_id)
    assert old.valid is False
    stored = store.get_trace(tid).search_assessments("grounded")
    assert [a.assessment_id for a in stored] == [human.assessment_id]  # the old one is invalid
    assert human.name == "grounded"  # an override keeps the name of what it overrides
    with pytest.raises(InvalidArgumentError, match="Cannot override"):
        store.override_assessment(tid, fb.assessment_id, Expectation("x", 1))

    store.delete_assessment(tid, human.assessment_id)
    with pytest.raises(AssessmentNotFoundError):
        store.get_assessment(tid, human.assessment_id)
    with pytest.raises(TraceNotFoundError):
        store.get_assessment("tr-" + "2" * 32, "a-x")
    with pytest.raises(TraceNotFoundError):
        store.log_assessment(Feedback("x", 1, trace_id="tr-" + "3" * 32))


def test_feedback_with_error_and_no_value(store):
    trace = make_trace()
    store.log_traces([trace])
    tid = trace.info.trace_id
    fb = store.log_assessment(
        Feedback("grounded", error=TimeoutError("judge timed out"), trace_id=tid)
    )
    again = store.get_assessment(tid, fb.assessment_id)
    assert again.value is None and again.error.error_code == "TimeoutError"
    assert search(store, "0", "feedback.grounded IS NULL") == [tid]


def test_delete_traces_removes_children(store, populated):
    exp, traces = populated
    assert store.delete_traces([traces[0].info.trace_id, traces[1].info.trace_id]) == 2
    assert len(search(store, exp)) == 7
    assert store.get_trace(traces[0].info.trace_id) is None


def test_store_errors_are_typed(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError):
        SqlTraceStore(f"sqlite:///{blocker}/sub/db.sqlite")


def test_runs_round_trip(store):
    from tracejudge.entities import EvaluationRun, RunStatus
    from tracejudge.errors import RunNotFoundError

    exp = store.get_or_create_experiment("evals").experiment_id
    run = EvaluationRun(
        "run-1",
        exp,
        "first",
        start_time=1000,
        scorers=[{"name": "safety", "class": "Safety"}],
        judge_models=["local:/default"],
        row_count=3,
    )
    store.create_run(run)
    later = EvaluationRun("run-2", exp, "second", start_time=2000)
    store.create_run(later)
    run.status, run.end_time = RunStatus.FINISHED, 1500
    run.metrics = {"safety/pass_rate": 0.5, "safety/count": 2.0, "nan": float("nan")}
    run.usage = {"calls": 4, "cost_usd": 0.0}
    store.update_run(run)
    got = store.get_run("run-1")
    assert got.status == RunStatus.FINISHED and got.end_time == 1500 and got.row_count == 3
    assert got.metrics == {"safety/pass_rate": 0.5, "safety/count": 2.0}  # NaN is not stored
    assert (
        got.scorers == run.scorers
        and got.judge_models == ["local:/default"]
        and got.usage == run.usage
    )
    assert [r.run_id for r in store.search_runs([exp])] == ["run-2", "run-1"]
    assert store.search_runs(["0"]) == []
    with pytest.raises(RunNotFoundError):
        store.get_run("run-x")
    with pytest.raises(RunNotFoundError):
        store.update_run(EvaluationRun("run-x", exp, "ghost"))

    trace = make_trace(experiment_id=exp)
    store.log_traces([trace])
    store.log_assessment(Feedback("safety", "yes", trace_id=trace.info.trace_id, run_id="run-1"))
    store.log_assessment(Feedback("other", 1, trace_id=trace.info.trace_id))
    assert [a.name for a in store.get_run_assessments("run-1")] == ["safety"]


def test_migrations_reach_head_and_record_it(sql_store):
    store = sql_store
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from tracejudge.store.engine import _alembic_config

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    with store.engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM tracejudge_alembic_version")).scalar()
    assert version == head == "0011"


def test_the_migrations_build_the_schema_the_code_declares(sql_store):
    store = sql_store
    """schema.py and the migrations must not drift apart (Alembic's autogenerate comparison)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from tracejudge.store.migrations.env_constants import VERSION_TABLE
    from tracejudge.store.schema import POSTGRESQL_OWN_INDEXES, metadata
    from tracejudge.store.text_search import is_search_structure

    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "version_table": VERSION_TABLE,
                # word search lives outside the metadata: FTS5 tables, expression indexes
                "include_name": lambda name, *_: not is_search_structure(name),
                # indexes defined differently on PostgreSQL by design (see schema.py)
                "include_object": lambda _obj, name, *_: (
                    not (store.dialect == "postgresql" and name in POSTGRESQL_OWN_INDEXES)
                ),
            },
        )
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_call_cache_table(store):
    assert store.get_cached_call("k") is None
    store.put_cached_calls([("k", "m", '{"text": "a"}'), ("j", "m", '{"text": "c"}')])
    store.put_cached_calls([("k", "m", '{"text": "b"}')])  # a re-put replaces
    assert (
        store.get_cached_call("k") == '{"text": "b"}'
        and store.get_cached_call("j") == '{"text": "c"}'
    )


@pytest.mark.parametrize("payload", ['{"oops": 1}', "not json", "[1, 2]", "null"])
def test_a_damaged_span_row_is_a_store_error_naming_its_trace(tmp_path, payload):
    store = SqlTraceStore(f"sqlite:///{tmp_path / 'store.db'}")
    trace = make_trace()
    store.log_traces([trace])
    with store.engine.begin() as conn:
        conn.execute(schema.spans.update().values(content=payload))
    with pytest.raises(StoreError, match=trace.info.trace_id):
        store.get_trace(trace.info.trace_id)
    assert store.get_trace(trace.info.trace_id, include_spans=False) is not None


def _current(sql_store, trace_id, name):
    """The stored (assessment id, value) rows of a trace's ``name`` marked latest."""
    a = schema.assessments.c
    with sql_store.engine.connect() as conn:
        return sorted(
            conn.execute(
                schema.assessments.select()
                .with_only_columns(a.assessment_id, a.numeric_value)
                .where(a.trace_id == trace_id, a.name == name, a.latest)
            ).all()
        )


def test_the_current_verdict_is_marked_as_it_is_written_not_updated_after(sql_store):
    """A new trace's verdicts are written once with their ``latest`` mark (an update of that
    indexed column would write every assessment index again); later writes flip only the
    stored rows whose mark changes, and a retried write does not make a second current one."""
    exp = sql_store.get_or_create_experiment("latest-marks").experiment_id
    trace = make_trace(exp)
    tid = trace.info.trace_id
    trace.info.assessments = [
        Feedback("trust", 0.1, assessment_id="a-old", create_time_ms=1_000),
        Feedback("trust", 0.9, assessment_id="a-new", create_time_ms=2_000),
        Feedback("trust", 0.0, assessment_id="a-void", create_time_ms=3_000, valid=False),
        Feedback("grounded", 1.0, assessment_id="a-g", create_time_ms=1_500),
    ]
    updates: list[str] = []

    def count_updates(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE ASSESSMENTS"):
            updates.append(statement)

    event.listen(sql_store.engine, "before_cursor_execute", count_updates)
    try:
        sql_store.log_traces([trace])
        assert updates == []
        assert _current(sql_store, tid, "trust") == [("a-new", 0.9)]
        assert _current(sql_store, tid, "grounded") == [("a-g", 1.0)]

        newer = Feedback("trust", 0.5, trace_id=tid, assessment_id="a-newer", create_time_ms=4_000)
        sql_store.log_assessments([newer])
        assert len(updates) == 1  # a-new loses its mark; a-newer is written with it
        assert _current(sql_store, tid, "trust") == [("a-newer", 0.5)]
        sql_store.log_assessments([newer])  # a retried write replaces, keeps one current
        assert _current(sql_store, tid, "trust") == [("a-newer", 0.5)]

        both = [
            Feedback("trust", 0.3, trace_id=tid, assessment_id="a-5", create_time_ms=5_000),
            Feedback("trust", 0.7, trace_id=tid, assessment_id="a-6", create_time_ms=6_000),
        ]
        sql_store.log_assessments(both)
        assert _current(sql_store, tid, "trust") == [("a-6", 0.7)]
    finally:
        event.remove(sql_store.engine, "before_cursor_execute", count_updates)
    assert [t.info.trace_id for t in sql_store.search_traces([exp], "feedback.trust = 0.7")] == [
        tid
    ]


def test_concurrent_verdicts_of_one_name_leave_one_current(sql_store):
    """Writers adding a verdict of the same name to the same traces at once: each trace ends
    with exactly one current verdict, and a search ordered by it lists each trace once."""
    from concurrent.futures import ThreadPoolExecutor

    exp = sql_store.get_or_create_experiment("races").experiment_id
    traces = [make_trace(exp) for _ in range(20)]
    sql_store.log_traces(traces)
    ids = [t.info.trace_id for t in traces]

    def writer(k: int) -> None:
        for tid in ids:
            sql_store.log_assessments([Feedback("score", k / 10, trace_id=tid)])

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(writer, range(6)))
    a = schema.assessments.c
    with sql_store.engine.connect() as conn:
        current = conn.execute(
            schema.assessments.select()
            .with_only_columns(a.trace_id)
            .where(a.name == "score", a.latest)
        ).all()
    assert sorted(r.trace_id for r in current) == sorted(ids)
    listed = sql_store.search_traces([exp], None, ["feedback.score ASC"], 100)
    assert sorted(t.info.trace_id for t in listed) == sorted(ids)


def test_a_verdict_or_span_cannot_move_to_another_trace(store):
    """An assessment id already on one trace, or a span naming another trace than the one it
    is sent with, is refused: stored, it would leave the first trace without its verdict or
    put the span where no one looks for it."""
    first, second = make_trace(), make_trace()
    store.log_traces([first, second])
    fb = store.log_assessment(Feedback("q", 0.2, trace_id=first.info.trace_id))
    moved = Feedback("q", 0.9, trace_id=second.info.trace_id, assessment_id=fb.assessment_id)
    with pytest.raises(InvalidArgumentError, match="belongs to trace"):
        store.log_assessments([moved])
    assert store.get_assessment(first.info.trace_id, fb.assessment_id).value == 0.2
    with pytest.raises(InvalidArgumentError, match="belongs to trace"):
        store.log_spans(first.info.trace_id, second.data.spans)
    stray = make_trace()
    stray.data.spans = second.data.spans
    with pytest.raises(InvalidArgumentError, match="belongs to trace"):
        store.log_traces([stray])
    assert store.get_trace(stray.info.trace_id) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("valid", "false"), ("create_time_ms", "yesterday"), ("create_time_ms", 1.5)],
)
def test_assessment_fields_of_the_wrong_type_are_refused(field, value):
    from tracejudge.entities import Assessment

    data = Feedback("q", 1, trace_id="tr-" + "1" * 32).to_dict()
    data[field] = value
    with pytest.raises(TypeError, match=field):
        Assessment.from_dict(data)
