"""evaluate(..., executor="ray") on a real local Ray (``ray.init(num_cpus=2)``): the verdicts and
metrics of the in-process run, and a worker killed with SIGKILL mid-run losing and doubling
nothing. The two-node cluster on loopback is in test_evaluate_ray_cluster.py."""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import ray

from factories import make_trace
from tracejudge import RayExecutor, TraceQuery, evaluate
from tracejudge.entities import Feedback, RunStatus
from tracejudge.errors import InvalidArgumentError
from tracejudge.store import get_store
from tracejudge.testing.monitor_scorers import answered, says_yes, slow_answered

pytestmark = pytest.mark.timeout(600)  # Ray's processes start slowly on a busy 2-core machine


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    before = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # a private cluster of this test process
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
        configure_logging=False,
    )
    yield
    ray.shutdown()
    if before is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = before


def _log(n: int, start: int = 0) -> list[str]:
    eid = get_store().get_or_create_experiment("bot").experiment_id
    t0 = 1_700_000_000_000 + start
    traces = [
        make_trace(eid, timestamp_ms=t0 + i, outputs=f"answer {i}" + " yes" * (i % 4 == 0))
        for i in range(n)
    ]
    get_store().log_traces(traces)
    return [t.info.trace_id for t in traces]


def _verdicts(trace_ids: list[str], name: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for trace in get_store().get_traces(trace_ids, include_spans=False):
        counts[trace.info.trace_id] += sum(
            1 for a in trace.info.assessments if isinstance(a, Feedback) and a.name == name
        )
    return counts


def test_ray_workers_score_like_the_local_process(sqlite_tracking):
    ids = _log(90)
    executor = RayExecutor(workers=2)
    on_ray = evaluate(TraceQuery("bot"), [answered, says_yes], executor=executor, batch_size=8)
    assert on_ray.run.status == RunStatus.FINISHED
    assert on_ray.run.usage["scored"] == 180 and on_ray.run.usage["traces"] == 90
    local = evaluate(get_store().get_traces(ids), [answered, says_yes])
    assert on_ray.metrics == local.metrics
    assert on_ray.metrics["says_yes/pass_rate"] == pytest.approx(23 / 90)
    # one verdict per trace and scorer from each run, none lost, none doubled
    assert set(_verdicts(ids, "answered").values()) == {2}
    assert executor.replaced == 0 and executor.retried == 0
    assert on_ray.run.usage["executor"] == "ray" and on_ray.run.usage["workers"] == 2
    assert sum(w["batches"] for w in executor.worker_stats) == 12  # 90 traces in eights


def test_workers_write_through_a_tracking_server(tracking_server):
    from tracejudge.store import set_tracking_uri

    set_tracking_uri(tracking_server)
    try:
        ids = _log(30)
        result = evaluate(
            TraceQuery("bot"), [answered], executor=RayExecutor(workers=2), batch_size=5
        )
        assert result.run.status == RunStatus.FINISHED
        assert _verdicts(ids, "answered") == Counter(dict.fromkeys(ids, 1))
        assert len(result.result_df) == 30  # read back through the server
    finally:
        set_tracking_uri(None)


@pytest.mark.local_model
def test_a_local_model_is_loaded_once_per_actor_not_per_batch(sqlite_tracking):
    from tracejudge.scorers import Safety

    ids = _log(3)
    executor = RayExecutor(workers=1)
    result = evaluate(
        TraceQuery("bot"), [Safety(model="local:/default")], executor=executor, batch_size=1
    )
    assert result.metrics["safety/count"] == 3, result.run.usage
    [worker] = executor.worker_stats
    assert worker["batches"] == 3 and worker["local_models_loaded"] == 1
    assert _verdicts(ids, "safety") == Counter(dict.fromkeys(ids, 1))
    assert result.run.usage["calls"] > 0
    # the model-call cache is the store's, shared by every worker: a second run calls nothing
    again = evaluate(TraceQuery("bot"), [Safety(model="local:/default")], executor=executor)
    assert again.run.usage["calls"] == 0 and again.run.usage["cached_calls"] > 0
    assert again.metrics == result.metrics


def test_a_worker_killed_mid_run_has_its_batches_rerun_and_nothing_doubled(
    sqlite_tracking, tmp_path, monkeypatch
):
    ids = _log(120)
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    monkeypatch.setenv("TRACEJUDGE_TEST_PID_DIR", str(pid_dir))  # forwarded to the actors
    monkeypatch.setenv("TRACEJUDGE_TEST_SCORER_DELAY_S", "0.2")
    executor = RayExecutor(workers=2)
    outcome: dict = {}

    def drive() -> None:
        try:
            outcome["result"] = evaluate(
                TraceQuery("bot"),
                [slow_answered],
                executor=executor,
                batch_size=6,
                max_concurrency=2,
            )
        except BaseException as exc:  # reported by the assertions below
            outcome["error"] = exc

    driver = threading.Thread(target=drive)
    driver.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and sum(_verdicts(ids, "slow_answered").values()) < 12:
        time.sleep(0.2)
    victims = [int(p.name) for p in Path(pid_dir).iterdir()]
    assert victims, "no worker process scored anything"
    os.kill(victims[0], signal.SIGKILL)  # mid-run: its queued batches fail with the actor
    driver.join(timeout=400)
    assert not driver.is_alive()
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert result.run.status == RunStatus.FINISHED
    assert executor.replaced >= 1 and executor.retried >= 1
    assert _verdicts(ids, "slow_answered") == Counter(dict.fromkeys(ids, 1))
    assert result.metrics["slow_answered/count"] == 120
    assert result.run.usage["scored"] + result.run.usage["already_scored"] == 120


def test_an_in_memory_store_is_refused_before_anything_is_stored(tmp_path):
    from tracejudge.store import set_tracking_uri

    set_tracking_uri("sqlite:///:memory:")
    try:
        _log(3)
        with pytest.raises(InvalidArgumentError, match="in-memory SQLite"):
            evaluate(TraceQuery("bot"), [answered], executor="ray")
        assert get_store().search_runs(None, 10) == []
    finally:
        set_tracking_uri(None)


def test_the_cli_scores_on_ray_and_resumes_by_run_id(sqlite_tracking, monkeypatch):
    from click.testing import CliRunner

    from tracejudge.cli import main
    from tracejudge.models import reset_models
    from tracejudge.testing import ChatServer, Reply

    _log(12)
    monkeypatch.setenv("TRACEJUDGE_PROGRESS", "0")
    monkeypatch.setenv("COLUMNS", "200")
    reset_models()

    def reply(request):
        bad = re.search(r"answer \d+ yes", request["messages"][-1]["content"]) is not None
        return Reply(f'{{"rationale": "judged", "verdict": "{"no" if bad else "yes"}"}}')

    runner = CliRunner()
    with ChatServer(reply) as server:
        judge = f"openai-compatible:/j?base_url={server.base_url}"
        scoring = ["--scorers", "", "--guideline", 'plain="No yes."', "--model", judge]
        on_ray = ["--ray-address", "local", "--workers", "2", "--batch-size", "4"]
        first = runner.invoke(main, ["evaluate", "--experiment", "bot", *scoring, *on_ray])
        assert first.exit_code == 0, first.output
        assert "FINISHED" in first.output and "scored now: 12" in first.output
        assert "Least plain first" in first.output
        [run] = get_store().search_runs(None, 10)
        assert run.metrics["plain/pass_rate"] == pytest.approx(9 / 12)
        assert run.usage["workers"] == 2
        # a run too large to read back whole points to the search that shows its worst
        monkeypatch.setattr("tracejudge.cli.evaluate.WORST_FROM_STORE_LIMIT", 5)
        again = runner.invoke(main, ["evaluate", "--resume", run.run_id])
    assert again.exit_code == 0, again.output
    assert "scored now: 0, already scored by the run: 12" in again.output
    assert "tracejudge traces search --experiment 'bot' --order-by 'feedback.plain ASC'" in (
        " ".join(again.output.split())
    )
    reset_models()


def test_the_monitor_runs_as_ray_workers_and_scores_each_trace_once(sqlite_tracking):
    from tracejudge.monitoring import MonitorOptions
    from tracejudge.monitoring.ray_monitor import RayMonitor
    from tracejudge.store import get_tracking_uri

    ids = _log(30)
    answered.register(experiment="bot").start()
    ray_monitor = RayMonitor(None, workers=2, options=MonitorOptions(settle_s=0, batch=10))
    stop = threading.Event()
    supervisor = threading.Thread(
        target=ray_monitor.run_forever, args=(get_tracking_uri(), 0.2, stop)
    )
    supervisor.start()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and sum(_verdicts(ids, "answered").values()) < 30:
            time.sleep(0.2)
    finally:
        stop.set()
        supervisor.join(timeout=200)
    assert not supervisor.is_alive()
    assert _verdicts(ids, "answered") == Counter(dict.fromkeys(ids, 1))
    owners = {
        a.metadata["monitor"]["owner"].split(":")[0]
        for t in get_store().get_traces(ids, include_spans=False)
        for a in t.info.assessments
    }
    assert owners == {"ray"}
    # new traces, one pass of two workers from the command line: still one verdict each
    from click.testing import CliRunner

    from tracejudge.cli import main

    more = _log(8, start=1000)  # after the watermark
    once = CliRunner().invoke(
        main, ["monitor", "--ray-address", "local", "--workers", "2", "--once", "--settle-s", "0"]
    )
    assert once.exit_code == 0, once.output
    assert "scored 8 trace(s)" in once.output
    assert _verdicts(ids + more, "answered") == Counter(dict.fromkeys(ids + more, 1))
