"""The command line, in-process with click's runner and once as a real subprocess."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from factories import make_trace
from tracejudge.cli import main
from tracejudge.entities import Feedback
from tracejudge.store import SqlTraceStore


@pytest.fixture
def filled(sqlite_uri):
    store = SqlTraceStore(sqlite_uri)
    exp = store.get_or_create_experiment("rag").experiment_id
    traces = [
        make_trace(
            experiment_id=exp,
            timestamp_ms=1_700_000_000_000 + i,
            tags={"env": "prod" if i % 2 else "dev"},
            inputs={"question": f"q{i}"},
            outputs=f"a{i}",
        )
        for i in range(4)
    ]
    store.log_traces(traces)
    for i, t in enumerate(traces):
        store.log_assessment(
            Feedback("trustworthiness", round(0.2 * i, 1), trace_id=t.info.trace_id)
        )
    store.close()
    return sqlite_uri, traces


def run(uri, *args):
    result = CliRunner().invoke(main, ["--tracking-uri", uri, *args])
    return result


def test_experiments_list(filled):
    uri, _ = filled
    result = run(uri, "experiments", "list")
    assert result.exit_code == 0, result.output
    assert "Default" in result.output and "rag" in result.output


def test_search_table_json_csv(filled):
    uri, traces = filled
    table = run(
        uri,
        "traces",
        "search",
        "--experiment",
        "rag",
        "--filter",
        "tag.env = 'prod'",
        "--order-by",
        "feedback.trustworthiness ASC",
    )
    assert table.exit_code == 0, table.output
    assert traces[1].info.trace_id in table.output and traces[0].info.trace_id not in table.output
    assert "2 trace(s)" in table.output

    as_json = run(
        uri,
        "traces",
        "search",
        "--experiment",
        "rag",
        "--format",
        "json",
        "--order-by",
        "feedback.trustworthiness DESC",
        "--max-results",
        "2",
        "--spans",
    )
    data = json.loads(as_json.output)
    assert [d["info"]["trace_id"] for d in data] == [
        traces[3].info.trace_id,
        traces[2].info.trace_id,
    ]
    assert data[0]["data"]["spans"]

    as_csv = run(
        uri,
        "traces",
        "search",
        "--format",
        "csv",
        "--filter",
        "feedback.trustworthiness < 0.3 OR tag.env = 'prod'",
        "--order-by",
        "timestamp ASC",
    )
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert [r["trace_id"] for r in rows] == [traces[i].info.trace_id for i in (0, 1, 3)]
    assert rows[0]["feedback.trustworthiness"] == "0.0" and rows[1]["response_preview"] == "a1"


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["traces", "search", "--filter", "tag.env ="], 2, "expected a number or a quoted string"),
        (["traces", "search", "--order-by", "tag.env"], 2, "Cannot order by"),
        (["traces", "search", "--experiment", "missing"], 1, "No experiment named 'missing'"),
        (["traces", "search", "--format", "xml"], 2, "Invalid value"),
    ],
)
def test_bad_input_is_one_clear_line(filled, args, code, needle):
    uri, _ = filled
    result = run(uri, *args)
    assert result.exit_code == code
    assert needle in result.output
    assert "Traceback" not in result.output


def test_real_subprocess(filled):
    uri, traces = filled
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracejudge.cli.main",
            "--tracking-uri",
            uri,
            "traces",
            "search",
            "--format",
            "json",
            "--filter",
            "feedback.trustworthiness >= 0.6",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert [d["info"]["trace_id"] for d in json.loads(out.stdout)] == [traces[3].info.trace_id]


def test_evaluate_command(filled, monkeypatch):
    from tracejudge.models import reset_models
    from tracejudge.testing import ChatServer, Reply

    uri, _ = filled
    monkeypatch.setenv("TRACEJUDGE_PROGRESS", "0")
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps at the terminal width
    reset_models()

    def reply(request):
        text = request["messages"][-1]["content"]
        if "Reply with exactly one word" in text:
            return Reply("False" if "a1" in text else "True")
        if "certainty from 0" in text:
            bad = "a1" in text
            return Reply(
                json.dumps(
                    {"reasoning": "a1 is wrong" if bad else "ok", "certainty": 0 if bad else 100}
                )
            )
        return Reply('{"rationale": "on topic", "verdict": "yes"}')

    with ChatServer(reply) as server:
        judge = f"openai-compatible:/j?base_url={server.base_url}"
        result = run(
            uri,
            "evaluate",
            "--experiment",
            "rag",
            "--scorers",
            "trustworthiness,relevance",
            "--guideline",
            'brief="Answer in one sentence."',
            "--model",
            judge,
            "--preset",
            "low",
            "--filter",
            "tag.env = 'prod'",
            "--run-name",
            "cli-run",
        )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Scoring 2 trace(s)" in out and "cli-run" in out and "FINISHED" in out
    assert "trustworthiness" in out and "relevance_to_query" in out and "brief" in out
    assert "Least trustworthiness first" in out
    first = out.index("1. trustworthiness")
    assert "A: a1" in out[first:] and "a1 is wrong" in out[first:]  # the worst answer comes first
    reset_models()


def test_evaluate_exits_1_when_every_verdict_failed_and_shows_names_with_a_slash(
    filled, monkeypatch
):
    from tracejudge.models import reset_models
    from tracejudge.testing import ChatServer, Reply

    uri, _ = filled
    monkeypatch.setenv("TRACEJUDGE_PROGRESS", "0")
    monkeypatch.setenv("COLUMNS", "200")
    reset_models()
    args = ["evaluate", "--experiment", "rag", "--scorers", "safety", "--show", "0"]
    with ChatServer(lambda request: Reply(status=500)) as down:
        judge = f"openai-compatible:/j?base_url={down.base_url}&max_retries=0"
        failed = run(uri, *args, "--model", judge)
    assert failed.exit_code == 1 and "No verdict was scored" in failed.output
    with ChatServer(lambda request: Reply('{"rationale": "ok", "verdict": "yes"}')) as up:
        judge = f"openai-compatible:/j?base_url={up.base_url}"
        scored = run(uri, *args, "--model", judge, "--guideline", "tone/v2=Be polite.")
        alone = ["evaluate", "--experiment", "rag", "--guideline", "tone=Be polite."]
        only_guideline = run(uri, *alone, "--model", judge, "--show", "0")
    assert scored.exit_code == 0, scored.output
    assert only_guideline.exit_code == 0, only_guideline.output
    assert "with tone\n" in only_guideline.output  # no trust score nobody asked for
    row = next(line for line in scored.output.splitlines() if line.startswith("│ tone/v2"))
    assert "100%" in row  # its figures, not an empty row named "tone"
    assert run(uri, *args, "--show", "-2").exit_code == 2
    reset_models()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["evaluate", "--experiment", "rag", "--scorers", "vibes"], "Unknown scorer 'vibes'"),
        (["evaluate", "--experiment", "rag", "--guideline", "no-equals-sign"], 'NAME="text"'),
        (
            ["evaluate", "--experiment", "rag", "--scorers", "safety", "--model", "bogus"],
            "Invalid model URI",
        ),
        (
            [
                "evaluate",
                "--experiment",
                "rag",
                "--scorers",
                "safety",
                "--filter",
                "tag.env = 'none'",
            ],
            "No traces match",
        ),
    ],
)
def test_evaluate_command_errors(filled, args, needle):
    uri, _ = filled
    result = run(uri, *args)
    assert (
        result.exit_code in (1, 2) and needle in result.output and "Traceback" not in result.output
    )


def test_traces_stats_table_and_json(filled):
    uri, _ = filled
    table = run(
        uri,
        "traces",
        "stats",
        "--experiment",
        "rag",
        "--group-by",
        "tag.env",
        "--metric",
        "count",
        "--metric",
        "feedback.trustworthiness.mean",
    )
    assert table.exit_code == 0, table.output
    assert "dev" in table.output and "prod" in table.output
    as_json = run(uri, "traces", "stats", "--group-by", "hour", "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    (row,) = json.loads(as_json.output)
    assert row["count"] == 4 and row["group"] == 1_700_000_000_000 // 3_600_000 * 3_600_000
    bad = run(uri, "traces", "stats", "--metric", "p200_latency")
    assert bad.exit_code == 2 and "Unknown metric" in bad.output


def test_datasets_add_traces_show_export_and_list(filled):
    uri, traces = filled
    store = SqlTraceStore(uri)
    from tracejudge.entities import Expectation

    store.log_assessment(Expectation("expected_response", "A1", trace_id=traces[1].info.trace_id))
    store.close()
    added = run(uri, "datasets", "add-traces", "prod-set", "--filter", "tag.env = 'prod'")
    assert added.exit_code == 0, added.output
    assert "2 traces merged into 'prod-set': 2 new records, 2 in all." in added.output
    again = run(uri, "datasets", "add-traces", "prod-set", "--experiment", "rag")
    assert "4 traces merged into 'prod-set': 2 new records, 4 in all." in again.output
    exported = run(uri, "datasets", "export", "prod-set")
    records = [json.loads(line) for line in exported.output.splitlines()]
    by_question = {r["inputs"]["question"]: r for r in records}
    assert sorted(by_question) == ["q0", "q1", "q2", "q3"]
    assert by_question["q1"]["expectations"] == {"expected_response": "A1"}
    assert by_question["q1"]["source_type"] == "TRACE"
    assert by_question["q1"]["source_id"] == traces[1].info.trace_id
    shown = run(uri, "datasets", "show", "prod-set")
    assert shown.exit_code == 0 and "expected_response" in shown.output
    listed = run(uri, "datasets", "list")
    assert "prod-set" in listed.output and "4" in listed.output
    missing = run(uri, "datasets", "show", "nope")
    assert missing.exit_code == 1 and "DatasetNotFoundError" in missing.output
    none = run(uri, "datasets", "add-traces", "empty-set", "--filter", "tag.env = 'none'")
    assert none.exit_code == 1 and "No traces match" in none.output
    assert "empty-set" not in run(uri, "datasets", "list").output
