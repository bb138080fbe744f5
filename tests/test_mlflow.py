"""MLflow interop against real MLflow: a real MLflow SQLite store and a real ``mlflow server``
process on 127.0.0.1; judges answered by a real OpenAI-protocol HTTP server (scripted)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

import tracejudge
from tracejudge.entities import Feedback
from tracejudge.errors import ExperimentNotFoundError, IntegrationError
from tracejudge.models import reset_models
from tracejudge.scorers import RetrievalGroundedness, scorer
from tracejudge.testing import ChatServer, Reply

mlflow = pytest.importorskip("mlflow")
from tracejudge.integrations import mlflow as tj_mlflow  # noqa: E402
from tracejudge.integrations.mlflow.compat import experiments_argument  # noqa: E402

YES = '{"rationale": "every claim is in the context", "verdict": "yes"}'
NO = '{"rationale": "Lyon is not in the context", "verdict": "no"}'


def judge_reply(request):
    text = " ".join(str(m.get("content")) for m in request["messages"])
    if "Answer with one word: yes or no." in text:
        negative = "state anything" in text
        return Reply("yes" if ("Lyon" in text) == negative else "no")
    if "Reply with exactly one word: True or False" in text:
        return Reply("False" if "Lyon" in text else "True")
    if "certainty from 0" in text:
        certainty = 5 if "Lyon" in text else 95
        return Reply(json.dumps({"reasoning": "checked", "certainty": certainty}))
    return Reply(NO if "Lyon" in text else YES)


@pytest.fixture
def judge():
    reset_models()
    with ChatServer(judge_reply) as server:
        yield f"openai-compatible:/judge?base_url={server.base_url}"
    reset_models()


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch) -> Iterator[str]:
    """A fresh MLflow SQLite store, MLflow's fluent API pointed at it, synchronous trace export."""
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    monkeypatch.setenv("TRACEJUDGE_PROGRESS", "0")
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch from the internet
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(before)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """``mlflow server`` as a real process on a free port."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # a cold start on a busy 2-core machine is slow
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("mlflow server did not start")
    yield url
    proc.terminate()
    proc.wait(timeout=60)


def _seed_mlflow(experiment: str, questions: list[str]) -> list[str]:
    """Traced RAG calls recorded by MLflow's own SDK (a retriever span with documents)."""
    mlflow.set_experiment(experiment)

    @mlflow.trace(span_type="RETRIEVER")
    def retrieve(question):
        from mlflow.entities import Document

        return [Document(page_content="Paris is the capital of France.", metadata={"id": "d1"})]

    @mlflow.trace
    def answer(question):
        retrieve(question)
        return "Lyon" if "wrong" in question else "Paris"

    ids = []
    for q in questions:
        answer(q)
        ids.append(mlflow.get_last_active_trace_id())
    mlflow.flush_trace_async_logging()
    return ids


@scorer
def says_paris(outputs) -> bool:
    return "Paris" in str(outputs)


# ---------------------------------------------------------------- versions


@pytest.mark.parametrize("version", ["2.22.1", "3.2.0", "4.0.0"])
def test_unsupported_mlflow_versions_get_a_clear_error(version):
    with pytest.raises(IntegrationError, match=r"mlflow>=3.3,<4"):
        tj_mlflow.check_version(version)
    tj_mlflow.check_version("3.3.0")
    tj_mlflow.check_version(mlflow.__version__)


# ------------------------------------------------- our scorers inside MLflow


def test_our_scorers_run_in_mlflow_genai_evaluate(mlflow_uri, judge):
    mlflow.set_experiment("our-scorers")
    rows = [{"inputs": {"question": "capital?"}}, {"inputs": {"question": "capital, wrong?"}}]
    grounded = RetrievalGroundedness(model=judge)

    @mlflow.trace(span_type="RETRIEVER")
    def retrieve(question):
        from mlflow.entities import Document

        return [Document(page_content="Paris is the capital of France.")]

    @mlflow.trace
    def predict(question):
        retrieve(question)
        return "Lyon" if "wrong" in question else "Paris"

    result = mlflow.genai.evaluate(
        data=rows,
        predict_fn=predict,
        scorers=tj_mlflow.to_mlflow_scorers([says_paris, grounded]),
    )
    assert result.metrics["says_paris/mean"] == 0.5
    traces = mlflow.search_traces(run_id=result.run_id, return_type="list")
    verdicts = {}
    for trace in traces:
        answer = trace.data.spans[0].outputs
        for a in trace.info.assessments:
            if a.name in ("says_paris", "retrieval_groundedness"):
                verdicts[(answer, a.name)] = a
    assert verdicts[("Paris", "says_paris")].value is True
    assert verdicts[("Lyon", "says_paris")].value is False
    bad = verdicts[("Lyon", "retrieval_groundedness")]
    assert bad.value == "no" and "Lyon" in bad.rationale
    assert bad.source.source_type == "LLM_JUDGE"
    assert verdicts[("Paris", "retrieval_groundedness")].value == "yes"


def test_trust_metric_in_mlflow_evaluate_extra_metrics(mlflow_uri, judge):
    mlflow.set_experiment("trust-metric")
    data = pd.DataFrame(
        {
            "question": ["What is the capital of France?", "What is the capital of France?"],
            "answer": ["Paris", "Lyon"],
        }
    )
    with mlflow.start_run():
        result = mlflow.evaluate(
            data=data,
            predictions="answer",
            extra_metrics=[tj_mlflow.trust_metric(model=judge, quality_preset="base")],
            evaluator_config={"col_mapping": {"inputs": "question"}},
        )
    table = result.tables["eval_results_table"]
    scores = list(table["trustworthiness/v1/score"])
    assert scores[0] > scores[1]  # Paris is trusted more than Lyon
    assert "trustworthiness/v1/justification" in table.columns
    assert result.metrics["trustworthiness/v1/mean"] == pytest.approx(sum(scores) / 2)


# ----------------------------------------- MLflow's traces scored by tracejudge


def test_mlflow_server_traces_scored_and_written_back_once(
    mlflow_server, sqlite_tracking, monkeypatch
):
    monkeypatch.setenv("TRACEJUDGE_PROGRESS", "0")
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server)
    try:
        ids = _seed_mlflow("served-app", ["capital?", "capital, wrong?", "capital again?"])
        with warnings.catch_warnings():  # no deprecated MLflow argument (a later MLflow drops it)
            warnings.simplefilter("error", FutureWarning)
            traces = tj_mlflow.search_traces(mlflow_server, experiment="served-app")
        assert sorted(t.info.trace_id for t in traces) == sorted(ids)
        retriever = next(s for s in traces[0].data.spans if s.span_type == "RETRIEVER")
        assert retriever.outputs[0]["page_content"] == "Paris is the capital of France."
        result = tracejudge.evaluate(data=traces, scorers=[says_paris])
        assert result.delivered == {"written": 3, "replaced": 0, "failed": 0}
        again = tracejudge.evaluate(
            data=tj_mlflow.search_traces(mlflow_server, experiment="served-app"),
            scorers=[says_paris],
        )
        assert again.delivered == {"written": 0, "replaced": 3, "failed": 0}
        for trace_id in ids:
            written = [
                a
                for a in mlflow.get_trace(trace_id).info.assessments
                if a.name == "says_paris" and a.valid is not False
            ]
            assert len(written) == 1, written  # a rerun replaced, it did not add
            expected = "wrong" not in mlflow.get_trace(trace_id).data.spans[0].inputs["question"]
            assert written[0].value is expected
        home = tracejudge.store.get_store().get_experiment_by_name("served-app")
        here = tracejudge.search_traces(
            [home.experiment_id], filter_string="feedback.says_paris = false", return_type="list"
        )
        assert len(here) == 1  # the verdicts live here too, searchable
    finally:
        mlflow.set_tracking_uri(before)


def test_an_unreachable_mlflow_server_is_a_typed_error(sqlite_tracking):
    with pytest.raises(IntegrationError, match="MLflow"):
        tj_mlflow.search_traces("http://127.0.0.1:9", experiment="x")


def test_an_unknown_mlflow_experiment_is_a_typed_error(mlflow_uri, sqlite_tracking):
    with pytest.raises(ExperimentNotFoundError, match="nope"):
        tj_mlflow.search_traces(mlflow_uri, experiment="nope")


# ------------------------------------------------------------- moving data


def test_import_copies_traces_and_assessments_once(mlflow_uri, sqlite_tracking):
    ids = _seed_mlflow("to-import", [f"q{i}" for i in range(5)])
    mlflow.log_feedback(
        trace_id=ids[0],
        name="helpful",
        value=False,
        rationale="vague",
        source=mlflow.entities.AssessmentSource("HUMAN", "ann"),
    )
    mlflow.log_expectation(trace_id=ids[1], name="expected_response", value="Paris")
    first = tj_mlflow.import_experiment(mlflow_uri, "to-import")
    assert (first.read, first.copied, first.already, first.assessments) == (5, 5, 0, 2)
    again = tj_mlflow.import_experiment(mlflow_uri, "to-import")
    assert (again.copied, again.already) == (0, 5)
    store = tracejudge.store.get_store()
    copied = store.get_trace(ids[0])
    assert copied is not None and len(copied.data.spans) == 2
    (helpful,) = [a for a in copied.info.assessments if a.name == "helpful"]
    assert (helpful.value, helpful.rationale, helpful.source.source_id) == (False, "vague", "ann")
    assert [a.name for a in store.get_trace(ids[1]).info.assessments] == ["expected_response"]


def test_export_recreates_traces_in_mlflow_once(mlflow_uri, sqlite_tracking):
    tracejudge.set_experiment("to-export")

    @tracejudge.trace(span_type="RETRIEVER")
    def retrieve(question):
        return [{"page_content": "Paris is the capital of France."}]

    @tracejudge.trace
    def answer(question):
        retrieve(question)
        return "Paris"

    for i in range(3):
        answer(f"q{i}")
    tracejudge.flush()
    ours = tracejudge.search_traces(
        [tracejudge.store.get_store().get_experiment_by_name("to-export").experiment_id],
        order_by=["timestamp ASC"],
        return_type="list",
    )
    tracejudge.log_feedback(ours[0].info.trace_id, "correct", True, rationale="checked")
    first = tj_mlflow.export_experiment("to-export", mlflow_uri)
    assert (first.read, first.copied, first.assessments) == (3, 3, 1)
    again = tj_mlflow.export_experiment("to-export", mlflow_uri)
    assert (again.copied, again.already) == (0, 3)
    experiment = mlflow.get_experiment_by_name("to-export")
    exported = mlflow.search_traces(
        **experiments_argument(mlflow.search_traces, [experiment.experiment_id]),
        return_type="list",
    )
    assert len(exported) == 3
    by_source = {t.info.tags["tracejudge.source_trace_id"]: t for t in exported}
    target = by_source[ours[0].info.trace_id]
    assert [s.span_type for s in target.data.spans] == ["UNKNOWN", "RETRIEVER"] or {
        s.span_type for s in target.data.spans
    } >= {"RETRIEVER"}
    assert [(a.name, a.value) for a in target.info.assessments if a.name == "correct"] == [
        ("correct", True)
    ]
    assert isinstance(ours[0].info.assessments, list) and Feedback  # entities are ours


# ------------------------------------------------------------------ the CLI


def test_cli_imports_scores_from_and_exports_to_mlflow(
    mlflow_uri, sqlite_tracking, tmp_path, judge
):
    from click.testing import CliRunner

    from tracejudge.cli.main import main

    ids = _seed_mlflow("cli-app", ["capital?", "capital, wrong?"])
    runner = CliRunner()
    scored = runner.invoke(
        main,
        ["evaluate", "--from-mlflow", mlflow_uri, "--experiment", "cli-app",
         "--scorers", "groundedness", "--model", judge],
    )  # fmt: skip
    assert scored.exit_code == 0, scored.output
    assert "Written back to MLflow: 2 new, 0 replaced, 0 failed" in scored.output
    verdicts = {
        mlflow.get_trace(i).data.spans[0].outputs: [
            a.value
            for a in mlflow.get_trace(i).info.assessments
            if a.name == "retrieval_groundedness"
        ]
        for i in ids
    }
    assert verdicts == {"Paris": ["yes"], "Lyon": ["no"]}
    imported = runner.invoke(
        main, ["import-mlflow", "--from", mlflow_uri, "--experiment", "cli-app"]
    )
    assert imported.exit_code == 0, imported.output
    assert "2 traces read, 0 copied, 2 already there" in imported.output  # evaluate copied them
    target = f"sqlite:///{tmp_path / 'other-mlflow.db'}"
    exported = runner.invoke(
        main, ["export", "--format", "mlflow", "--to", target, "--experiment", "cli-app"]
    )
    assert exported.exit_code == 0, exported.output
    assert "2 traces read, 2 copied, 0 already there, 2 assessments" in exported.output
    missing = runner.invoke(main, ["import-mlflow", "--from", mlflow_uri, "--experiment", "nope"])
    assert missing.exit_code != 0 and "nope" in missing.output
