"""The monitor on a Ray cluster: N monitor workers as Ray actors, one per process.

Each actor runs the same :class:`Monitor` a ``tracejudge monitor`` process runs, against the
shared store; they split the work the way separate monitor processes do, by claiming traces
in the store (a trace is scored once, whichever worker claims it), so nothing new is needed for
correctness. What Ray adds is placement and supervision: the workers start on the cluster's
machines, and a worker that dies is replaced (its claims are taken over once their lease runs
out, as for a monitor process that dies).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from tracejudge.evaluation.ray_cluster import RayCluster
from tracejudge.monitoring.monitor import Monitor, MonitorOptions, PassReport, ScorerPass

logger = logging.getLogger("tracejudge.monitoring")
SUPERVISE_EVERY_S = 5.0


class MonitorWorker:
    """The actor's body: a :class:`Monitor` on the shared store. Threaded (two calls at once),
    so ``stop`` reaches a worker busy in ``run_forever``."""

    def __init__(
        self, tracking_uri: str, experiment_ids: list[str] | None, options: MonitorOptions
    ) -> None:
        from tracejudge.store import get_store, set_tracking_uri

        set_tracking_uri(tracking_uri)  # the model-call cache lives in the same store
        owner = f"ray:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.monitor = Monitor(get_store(tracking_uri), experiment_ids, options, owner=owner)
        self._stop = threading.Event()

    def run_once(self) -> list[dict[str, Any]]:
        return [asdict(p) for p in self.monitor.run_once().scorers]

    def run_forever(self, poll_s: float) -> str:
        self.monitor.run_forever(poll_s, self._stop)
        return self.monitor.owner

    def stop(self) -> None:
        self._stop.set()


class RayMonitor:
    """``tracejudge monitor --ray-address ...``: ``workers`` monitor actors on the cluster."""

    def __init__(
        self,
        address: str | None,
        workers: int,
        experiment_ids: Sequence[str] | None = None,
        options: MonitorOptions | None = None,
        cpus_per_worker: float = 1.0,
    ) -> None:
        self.cluster = RayCluster(address, cpus_per_worker)
        self.workers = workers
        self.experiment_ids = list(experiment_ids) if experiment_ids else None
        self.options = options or MonitorOptions()
        self.replaced = 0

    def _start(self, tracking_uri: str) -> tuple[Any, Any, list[Any]]:
        ray = self.cluster.join(tracking_uri)
        actor_class = self.cluster.actor_class(MonitorWorker, max_concurrency=2)
        actors = [
            actor_class.remote(tracking_uri, self.experiment_ids, self.options)
            for _ in range(self.workers)
        ]
        return ray, actor_class, actors

    def run_once(self, tracking_uri: str) -> PassReport:
        """One pass of every worker side by side; their reports summed per scorer."""
        ray, _, actors = self._start(tracking_uri)
        try:
            reports = ray.get([a.run_once.remote() for a in actors])
        finally:
            for actor in actors:
                ray.kill(actor)
            self.cluster.leave()
        merged: dict[str, ScorerPass] = {}
        for report in reports:
            for p in report:
                into = merged.setdefault(p["name"], ScorerPass(p["name"], p["version"]))
                for counter in (
                    "read",
                    "sampled",
                    "claimed",
                    "scored",
                    "failed",
                    "released",
                    "calls",
                ):
                    setattr(into, counter, getattr(into, counter) + p[counter])
                into.cost += p["cost"]
                into.skipped = into.skipped or p["skipped"]
        return PassReport(list(merged.values()))

    def run_forever(self, tracking_uri: str, poll_s: float, stop: threading.Event) -> None:
        """Run the workers until ``stop`` is set, replacing any that dies."""
        from ray.exceptions import RayActorError

        ray, actor_class, actors = self._start(tracking_uri)
        running = {a.run_forever.remote(poll_s): i for i, a in enumerate(actors)}
        try:
            while not stop.is_set():
                done, _ = ray.wait(list(running), num_returns=1, timeout=SUPERVISE_EVERY_S)
                for ref in done:
                    slot = running.pop(ref)
                    try:
                        ray.get(ref)
                    except RayActorError as exc:
                        logger.warning("a Ray monitor worker died (%s); starting another", exc)
                    except Exception as exc:
                        logger.warning("a Ray monitor worker failed (%s); starting another", exc)
                    self.replaced += 1
                    actors[slot] = actor_class.remote(
                        tracking_uri, self.experiment_ids, self.options
                    )
                    running[actors[slot].run_forever.remote(poll_s)] = slot
                if done:
                    stop.wait(
                        SUPERVISE_EVERY_S
                    )  # a worker that dies at once is not respawned in a loop
        finally:
            for actor in actors:
                with contextlib.suppress(Exception):  # dead already
                    ray.get(actor.stop.remote(), timeout=30)
            ray.wait(list(running), num_returns=len(running), timeout=60)
            for actor in actors:
                ray.kill(actor)
            self.cluster.leave()
