"""Evaluation datasets (``tracejudge.datasets``), on an SQLite file, on PostgreSQL and through
a tracking server process: records merged by their inputs, built from traces and their logged
expectations, scored by evaluate(), and bad input refused with nothing stored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tracejudge
from tracejudge.datasets import (
    RecordSource,
    create_dataset,
    delete_dataset,
    delete_dataset_tag,
    get_dataset,
    search_datasets,
    set_dataset_tags,
)
from tracejudge.errors import DatasetNotFoundError, InvalidArgumentError
from tracejudge.scorers import scorer
from tracejudge.store import set_tracking_uri


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "http"])
def tracked(request) -> Iterator[str]:
    """The SDK pointed at a fresh store of each kind."""
    if request.param == "http":
        uri = request.getfixturevalue("tracking_server")
    elif request.param == "sqlite":
        uri = request.getfixturevalue("sqlite_uri")
    else:
        uri = request.getfixturevalue("postgres_uri")
    set_tracking_uri(uri)
    yield uri
    tracejudge.flush()
    set_tracking_uri(None)


def _by_question(dataset) -> dict[str, dict]:
    return {r.inputs["question"]: r.expectations for r in dataset.records}


def test_records_are_merged_by_their_inputs(tracked):
    golden = create_dataset("golden", tags={"owner": "qa"})
    assert len(golden) == 0
    golden.merge_records(
        [
            {"inputs": {"question": "refund window?", "lang": "en"}, "expectations": {"a": 1}},
            {"inputs": {"question": "opening hours?"}, "tags": {"topic": "hours"}},
        ]
    )
    other = create_dataset("other")
    empty_digest = other.digest
    first_digest = golden.digest
    assert first_digest != empty_digest
    other.merge_records(list(reversed(golden.to_evaluation_rows())))  # same records, other order
    assert other.digest == first_digest
    delete_dataset(other.dataset_id)
    other = create_dataset("other")
    # the same inputs in another key order: one record, its expectations merged, new ones winning
    golden.merge_records(
        [{"inputs": {"lang": "en", "question": "refund window?"}, "expectations": {"a": 2, "b": 3}}]
    )
    assert len(golden) == 2
    assert _by_question(golden) == {"refund window?": {"a": 2, "b": 3}, "opening hours?": {}}
    assert [r.inputs["question"] for r in golden.records] == ["refund window?", "opening hours?"]
    assert golden.digest != first_digest
    again = golden.digest
    golden.merge_records([{"inputs": {"question": "opening hours?"}}])  # nothing new
    assert golden.digest == again
    frame = golden.to_df()
    assert list(frame.columns[:3]) == ["record_id", "inputs", "expectations"]
    assert frame.source_type.tolist() == ["CODE", "CODE"]
    assert frame.tags.tolist()[1] == {"topic": "hours"}

    found = get_dataset(name="golden")
    assert (found.dataset_id, len(found), found.tags) == (golden.dataset_id, 2, {"owner": "qa"})
    assert get_dataset(golden.dataset_id).name == "golden"
    assert [d.name for d in search_datasets()] == ["other", "golden"]  # newest first
    assert set_dataset_tags(golden.dataset_id, {"stage": "v2"}).tags == {
        "owner": "qa",
        "stage": "v2",
    }
    assert delete_dataset_tag(golden.dataset_id, "owner").tags == {"stage": "v2"}
    delete_dataset(golden.dataset_id)
    with pytest.raises(DatasetNotFoundError):
        get_dataset(name="golden")
    assert [d.name for d in search_datasets()] == ["other"]


def test_records_from_traces_take_their_inputs_and_logged_expectations(tracked):
    @tracejudge.trace
    def answer(question: str) -> str:
        return "30 days" if "refund" in question else "9 to 5"

    tracejudge.set_experiment("support")
    answer("refund window?")
    refund_id = tracejudge.get_last_active_trace_id()
    answer("opening hours?")
    tracejudge.flush()
    tracejudge.log_expectation(refund_id, "expected_response", "30 days")
    traces = tracejudge.search_traces(order_by=["timestamp ASC"])  # the DataFrame
    golden = create_dataset("from-traces")
    golden.merge_records(traces)
    assert golden.experiment_ids == [tracejudge.get_experiment_by_name("support").experiment_id]
    assert _by_question(golden) == {
        "refund window?": {"expected_response": "30 days"},
        "opening hours?": {},
    }
    record = next(r for r in golden.records if r.inputs["question"] == "refund window?")
    assert (record.source_type, record.source_id) == (RecordSource.TRACE, refund_id)
    # the list of Traces adds nothing new: the same inputs
    golden.merge_records(tracejudge.search_traces(return_type="list"))
    assert len(golden) == 2
    assert search_datasets(experiment_ids=["0"]) == []


def test_evaluate_scores_a_dataset_through_predict_fn(tracked):
    @scorer
    def exact(outputs, expectations) -> bool:
        return outputs == expectations["expected_response"]

    golden = create_dataset("arith")
    golden.merge_records(
        [
            {"inputs": {"a": 2, "b": 2}, "expectations": {"expected_response": 4}},
            {"inputs": {"a": 3, "b": 4}, "expectations": {"expected_response": 7}},
            {"inputs": {"a": 5, "b": 5}, "expectations": {"expected_response": 11}},
        ]
    )

    def add(a: int, b: int) -> int:
        return a + b

    result = tracejudge.evaluate(data=golden, predict_fn=add, scorers=[exact])
    frame = result.result_df
    assert frame["outputs"].tolist() == [4, 7, 10]
    assert frame["exact/value"].tolist() == [True, True, False]
    assert result.run.row_count == 3
    stored = tracejudge.get_run(result.run_id)
    assert stored.dataset == {
        "dataset_id": golden.dataset_id,
        "name": "arith",
        "digest": golden.digest,
    }

    # the next version of the app, on the same records: compared record by record, although
    # each run made its own traces
    def add_fixed(a: int, b: int) -> int:
        return a + b + (1 if a == b == 5 else 0)

    second = tracejudge.evaluate(data=golden, predict_fn=add_fixed, scorers=[exact])
    comparison = tracejudge.compare_runs(result.run_id, second.run_id)
    assert comparison.same_data is True
    changed = comparison.changed.to_dict("records")
    fixed = next(r for r in golden.records if r.inputs == {"a": 5, "b": 5})
    assert [(c["record_id"], c["a"], c["b"]) for c in changed] == [(fixed.record_id, False, True)]
    assert changed[0]["trace_id"] != changed[0]["trace_id_a"]
    assert tracejudge.get_trace(changed[0]["trace_id"]).data.outputs == 11

    golden.merge_records([{"inputs": {"a": 1, "b": 1}, "expectations": {"expected_response": 2}}])
    third = tracejudge.evaluate(data=golden, predict_fn=add_fixed, scorers=[exact])
    assert tracejudge.compare_runs(second.run_id, third.run_id).same_data is False


def test_bad_records_are_refused_and_nothing_is_stored(tracked):
    golden = create_dataset("strict")
    with pytest.raises(InvalidArgumentError, match="already exists"):
        create_dataset("strict")
    with pytest.raises(InvalidArgumentError, match="No experiment"):
        create_dataset("nowhere", experiment_id="424242")
    bad_batches = [
        ([{"inputs": {"q": "ok"}}, {"inputs": "not a dict"}], "must be a non-empty dict"),
        ([{"inputs": {"q": "ok"}}, {"inputs": {"q": "x"}, "answer": 1}], "unknown key"),
        ([{"inputs": {"q": "ok"}, "source_type": "ROBOT"}], "source_type is one of"),
        ("a string", "not str"),
        ([42], "not a dict or a Trace"),
    ]
    for records, says in bad_batches:
        with pytest.raises(InvalidArgumentError, match=says):
            golden.merge_records(records)
    assert len(get_dataset(name="strict")) == 0  # not even the valid record before the bad one
    delete_dataset(golden.dataset_id)
    with pytest.raises(DatasetNotFoundError):
        golden.merge_records([{"inputs": {"q": "late"}}])
    with pytest.raises(DatasetNotFoundError):
        delete_dataset(golden.dataset_id)
    with pytest.raises(InvalidArgumentError, match="not both"):
        get_dataset()
