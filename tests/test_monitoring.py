"""Production monitoring: registered scorers, the monitor's passes, claims and watermark, on a
real SQLite file and a real PostgreSQL schema; two monitor processes with one killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from factories import make_trace
from tracejudge.entities import ScorerStatus, TraceState
from tracejudge.errors import InvalidArgumentError, InvalidFilterError, ScorerNotFoundError
from tracejudge.monitoring import Monitor, MonitorOptions, monitor_status
from tracejudge.scorers import Guidelines, ScorerSamplingConfig, list_scorers, scorer
from tracejudge.scorers.registration import is_sampled
from tracejudge.store import get_store
from tracejudge.testing.monitor_scorers import answered, says_yes

NOW_MS = int(time.time() * 1000)
FAST = MonitorOptions(settle_s=0, lease_s=600, backoff_s=0.01)


def _log(n: int, start_ms: int = NOW_MS - 3_600_000, **kwargs) -> list[str]:
    experiment = get_store().get_or_create_experiment("bot").experiment_id
    traces = [make_trace(experiment, timestamp_ms=start_ms + i * 10, **kwargs) for i in range(n)]
    get_store().log_traces(traces)
    return [t.info.trace_id for t in traces]


def _verdicts(trace_ids, name: str) -> list[int]:
    """How many valid verdicts named ``name`` each trace holds."""
    found = {t.info.trace_id: t for t in get_store().get_traces(trace_ids, include_spans=False)}
    return [
        sum(1 for a in found[t].info.assessments if a.name == name and a.kind == "feedback")
        for t in trace_ids
    ]


def test_register_version_start_update_stop_delete(tracking):
    judge = Guidelines(name="polite", guidelines="Be polite.", model="openai:/gpt-4.1-mini")
    polite = judge.register(experiment="bot", max_calls_per_hour=100)
    info = polite.info
    assert (info.version, info.status, info.sample_rate) == (1, ScorerStatus.STOPPED, 0.0)
    assert info.definition["class"] == "Guidelines" and info.definition["args"]["model"] == (
        "openai:/gpt-4.1-mini"
    )
    assert (
        Guidelines(name="polite", guidelines="Be polite.", model="openai:/gpt-4.1-mini")
        .register(experiment="bot")
        .info.version
        == 1
    )  # the same definition: the same version
    changed = Guidelines(name="polite", guidelines="Be very polite.", model="openai:/gpt-4.1-mini")
    assert changed.register(experiment="bot").info.versions == [1, 2]
    polite.start(ScorerSamplingConfig(sample_rate=0.2, filter_string="tag.env = 'prod'"))
    polite.update(ScorerSamplingConfig(sample_rate=0.5, filter_string="tag.env = 'prod'"))
    [listed] = list_scorers(experiment="bot")
    assert (listed.name, listed.version, listed.status) == ("polite", 2, ScorerStatus.STARTED)
    assert (listed.sample_rate, listed.filter_string) == (0.5, "tag.env = 'prod'")
    assert listed.max_calls_per_hour == 100
    polite.stop()
    assert polite.info.status == ScorerStatus.STOPPED
    polite.delete()
    assert list_scorers(experiment="bot") == []
    with pytest.raises(ScorerNotFoundError):
        polite.start()


def test_bad_registrations_are_refused_and_store_nothing(tracking):
    with pytest.raises(InvalidArgumentError, match="sample_rate"):
        ScorerSamplingConfig(sample_rate=1.5)
    with pytest.raises(InvalidFilterError):
        ScorerSamplingConfig(filter_string="tag.env = ")

    @scorer
    def local_only(outputs):
        return True

    with pytest.raises(InvalidArgumentError, match="top level"):
        local_only.register(experiment="bot")
    with pytest.raises(InvalidArgumentError, match="max_calls_per_hour"):
        answered.register(experiment="bot", max_calls_per_hour=-1)
    from tracejudge.scorers.definitions import scorer_from_definition

    with pytest.raises(InvalidArgumentError, match="Unknown scorer reference"):
        scorer_from_definition({"kind": "function", "ref": "no_such_module:fn"})
    assert list_scorers(experiment="bot") == []


def test_sampling_is_deterministic_and_near_its_rate():
    ids = [f"tr-{i:06d}" for i in range(20_000)]
    picked = [is_sampled(t, "polite", 0.2) for t in ids]
    assert picked == [is_sampled(t, "polite", 0.2) for t in ids]
    assert 0.18 < sum(picked) / len(ids) < 0.22
    assert all(is_sampled(t, "polite", 1.0) for t in ids[:100])
    assert not any(is_sampled(t, "polite", 0.0) for t in ids[:100])


def test_each_new_trace_is_scored_once_and_the_watermark_moves(tracking):
    first = _log(25)
    answered.register(experiment="bot").start()
    monitor = Monitor(get_store(), options=FAST)
    assert monitor.run_once().scored == 25
    assert monitor.run_once().scored == 0  # a rerun scores nothing again
    later = _log(5, start_ms=NOW_MS - 60_000)
    assert Monitor(get_store(), options=FAST).run_once().scored == 5  # a new process too
    assert _verdicts(first + later, "answered") == [1] * 30
    trace = get_store().get_trace(later[0])
    [fb] = [a for a in trace.info.assessments if a.name == "answered"]
    assert fb.value is True and fb.metadata["monitor"]["version"] == 1
    assert list_scorers(experiment="bot")[0].watermark[1] == later[-1]
    [status] = monitor_status(get_store())
    assert status.state == "STARTED" and status.last_hour["scored"] == 30
    assert status.backlog == 0 and status.last_hour["pass_rate"] == 1.0


def test_sample_rate_and_filter_decide_which_traces(tracking):
    prod = _log(40, tags={"env": "prod"})
    dev = _log(10, tags={"env": "dev"})
    answered.register(experiment="bot").start(
        ScorerSamplingConfig(sample_rate=0.5, filter_string="tag.env = 'prod'")
    )
    Monitor(get_store(), options=FAST).run_once()
    expected = [int(is_sampled(t, "answered", 0.5)) for t in prod]
    assert _verdicts(prod, "answered") == expected and 5 < sum(expected) < 35
    assert _verdicts(dev, "answered") == [0] * 10


def test_a_trace_in_progress_holds_the_watermark_until_it_ends(tracking):
    done = _log(3, start_ms=NOW_MS - 120_000)
    running = _log(1, start_ms=NOW_MS - 60_000, state=TraceState.IN_PROGRESS, duration_ms=None)
    after = _log(2, start_ms=NOW_MS - 30_000)
    answered.register(experiment="bot").start()
    Monitor(get_store(), options=FAST).run_once()
    assert _verdicts(done + running + after, "answered") == [1, 1, 1, 0, 0, 0]
    trace = get_store().get_trace(running[0])
    trace.info.state, trace.info.execution_duration = TraceState.OK, 100
    get_store().log_traces([trace])  # its last span arrived
    Monitor(get_store(), options=FAST).run_once()
    assert _verdicts(done + running + after, "answered") == [1] * 6


def test_two_monitors_at_once_never_score_a_trace_twice(tracking):
    ids = _log(60)
    answered.register(experiment="bot").start()
    monitors = [Monitor(get_store(), options=FAST) for _ in range(2)]
    reports = []
    threads = [threading.Thread(target=lambda m=m: reports.append(m.run_once())) for m in monitors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert sum(r.scored for r in reports) == 60
    assert _verdicts(ids, "answered") == [1] * 60


def test_budget_pauses_a_scorer_and_status_says_so(tracking):
    from tracejudge.store.monitor_sql import ClaimResult

    ids = _log(10)
    handle = answered.register(experiment="bot", max_calls_per_hour=3)
    handle.start()
    tables = get_store().monitor
    # three model calls were spent in this hour already (as a judge scorer would record them)
    tables.claim(handle.experiment_id, "answered", 1, [ids[0]], "earlier", 600_000)
    tables.finish(handle.experiment_id, "answered", "earlier", [ClaimResult(ids[0], "done", 3)])
    report = Monitor(get_store(), options=FAST).run_once()
    assert report.scored == 0 and "paused" in report.scorers[0].skipped
    [status] = monitor_status(get_store())
    assert status.state == "PAUSED" and "budget 3" in status.detail
    handle.update(max_calls_per_hour=None)
    assert Monitor(get_store(), options=FAST).run_once().scored == 9


def test_a_provider_that_is_down_backs_off_and_loses_no_trace(tracking):
    from tracejudge.judges import make_judge

    ids = _log(4)
    dead = "openai-compatible:/m?base_url=http://127.0.0.1:9/v1&max_retries=0&timeout=2"
    judge = make_judge("polite", "Is {{ outputs }} polite?", model=dead)
    judge.register(experiment="bot").start()
    options = MonitorOptions(settle_s=0, backoff_s=0.01, concurrency=1)
    for _ in range(3):
        report = Monitor(get_store(), options=options).run_once()
        assert report.scored == 0
        time.sleep(0.05)
    [info] = list_scorers(experiment="bot")
    assert info.failures == 3 and "Model" in info.last_error and info.watermark is None
    [status] = monitor_status(get_store())
    assert status.state == "UNHEALTHY" and status.last_hour["sampled"] == 0  # claims given back
    assert _verdicts(ids, "polite") == [0] * 4


class _Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_low_pass_rate_calls_the_webhook_once(tracking):
    _Webhook.received.clear()
    _log(5, outputs="no")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        says_yes.register(experiment="bot", alert_below=0.8, alert_webhook=url).start()
        monitor = Monitor(get_store(), options=FAST)
        monitor.run_once()
        monitor.run_once()
    finally:
        server.shutdown()
    assert len(_Webhook.received) == 1
    alert = _Webhook.received[0]
    assert alert["scorer"] == "says_yes" and alert["pass_rate"] == 0.0 and alert["verdicts"] == 5


def test_backfill_scores_a_time_range_once(tracking):
    old = _log(6, start_ms=NOW_MS - 7 * 86_400_000)
    newer = _log(4, start_ms=NOW_MS - 86_400_000)
    import tracejudge.monitoring  # noqa: F401  (installs the backfill runner)

    handle = answered.register(experiment="bot")
    assert handle.backfill(start=NOW_MS - 8 * 86_400_000, end=NOW_MS - 6 * 86_400_000) == 6
    assert handle.backfill(start=NOW_MS - 8 * 86_400_000, end=NOW_MS - 6 * 86_400_000) == 0
    assert _verdicts(old + newer, "answered") == [1] * 6 + [0] * 4


@pytest.mark.postgres
@pytest.mark.timeout(900)  # two processes on a busy 2-core machine
def test_killing_one_of_two_monitor_processes_loses_and_doubles_nothing(postgres_uri):
    from tracejudge.store import set_tracking_uri

    set_tracking_uri(postgres_uri)
    try:
        from tracejudge.testing.monitor_scorers import slow_answered

        ids = _log(40)
        slow_answered.register(experiment="bot").start()
        env = {
            **os.environ,
            "TRACEJUDGE_TRACKING_URI": postgres_uri,
            "TRACEJUDGE_TEST_SCORER_DELAY_S": "0.3",
        }
        command = [sys.executable, "-m", "tracejudge.cli.main", "monitor", "--settle-s", "0"]
        args = ["--lease-s", "5", "--poll-s", "0.5", "--concurrency", "2"]
        victim = subprocess.Popen(
            [*command, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        survivor = subprocess.Popen(
            [*command, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and sum(_verdicts(ids, "slow_answered")) < 4:
                time.sleep(0.2)
            victim.kill()  # SIGKILL mid-work: its claims are left behind, unfinished
            victim.wait(timeout=30)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and list_scorers(experiment="bot")[0].watermark != (
                get_store().get_trace(ids[-1]).info.timestamp_ms,
                ids[-1],
            ):
                time.sleep(0.5)
        finally:
            survivor.terminate()
            survivor.wait(timeout=60)
        assert _verdicts(ids, "slow_answered") == [1] * 40
        [info] = list_scorers(experiment="bot")
        assert info.watermark is not None and info.watermark[1] == ids[-1]
    finally:
        set_tracking_uri(None)


def test_the_server_runs_the_monitor_with_monitor(sqlite_tracking):
    from tracejudge.testing.server_process import ServerProcess

    ids = _log(5)
    answered.register(experiment="bot").start()
    server = ServerProcess(sqlite_tracking, "--monitor")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _verdicts(ids, "answered") != [1] * 5:
            time.sleep(0.5)
    finally:
        server.stop()
    assert _verdicts(ids, "answered") == [1] * 5


# ------------------------------------------------------------- through the tracking server


def test_registering_and_monitoring_through_the_tracking_server(tracking_server):
    import httpx

    from tracejudge import set_tracking_uri

    set_tracking_uri(tracking_server)
    try:
        # two different hours of arrival: two bars of the pass-rate chart
        ids = _log(4, start_ms=NOW_MS - 7_200_000, outputs="yes") + _log(
            4, start_ms=NOW_MS - 600_000, outputs="no"
        )
        handle = says_yes.register(experiment="bot", alert_below=0.9)
        handle.start(ScorerSamplingConfig(sample_rate=1.0, filter_string="trace.name = 'answer'"))
        with pytest.raises(InvalidFilterError):
            handle.update(ScorerSamplingConfig(filter_string="trace.name = "))
        assert [s.filter_string for s in list_scorers(experiment="bot")] == [
            "trace.name = 'answer'"
        ]
        monitors = [Monitor(get_store(), options=FAST) for _ in range(2)]
        reports = []
        threads = [
            threading.Thread(target=lambda m=m: reports.append(m.run_once())) for m in monitors
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert sum(r.scored for r in reports) == 8  # claims taken through the server
        assert _verdicts(ids, "says_yes") == [1] * 8
        [status] = monitor_status(get_store())  # computed by the server
        assert (status.state, status.last_hour["scored"], status.backlog) == ("STARTED", 8, 0)
        assert [(rate, n) for _, rate, n in status.pass_rate_by_hour] == [(1.0, 4), (0.0, 4)]
        metrics = httpx.get(f"{tracking_server}/metrics", timeout=60).text
        labels = 'experiment_id="1",scorer="says_yes"'
        assert f"tracejudge_monitor_scored_last_hour{{{labels}}} 8" in metrics
        assert f"tracejudge_monitor_pass_rate_last_hour{{{labels}}} 0.5" in metrics
        assert f'tracejudge_monitor_scorer_state{{{labels},state="STARTED"}} 1' in metrics
        bad = httpx.post(
            f"{tracking_server}/api/v1/monitor/claim", json={"scorer": "x"}, timeout=60
        )
        assert bad.status_code == 400 and bad.json()["error_code"] == "InvalidArgumentError"
        for changes in (  # past the client: a wrong type would break the monitor thread
            {"filter_string": "tag.env = "},
            {"sample_rate": 2},
            {"max_calls_per_hour": "lots"},
            {"max_cost_per_day": "cheap"},
            {"alert_below": "high"},
            {"status": {"not": "a status"}},
        ):
            refused = httpx.post(
                f"{tracking_server}/api/v1/monitor/scorers/update",
                json={"experiment_id": "1", "name": "says_yes", "changes": changes},
                timeout=60,
            )
            assert refused.status_code == 400, refused.text
        assert handle.info.filter_string == "trace.name = 'answer'"
        handle.delete()
        with pytest.raises(ScorerNotFoundError):  # the server's typed error, raised here
            handle.start()
        assert "tracejudge_monitor_" not in httpx.get(f"{tracking_server}/metrics").text
    finally:
        set_tracking_uri(None)


def test_a_retried_claim_whose_answer_was_lost_takes_its_own_claim_again(tracking):
    ids = _log(2)
    handle = answered.register(experiment="bot")
    tables = get_store().monitor
    assert tables.claim(handle.experiment_id, "answered", 1, ids, "me", 600_000) == ids
    assert tables.claim(handle.experiment_id, "answered", 1, ids, "me", 600_000) == ids
    assert tables.claim(handle.experiment_id, "answered", 1, ids, "other", 600_000) == []


def test_the_cli_runs_a_pass_and_prints_the_status(sqlite_tracking):
    from click.testing import CliRunner

    from tracejudge.cli.main import main

    _log(3, outputs="yes")
    says_yes.register(experiment="bot").start()
    later = _log(2, start_ms=NOW_MS + 3_600_000)  # not settled yet: the backlog
    run = CliRunner().invoke(
        main, ["--tracking-uri", sqlite_tracking, "monitor", "--once", "--settle-s", "0"]
    )
    assert run.exit_code == 0, run.output
    status = CliRunner().invoke(main, ["--tracking-uri", sqlite_tracking, "monitor", "status"])
    assert status.exit_code == 0, status.output
    assert "says_yes" in status.output and "STARTED" in status.output
    assert "3/3/0" in status.output and "100%" in status.output
    assert _verdicts(later, "says_yes") == [0, 0]


def test_a_claim_taken_over_after_its_lease_is_finished_by_its_new_owner_only(tracking):
    from tracejudge.store.monitor_sql import ClaimResult

    ids = _log(3)
    handle = answered.register(experiment="bot")
    tables = get_store().monitor
    eid = handle.experiment_id
    assert tables.claim(eid, "answered", 1, ids, "dead", 600_000) == ids
    time.sleep(0.01)  # the claims are now older than a lease of 0 ms
    assert tables.claim(eid, "answered", 1, ids[:1], "alive", 0) == ids[:1]
    results = [ClaimResult(t, "done", calls=1, passed=1.0) for t in ids]
    assert tables.finish(eid, "answered", "dead", results) == 2  # not the one taken over
    assert tables.finish(eid, "answered", "alive", results[:1]) == 1
    assert tables.finished(eid, "answered", ids) == set(ids)
    assert tables.usage(eid, "answered", 0)["calls"] == 3
