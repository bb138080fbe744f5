"""MLflow's traces scored by tracejudge, and the verdicts written back onto them.

``search_traces`` reads traces from an MLflow tracking server or store, copies them into the
current tracejudge store (same trace ids, in an experiment of the same name, tagged with where
they came from, so the verdicts have a home here and can be sorted in our UI), and returns them
as a list ``evaluate()`` takes. With ``write_back=True`` the list also takes the run's verdicts
back: each is logged onto the MLflow trace with ``log_assessment``, and a verdict tracejudge
wrote there before under the same name is updated instead, so a rerun replaces, never adds.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tracejudge.entities import Feedback, Trace
from tracejudge.errors import ExperimentNotFoundError, IntegrationError, TraceJudgeError
from tracejudge.integrations.mlflow.compat import experiments_argument, require_mlflow
from tracejudge.integrations.mlflow.convert import WRITTEN_BY, feedback_to_mlflow, trace_from_mlflow
from tracejudge.store import get_store
from tracejudge.store.base import TraceStore

logger = logging.getLogger(__name__)
PAGE = 200
HEALTH_TIMEOUT_S = 15.0
WRITE_BACK_THREADS = 8
"""Verdicts written back to MLflow at once (each is one HTTP request to its server)."""


def client_for(tracking_uri: str | None) -> Any:
    """An MlflowClient; a tracking server that does not answer its health check is an
    IntegrationError at once (MLflow's own client would retry for minutes before failing)."""
    mlflow = require_mlflow()
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        try:
            httpx.get(f"{tracking_uri.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise IntegrationError(
                f"The MLflow server at {tracking_uri} does not answer ({type(exc).__name__}: {exc})."
            ) from None
    return mlflow.MlflowClient(tracking_uri=tracking_uri)


def tracing_client_for(tracking_uri: str | None) -> Any:
    """MLflow's tracing client: the one with the assessment calls (MlflowClient has none)."""
    require_mlflow()
    from mlflow.tracing.client import TracingClient

    return TracingClient(tracking_uri=tracking_uri)


def mlflow_call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call MLflow, turning its failures (server down, refused, bad filter) into our typed error."""
    try:
        return fn(*args, **kwargs)
    except TraceJudgeError:
        raise
    except Exception as exc:  # MlflowException, requests' ConnectionError, …
        raise IntegrationError(f"MLflow {what} failed: {type(exc).__name__}: {exc}") from exc


def mlflow_experiment(client: Any, experiment: str) -> Any:
    found = mlflow_call("experiment lookup", client.get_experiment_by_name, experiment)
    if found is None and experiment.isdigit():
        found = mlflow_call("experiment lookup", client.get_experiment, experiment)
    if found is None:
        raise ExperimentNotFoundError(f"MLflow has no experiment named {experiment!r}.")
    return found


def iter_mlflow_traces(
    client: Any,
    experiment_id: str,
    filter_string: str | None = None,
    max_results: int | None = None,
    order_by: Sequence[str] | None = None,
    include_spans: bool = True,
) -> Iterator[list[Any]]:
    """Pages of MLflow traces (page tokens, oldest first unless ``order_by`` says otherwise)."""
    token = None
    seen = 0
    while True:
        size = PAGE if max_results is None else min(PAGE, max_results - seen)
        if size <= 0:
            return
        page = mlflow_call(
            "trace search",
            client.search_traces,
            **experiments_argument(client.search_traces, [experiment_id]),
            filter_string=filter_string,
            max_results=size,
            order_by=list(order_by or ["timestamp_ms ASC"]),
            page_token=token,
            include_spans=include_spans,
        )
        if page:
            seen += len(page)
            yield list(page)
        token = getattr(page, "token", None)
        if not token or not page:
            return


class MlflowTraces(list[Trace]):
    """Traces read from MLflow (tracejudge ``Trace`` entities), able to take verdicts back."""

    def __init__(self, traces: Sequence[Trace], tracking_uri: str, write_back: bool) -> None:
        super().__init__(traces)
        self.tracking_uri = tracking_uri
        self.client = tracing_client_for(tracking_uri)
        self.write_back = write_back
        self._ours: dict[tuple[str, str, str | None], str] = {}
        """(trace id, name, span id) -> id of the MLflow assessment tracejudge wrote earlier."""

    def remember(self, mlflow_trace: Any) -> None:
        for item in mlflow_trace.info.assessments or []:
            if (item.metadata or {}).get(WRITTEN_BY) and item.valid is not False:
                key = (mlflow_trace.info.trace_id, item.name, item.span_id)
                self._ours[key] = item.assessment_id

    def receive_verdicts(self, feedbacks: Sequence[Feedback]) -> dict[str, int] | None:
        """Log each verdict onto its MLflow trace (update what we wrote before), several at
        once; failures are logged and counted, the rest go on."""
        if not self.write_back:
            return None
        groups: dict[tuple[str, str, str | None], list[Feedback]] = {}
        for feedback in feedbacks:
            if feedback.trace_id:
                groups.setdefault((feedback.trace_id, feedback.name, feedback.span_id), []).append(
                    feedback
                )
        counts = Counter({"written": 0, "replaced": 0, "failed": 0})
        remote = self.tracking_uri.startswith(("http://", "https://"))
        with ThreadPoolExecutor(WRITE_BACK_THREADS if remote else 1) as pool:  # one SQLite writer
            for outcome in pool.map(self._write_group, groups.items()):
                counts.update(outcome)
        return dict(counts)

    def _write_group(self, item: tuple[tuple[str, str, str | None], list[Feedback]]) -> Counter:
        """One (trace, name, span)'s verdicts, in order: a key is never written twice at once."""
        key, feedbacks = item
        counts: Counter = Counter()
        for feedback in feedbacks:
            previous = self._ours.get(key)
            try:
                converted = feedback_to_mlflow(feedback)
                if previous is not None:
                    mlflow_call(
                        "assessment update",
                        self.client.update_assessment,
                        trace_id=feedback.trace_id,
                        assessment_id=previous,
                        assessment=converted,
                    )
                    counts["replaced"] += 1
                else:
                    stored = mlflow_call(
                        "assessment write",
                        self.client.log_assessment,
                        trace_id=feedback.trace_id,
                        assessment=converted,
                    )
                    self._ours[key] = stored.assessment_id
                    counts["written"] += 1
            except IntegrationError as exc:
                counts["failed"] += 1
                logger.warning("could not write %s back to MLflow: %s", feedback.name, exc)
        return counts


def search_traces(
    tracking_uri: str | None = None,
    experiment: str | None = None,
    filter_string: str | None = None,
    max_results: int | None = None,
    order_by: Sequence[str] | None = None,
    *,
    write_back: bool = True,
    store: TraceStore | None = None,
) -> MlflowTraces:
    """Traces of an MLflow experiment (name or id) as tracejudge traces, copied into ``store``
    (default: the current tracking URI's), ready for ``tracejudge.evaluate(data=...)``.

    ``filter_string`` and ``order_by`` are MLflow's own syntax (``"tags.env = 'prod'"``). With
    ``write_back``, the evaluation's verdicts are logged onto the MLflow traces afterwards.

    >>> traces = search_traces("http://mlflow:5000", experiment="support-bot", max_results=500)
    >>> tracejudge.evaluate(data=traces, scorers=[Trustworthiness(), RetrievalGroundedness()])
    """
    if experiment is None:
        raise ExperimentNotFoundError("search_traces() needs the MLflow experiment's name or id.")
    mlflow = require_mlflow()
    uri = tracking_uri or mlflow.get_tracking_uri()
    client = client_for(uri)
    source = mlflow_experiment(client, experiment)
    target = store or get_store()
    home = target.get_or_create_experiment(source.name).experiment_id
    traces = MlflowTraces([], uri, write_back)
    for page in iter_mlflow_traces(
        client, source.experiment_id, filter_string, max_results, order_by
    ):
        converted = [trace_from_mlflow(t, home, origin=uri, include_ours=False) for t in page]
        target.log_traces(converted)
        for original in page:
            traces.remember(original)
        traces.extend(converted)
    return traces
