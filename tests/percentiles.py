"""Exact percentiles to check the store's against, and the bound the hourly latency
histograms keep to (``tracejudge.store.latency_sketch``)."""

from __future__ import annotations

import math

from tracejudge.store import latency_sketch


def nearest_rank(values, p):
    """The smallest value with at least a share ``p`` of ``values`` at or below it."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered))) - 1]


def near(value, exact):
    """A percentile read from the hourly latency histograms: within 0.5 % + 0.5 ms."""
    return abs(value - exact) <= latency_sketch.RELATIVE_ERROR * exact + 0.5
