"""``evaluate()``: score rows or traces with scorers, as one stored evaluation run."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from tracejudge.entities import EvaluationRun, Experiment, RunStatus
from tracejudge.entities.evaluation_run import new_run_id
from tracejudge.errors import ExperimentNotFoundError, InvalidArgumentError
from tracejudge.evaluation.aggregate import aggregate
from tracejudge.evaluation.batched import DEFAULT_BATCH_SIZE, evaluate_batched, plan_of_run
from tracejudge.evaluation.dataset import EvalRow, logged_expectations, rows_from_data
from tracejudge.evaluation.datasets import EvaluationDataset
from tracejudge.evaluation.executors import BatchExecutor, LocalExecutor
from tracejudge.evaluation.harness import CONFIGURATION_ERRORS, Evaluation, use_scorer_threads
from tracejudge.evaluation.legacy_call import check_legacy_arguments, legacy_rows, results_table
from tracejudge.evaluation.progress import RunProgress
from tracejudge.evaluation.result import EvaluationResult, result_frame
from tracejudge.evaluation.selection import TraceIds, TraceQuery, TraceSelection
from tracejudge.judges.custom import Judge
from tracejudge.metrics import EvaluationMetric
from tracejudge.models import resolve_model, run_sync, track_usage
from tracejudge.scorers import Scorer
from tracejudge.scorers.builtin import JudgeScorer, Trustworthiness
from tracejudge.store import TraceStore, get_store
from tracejudge.tracing.experiment import active_experiment_id

logger = logging.getLogger("tracejudge.evaluation")
DEFAULT_CONCURRENCY = 16


def _experiment(store: TraceStore, experiment: str | None, rows: Sequence[EvalRow]) -> Experiment:
    """The given experiment (name or id; a new name is created), else the one experiment all the
    traces share, else the active experiment."""
    if experiment is not None:
        if experiment.isdigit():
            try:
                return store.get_experiment(experiment)
            except ExperimentNotFoundError:
                pass
        return store.get_or_create_experiment(experiment)
    homes = {r.trace.info.experiment_id for r in rows if r.trace is not None}
    if len(homes) == 1 and all(r.trace is not None for r in rows):
        return store.get_experiment(homes.pop())
    return store.get_experiment(active_experiment_id(store))


def _judge_models(scorers: Sequence[Scorer]) -> list[str]:
    """Resolve every judge scorer's model before any row is scored: a misconfigured model
    (bad URI, none configured, not installed) fails the run at once, not row by row."""
    models: list[str] = []
    for scorer in scorers:
        if isinstance(scorer, Trustworthiness):
            uri = scorer.trust_scorer.model.uri
        elif isinstance(scorer, (JudgeScorer, Judge)):
            uri = resolve_model(scorer.model).uri
        else:
            continue
        if uri not in models:
            models.append(uri)
    return models


def _check_scorers(scorers: Any, extra_metrics: Any) -> tuple[list[Scorer], list[EvaluationMetric]]:
    scorer_list = list(scorers or [])
    metric_list = list(extra_metrics or [])
    for s in scorer_list:
        if not isinstance(s, Scorer):
            raise InvalidArgumentError(
                f"{s!r} is not a scorer: use a built-in scorer, @scorer on a function, or a Scorer subclass."
            )
    for m in metric_list:
        if not isinstance(m, EvaluationMetric):
            raise InvalidArgumentError(f"{m!r} is not a metric made by make_metric(...).")
    if not scorer_list and not metric_list:
        raise InvalidArgumentError("evaluate() needs at least one scorer or extra metric.")
    names = [s.name for s in scorer_list] + [m.name for m in metric_list]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidArgumentError(
            f"Two scorers share the name(s) {duplicates}; give them distinct names."
        )
    return scorer_list, metric_list


def _finish(
    ev: Evaluation, status: RunStatus, usage: dict[str, Any], failure: BaseException | None = None
) -> None:
    """Write the last verdicts and the run's end state. Never leaves the run RUNNING: whatever
    fails here is logged, and the status is still written."""
    try:
        ev.writer.flush()
    except Exception:
        logger.exception("evaluation %s: writing the last verdicts failed", ev.run.run_id)
    try:
        aggregations = {s.name: s.aggregations for s in ev.scorers}
        ev.run.metrics = {
            **aggregate((f for row in ev.feedback for f in row), aggregations),
            **ev.extra_aggregates,
        }
    except Exception:
        logger.exception("evaluation %s: computing the metrics failed", ev.run.run_id)
    if ev.writer.failed:
        usage = {**usage, "verdicts_not_stored": ev.writer.failed}
    ev.run.status = status
    ev.run.failure = None if failure is None else f"{type(failure).__name__}: {failure}"
    ev.run.end_time = int(time.time() * 1000)
    ev.run.usage = usage
    try:
        ev.store.update_run(ev.run)
    except Exception:
        if failure is None:  # nothing else to report: the run's end state is what failed
            raise
        # the store is failing too: say so, and let the error that ended the run propagate
        logger.exception(
            "evaluation %s: recording its end state (%s) failed", ev.run.run_id, status.value
        )


def _executor(executor: str | BatchExecutor, ray_address: str | None) -> BatchExecutor:
    if executor == "ray":
        from tracejudge.evaluation.ray_executor import RayExecutor

        return RayExecutor(address=ray_address)
    if ray_address is not None:
        raise InvalidArgumentError("ray_address goes with executor='ray'.")
    if executor == "local":
        return LocalExecutor()
    if isinstance(executor, str) or not callable(getattr(executor, "run", None)):
        raise InvalidArgumentError(
            f"executor must be 'local', 'ray' or an executor object (RayExecutor(...)), not {executor!r}."
        )
    return executor


def _selection(data: Any) -> tuple[TraceSelection, list[EvalRow]]:
    """The stored traces a batched run scores, and the rows when the data held them."""
    if isinstance(data, TraceQuery):
        return data, []
    if callable(getattr(data, "receive_verdicts", None)):
        raise InvalidArgumentError(
            "Traces from another tracking system (MLflow) are scored in one process: "
            "use executor='local' without run_id."
        )
    rows = rows_from_data(data)
    for row in rows:
        if row.trace is None:
            raise InvalidArgumentError(
                f"Row {row.index} has no trace. A run in batches (executor='ray', or resumed with "
                "run_id) scores traces in the store: log the rows as traces first, or use "
                "executor='local'."
            )
        if row.expectations != logged_expectations(row.trace):
            raise InvalidArgumentError(
                f"Row {row.index} gives expectations its trace does not have; a run in batches "
                "reads them from the store: log them on the trace (log_expectation) first."
            )
    return TraceIds([r.trace.info.trace_id for r in rows if r.trace is not None]), rows


def _query_experiment(store: TraceStore, experiment: str | None, query: TraceQuery) -> Experiment:
    if experiment is None and query.experiments is not None and len(query.experiments) == 1:
        experiment = query.experiments[0]
    return _experiment(store, experiment, [])


def evaluate(
    data: Any = None,
    scorers: Sequence[Scorer] | None = None,
    predict_fn: Callable[..., Any] | None = None,
    extra_metrics: Sequence[EvaluationMetric] | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    max_concurrency: int | None = None,
    *,
    model: Any = None,
    predictions: str | None = None,
    targets: str | None = None,
    model_type: str | None = None,
    evaluator_config: dict[str, Any] | None = None,
    executor: str | BatchExecutor = "local",
    ray_address: str | None = None,
    run_id: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> EvaluationResult:
    """Score every row with every scorer, store each verdict as a Feedback on its trace, and
    record the whole as an evaluation run.

    ``data`` is a list of dicts (``inputs``, ``outputs``, ``expectations``, optional ``trace``),
    a DataFrame with those columns, the DataFrame ``search_traces`` returns, or a list of Traces.
    With ``predict_fn``, each row's ``inputs`` are passed to it as keyword arguments inside a
    new trace, and the outputs and spans come from that trace. Rows × scorers run
    concurrently (at most ``max_concurrency`` at once, default 16, and within each model's own
    adaptive limit); a scorer failing on a row becomes that Feedback's error. On Ctrl-C, what
    was scored is kept and the run is marked INTERRUPTED before the interrupt propagates.

    >>> result = evaluate(data=search_traces(filter_string="tag.env = 'prod'"),
    ...                   scorers=[Trustworthiness(), RetrievalGroundedness()])
    >>> search_traces(filter_string="feedback.trustworthiness < 0.5", order_by=["feedback.trustworthiness"])

    Stored traces can be scored in batches, spread over the machines of a Ray cluster:
    ``executor="ray"`` (with ``ray_address="auto"`` or ``"ray://host:10001"``, or an executor
    object, ``RayExecutor(workers=8)``) and ``data`` a :class:`TraceQuery` (read page by page,
    never all at once), a list of Traces or ``search_traces``' DataFrame. Each worker reads its
    traces from the shared store, scores ``max_concurrency`` at once, writes its verdicts and
    returns only counts; ``result.result_df`` is read back from the store when first used.
    ``run_id=<a run that was interrupted>`` resumes it: only the (trace, scorer) pairs without
    a verdict from that run are scored, on either executor.

    MLflow 2's call works too (:mod:`.legacy_call`): ``evaluate(model=None, data=df,
    predictions="answer", extra_metrics=[...], evaluator_config={"col_mapping": {...}})``; its
    rows' traces then go to a side experiment, not the one that holds the app's traces.
    """
    if run_id is not None and (data is None or not scorers):
        planned_query, planned_scorers = plan_of_run(get_store(), run_id)
        if data is None:
            if planned_query is None:
                raise InvalidArgumentError(
                    f"Run {run_id} was given its traces as a list: pass them again as data."
                )
            data = planned_query
        if not scorers:
            if planned_scorers is None:
                raise InvalidArgumentError(
                    f"Run {run_id} did not record its scorers as data: pass them again."
                )
            scorers = planned_scorers
    col_mapping = check_legacy_arguments(model, model_type, evaluator_config)
    legacy_data = None
    if predictions is not None:
        legacy_data, data = data, legacy_rows(data, predictions, targets)
    elif targets is not None:
        raise InvalidArgumentError("evaluate(targets=...) goes with predictions='column'.")
    scorer_list, metric_list = _check_scorers(scorers, extra_metrics)
    if max_concurrency is not None and max_concurrency < 1:
        raise InvalidArgumentError("max_concurrency must be at least 1.")
    if predict_fn is not None and not callable(predict_fn):
        raise InvalidArgumentError("predict_fn must be callable.")
    batched = executor != "local" or run_id is not None or isinstance(data, TraceQuery)
    if batched:
        if predict_fn is not None or metric_list or legacy_data is not None:
            raise InvalidArgumentError(
                "predict_fn, extra_metrics and MLflow 2's call run in one process: use "
                "executor='local' without run_id."
            )
        chosen = _executor(executor, ray_address)
        selection, given_rows = _selection(data)
        store = get_store()
        home = (
            _query_experiment(store, experiment, selection)
            if isinstance(selection, TraceQuery)
            else _experiment(store, experiment, given_rows)
        )
        return evaluate_batched(
            selection,
            scorer_list,
            chosen,
            store,
            experiment_id=home.experiment_id,
            run_name=run_name or f"eval-{dt.datetime.now():%Y%m%d-%H%M%S}",
            run_id=run_id,
            max_concurrency=max_concurrency or DEFAULT_CONCURRENCY,
            batch_size=batch_size,
            judge_models=_judge_models(scorer_list),
        )
    rows = rows_from_data(data)
    store = get_store()
    home = _experiment(store, experiment, rows)
    judge_models = _judge_models(scorer_list)
    started = int(time.time() * 1000)
    run = EvaluationRun(
        run_id=new_run_id(),
        experiment_id=home.experiment_id,
        name=run_name or f"eval-{dt.datetime.now():%Y%m%d-%H%M%S}",
        start_time=started,
        scorers=[s.describe() for s in scorer_list]
        + [{"name": m.name, "class": "EvaluationMetric"} for m in metric_list],
        judge_models=judge_models,
        row_count=len(rows),
        dataset=data.reference() if isinstance(data, EvaluationDataset) else None,
    )
    # what can fail before the run starts is done before it is stored: a run once stored always
    # gets its end state (the try/finally below)
    rows_experiment_id = (
        store.get_or_create_experiment(f"{home.name[:230]} (evaluation rows)").experiment_id
        if legacy_data is not None
        else None
    )
    store.create_run(run)
    ev = Evaluation(
        rows,
        scorer_list,
        run,
        store,
        home.name,
        max_concurrency or DEFAULT_CONCURRENCY,
        predict_fn,
        metric_list,
        col_mapping=col_mapping,
        rows_experiment_id=rows_experiment_id,
    )

    async def main() -> None:
        use_scorer_threads(ev.max_concurrency)
        with RunProgress() as progress:
            if predict_fn is not None:
                await ev.predict(progress)
            await asyncio.to_thread(ev.home_traces)
            await ev.score(progress)

    status = RunStatus.FAILED
    failure: BaseException | None = None
    with track_usage() as meter:
        try:
            run_sync(main())
            ev.legacy_metrics()
            status = RunStatus.FINISHED
        except KeyboardInterrupt as exc:
            status, failure = RunStatus.INTERRUPTED, exc
            logger.warning("evaluation %s interrupted; verdicts so far are kept", run.run_id)
            raise
        except CONFIGURATION_ERRORS as exc:
            failure = exc
            logger.error(
                "evaluation %s stopped at the first configuration error (run marked FAILED): "
                "%s: %s",
                run.run_id,
                type(exc).__name__,
                exc,
            )
            raise
        except BaseException as exc:
            failure = exc
            raise
        finally:
            _finish(ev, status, meter.to_dict(), failure)
    frame = result_frame(rows, ev.feedback)
    legacy_table = None if legacy_data is None else results_table(legacy_data, frame)
    result = EvaluationResult(run.run_id, dict(run.metrics), frame, run, legacy_table=legacy_table)
    deliver = getattr(data, "receive_verdicts", None)
    if callable(deliver):  # data that came from elsewhere takes its verdicts back (MLflow)
        result.delivered = deliver([f for row in ev.feedback for f in row])
    return result
