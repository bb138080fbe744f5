"""Run metrics from the verdicts of a run: per scorer, the spread of numeric verdicts and the
pass rate of yes/no ones.

:class:`MetricAccumulator` is mergeable, so a run scored in batches on many workers gets the
same metrics as one scored in one process: each batch returns an accumulator (counts and the
batch's numbers, never its traces or Feedback objects) and the driver merges them.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

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


@dataclass
class _NameTally:
    count: int = 0
    """Verdicts with a value and no error."""
    errors: int = 0
    all_verdicts: bool = True
    """Every value so far was pass/fail (then the metrics are a pass rate, not a spread)."""
    numbers: list[float] = field(default_factory=list)

    def merge(self, other: _NameTally) -> None:
        self.count += other.count
        self.errors += other.errors
        self.all_verdicts = self.all_verdicts and other.all_verdicts
        self.numbers.extend(other.numbers)


@dataclass
class MetricAccumulator:
    """Per feedback name: how many verdicts, how many errors, and their numeric values."""

    tallies: dict[str, _NameTally] = field(default_factory=dict)

    def add(self, feedback: Feedback) -> None:
        tally = self.tallies.setdefault(feedback.name, _NameTally())
        if feedback.error is not None:
            tally.errors += 1
            return
        if feedback.value is None:
            return
        tally.count += 1
        tally.all_verdicts = tally.all_verdicts and _is_verdict(feedback.value)
        number = numeric_value(feedback.value)
        if number is not None:
            tally.numbers.append(number)

    def add_all(self, feedbacks: Iterable[Feedback]) -> MetricAccumulator:
        for feedback in feedbacks:
            self.add(feedback)
        return self

    def merge(self, other: MetricAccumulator) -> MetricAccumulator:
        for name, tally in other.tallies.items():
            self.tallies.setdefault(name, _NameTally()).merge(tally)
        return self

    def metrics(
        self, aggregations: Mapping[str, Sequence[str] | None] | None = None
    ) -> dict[str, float]:
        """``{"<name>/mean": ..., "<name>/pass_rate": ..., "<name>/error_count": ...}`` for each
        feedback name. ``aggregations`` may limit the statistics reported for a name."""
        metrics: dict[str, float] = {}
        for name, tally in sorted(self.tallies.items()):
            metrics[f"{name}/count"] = float(tally.count)
            metrics[f"{name}/error_count"] = float(tally.errors)
            numbers = sorted(tally.numbers)
            if not numbers:
                continue
            stats: dict[str, float] = {}
            if tally.all_verdicts:
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
            wanted = (aggregations or {}).get(name)
            for stat, value in stats.items():
                if wanted is None or stat in wanted:
                    metrics[f"{name}/{stat}"] = value
        return metrics


def aggregate(
    feedbacks: Iterable[Feedback], aggregations: Mapping[str, Sequence[str] | None] | None = None
) -> dict[str, float]:
    """The run metrics of these verdicts (see :meth:`MetricAccumulator.metrics`)."""
    return MetricAccumulator().add_all(feedbacks).metrics(aggregations)
