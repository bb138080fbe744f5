"""Scoring stored traces by id, one batch at a time: the unit of work of a run spread over
workers (in-process, or Ray actors on many machines).

A batch reads its traces from the shared store, scores the (trace, scorer) pairs that have no
verdict from the run yet, and writes the verdicts under ids derived from (run, trace, scorer):
a batch re-run after its worker died mid-write replaces what that worker wrote instead of
doubling it, and a resumed run scores only what is missing. What goes back to the driver is
counts, usage and a :class:`MetricAccumulator`, never the traces or the Feedback objects.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tracejudge.entities import Feedback, Trace
from tracejudge.evaluation.aggregate import MetricAccumulator
from tracejudge.evaluation.dataset import row_from_trace
from tracejudge.evaluation.harness import SCORER_KEY, FeedbackWriter, score_row
from tracejudge.models import track_usage
from tracejudge.scorers import Scorer
from tracejudge.store import TraceStore


def verdict_id(scope: str, scorer: str, trace_id: str, feedback: Feedback, index: int) -> str:
    """The same id every time ``scorer`` judges this trace within ``scope`` (a run, or a
    registered scorer's monitor): writing a verdict again replaces it, never doubles it."""
    key = f"{scope}\x00{scorer}\x00{trace_id}\x00{feedback.name}\x00{feedback.span_id}\x00{index}"
    return "a-" + hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def run_verdicts(trace: Trace, scorer: str, run_id: str) -> list[Feedback]:
    """The verdicts ``scorer`` already gave this trace in run ``run_id``."""
    return [
        a
        for a in trace.info.assessments
        if isinstance(a, Feedback)
        and a.run_id == run_id
        and (a.name == scorer or a.metadata.get(SCORER_KEY) == scorer)
    ]


@dataclass
class BatchOutcome:
    """What scoring some batches did; outcomes merge, so a run's is the sum of its batches'."""

    traces: int = 0
    """Traces found in the store and judged (or already judged by the run)."""
    missing: int = 0
    """Trace ids no longer in the store (deleted since the driver listed them)."""
    scored: int = 0
    """(trace, scorer) pairs scored now."""
    reused: int = 0
    """(trace, scorer) pairs the run had already scored (a resumed run, a re-run batch)."""
    errors: int = 0
    """Verdicts that are a scorer's error."""
    not_stored: int = 0
    """Verdicts the store refused (logged; the rest of the batch was kept)."""
    metrics: MetricAccumulator = field(default_factory=MetricAccumulator)
    usage: dict[str, Any] = field(default_factory=dict)

    def merge(self, other: BatchOutcome) -> None:
        self.traces += other.traces
        self.missing += other.missing
        self.scored += other.scored
        self.reused += other.reused
        self.errors += other.errors
        self.not_stored += other.not_stored
        self.metrics.merge(other.metrics)


async def score_batch(
    store: TraceStore,
    trace_ids: Sequence[str],
    scorers: Sequence[Scorer],
    run_id: str,
    gate: asyncio.Semaphore,
) -> BatchOutcome:
    """Score the traces ``trace_ids`` with ``scorers`` for run ``run_id``, at most as many
    scorer calls at once as ``gate`` allows, and write the verdicts. A configuration error
    (bad model URI, rejected key) propagates; any other scorer failure is that verdict's error."""
    outcome = BatchOutcome()
    writer = FeedbackWriter(store)
    names = {s.name for s in scorers}
    traces = await asyncio.to_thread(store.get_traces, list(trace_ids))
    outcome.traces = len(traces)
    outcome.missing = len(set(trace_ids)) - len(traces)

    async def one(trace: Trace, scorer: Scorer) -> None:
        done = run_verdicts(trace, scorer.name, run_id)
        if done:
            outcome.reused += 1
            outcome.metrics.add_all(done)
            return
        async with gate:
            feedbacks = await score_row(row_from_trace(trace), scorer, run_id, names)
        for index, feedback in enumerate(feedbacks):
            feedback.assessment_id = verdict_id(
                run_id, scorer.name, trace.info.trace_id, feedback, index
            )
        outcome.scored += 1
        outcome.errors += sum(1 for f in feedbacks if f.error is not None)
        outcome.metrics.add_all(feedbacks)
        if writer.add(feedbacks):
            await asyncio.to_thread(writer.flush)

    with track_usage() as meter:
        try:
            await asyncio.gather(*(one(t, s) for t in traces for s in scorers))
        finally:  # verdicts reached before an error (or a cancel) are kept: a resume skips them
            writer.flush()
    outcome.not_stored = writer.failed
    outcome.usage = meter.to_dict()
    return outcome
