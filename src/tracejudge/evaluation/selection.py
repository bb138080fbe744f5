"""Which stored traces a batched run scores: a query read page by page, or a given list of ids.

A run spread over workers never holds the traces on the driver: it pages through trace ids with
the store's keyset search and hands them out in batches, each worker reading its own traces.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tracejudge.errors import InvalidArgumentError
from tracejudge.store import TraceStore
from tracejudge.store.lookup import find_experiment

PAGE_SIZE = 1000


@dataclass(frozen=True)
class TraceQuery:
    """The traces of ``experiments`` (names or ids; all when None) that match ``filter_string``,
    newest first, at most ``max_results``. Pass it as ``evaluate(data=...)`` to score traces
    that are already in the store without loading them all.

    >>> evaluate(data=TraceQuery(["support-bot"], "tag.env = 'prod'"), scorers=[...],
    ...          executor="ray", ray_address="auto")
    """

    experiments: Sequence[str] | None = None
    filter_string: str | None = None
    max_results: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.experiments, str):
            object.__setattr__(self, "experiments", (self.experiments,))
        elif self.experiments is not None:
            object.__setattr__(self, "experiments", tuple(self.experiments))
        if self.max_results is not None and (
            isinstance(self.max_results, bool)
            or not isinstance(self.max_results, int)
            or self.max_results < 1
        ):
            raise InvalidArgumentError(
                f"TraceQuery.max_results must be a positive integer, not {self.max_results!r}."
            )

    def experiment_ids(self, store: TraceStore) -> list[str] | None:
        if self.experiments is None:
            return None
        return [find_experiment(store, e).experiment_id for e in self.experiments]

    def count(self, store: TraceStore) -> int:
        """How many traces the query selects (one aggregate query; a filter error shows here,
        before any work starts)."""
        rows = store.trace_stats(self.experiment_ids(store), self.filter_string, None, ["count"])
        total = int(rows[0]["count"]) if rows else 0
        return total if self.max_results is None else min(total, self.max_results)

    def pages(self, store: TraceStore, page_size: int = PAGE_SIZE) -> Iterator[list[str]]:
        """Trace ids, one keyset page at a time."""
        ids = self.experiment_ids(store)
        left = self.max_results
        token: str | None = None
        while left is None or left > 0:
            size = page_size if left is None else min(page_size, left)
            page = store.search_traces(
                ids, self.filter_string, None, size, token, include_spans=False
            )
            trace_ids = [t.info.trace_id for t in page]
            if trace_ids:
                yield trace_ids
            if left is not None:
                left -= len(trace_ids)
            token = page.token
            if not token or not trace_ids:
                return

    def describe(self) -> dict[str, Any]:
        return {
            "experiments": list(self.experiments) if self.experiments is not None else None,
            "filter_string": self.filter_string,
            "max_results": self.max_results,
        }


@dataclass(frozen=True)
class TraceIds:
    """A given list of stored traces (from ``search_traces``' result, or a list of Traces)."""

    ids: Sequence[str]

    def count(self, store: TraceStore) -> int:
        return len(self.ids)

    def pages(self, store: TraceStore, page_size: int = PAGE_SIZE) -> Iterator[list[str]]:
        for start in range(0, len(self.ids), page_size):
            yield list(self.ids[start : start + page_size])

    def describe(self) -> dict[str, Any]:
        return {"trace_ids": len(self.ids)}


TraceSelection = TraceQuery | TraceIds
