"""A mergeable histogram of durations, so that latency percentiles over many hours are read
from per-hour summaries instead of every trace.

Buckets grow geometrically (the DDSketch scheme): a duration ``v`` ms goes to bucket
``ceil(log(v) / log(GAMMA))`` and is read back as the bucket's centre rounded to a whole
millisecond, which lies within ``RELATIVE_ERROR`` (0.5 %) plus 0.5 ms of every value in the
bucket. Below 110 ms a bucket holds at most one whole millisecond, so those durations come
back exactly. Zero (and anything below) has a bucket of its own. Summaries of any hours add
up bucket by bucket, so a nearest-rank percentile of the sum is within the same bound of the
exact nearest-rank percentile of the traces.

A summary is stored as bytes: the used bucket numbers (uint16) then their counts (uint32).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

RELATIVE_ERROR = 0.005
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(GAMMA)
MAX_BUCKET = 8_000
"""Enough for durations up to about 10^34 ms; anything longer shares the last bucket."""
_KEY = np.dtype("<u2")
_COUNT = np.dtype("<u4")


def bucket(duration_ms: float) -> int:
    """The bucket of one duration (0 for zero or less)."""
    if duration_ms < 1:
        return 0
    return min(MAX_BUCKET, max(1, math.ceil(math.log(duration_ms) / _LOG_GAMMA - 1e-9)))


def value_of(key: int) -> int:
    """What a bucket reads back as: its centre, rounded to a whole millisecond."""
    if key <= 0:
        return 0
    return round(2 * GAMMA**key / (GAMMA + 1))


def summarize(durations: Iterable[tuple[int, int]]) -> bytes:
    """The summary of ``(duration_ms, how many traces)`` pairs."""
    counts: dict[int, int] = {}
    for duration, n in durations:
        key = bucket(duration)
        counts[key] = counts.get(key, 0) + int(n)
    keys = np.fromiter(sorted(counts), dtype=_KEY, count=len(counts))
    values = np.fromiter((counts[int(k)] for k in keys), dtype=_COUNT, count=len(counts))
    return keys.tobytes() + values.tobytes()


def merge(summaries: Iterable[bytes]) -> np.ndarray:
    """Counts per bucket (index = bucket number) of the sum of ``summaries``."""
    keys: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    for blob in summaries:
        if not blob:
            continue
        n = len(blob) // (_KEY.itemsize + _COUNT.itemsize)
        keys.append(np.frombuffer(blob, dtype=_KEY, count=n))
        counts.append(np.frombuffer(blob, dtype=_COUNT, offset=n * _KEY.itemsize, count=n))
    if not keys:
        return np.zeros(0, dtype=np.int64)
    return np.bincount(np.concatenate(keys), weights=np.concatenate(counts)).astype(np.int64)


def percentile(histogram: np.ndarray, share: float) -> int | None:
    """The nearest-rank percentile (``share`` in (0, 1]) of a merged histogram, or None when
    it is empty."""
    total = int(histogram.sum())
    if total == 0:
        return None
    rank = max(1, math.ceil(share * total))
    key = int(np.searchsorted(np.cumsum(histogram), rank))
    return value_of(key)
