"""Batches scored by Ray actors: a run spread over the machines of a Ray cluster.

Each actor is one worker process: it opens the shared store (PostgreSQL or a tracking server;
an SQLite file only when the whole cluster is this one machine), rebuilds the scorers from
their definitions once (so a local model is loaded once per actor, not per batch), and scores
the batches it is sent side by side under its own concurrency limit. The driver keeps two
batches in flight per actor and takes results as they come. An actor that dies (its process
killed, its node lost) is replaced and its batches are sent again: verdict ids derive from
(run, trace, scorer), so what it wrote before dying is replaced or skipped, never doubled.

``ray`` is an optional dependency: ``pip install 'tracejudge[ray]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections import deque
from typing import Any

from tracejudge.errors import InvalidArgumentError, TraceJudgeError
from tracejudge.evaluation.batches import BatchOutcome, score_batch
from tracejudge.evaluation.executors import Batches, BatchJob, OnDone
from tracejudge.evaluation.harness import use_scorer_threads
from tracejudge.evaluation.ray_cluster import RayCluster
from tracejudge.models.cache import flush_call_cache
from tracejudge.store import TraceStore

logger = logging.getLogger("tracejudge.evaluation")

IN_FLIGHT_PER_WORKER = 2
MAX_ATTEMPTS = 3
"""Tries per batch before the run fails: a batch whose worker dies this often is the cause."""


class WorkerLostError(TraceJudgeError):
    """A batch's workers kept dying (see the Ray logs of the actors)."""


class ScoringWorker:
    """The actor's body (made a Ray actor class when the executor starts). Its methods are
    coroutines, so Ray runs them on one event loop per actor: the batches queued to it are
    scored side by side under one concurrency limit, with model clients that live as long as
    the actor."""

    def __init__(self, tracking_uri: str, definitions: list[dict[str, Any]]) -> None:
        from tracejudge.scorers.definitions import scorer_from_definition
        from tracejudge.store import get_store, set_tracking_uri

        set_tracking_uri(tracking_uri)  # the model-call cache lives in the same store
        self.store = get_store(tracking_uri)
        self.scorers = [scorer_from_definition(d) for d in definitions]
        self.batches = 0
        self._gate: asyncio.Semaphore | None = None

    async def score(self, trace_ids: list[str], run_id: str, max_concurrency: int) -> BatchOutcome:
        if self._gate is None:  # synchronous scorers and store reads get as many threads
            use_scorer_threads(max_concurrency)
            self._gate = asyncio.Semaphore(max_concurrency)
        self.batches += 1
        try:
            return await score_batch(self.store, trace_ids, self.scorers, run_id, self._gate)
        finally:  # the actor is killed at the end of the run: no exit hook writes the cache
            await asyncio.to_thread(flush_call_cache)

    async def stats(self) -> dict[str, Any]:
        """Where this worker ran and what it holds: batches scored, local models loaded (one
        per actor, however many batches)."""
        import ray

        llama = sys.modules.get("tracejudge.models.providers.llama_cpp_provider")
        return {
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id(),
            "batches": self.batches,
            "local_models_loaded": len(getattr(llama, "_loaded", {})),
        }


class RayExecutor:
    """``evaluate(..., executor=RayExecutor(address="auto", workers=8))``.

    Args:
        address: the cluster (``"auto"``, ``"ray://head:10001"``); None starts a local Ray
            unless Ray is already initialised in this process.
        workers: actors to start (default: the cluster's CPUs / ``cpus_per_worker``).
        cpus_per_worker: CPUs Ray reserves per actor; below 1 packs several actors on a core,
            right for hosted judges (the work is waiting on HTTP), not for a local model.
        runtime_env: Ray runtime environment for the actors; the judge settings and provider
            keys of this process's environment are added to its ``env_vars``.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        cpus_per_worker: float = 1.0,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise InvalidArgumentError("RayExecutor(workers=...) must be at least 1.")
        self.cluster = RayCluster(address, cpus_per_worker, runtime_env)
        self.workers = workers
        self.replaced = 0
        """Actors that died during the run and were replaced."""
        self.retried = 0
        """Batches sent again because their actor died."""
        self.worker_stats: list[dict[str, Any]] = []
        """:meth:`ScoringWorker.stats` of the workers alive at the end of the last run."""

    def summary(self) -> dict[str, Any]:
        return {
            "executor": self.name,
            "workers": len(self.worker_stats),
            "nodes": len({w["node"] for w in self.worker_stats}),
            "workers_replaced": self.replaced,
            "batches_resent": self.retried,
        }

    # ------------------------------------------------------------------ setup

    def prepare(self, tracking_uri: str) -> None:
        """Join (or start) the cluster and check that its nodes can share the store."""
        self.cluster.join(tracking_uri)

    def close(self) -> None:
        self.cluster.leave()

    # -------------------------------------------------------------------- run

    def run(self, job: BatchJob, store: TraceStore, batches: Batches, on_done: OnDone) -> None:
        ray = self.cluster.join(job.tracking_uri)  # joined already by prepare(): a no-op
        from ray.exceptions import RayActorError, RayTaskError

        actors: list[Any] = []
        try:
            actor_class = self.cluster.actor_class(ScoringWorker)

            def new_actor() -> Any:
                return actor_class.remote(job.tracking_uri, job.scorer_definitions)

            actors = [new_actor() for _ in range(self.cluster.worker_count(self.workers))]
            in_flight: dict[Any, tuple[int, Any, list[str], int]] = {}
            queued: dict[int, int] = dict.fromkeys(range(len(actors)), 0)
            retry: deque[tuple[list[str], int]] = deque()
            exhausted = False

            def submit(slot: int, batch: list[str], attempt: int) -> None:
                actor = actors[slot]
                ref = actor.score.remote(batch, job.run_id, job.max_concurrency)
                in_flight[ref] = (slot, actor, batch, attempt)
                queued[slot] += 1

            def fill() -> None:
                nonlocal exhausted
                for slot in range(len(actors)):
                    while queued[slot] < IN_FLIGHT_PER_WORKER:
                        if retry:
                            submit(slot, *retry.popleft())
                            continue
                        if exhausted:
                            return
                        batch = next(batches, None)
                        if batch is None:
                            exhausted = True
                            return
                        submit(slot, batch, 1)

            fill()
            while in_flight:
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                ref = ready[0]
                slot, actor, batch, attempt = in_flight.pop(ref)
                queued[slot] -= 1
                try:
                    outcome = ray.get(ref)
                except RayTaskError as exc:  # the scorer code raised: the run's error
                    cause = getattr(exc, "cause", None)
                    raise (cause if isinstance(cause, BaseException) else exc) from None
                except RayActorError as exc:
                    if actors[slot] is actor:  # its other batches fail too: replace it once
                        logger.warning(
                            "a Ray scoring worker died (%s); replacing it, re-sending its batches",
                            exc,
                        )
                        actors[slot] = new_actor()
                        self.replaced += 1
                    if attempt >= MAX_ATTEMPTS:
                        raise WorkerLostError(
                            f"A batch of {len(batch)} traces lost its worker {attempt} times "
                            f"(last: {exc}); see the Ray logs."
                        ) from None
                    self.retried += 1
                    retry.append((batch, attempt + 1))
                else:
                    on_done(batch, outcome)
                fill()
        finally:
            self.worker_stats = []
            for actor in actors:
                with contextlib.suppress(Exception):  # a worker that is gone has no figures
                    self.worker_stats.append(ray.get(actor.stats.remote(), timeout=30))
                with contextlib.suppress(Exception):
                    ray.kill(actor)
