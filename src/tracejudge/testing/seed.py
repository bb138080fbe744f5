"""A small, realistic store for the web UI's tests and screenshots: a RAG app's traces (a chain,
a retriever with documents, a chat-model call with messages and token usage), judge verdicts
(pass/fail and 0–1 scores, one suspected injection), two evaluation runs whose verdicts differ on
some traces, and one trace whose every field holds script-injection payloads."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tracejudge.entities import (
    AssessmentSource,
    EvaluationRun,
    Feedback,
    Span,
    SpanStatus,
    SpanStatusCode,
    SpanType,
    Trace,
    TraceData,
    TraceInfo,
    TraceState,
)
from tracejudge.entities.evaluation_run import RunStatus
from tracejudge.entities.trace import new_trace_id
from tracejudge.store.base import TraceStore
from tracejudge.tracing.constants import CHAT_TOKEN_USAGE

XSS = '<script>alert("xss")</script><img src=x onerror=alert(1)><a href="javascript:alert(2)">x</a>'
BASE_MS = 1_764_000_000_000
CITIES = ["Paris", "Lisbon", "Oslo", "Vienna", "Prague", "Dublin", "Madrid", "Rome"]


@dataclass
class Seeded:
    experiment_id: str
    trace_ids: list[str] = field(default_factory=list)
    xss_trace_id: str = ""
    run_a: str = ""
    run_b: str = ""
    changed: list[str] = field(default_factory=list)
    """Traces whose groundedness verdict differs between run a and run b."""


def _trace(experiment_id: str, i: int, question: str, answer: str, docs: list[str]) -> Trace:
    tid = new_trace_id()
    start = (BASE_MS + i * 60_000) * 1_000_000
    ms = 1_000_000
    ok = SpanStatus(SpanStatusCode.OK)
    messages = [
        {"role": "system", "content": "Answer from the context only."},
        {"role": "user", "content": f"Context: {' '.join(docs)}\n\nQuestion: {question}"},
    ]
    spans = [
        Span(
            tid,
            f"{1:016x}",
            None,
            "rag_answer",
            SpanType.CHAIN,
            start,
            start + 900 * ms,
            ok,
            {"question": question},
            answer,
        ),
        Span(
            tid,
            f"{2:016x}",
            f"{1:016x}",
            "retrieve",
            SpanType.RETRIEVER,
            start + 5 * ms,
            start + 120 * ms,
            ok,
            {"query": question},
            [
                {"page_content": d, "metadata": {"source": f"doc-{k}.md"}}
                for k, d in enumerate(docs)
            ],
        ),
        Span(
            tid,
            f"{3:016x}",
            f"{1:016x}",
            "chat.completions",
            SpanType.CHAT_MODEL,
            start + 130 * ms,
            start + 880 * ms,
            ok,
            {"model": "gpt-4.1-mini", "messages": messages},
            {"choices": [{"message": {"role": "assistant", "content": answer}}]},
            {
                CHAT_TOKEN_USAGE: {
                    "input_tokens": 120 + i,
                    "output_tokens": 18,
                    "total_tokens": 138 + i,
                }
            },
        ),
    ]
    info = TraceInfo(
        trace_id=tid,
        experiment_id=experiment_id,
        request_time=BASE_MS + i * 60_000,
        execution_duration=900,
        state=TraceState.OK,
        name="rag_answer",
        request_preview=json.dumps({"question": question}),
        response_preview=answer,
        tags={"env": "prod" if i % 3 else "staging"},
    )
    return Trace(info, TraceData(spans, json.dumps({"question": question}), json.dumps(answer)))


def seed_rag_experiment(store: TraceStore, n: int = 24, name: str = "rag-app") -> Seeded:
    experiment = store.get_or_create_experiment(name)
    seeded = Seeded(experiment.experiment_id)
    traces = []
    for i in range(n):
        city = CITIES[i % len(CITIES)]
        docs = [f"The museum in {city} opens at 9:00 and closes at 17:00.", "Tickets cost 12 EUR."]
        grounded = i % 4 != 0
        answer = (
            f"It opens at 9:00 and tickets cost 12 EUR in {city}."
            if grounded
            else f"It opens at 7:30 and entry is free in {city}."
        )
        traces.append(
            _trace(experiment.experiment_id, i, f"When does the {city} museum open?", answer, docs)
        )
    xss = _trace(experiment.experiment_id, n, XSS, XSS, [XSS])
    xss.info.tags = {"note": XSS}
    traces.append(xss)
    store.log_traces(traces)
    seeded.trace_ids = [t.info.trace_id for t in traces[:-1]]
    seeded.xss_trace_id = xss.info.trace_id

    judge = AssessmentSource("LLM_JUDGE", "local:/default")
    run_a = EvaluationRun(
        "run-" + "a" * 32,
        experiment.experiment_id,
        "baseline",
        RunStatus.FINISHED,
        BASE_MS,
        BASE_MS + 60_000,
    )
    run_b = EvaluationRun(
        "run-" + "b" * 32,
        experiment.experiment_id,
        "candidate-prompt",
        RunStatus.FINISHED,
        BASE_MS + 120_000,
        BASE_MS + 180_000,
    )
    feedback = []
    for run in (run_a, run_b):
        passed = 0
        for i, trace in enumerate(traces):
            tid = trace.info.trace_id
            grounded = i % 4 != 0 and trace is not xss
            if run is run_b and i % 8 == 0 and trace is not xss:
                seeded.changed.append(tid)
                grounded = not grounded  # the candidate disagrees with the baseline here
            passed += grounded
            score = 0.85 - 0.01 * (i % 10) if grounded else 0.12 + 0.01 * (i % 10)
            feedback.append(
                Feedback(
                    "groundedness",
                    "yes" if grounded else "no",
                    source=judge,
                    trace_id=tid,
                    run_id=run.run_id,
                    rationale=f"Score {score:.2f}: "
                    + (
                        "every claim is in the context."
                        if grounded
                        else "the opening time is not in the context."
                    ),
                    metadata={
                        "score": score,
                        **({"suspected_injection": True} if trace is xss else {}),
                    },
                )
            )
            feedback.append(
                Feedback(
                    "trustworthiness",
                    round(score - 0.05, 3),
                    source=judge,
                    trace_id=tid,
                    run_id=run.run_id,
                    rationale="Resampled answers " + ("agree." if grounded else "disagree."),
                )
            )
        run.row_count = len(traces)
        run.metrics = {
            "groundedness/pass_rate": round(passed / len(traces), 3),
            "trustworthiness/mean": 0.6 if run is run_a else 0.55,
        }
        run.scorers = [{"name": "groundedness"}, {"name": "trustworthiness"}]
        run.judge_models = ["local:/default"]
        run.usage = {"calls": 2 * len(traces), "input_tokens": 40_000, "cost_usd": 0.0}
        store.create_run(run)
    store.log_assessments([f.stamped(f.trace_id or "") for f in feedback])
    seeded.run_a, seeded.run_b = run_a.run_id, run_b.run_id
    return seeded
