"""Where the batches of a batched run are scored: in this process, or on Ray (:mod:`.ray_executor`).

An executor is given the job (store, scorers, run, per-worker concurrency) and an iterator of
batches of trace ids, and calls ``on_done(batch, outcome)`` on the driver's thread as each batch
finishes. It decides how many batches are in flight; the driver only merges outcomes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from tracejudge.evaluation.batches import BatchOutcome, score_batch
from tracejudge.evaluation.harness import use_scorer_threads
from tracejudge.models import run_sync
from tracejudge.scorers import Scorer
from tracejudge.store import TraceStore

Batches = Iterator[list[str]]
OnDone = Callable[[list[str], BatchOutcome], None]


@dataclass
class BatchJob:
    """What every worker of a run needs to know."""

    run_id: str
    tracking_uri: str
    scorers: list[Scorer]
    scorer_definitions: list[dict[str, Any]]
    """The scorers as data, for workers in other processes (rebuilt there once per worker)."""
    max_concurrency: int
    """Scorer calls at once per worker."""


class BatchExecutor(Protocol):
    name: str

    def prepare(self, tracking_uri: str) -> None:
        """Connect and check that the workers can use the store; called before the run is
        stored, so a setup that cannot work stores nothing."""
        ...

    def close(self) -> None:
        """Release what :meth:`prepare` took (called whether the run succeeded or not)."""
        ...

    def summary(self) -> dict[str, Any]:
        """How the last run was spread (workers, nodes, workers lost), kept in the run's usage."""
        ...

    def run(self, job: BatchJob, store: TraceStore, batches: Batches, on_done: OnDone) -> None:
        """Score every batch; return when all are done. A configuration error raised by a
        scorer propagates (and stops the run)."""
        ...


class LocalExecutor:
    """Batches scored in this process's event loop, two at a time (the next batch's traces are
    read while the last scorer calls of the current one finish), with one concurrency limit
    over all of them."""

    name = "local"
    in_flight = 2

    def prepare(self, tracking_uri: str) -> None:
        pass

    def close(self) -> None:
        pass

    def summary(self) -> dict[str, Any]:
        return {"executor": self.name}

    def run(self, job: BatchJob, store: TraceStore, batches: Batches, on_done: OnDone) -> None:
        async def main() -> None:
            use_scorer_threads(job.max_concurrency)
            gate = asyncio.Semaphore(job.max_concurrency)
            running: dict[asyncio.Task[BatchOutcome], list[str]] = {}

            async def collect(when: str) -> None:
                done, _ = await asyncio.wait(running, return_when=when)
                for task in done:
                    on_done(running.pop(task), task.result())

            while True:
                batch = await asyncio.to_thread(next, batches, None)
                if batch is None:
                    break
                task = asyncio.create_task(score_batch(store, batch, job.scorers, job.run_id, gate))
                running[task] = batch
                if len(running) >= self.in_flight:
                    await collect(asyncio.FIRST_COMPLETED)
            if running:
                await collect(asyncio.ALL_COMPLETED)

        run_sync(main())
