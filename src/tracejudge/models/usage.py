"""Counting model calls, tokens and cost over a block of code (an evaluation run, a benchmark)."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tracejudge.models.types import ChatResult


@dataclass
class UsageMeter:
    calls: int = 0
    """Calls that reached a provider."""
    cached_calls: int = 0
    """Calls answered from the call cache (no provider call, no cost)."""
    failed_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    calls_without_price: int = 0
    """Provider calls whose model has no known price (their cost is not in ``cost_usd``)."""
    seconds: float = 0.0
    by_model: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, result: ChatResult) -> None:
        with self._lock:
            if result.cached:
                self.cached_calls += 1
                return
            self.calls += 1
            self.by_model[result.model_id] = self.by_model.get(result.model_id, 0) + 1
            self.input_tokens += result.usage.input_tokens
            self.output_tokens += result.usage.output_tokens
            self.seconds += result.latency_s
            if result.cost_usd is None:
                self.calls_without_price += 1
            else:
                self.cost_usd += result.cost_usd

    def record_failure(self) -> None:
        with self._lock:
            self.failed_calls += 1

    def absorb(self, usage: dict[str, Any]) -> None:
        """Add the counts of another meter's :meth:`to_dict` (a worker's share of a run)."""
        with self._lock:
            self.calls += int(usage.get("calls", 0))
            self.cached_calls += int(usage.get("cached_calls", 0))
            self.failed_calls += int(usage.get("failed_calls", 0))
            self.input_tokens += int(usage.get("input_tokens", 0))
            self.output_tokens += int(usage.get("output_tokens", 0))
            self.cost_usd += float(usage.get("cost_usd", 0.0))
            self.calls_without_price += int(usage.get("calls_without_price", 0))
            self.seconds += float(usage.get("model_seconds", 0.0))
            for model, calls in (usage.get("by_model") or {}).items():
                self.by_model[model] = self.by_model.get(model, 0) + int(calls)

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "cached_calls": self.cached_calls,
            "failed_calls": self.failed_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "calls_without_price": self.calls_without_price,
            "model_seconds": round(self.seconds, 3),
            "by_model": dict(self.by_model),
        }


_meters: contextvars.ContextVar[tuple[UsageMeter, ...]] = contextvars.ContextVar(
    "tracejudge_usage_meters", default=()
)


@contextlib.contextmanager
def track_usage() -> Iterator[UsageMeter]:
    """Count every model call made inside the block (tasks and nested blocks included)."""
    meter = UsageMeter()
    token = _meters.set((*_meters.get(), meter))
    try:
        yield meter
    finally:
        _meters.reset(token)


def record(result: ChatResult) -> None:
    for meter in _meters.get():
        meter.record(result)


def record_failure() -> None:
    for meter in _meters.get():
        meter.record_failure()
