"""What a scorer is: something that looks at a row (inputs, outputs, expectations, trace) and
gives a verdict.

A leaf module (it needs only entities and the model layer's ``run_sync``), so that both
``tracejudge.scorers`` and ``tracejudge.judges`` build on it without importing each other: a
``make_judge`` judge is a :class:`Scorer` that ``evaluate()`` runs like any other.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tracejudge.entities import Trace
from tracejudge.errors import InvalidArgumentError
from tracejudge.models import ChatModel, run_sync

if TYPE_CHECKING:
    from tracejudge.scorers.registration import RegisteredScorerHandle

PARAMETERS = ("inputs", "outputs", "expectations", "trace")
AGGREGATIONS = ("mean", "min", "max", "median", "p90", "pass_rate")


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


class Scorer:
    """Base class: set ``name``, implement :meth:`ascore` (async) or :meth:`score` (sync).

    A scorer returns a bool, a number, a string, a :class:`Feedback` or a list of them;
    ``None`` means no verdict for this row.
    """

    name: str = ""
    aggregations: Sequence[str] | None = None
    model: str | ChatModel | None = None

    def __init__(self, name: str | None = None, aggregations: Sequence[str] | None = None) -> None:
        if name is not None:
            self.name = name
        if not self.name:
            self.name = snake_case(type(self).__name__)
        if aggregations is not None:
            unknown = sorted(set(aggregations) - set(AGGREGATIONS))
            if unknown:
                raise InvalidArgumentError(
                    f"Unknown aggregation(s) {unknown}; known: {AGGREGATIONS}."
                )
            self.aggregations = tuple(aggregations)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def score(self, *, inputs: Any, outputs: Any, expectations: Any, trace: Trace | None) -> Any:
        raise NotImplementedError(f"{type(self).__name__} implements neither score() nor ascore().")

    async def ascore(
        self, *, inputs: Any, outputs: Any, expectations: Any, trace: Trace | None
    ) -> Any:
        return await asyncio.to_thread(
            self.score, inputs=inputs, outputs=outputs, expectations=expectations, trace=trace
        )

    def __call__(
        self,
        *,
        inputs: Any = None,
        outputs: Any = None,
        expectations: Any = None,
        trace: Trace | None = None,
    ) -> Any:
        """Score one row synchronously (handy to try a scorer before an evaluation)."""
        return run_sync(
            self.ascore(inputs=inputs, outputs=outputs, expectations=expectations, trace=trace)
        )

    def register(
        self, experiment: str | None = None, name: str | None = None, **settings: Any
    ) -> RegisteredScorerHandle:
        """Register this scorer for monitoring in ``experiment`` (stopped until ``.start()``);
        see :mod:`tracejudge.scorers.registration`."""
        from tracejudge.scorers.registration import register_scorer

        return register_scorer(self, experiment, name, **settings)

    @property
    def judge_model(self) -> str | None:
        model = self.model
        if model is None:
            return None
        return model.uri if isinstance(model, ChatModel) else str(model)

    def describe(self) -> dict[str, Any]:
        """Name, class and configuration, stored with an evaluation run so it can be re-created."""
        info: dict[str, Any] = {"name": self.name, "class": type(self).__name__}
        if self.judge_model is not None:
            info["model"] = self.judge_model
        if self.aggregations is not None:
            info["aggregations"] = list(self.aggregations)
        return info
