"""A run over stored traces in batches: the driver of ``evaluate(..., executor="ray")`` and of a
resumed run (``evaluate(..., run_id=...)``).

The driver pages through the selection's trace ids (keyset search, never all of them at once),
hands batches to an executor (this process, or Ray actors), merges the counts and metrics each
batch returns, shows one progress bar, and writes the run's end state. Resuming a run scores
only the (trace, scorer) pairs that have no verdict from it yet; the verdicts it already has
count in its metrics again, read back by the workers from the traces themselves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd

from tracejudge.entities import EvaluationRun, Feedback, RunStatus
from tracejudge.entities.evaluation_run import new_run_id
from tracejudge.errors import InvalidArgumentError
from tracejudge.evaluation.batches import BatchOutcome
from tracejudge.evaluation.dataset import row_from_trace
from tracejudge.evaluation.executors import BatchExecutor, BatchJob
from tracejudge.evaluation.progress import RunProgress
from tracejudge.evaluation.result import EvaluationResult, result_frame
from tracejudge.evaluation.selection import TraceQuery, TraceSelection
from tracejudge.models import UsageMeter
from tracejudge.scorers import Scorer
from tracejudge.scorers.definitions import definition_of, scorer_from_definition
from tracejudge.store import TraceStore, get_tracking_uri

logger = logging.getLogger("tracejudge.evaluation")
DEFAULT_BATCH_SIZE = 64


def _batches(pages: Iterator[list[str]], size: int) -> Iterator[list[str]]:
    for page in pages:
        for start in range(0, len(page), size):
            yield page[start : start + size]


def definitions_for_workers(scorers: Sequence[Scorer]) -> list[dict]:
    """The scorers as data, checked by rebuilding each here: a scorer a worker could not build
    (a function in ``__main__``, a custom class) is refused before any work is sent."""
    definitions = []
    for scorer in scorers:
        try:
            definition = definition_of(scorer)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(
                f"Scorer {scorer.name!r} cannot be sent to other processes: {exc}"
            ) from None
        scorer_from_definition(definition)
        definitions.append(definition)
    return definitions


def _plan(selection: TraceSelection, scorers: Sequence[Scorer], definitions: list[dict]) -> dict:
    """What :func:`plan_of_run` needs to resume the run without being told again
    (``definitions``: the scorers as data when already made for the workers)."""
    if not definitions:
        try:
            definitions = [definition_of(s) for s in scorers]
        except InvalidArgumentError:  # a scorer only this process can build: resume needs it
            definitions = []
    query = selection.describe() if isinstance(selection, TraceQuery) else None
    return {"query": query, "scorers": definitions or None}


def plan_of_run(store: TraceStore, run_id: str) -> tuple[TraceQuery | None, list[Scorer] | None]:
    """The trace query and scorers a batched run was started with (None for what it did not
    record: a given list of traces, a scorer defined in ``__main__``)."""
    plan = store.get_run(run_id).plan or {}
    query = plan.get("query")
    definitions = plan.get("scorers")
    return (
        TraceQuery(**query) if query else None,
        [scorer_from_definition(d) for d in definitions] if definitions else None,
    )


def resumed_run(store: TraceStore, run_id: str, scorers: Sequence[Scorer]) -> EvaluationRun:
    """The run to resume, checked: the same scorers (by name) as it was started with."""
    run = store.get_run(run_id)
    had = sorted(s.get("name", "") for s in run.scorers)
    given = sorted(s.name for s in scorers)
    if had != given:
        raise InvalidArgumentError(
            f"Run {run_id} was scored with {had}; resume it with the same scorers, not {given}."
        )
    if run.status == RunStatus.FINISHED:
        logger.info("run %s is finished; resuming it scores only what it lacks", run_id)
    run.status, run.failure, run.end_time = RunStatus.RUNNING, None, None
    store.update_run(run)
    return run


def stored_frame(store: TraceStore, run_id: str) -> pd.DataFrame:
    """The table of a run's verdicts, read back from the store (for runs the driver never held)."""
    by_trace: dict[str, list[Feedback]] = {}
    for a in store.get_run_assessments(run_id):
        if isinstance(a, Feedback) and a.trace_id:
            by_trace.setdefault(a.trace_id, []).append(a)
    ids = list(by_trace)
    traces = []
    for start in range(0, len(ids), 1000):
        traces.extend(store.get_traces(ids[start : start + 1000], include_spans=False))
    rows = [row_from_trace(t, i) for i, t in enumerate(traces)]
    return result_frame(rows, [by_trace[t.info.trace_id] for t in traces])


def evaluate_batched(
    selection: TraceSelection,
    scorers: Sequence[Scorer],
    executor: BatchExecutor,
    store: TraceStore,
    *,
    experiment_id: str,
    run_name: str,
    run_id: str | None,
    max_concurrency: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    judge_models: Sequence[str] = (),
) -> EvaluationResult:
    if batch_size < 1:
        raise InvalidArgumentError("batch_size must be at least 1.")
    definitions = definitions_for_workers(scorers) if executor.name != "local" else []
    total = selection.count(store)
    executor.prepare(get_tracking_uri())
    try:
        if run_id is not None:
            run = resumed_run(store, run_id, scorers)
        else:
            run = EvaluationRun(
                run_id=new_run_id(),
                experiment_id=experiment_id,
                name=run_name,
                start_time=int(time.time() * 1000),
                scorers=[s.describe() for s in scorers],
                judge_models=list(judge_models),
                row_count=total,
                plan=_plan(selection, scorers, definitions),
            )
            store.create_run(run)
        job = BatchJob(run.run_id, get_tracking_uri(), list(scorers), definitions, max_concurrency)
        _score(run, job, selection, executor, store, batch_size, total)
    finally:
        executor.close()
    return EvaluationResult(
        run.run_id,
        dict(run.metrics),
        None,
        run,
        load_frame=lambda: stored_frame(store, run.run_id),
    )


def _score(
    run: EvaluationRun,
    job: BatchJob,
    selection: TraceSelection,
    executor: BatchExecutor,
    store: TraceStore,
    batch_size: int,
    total: int,
) -> None:
    """Send the batches, merge what comes back, and write the run's end state whatever happens."""
    outcome = BatchOutcome()
    usage = UsageMeter()
    usage.absorb(run.usage)  # a resumed run adds to what it spent before
    status = RunStatus.FAILED
    failure: BaseException | None = None
    with RunProgress() as progress:
        progress.phase("score", f"scoring ({executor.name})", total * len(job.scorers))

        def on_done(batch: list[str], done: BatchOutcome) -> None:
            outcome.merge(done)
            usage.absorb(done.usage)
            progress.advance("score", len(batch) * len(job.scorers))

        try:
            executor.run(job, store, _batches(selection.pages(store), batch_size), on_done)
            status = RunStatus.FINISHED
        except KeyboardInterrupt as exc:
            status, failure = RunStatus.INTERRUPTED, exc
            logger.warning(
                "evaluation %s interrupted; resume it with run_id=%r", run.run_id, run.run_id
            )
            raise
        except BaseException as exc:
            failure = exc
            raise
        finally:
            spread = executor.summary()
            _finish(store, run, job.scorers, outcome, usage, spread, status, failure)


def _finish(
    store: TraceStore,
    run: EvaluationRun,
    scorers: Sequence[Scorer],
    outcome: BatchOutcome,
    usage: UsageMeter,
    spread: dict[str, Any],
    status: RunStatus,
    failure: BaseException | None,
) -> None:
    """Write the run's end state; never leaves it RUNNING."""
    aggregations = {s.name: s.aggregations for s in scorers}
    run.metrics = outcome.metrics.metrics(aggregations)
    run.usage = {
        **usage.to_dict(),
        "traces": outcome.traces,
        "scored": outcome.scored,
        "already_scored": outcome.reused,
        "missing_traces": outcome.missing,
        **spread,
    }
    if outcome.not_stored:
        run.usage["verdicts_not_stored"] = outcome.not_stored
    run.row_count = max(run.row_count, outcome.traces)
    run.status = status
    run.failure = None if failure is None else f"{type(failure).__name__}: {failure}"
    run.end_time = int(time.time() * 1000)
    try:
        store.update_run(run)
    except Exception:
        if failure is None:
            raise
        logger.exception("evaluation %s: recording its end state failed", run.run_id)
