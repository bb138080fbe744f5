"""Drop-in parity with MLflow 3 where the documents' snippets need it (no MLflow installed or
needed): the names and keywords their code uses, with only the import changed."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tracejudge
from tracejudge.errors import InvalidArgumentError, InvalidTrackingURIError
from tracejudge.evaluation.aggregate import aggregate
from tracejudge.scorers.fields import response_text


def test_integration_submodules_are_attributes_after_a_bare_import():
    code = (
        "import tracejudge; "
        "assert callable(tracejudge.openai.autolog); "
        "assert tracejudge.client.MlflowClient is tracejudge.Client; "
        "assert tracejudge.trust.TLM is tracejudge.trust.TrustScorer"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        tracejudge.nothing  # noqa: B018


def test_request_id_is_the_trace_id_everywhere(sqlite_tracking):
    @tracejudge.trace
    def answer(question):
        return "Paris"

    answer("capital?")
    tracejudge.flush()
    trace_id = tracejudge.get_last_active_trace_id()
    tracejudge.set_trace_tag(request_id=trace_id, key="env", value="prod")
    tracejudge.client.MlflowClient().set_trace_tag(request_id=trace_id, key="team", value="a")
    feedback = tracejudge.log_feedback(request_id=trace_id, name="ok", value=True)
    trace = tracejudge.get_trace(request_id=trace_id)
    assert trace.info.request_id == trace_id
    assert trace.info.tags == {"env": "prod", "team": "a"}
    assert tracejudge.get_assessment(request_id=trace_id, assessment_id=feedback.assessment_id)
    with pytest.raises(InvalidArgumentError, match="once"):
        tracejudge.set_trace_tag(trace_id, request_id=trace_id, key="k", value="v")


def test_yes_no_scorers_report_the_share_of_yes_as_mean():
    from tracejudge.entities import Feedback

    metrics = aggregate(
        [Feedback("polite", "yes"), Feedback("polite", "no"), Feedback("polite", "yes")]
    )
    assert metrics["polite/mean"] == pytest.approx(2 / 3) == metrics["polite/pass_rate"]


def test_a_chat_completion_object_is_read_as_its_message_text():
    from openai.types.chat import ChatCompletion

    completion = ChatCompletion.model_validate(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Opening hours are 9 to 5."},
                }
            ],
        }
    )
    assert response_text(completion) == "Opening hours are 9 to 5."


def test_tracking_uris_we_do_not_serve_are_refused():
    with pytest.raises(InvalidTrackingURIError):
        tracejudge.set_tracking_uri("databricks")


def test_mlflow2_style_evaluate_reads_columns_and_leaves_the_app_experiment_alone(
    sqlite_tracking, monkeypatch
):
    import pandas as pd

    from tracejudge.metrics import MetricValue, make_metric

    monkeypatch.setenv("TRACEJUDGE_PROGRESS", "0")

    def eval_fn(predictions, inputs):
        scores = [1.0 if "Paris" in p else 0.0 for p in predictions]
        return MetricValue(
            scores=scores,
            justifications=[f"asked {q!r}" for q in inputs],
            aggregate_results={"mean": sum(scores) / len(scores)},
        )

    tracejudge.set_experiment("support-app")

    @tracejudge.trace
    def app(question):
        return "Paris"

    app("capital?")
    tracejudge.flush()
    data = pd.DataFrame({"prompt": ["capital?", "capital again?"], "response": ["Paris", "Lyon"]})
    result = tracejudge.evaluate(
        model=None,
        data=data,
        predictions="response",
        extra_metrics=[make_metric(eval_fn=eval_fn, greater_is_better=True, name="paris")],
        evaluator_config={"col_mapping": {"inputs": "prompt"}},
    )
    table = result.tables["eval_results_table"]
    assert list(table.columns) == ["prompt", "response", "paris/score", "paris/justification"]
    assert list(table["paris/score"]) == [1.0, 0.0]
    assert table["paris/justification"][0] == "asked 'capital?'"
    assert result.metrics["paris/mean"] == 0.5
    assert len(tracejudge.search_traces(return_type="list")) == 1  # only the app's own trace
    with pytest.raises(InvalidArgumentError, match="predict_fn"):
        tracejudge.evaluate(model="models:/m/1", data=data, predictions="response")
    with pytest.raises(InvalidArgumentError, match="no column 'answer'"):
        tracejudge.evaluate(data=data, predictions="answer", extra_metrics=[])
