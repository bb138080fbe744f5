"""evaluate() on a two-node Ray cluster started as people start one (``ray start --head``, then
``ray start --address`` for a worker node), both on loopback: verdicts written to PostgreSQL
by actors on both nodes, and a local SQLite file refused with a message that says what to use."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from factories import make_trace
from tracejudge import RayExecutor, TraceQuery, evaluate
from tracejudge.entities import Feedback, RunStatus
from tracejudge.errors import InvalidArgumentError
from tracejudge.store import get_store, set_tracking_uri
from tracejudge.testing.monitor_scorers import answered, slow_answered

pytestmark = pytest.mark.timeout(600)
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A head node and a worker node with one CPU each; the address to join."""
    if ray.is_initialized():
        ray.shutdown()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # a private cluster on loopback
    before = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # for this process's driver too
    port = _free_port()
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    head = [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", *common]
    subprocess.run(head, env=env, check=True, capture_output=True, timeout=300)
    try:
        worker = [RAY, "start", f"--address=127.0.0.1:{port}", *common]
        subprocess.run(worker, env=env, check=True, capture_output=True, timeout=300)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=300)
        if before is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = before


def _log(n: int) -> list[str]:
    eid = get_store().get_or_create_experiment("bot").experiment_id
    traces = [make_trace(eid, timestamp_ms=1_700_000_000_000 + i) for i in range(n)]
    get_store().log_traces(traces)
    return [t.info.trace_id for t in traces]


@pytest.mark.postgres
def test_actors_on_two_nodes_score_into_postgresql(cluster, postgres_uri, tmp_path, monkeypatch):
    set_tracking_uri(postgres_uri)
    try:
        ids = _log(40)
        pid_dir = tmp_path / "pids"
        pid_dir.mkdir()
        monkeypatch.setenv("TRACEJUDGE_TEST_PID_DIR", str(pid_dir))
        monkeypatch.setenv("TRACEJUDGE_TEST_SCORER_DELAY_S", "0.05")
        # one CPU per node and one per actor: the two actors are on different nodes
        executor = RayExecutor(address=cluster, workers=2, cpus_per_worker=1)
        result = evaluate(TraceQuery("bot"), [slow_answered], executor=executor, batch_size=4)
        assert result.run.status == RunStatus.FINISHED
        assert result.metrics["slow_answered/count"] == 40
        assert len(list(pid_dir.iterdir())) == 2  # both actors scored
        counts = [
            sum(1 for a in t.info.assessments if isinstance(a, Feedback))
            for t in get_store().get_traces(ids, include_spans=False)
        ]
        assert counts == [1] * 40
        assert not ray.is_initialized()  # the executor left the cluster it joined
    finally:
        set_tracking_uri(None)


def test_a_local_sqlite_file_is_refused_on_a_multi_node_cluster(cluster, sqlite_tracking):
    _log(3)
    with pytest.raises(InvalidArgumentError, match="cannot share") as caught:
        evaluate(TraceQuery("bot"), [answered], executor="ray", ray_address=cluster)
    assert "PostgreSQL" in str(caught.value) and "tracking server" in str(caught.value)
    assert get_store().search_runs(None, 10) == []
    assert not ray.is_initialized()
