"""Scorers registered in the store for production monitoring (MLflow 3's names).

    polite = Guidelines(name="polite", guidelines="...").register(experiment="support-bot")
    polite.start(sampling_config=ScorerSamplingConfig(sample_rate=0.2, filter_string="tag.env = 'prod'"))
    polite.update(sampling_config=ScorerSamplingConfig(sample_rate=0.5))
    polite.stop(); polite.delete()
    list_scorers(experiment="support-bot")

What ``tracejudge monitor`` does with them is :mod:`tracejudge.monitoring`. Everything here is
checked before anything is stored: an unknown scorer reference, a filter that does not parse,
a sample rate outside [0, 1] each raise InvalidArgumentError and store nothing.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tracejudge.entities import RegisteredScorer, ScorerStatus
from tracejudge.errors import InvalidArgumentError, TraceJudgeError
from tracejudge.query.filter_parser import parse_filter
from tracejudge.scorer import Scorer
from tracejudge.scorers.definitions import definition_of, scorer_from_definition
from tracejudge.store import TraceStore, get_store
from tracejudge.tracing.experiment import active_experiment_id


@dataclass(frozen=True)
class ScorerSamplingConfig:
    """Which traces a started scorer scores: a share of them (decided by a hash of trace id
    and scorer name, so a rerun picks the same ones) among those matching ``filter_string``."""

    sample_rate: float = 1.0
    filter_string: str | None = None

    def __post_init__(self) -> None:
        rate = self.sample_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise InvalidArgumentError(f"sample_rate must be a number in [0, 1], not {rate!r}.")
        if isinstance(rate, float) and math.isnan(rate):
            raise InvalidArgumentError("sample_rate must be a number in [0, 1], not NaN.")
        if self.filter_string:
            parse_filter(self.filter_string)  # InvalidFilterError names the position


def is_sampled(trace_id: str, scorer_name: str, sample_rate: float) -> bool:
    """Whether the scorer samples this trace: the same answer in every process and every run."""
    if sample_rate >= 1:
        return True
    digest = hashlib.blake2b(f"{scorer_name}\x00{trace_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < sample_rate


def monitor_tables(store: TraceStore) -> Any:
    """The store's monitoring tables; a clear error for a store that has none."""
    tables = getattr(store, "monitor", None)
    if tables is None:
        raise TraceJudgeError(f"The tracking store {store!r} does not keep registered scorers.")
    return tables


def resolve_experiment(store: TraceStore, experiment: str | None) -> str:
    """The experiment id for a name or id (a new name is created), else the active one."""
    if experiment is None:
        return active_experiment_id(store)
    if experiment.isdigit():
        return store.get_experiment(experiment).experiment_id
    return store.get_or_create_experiment(experiment).experiment_id


_BUDGETS = ("max_calls_per_hour", "max_cost_per_day")


def _check_budget(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InvalidArgumentError(f"{name} must be a number >= 0 or None, not {value!r}.")


class RegisteredScorerHandle:
    """A scorer as registered in an experiment: start, update, stop, delete, backfill.

    The scorer itself is ``.scorer``; the stored registration (version, status, sampling,
    watermark, health) is ``.info``, read again by each call."""

    def __init__(self, scorer: Scorer, experiment_id: str, store: TraceStore) -> None:
        self.scorer = scorer
        self.name = scorer.name
        self.experiment_id = experiment_id
        self._store = store

    def __repr__(self) -> str:
        info = self.info
        return (
            f"RegisteredScorer(name={self.name!r}, version={info.version}, "
            f"status={info.status.value}, sample_rate={info.sample_rate})"
        )

    @property
    def info(self) -> RegisteredScorer:
        return monitor_tables(self._store).get(self.experiment_id, self.name)

    def _update(self, **changes: Any) -> RegisteredScorerHandle:
        monitor_tables(self._store).update(self.experiment_id, self.name, **changes)
        return self

    def start(self, sampling_config: ScorerSamplingConfig | None = None) -> RegisteredScorerHandle:
        """Score new traces from now on (the monitor picks them up)."""
        config = sampling_config or ScorerSamplingConfig()
        return self._update(
            status=ScorerStatus.STARTED,
            sample_rate=float(config.sample_rate),
            filter_string=config.filter_string,
        )

    def update(
        self, sampling_config: ScorerSamplingConfig | None = None, **settings: Any
    ) -> RegisteredScorerHandle:
        """Change the sampling, a budget (``max_calls_per_hour``, ``max_cost_per_day``) or the
        alert (``alert_below``, ``alert_webhook``) in place; the version stays."""
        changes: dict[str, Any] = {}
        if sampling_config is not None:
            changes.update(
                sample_rate=float(sampling_config.sample_rate),
                filter_string=sampling_config.filter_string,
            )
        changes.update(_settings(settings))
        return self._update(**changes)

    def stop(self) -> RegisteredScorerHandle:
        return self._update(status=ScorerStatus.STOPPED)

    def delete(self) -> None:
        """Forget the registration (the verdicts it wrote stay on the traces)."""
        monitor_tables(self._store).delete(self.experiment_id, self.name)

    def backfill(self, start: Any = None, end: Any = None) -> int:
        """Score the past traces in [start, end] (datetimes or epoch ms) that its sampling
        picks, once: traces it scored before, here or in the monitor, are skipped. Returns the
        number scored. Runs in this process (tracejudge.monitoring)."""
        if _backfill_runner is None:
            raise TraceJudgeError("import tracejudge.monitoring to backfill")
        return _backfill_runner(self, start, end)


BackfillRunner = Callable[[RegisteredScorerHandle, Any, Any], int]
_backfill_runner: BackfillRunner | None = None


def set_backfill_runner(runner: BackfillRunner) -> None:
    """Installed by :mod:`tracejudge.monitoring` (a higher layer runs the scoring)."""
    global _backfill_runner
    _backfill_runner = runner


def _settings(settings: dict[str, Any]) -> dict[str, Any]:
    allowed = (*_BUDGETS, "alert_below", "alert_webhook")
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise InvalidArgumentError(f"Unknown setting(s) {unknown}; expected any of {allowed}.")
    for name in _BUDGETS:
        _check_budget(name, settings.get(name))
    alert = settings.get("alert_below")
    if alert is not None and (not isinstance(alert, (int, float)) or not 0 <= alert <= 1):
        raise InvalidArgumentError(f"alert_below must be a pass rate in [0, 1], not {alert!r}.")
    hook = settings.get("alert_webhook")
    if hook is not None and not str(hook).startswith(("http://", "https://")):
        raise InvalidArgumentError(f"alert_webhook must be an http(s) URL, not {hook!r}.")
    return settings


def register_scorer(
    scorer: Scorer,
    experiment: str | None = None,
    name: str | None = None,
    **settings: Any,
) -> RegisteredScorerHandle:
    """Register ``scorer`` in the experiment (stopped until ``start``); a changed definition
    under the same name becomes a new version. ``settings``: ``max_calls_per_hour``,
    ``max_cost_per_day``, ``alert_below``, ``alert_webhook``."""
    if name is not None and name != scorer.name:
        scorer.name = name
    definition = definition_of(scorer)
    scorer_from_definition(definition)  # a definition that cannot be rebuilt is refused now
    checked = _settings(settings)
    store = get_store()
    experiment_id = resolve_experiment(store, experiment)
    monitor_tables(store).register(experiment_id, scorer.name, definition, **checked)
    return RegisteredScorerHandle(scorer, experiment_id, store)


def get_scorer(name: str, experiment: str | None = None) -> RegisteredScorerHandle:
    """A registered scorer by name, rebuilt from its current version."""
    store = get_store()
    experiment_id = resolve_experiment(store, experiment)
    info = monitor_tables(store).get(experiment_id, name)
    return RegisteredScorerHandle(scorer_from_definition(info.definition), experiment_id, store)


def list_scorers(experiment: str | None = None) -> list[RegisteredScorer]:
    """The scorers registered in the experiment: name, version, status, sampling, budgets,
    watermark and health (``tracejudge monitor status`` adds what they did lately)."""
    store = get_store()
    return monitor_tables(store).list_scorers(resolve_experiment(store, experiment))
