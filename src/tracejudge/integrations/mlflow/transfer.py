"""Copying an experiment's traces, with their assessments, between MLflow and tracejudge.

Both directions are safe to rerun: an import keeps MLflow's trace and assessment ids (our
writes are upserts), and skips the traces already here, so a rerun after an interruption
copies only what is missing; an export tags each trace it creates in MLflow with our trace id
(MLflow chooses its own ids) and skips the traces that carry such a tag already.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tracejudge.entities import Trace
from tracejudge.entities.span_tree import span_tree
from tracejudge.integrations.mlflow.compat import require_mlflow
from tracejudge.integrations.mlflow.convert import (
    SOURCE_TRACE_TAG,
    assessment_to_mlflow,
    trace_from_mlflow,
)
from tracejudge.integrations.mlflow.traces import (
    client_for,
    iter_mlflow_traces,
    mlflow_call,
    mlflow_experiment,
    tracing_client_for,
)
from tracejudge.store import get_store
from tracejudge.store.base import TraceStore
from tracejudge.store.lookup import find_experiment

PAGE = 200


@dataclass
class TransferCounts:
    read: int = 0
    copied: int = 0
    already: int = 0
    """Present at the destination before this run (copied by an earlier one)."""
    assessments: int = 0

    def __str__(self) -> str:
        return (
            f"{self.read:,} traces read, {self.copied:,} copied, {self.already:,} already there, "
            f"{self.assessments:,} assessments"
        )


def import_experiment(
    tracking_uri: str | None,
    experiment: str,
    *,
    filter_string: str | None = None,
    store: TraceStore | None = None,
    progress: Callable[[TransferCounts], None] | None = None,
) -> TransferCounts:
    """Copy an MLflow experiment's traces (spans, tags, metadata, assessments) into ``store``
    (default: the current tracking URI's), into an experiment of the same name."""
    mlflow = require_mlflow()
    uri = tracking_uri or mlflow.get_tracking_uri()
    client = client_for(uri)
    source = mlflow_experiment(client, experiment)
    target = store or get_store()
    home = target.get_or_create_experiment(source.name).experiment_id
    counts = TransferCounts()
    for page in iter_mlflow_traces(client, source.experiment_id, filter_string):
        counts.read += len(page)
        ids = [t.info.trace_id for t in page]
        present = {t.info.trace_id for t in target.get_traces(ids, include_spans=False)}
        fresh = [
            trace_from_mlflow(t, home, origin=uri) for t in page if t.info.trace_id not in present
        ]
        if fresh:
            target.log_traces(fresh)
        counts.copied += len(fresh)
        counts.already += len(present)
        counts.assessments += sum(len(t.info.assessments) for t in fresh)
        if progress:
            progress(counts)
    return counts


def _exported_ids(client: Any, experiment_id: str) -> set[str]:
    done: set[str] = set()
    for page in iter_mlflow_traces(client, experiment_id, include_spans=False):
        done.update(t.info.tags[SOURCE_TRACE_TAG] for t in page if SOURCE_TRACE_TAG in t.info.tags)
    return done


def _export_one(client: Any, tracing: Any, trace: Trace, experiment_id: str) -> int:
    """Recreate one trace in MLflow through its client API (timestamps kept); its assessments."""
    spans = [span for span, _ in span_tree(trace.data.spans)]  # parents before children
    if not spans:
        return 0
    root, *rest = spans
    tags = {**trace.info.tags, SOURCE_TRACE_TAG: trace.info.trace_id}
    started = client.start_trace(
        name=root.name,
        span_type=root.span_type,
        inputs=root.inputs,
        attributes=root.attributes or None,
        tags=tags,
        experiment_id=experiment_id,
        start_time_ns=root.start_time_ns,
    )
    mlflow_id = started.trace_id
    span_ids = {root.span_id: started.span_id}
    ends = []
    for span in rest:
        made = client.start_span(
            name=span.name,
            trace_id=mlflow_id,
            parent_id=span_ids.get(span.parent_id or "", started.span_id),
            span_type=span.span_type,
            inputs=span.inputs,
            attributes=span.attributes or None,
            start_time_ns=span.start_time_ns,
        )
        span_ids[span.span_id] = made.span_id
        ends.append((span, made.span_id))
    for span, made_id in reversed(ends):
        client.end_span(
            trace_id=mlflow_id,
            span_id=made_id,
            outputs=span.outputs,
            status=span.status.status_code.value
            if span.status.status_code.value != "UNSET"
            else "OK",
            end_time_ns=span.end_time_ns or span.start_time_ns,
        )
    client.end_trace(
        trace_id=mlflow_id,
        outputs=root.outputs,
        status=trace.info.state.value if trace.info.state.value in ("OK", "ERROR") else "OK",
        end_time_ns=root.end_time_ns or root.start_time_ns,
    )
    require_mlflow().flush_trace_async_logging()
    written = 0
    for a in trace.info.assessments:
        if not a.valid:
            continue
        converted = assessment_to_mlflow(a)
        converted.span_id = span_ids.get(a.span_id) if a.span_id else None
        tracing.log_assessment(trace_id=mlflow_id, assessment=converted)
        written += 1
    return written


def export_experiment(
    experiment: str,
    tracking_uri: str | None,
    *,
    mlflow_experiment_name: str | None = None,
    filter_string: str | None = None,
    store: TraceStore | None = None,
    progress: Callable[[TransferCounts], None] | None = None,
) -> TransferCounts:
    """Copy a tracejudge experiment's traces and assessments into MLflow (an experiment of the
    same name unless ``mlflow_experiment_name``), skipping those exported before."""
    mlflow = require_mlflow()
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    source = store or get_store()
    found = find_experiment(source, experiment)
    uri = tracking_uri or mlflow.get_tracking_uri()
    client = client_for(uri)
    tracing = tracing_client_for(uri)
    name = mlflow_experiment_name or found.name
    target = mlflow_call("experiment lookup", client.get_experiment_by_name, name)
    target_id = (
        target.experiment_id
        if target is not None
        else mlflow_call("experiment creation", client.create_experiment, name)
    )
    done = _exported_ids(client, target_id)
    counts = TransferCounts()
    token = None
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)  # the client's span calls export through the fluent machinery
    try:
        while True:
            page = source.search_traces(
                [found.experiment_id], filter_string, ["timestamp ASC"], PAGE, token, True
            )
            for trace in page:
                counts.read += 1
                if trace.info.trace_id in done:
                    counts.already += 1
                    continue
                counts.assessments += mlflow_call(
                    "trace export", _export_one, client, tracing, trace, target_id
                )
                counts.copied += 1
            if progress:
                progress(counts)
            token = page.token
            if token is None:
                break
    finally:
        mlflow.set_tracking_uri(before)
    return counts
