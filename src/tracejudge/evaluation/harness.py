"""Running an evaluation: predictions, a home trace for every row, scorers over rows × scorers
concurrently, verdicts written to the store as they arrive."""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import secrets
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tracejudge.entities import (
    AssessmentError,
    AssessmentSource,
    AssessmentSourceType,
    EvaluationRun,
    Expectation,
    Feedback,
    Span,
    SpanStatus,
    SpanStatusCode,
    SpanType,
    Trace,
    TraceData,
    TraceInfo,
)
from tracejudge.entities._json import dumps
from tracejudge.entities.trace import new_trace_id
from tracejudge.errors import (
    InvalidArgumentError,
    ModelAuthenticationError,
    ModelNotAvailableError,
    ModelNotConfiguredError,
    ModelURIError,
)
from tracejudge.evaluation.dataset import EvalRow
from tracejudge.evaluation.progress import RunProgress
from tracejudge.metrics import EvaluationMetric, MetricValue
from tracejudge.scorers import Scorer, to_feedbacks
from tracejudge.scorers.fields import response_text
from tracejudge.store import TraceStore
from tracejudge.tracing import flush, start_span, update_current_trace
from tracejudge.tracing.constants import DATASET_RECORD, SOURCE_RUN
from tracejudge.tracing.experiment import experiment_context
from tracejudge.tracing.otel_convert import preview
from tracejudge.tracing.sampling import keep_every_trace

logger = logging.getLogger("tracejudge.evaluation")

CONFIGURATION_ERRORS = (
    ModelURIError,
    ModelNotConfiguredError,
    ModelNotAvailableError,
    ModelAuthenticationError,
)
"""Errors that would fail every row alike (a bad model URI, a missing model, credentials the
provider rejects): the first one stops the run instead of filling every row with it."""
WRITE_BATCH = 200
WRITE_EVERY_S = 2.0


class FeedbackWriter:
    """Collects verdicts as scorers finish and writes them in batches (every 200 verdicts or
    2 seconds), so they show up while a run goes on and an interrupted run keeps them."""

    def __init__(self, store: TraceStore) -> None:
        self.store = store
        self._pending: list[Feedback] = []
        self._lock = threading.Lock()
        self._last_write = time.monotonic()
        self.written = 0
        self.failed = 0

    def add(self, feedbacks: Sequence[Feedback]) -> bool:
        """Queue verdicts; True when it is time to write."""
        with self._lock:
            self._pending.extend(feedbacks)
            due = time.monotonic() - self._last_write >= WRITE_EVERY_S
            return bool(self._pending) and (len(self._pending) >= WRITE_BATCH or due)

    def flush(self) -> None:
        """Write what is queued; if the batch is refused, verdict by verdict, so one verdict the
        store refuses loses only itself (counted in ``failed``)."""
        with self._lock:
            batch, self._pending = self._pending, []
            self._last_write = time.monotonic()
        if not batch:
            return
        try:
            self.store.log_assessments(batch)
            self.written += len(batch)
            return
        except Exception as exc:
            if len(batch) == 1:
                self._lost(batch[0], exc)
                return
        for feedback in batch:
            try:
                self.store.log_assessments([feedback])
                self.written += 1
            except Exception as exc:
                self._lost(feedback, exc)

    def _lost(self, feedback: Feedback, exc: Exception) -> None:
        self.failed += 1
        logger.error(
            "could not store the verdict %s on trace %s: %s: %s",
            feedback.name,
            feedback.trace_id,
            type(exc).__name__,
            exc,
        )


@dataclass
class Evaluation:
    rows: list[EvalRow]
    scorers: list[Scorer]
    run: EvaluationRun
    store: TraceStore
    experiment_name: str
    max_concurrency: int
    predict_fn: Callable[..., Any] | None = None
    extra_metrics: list[EvaluationMetric] = field(default_factory=list)
    feedback: list[list[Feedback]] = field(default_factory=list)
    extra_aggregates: dict[str, float] = field(default_factory=dict)
    col_mapping: dict[str, str] = field(default_factory=dict)
    """MLflow 2's ``evaluator_config["col_mapping"]``: a metric parameter -> the column it reads."""
    rows_experiment_id: str | None = None
    """Where rows without a trace get theirs (default: the run's experiment)."""

    def __post_init__(self) -> None:
        self.feedback = [[] for _ in self.rows]
        self.writer = FeedbackWriter(self.store)

    # ------------------------------------------------------------- predict

    async def predict(self, progress: RunProgress) -> None:
        assert self.predict_fn is not None
        if not any(isinstance(row.inputs, Mapping) for row in self.rows):  # a misuse, not data
            raise InvalidArgumentError(
                "With predict_fn, each row's inputs must be a dict of keyword arguments; "
                f"row {self.rows[0].index}'s is a {type(self.rows[0].inputs).__name__}."
            )
        progress.phase("predict", "predicting", len(self.rows))
        gate = asyncio.Semaphore(self.max_concurrency)
        trace_ids: dict[int, str] = {}

        async def one(row: EvalRow) -> None:
            async with gate:
                trace_ids[row.index] = await self._predict_row(row)
                progress.advance("predict")

        await asyncio.gather(*(one(r) for r in self.rows))
        await asyncio.to_thread(flush)
        for row in self.rows:
            row.trace = await asyncio.to_thread(self.store.get_trace, trace_ids[row.index])

    async def _predict_row(self, row: EvalRow) -> str:
        fn = self.predict_fn
        assert fn is not None
        name = getattr(fn, "__name__", "predict")
        with (
            experiment_context(self.experiment_name),
            keep_every_trace(),
            start_span(name, SpanType.CHAIN) as span,
        ):
            span.set_inputs(row.inputs)
            update_current_trace(
                metadata=self._row_metadata(row), tags={"tracejudge.eval": "predict"}
            )
            try:
                if not isinstance(row.inputs, Mapping):
                    raise InvalidArgumentError(
                        f"Row {row.index}: with predict_fn, inputs must be a dict of keyword "
                        f"arguments, not {type(row.inputs).__name__}."
                    )
                kwargs = _own_copy(row.inputs)  # the app may change what it is given
                if inspect.iscoroutinefunction(fn):
                    outputs = await fn(**kwargs)
                else:  # the copied context keeps the app's own spans under this one
                    outputs = await asyncio.to_thread(fn, **kwargs)
                if inspect.isawaitable(outputs):  # an async callable object, or a wrapped one
                    outputs = await outputs
                outputs = await _drained(outputs)
            except Exception as exc:
                logger.warning(
                    "predict_fn failed on row %d: %s: %s", row.index, type(exc).__name__, exc
                )
                span.record_exception(exc)
                outputs = None
            span.set_outputs(outputs)
            row.outputs = outputs
            return span.trace_id

    def _row_metadata(self, row: EvalRow) -> dict[str, str]:
        """The metadata of a trace made for a row: its run, and its dataset record if any."""
        metadata = {SOURCE_RUN: self.run.run_id}
        if row.record_id is not None:
            metadata[DATASET_RECORD] = row.record_id
        return metadata

    # -------------------------------------------------- traces for static rows

    def home_traces(self) -> None:
        """Give rows without a trace one (a single span holding inputs and outputs), so their
        verdicts have somewhere to live; rows whose trace came without spans get them loaded."""
        created: list[Trace] = []
        for row in self.rows:
            if row.trace is None:
                row.trace = self._static_trace(row)
                created.append(row.trace)
            elif not row.trace.data.spans:
                full = self.store.get_trace(row.trace.info.trace_id)
                if full is not None:
                    row.trace = full
        if created:
            self.store.log_traces(created)

    def _static_trace(self, row: EvalRow) -> Trace:
        trace_id = new_trace_id()
        now_ns = time.time_ns()
        root = Span(
            trace_id,
            secrets.token_hex(8),
            None,
            "evaluation_row",
            SpanType.CHAIN,
            now_ns,
            now_ns,
            SpanStatus(SpanStatusCode.OK),
            row.inputs,
            row.outputs,
        )
        source = AssessmentSource(AssessmentSourceType.CODE, "evaluate")
        expectations = []
        for name, value in row.expectations.items():
            try:
                expectations.append(Expectation(name, value, source=source, trace_id=trace_id))
            except InvalidArgumentError as exc:  # the scorers still see it; the trace cannot
                logger.warning("row %d: expectation %r is not stored: %s", row.index, name, exc)
        info = TraceInfo(
            trace_id=trace_id,
            experiment_id=self.rows_experiment_id or self.run.experiment_id,
            request_time=now_ns // 1_000_000,
            execution_duration=0,
            name="evaluation_row",
            request_preview=preview(row.inputs),
            response_preview=preview(row.outputs),
            trace_metadata=self._row_metadata(row),
            tags={"tracejudge.eval": "static_row"},
            assessments=list(expectations),
        )
        return Trace(
            info,
            TraceData(
                [root], dumps(row.inputs), None if row.outputs is None else dumps(row.outputs)
            ),
        )

    # --------------------------------------------------------------- score

    async def score(self, progress: RunProgress) -> None:
        progress.phase("score", "scoring", len(self.rows) * len(self.scorers))
        gate = asyncio.Semaphore(self.max_concurrency)
        names = {s.name for s in self.scorers}

        async def one(row: EvalRow, scorer: Scorer) -> None:
            async with gate:
                feedbacks = await score_row(row, scorer, self.run.run_id, names)
            self.feedback[row.index].extend(feedbacks)
            if self.writer.add(feedbacks):
                await asyncio.to_thread(self.writer.flush)
            progress.advance("score")

        await asyncio.gather(*(one(r, s) for r in self.rows for s in self.scorers))

    # ------------------------------------------------------ legacy metrics

    def legacy_metrics(self) -> None:
        """``extra_metrics`` see whole columns at once, as in MLflow 2."""
        if not self.extra_metrics:
            return
        columns = self._columns()
        computed: dict[str, MetricValue] = {}
        for metric in self.extra_metrics:
            try:
                value = metric.compute(columns, computed)
                per_row = metric.feedbacks(value, len(self.rows))
            except Exception as exc:
                logger.warning(
                    "extra metric %s failed: %s: %s", metric.name, type(exc).__name__, exc
                )
                source = AssessmentSource(AssessmentSourceType.CODE, metric.name)
                per_row = [
                    [
                        Feedback(
                            metric.name,
                            None,
                            source=source,
                            error=AssessmentError.from_exception(exc),
                        )
                    ]
                    for _ in self.rows
                ]
                value = MetricValue()
            computed[metric.name] = value
            for key, number in (value.aggregate_results or {}).items():
                self.extra_aggregates[f"{metric.name}/{key}"] = float(number)
            for row, feedbacks in zip(self.rows, per_row, strict=True):
                for feedback in feedbacks:
                    feedback.trace_id = row.trace_id
                    feedback.run_id = self.run.run_id
                self.feedback[row.index].extend(feedbacks)
                self.writer.add(feedbacks)

    def _columns(self) -> dict[str, pd.Series]:
        columns = {
            "predictions": pd.Series([_prediction(r.outputs) for r in self.rows]),
            "outputs": pd.Series([r.outputs for r in self.rows]),
            "inputs": pd.Series([r.inputs for r in self.rows]),
            "expectations": pd.Series([r.expectations for r in self.rows]),
            "targets": pd.Series([r.expectations.get("expected_response") for r in self.rows]),
        }
        keys = {k for r in self.rows if isinstance(r.inputs, Mapping) for k in r.inputs}
        for key in sorted(keys - set(columns)):
            columns[key] = pd.Series(
                [r.inputs.get(key) if isinstance(r.inputs, Mapping) else None for r in self.rows]
            )
        for parameter, column in self.col_mapping.items():
            if column not in columns:
                raise InvalidArgumentError(
                    f"col_mapping maps {parameter!r} to {column!r}, which the data does not have."
                )
            columns[parameter] = columns[column]
        return columns


def use_scorer_threads(max_concurrency: int) -> None:
    """Run this loop's synchronous scorers (and ``asyncio.to_thread`` work) on as many threads
    as scorer calls may run at once: the default pool has min(32, cores + 4) threads, 6 on two
    cores, whatever the concurrency asks. Call from inside the running loop."""
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_concurrency, thread_name_prefix="tracejudge-scorer")
    )


SCORER_KEY = "scorer"
"""Feedback metadata key naming the scorer, on verdicts whose name is not the scorer's."""


async def score_row(
    row: EvalRow, scorer: Scorer, run_id: str, others: Collection[str] = ()
) -> list[Feedback]:
    """``scorer``'s verdicts on ``row``, stamped with its trace and the run. A scorer failing on
    a row is that verdict's error; a configuration error (see :data:`CONFIGURATION_ERRORS`)
    propagates, since it would fail every row alike. A verdict named after another scorer of
    the run (``others``) is an error: its value would be counted in that scorer's metrics."""
    try:
        value = await scorer.ascore(
            inputs=row.inputs,
            outputs=row.outputs,
            expectations=row.expectations,
            trace=row.trace,
        )
        # copies: a scorer may return the same Feedback object for every row (a constant)
        feedbacks = [copy.copy(f) for f in to_feedbacks(scorer, value)]
    except CONFIGURATION_ERRORS:
        raise
    except Exception as exc:
        feedbacks = [_scorer_error(scorer, AssessmentError.from_exception(exc))]
    feedbacks = [_unless_taken(f, scorer, others) for f in feedbacks]
    for feedback in feedbacks:
        feedback.trace_id = row.trace_id
        feedback.run_id = run_id
        if feedback.name != scorer.name:  # so that a resumed run finds it as this scorer's
            feedback.metadata = {**(feedback.metadata or {}), SCORER_KEY: scorer.name}
    return feedbacks


async def _drained(outputs: Any) -> Any:
    """A predict_fn's streamed answer as what it adds up to: the chunks joined when they are
    text, else the list of them (judging the generator object would judge its repr)."""
    chunks: list[Any]
    if inspect.isasyncgen(outputs):
        chunks = [chunk async for chunk in outputs]
    elif inspect.isgenerator(outputs):
        chunks = await asyncio.to_thread(list, outputs)
    else:
        return outputs
    return "".join(chunks) if all(isinstance(c, str) for c in chunks) else chunks


def _scorer_error(scorer: Scorer, error: AssessmentError) -> Feedback:
    """The verdict a scorer failed to give on a row: its error, under the scorer's name."""
    source = AssessmentSource(AssessmentSourceType.CODE, scorer.name)
    return Feedback(scorer.name, None, source=source, error=error)


def _unless_taken(feedback: Feedback, scorer: Scorer, others: Collection[str]) -> Feedback:
    if feedback.name == scorer.name or feedback.name not in others:
        return feedback
    return _scorer_error(
        scorer,
        AssessmentError(
            "VERDICT_NAME_TAKEN",
            f"Scorer {scorer.name!r} returned a verdict named {feedback.name!r}, the name of "
            "another scorer of this run: it would be counted as that scorer's. Name it "
            "differently.",
        ),
    )


def _own_copy(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a row's inputs for predict_fn, so that an app that changes its arguments
    changes neither the caller's data nor what the scorers are given (the recorded inputs);
    a shallow one where a value cannot be copied."""
    try:
        return copy.deepcopy(dict(inputs))
    except Exception:
        return dict(inputs)


def _prediction(outputs: Any) -> Any:
    return outputs if outputs is None or isinstance(outputs, str) else response_text(outputs)
