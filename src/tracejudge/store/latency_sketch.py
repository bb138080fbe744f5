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


def buckets(durations_ms: np.ndarray) -> np.ndarray:
    """The bucket of each duration (0 for zero or less), as uint16."""
    d = np.asarray(durations_ms, dtype=np.float64)
    keys = np.ceil(np.log(np.maximum(d, 1.0)) / _LOG_GAMMA - 1e-9)
    keys = np.clip(keys, 1, MAX_BUCKET)
    return np.where(d < 1, 0, keys).astype(_KEY)


def bucket(duration_ms: float) -> int:
    """The bucket of one duration: the same arithmetic as :func:`buckets`."""
    return int(buckets(np.array([duration_ms]))[0])


def value_of(key: int) -> int:
    """What a bucket reads back as: its centre, rounded to a whole millisecond."""
    if key <= 0:
        return 0
    return round(2 * GAMMA**key / (GAMMA + 1))


def summarize(durations: Iterable[tuple[int, int]]) -> bytes:
    """The summary of ``(duration_ms, how many traces)`` pairs."""
    pairs = np.array(list(durations), dtype=np.float64).reshape(-1, 2)
    return by_group(np.zeros(len(pairs), dtype=np.int64), pairs[:, 0], pairs[:, 1]).get(0, b"")


def by_group(
    groups: np.ndarray, durations_ms: np.ndarray, weights: np.ndarray | None = None
) -> dict[int, bytes]:
    """A summary per group: ``groups[i]`` is the group of duration ``durations_ms[i]``,
    counted ``weights[i]`` times (once without weights)."""
    if len(durations_ms) == 0:
        return {}
    combined = np.asarray(groups, dtype=np.int64) * (MAX_BUCKET + 1) + buckets(durations_ms)
    if weights is None:
        keys, counts = np.unique(combined, return_counts=True)
    else:
        keys, where = np.unique(combined, return_inverse=True)
        counts = np.bincount(where, weights=np.asarray(weights, dtype=np.float64))
    group_of, bucket_of = np.divmod(keys, MAX_BUCKET + 1)
    starts = np.flatnonzero(np.diff(group_of)) + 1
    out = {}
    for part_groups, part_buckets, part_counts in zip(
        np.split(group_of, starts),
        np.split(bucket_of, starts),
        np.split(counts, starts),
        strict=True,
    ):
        out[int(part_groups[0])] = (
            part_buckets.astype(_KEY).tobytes() + np.rint(part_counts).astype(_COUNT).tobytes()
        )
    return out


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
