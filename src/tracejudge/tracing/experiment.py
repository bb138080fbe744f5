"""The active experiment of this process: where new traces go."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence

from tracejudge import settings
from tracejudge.entities import Experiment
from tracejudge.entities.experiment import DEFAULT_EXPERIMENT_NAME
from tracejudge.errors import ExperimentNotFoundError
from tracejudge.store import TraceStore, get_store

EXPERIMENT_NAME_ENV = settings.EXPERIMENT_NAME.name

_active_name: str | None = None
_context_name: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tracejudge_experiment", default=None
)


@contextlib.contextmanager
def experiment_context(name: str) -> Iterator[None]:
    """Send traces started in this block (and its tasks and copied contexts) to ``name``."""
    token = _context_name.set(name)
    try:
        yield
    finally:
        _context_name.reset(token)


def set_experiment(name: str) -> Experiment:
    """Make ``name`` the active experiment, creating it if needed; new traces are logged there."""
    global _active_name
    experiment = get_store().get_or_create_experiment(name)
    _active_name = experiment.name
    return experiment


def active_experiment_name() -> str | None:
    """The experiment new traces go to (``None`` means the default experiment)."""
    return _context_name.get() or _active_name or settings.EXPERIMENT_NAME.get_or_default() or None


def get_experiment_by_name(name: str) -> Experiment | None:
    return get_store().get_experiment_by_name(name)


def active_experiment_id(store: TraceStore | None = None) -> str:
    """The id of the active experiment in ``store`` (default: the current one), created on first use."""
    name = active_experiment_name()
    if name is None or name == DEFAULT_EXPERIMENT_NAME:
        return "0"
    return (store or get_store()).get_or_create_experiment(name).experiment_id


def resolve_experiment_ids(
    experiment_ids: Sequence[str] | str | None, store: TraceStore | None = None
) -> list[str]:
    """Experiment ids for a search: the given ids (checked to exist), else the active experiment."""
    store = store or get_store()
    if experiment_ids is None:
        return [active_experiment_id(store)]
    ids = [experiment_ids] if isinstance(experiment_ids, str) else [str(e) for e in experiment_ids]
    for experiment_id in ids:
        store.get_experiment(experiment_id)  # raises ExperimentNotFoundError with a clear message
    return ids


__all__ = [
    "EXPERIMENT_NAME_ENV",
    "ExperimentNotFoundError",
    "active_experiment_id",
    "active_experiment_name",
    "get_experiment_by_name",
    "resolve_experiment_ids",
    "set_experiment",
]
