"""Run metrics from the verdicts of a run: per scorer, the spread of numeric verdicts and the
pass rate of yes/no ones."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence

from tracejudge.entities import Feedback
from tracejudge.entities.assessment import numeric_value


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 1]) of sorted values."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    position = q * (len(sorted_values) - 1)
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _is_verdict(value: object) -> bool:
    """A pass/fail verdict (bool or yes/no-like string), as opposed to a score."""
    return isinstance(value, bool) or (isinstance(value, str) and numeric_value(value) is not None)


def aggregate(
    feedbacks: Iterable[Feedback], aggregations: Mapping[str, Sequence[str] | None] | None = None
) -> dict[str, float]:
    """``{"<name>/mean": ..., "<name>/pass_rate": ..., "<name>/error_count": ...}`` for each
    feedback name. ``aggregations`` may limit the statistics reported for a name."""
    by_name: dict[str, list[Feedback]] = {}
    for feedback in feedbacks:
        by_name.setdefault(feedback.name, []).append(feedback)
    metrics: dict[str, float] = {}
    for name, group in sorted(by_name.items()):
        errors = sum(1 for f in group if f.error is not None)
        values = [f.value for f in group if f.error is None and f.value is not None]
        metrics[f"{name}/count"] = float(len(values))
        metrics[f"{name}/error_count"] = float(errors)
        numbers = sorted(n for n in (numeric_value(v) for v in values) if n is not None)
        if not numbers:
            continue
        wanted = (aggregations or {}).get(name)
        stats: dict[str, float] = {}
        if all(_is_verdict(v) for v in values):
            share = sum(numbers) / len(numbers)
            stats.update(pass_rate=share, mean=share)  # MLflow reports the share of yes as mean
        else:
            stats.update(
                mean=sum(numbers) / len(numbers),
                min=numbers[0],
                max=numbers[-1],
                median=statistics.median(numbers),
                p90=_percentile(numbers, 0.9),
            )
        for stat, value in stats.items():
            if wanted is None or stat in wanted:
                metrics[f"{name}/{stat}"] = value
    return metrics
