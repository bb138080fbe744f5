"""Joining a Ray cluster for tracejudge's workers (scoring batches, monitoring), and leaving it.

What every kind of worker needs alike: Ray imported with a clear error when it is not
installed, the cluster joined (or a local one started) and left only if this process joined
it, a store every node can reach, and the judge settings and provider keys of this process
passed to the actors.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from tracejudge.errors import InvalidArgumentError

FORWARDED_ENV_PREFIXES = (
    "TRACEJUDGE_",
    "OPENAI_",
    "ANTHROPIC_",
    "AZURE_OPENAI_",
    "GEMINI_",
    "MISTRAL_",
    "TOGETHER_",
    "GROQ_",
    "LITELLM_",
)
"""Environment variables passed to the actors: judge model settings and provider keys, so a
worker on another machine calls the same models with the same credentials."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InvalidArgumentError(
            "Running on Ray needs Ray: pip install 'tracejudge[ray]'."
        ) from None
    return ray


def forwarded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}


def check_shared_store(ray: Any, tracking_uri: str) -> None:
    """Refuse a store the workers cannot share: in-memory SQLite anywhere, an SQLite file on a
    cluster of more than one machine."""
    if tracking_uri.startswith("sqlite") and ":memory:" in tracking_uri:
        raise InvalidArgumentError(
            "An in-memory SQLite store cannot be shared with Ray workers; use a file, "
            "PostgreSQL or a tracking server."
        )
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if tracking_uri.startswith("sqlite") and len(nodes) > 1:
        raise InvalidArgumentError(
            f"The store is a local SQLite file ({tracking_uri}), which the {len(nodes)} machines "
            "of this Ray cluster cannot share. Point the tracking URI at PostgreSQL "
            "(postgresql+psycopg://...) or a tracking server (tracejudge server) that every "
            "node reaches."
        )


class RayCluster:
    """The cluster at ``address`` (None: a local Ray, unless one is initialised already)."""

    def __init__(
        self,
        address: str | None,
        cpus_per_worker: float = 1.0,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        if cpus_per_worker <= 0:
            raise InvalidArgumentError("cpus_per_worker must be above 0.")
        self.address = address
        self.cpus_per_worker = cpus_per_worker
        self.runtime_env = dict(runtime_env or {})
        self._joined_here = False

    def join(self, tracking_uri: str) -> Any:
        """Join (or start) the cluster, check that its nodes can share the store; the ray module."""
        ray = import_ray()
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False)
            except ConnectionError as exc:
                raise InvalidArgumentError(
                    f"Cannot reach the Ray cluster {self.address!r}: {exc}"
                ) from None
            self._joined_here = True
        try:
            check_shared_store(ray, tracking_uri)
        except BaseException:
            self.leave()
            raise
        return ray

    def leave(self) -> None:
        """Leave the cluster if :meth:`join` joined it (a Ray the caller started stays up)."""
        if self._joined_here:
            import_ray().shutdown()
            self._joined_here = False

    def actor_class(self, body: type, **options: Any) -> Any:
        """``body`` as a Ray actor class, with this process's judge settings in its environment."""
        ray = import_ray()
        env = {**forwarded_env(), **dict(self.runtime_env.get("env_vars") or {})}
        runtime_env = {**self.runtime_env, "env_vars": env}
        return ray.remote(body).options(
            num_cpus=self.cpus_per_worker, runtime_env=runtime_env, max_restarts=0, **options
        )

    def worker_count(self, workers: int | None) -> int:
        """``workers``, else as many as the cluster's CPUs hold at ``cpus_per_worker`` each."""
        if workers is not None:
            return workers
        cpus = float(import_ray().cluster_resources().get("CPU", 1.0))
        return max(1, int(cpus / self.cpus_per_worker))
