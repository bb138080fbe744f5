"""Finding an experiment the way people name one: by its name, or else by its id."""

from __future__ import annotations

from tracejudge.entities import Experiment
from tracejudge.errors import ExperimentNotFoundError
from tracejudge.store.base import TraceStore


def find_experiment(store: TraceStore, name_or_id: str) -> Experiment:
    """The experiment called ``name_or_id``, else the one with that id (ExperimentNotFoundError)."""
    found = store.get_experiment_by_name(name_or_id)
    if found is None and name_or_id.isdigit():
        found = store.get_experiment(name_or_id)
    if found is None:
        raise ExperimentNotFoundError(f"No experiment named {name_or_id!r}.")
    return found
