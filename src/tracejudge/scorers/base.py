"""What a scorer is: something that looks at a row (inputs, outputs, expectations, trace) and
gives a verdict. ``@scorer`` makes one from a function; subclass :class:`Scorer` for scorers
with configuration or state."""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any, overload

from tracejudge.entities import (
    AssessmentError,
    AssessmentSource,
    AssessmentSourceType,
    Feedback,
    Trace,
)
from tracejudge.errors import InvalidArgumentError
from tracejudge.models import ChatModel, run_sync

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


class FunctionScorer(Scorer):
    """A scorer made by ``@scorer`` from a function of (some of) inputs, outputs, expectations, trace."""

    def __init__(
        self, fn: Callable[..., Any], name: str | None, aggregations: Sequence[str] | None
    ) -> None:
        super().__init__(name or fn.__name__, aggregations)
        params = inspect.signature(fn).parameters
        unknown = [
            p
            for p in params
            if p not in PARAMETERS and params[p].default is inspect.Parameter.empty
        ]
        if unknown:
            raise InvalidArgumentError(
                f"Scorer {self.name!r} asks for {unknown}; a scorer's parameters are any of {PARAMETERS}."
            )
        self._fn = fn
        self._wants = [p for p in PARAMETERS if p in params]
        self._is_async = inspect.iscoroutinefunction(fn)
        functools.update_wrapper(self, fn)

    async def ascore(
        self, *, inputs: Any, outputs: Any, expectations: Any, trace: Trace | None
    ) -> Any:
        available = {
            "inputs": inputs,
            "outputs": outputs,
            "expectations": expectations,
            "trace": trace,
        }
        kwargs = {k: available[k] for k in self._wants}
        if self._is_async:
            return await self._fn(**kwargs)
        return await asyncio.to_thread(self._fn, **kwargs)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["function"] = f"{self._fn.__module__}.{self._fn.__qualname__}"
        return info


@overload
def scorer(func: Callable[..., Any]) -> FunctionScorer: ...
@overload
def scorer(
    func: None = None, *, name: str | None = None, aggregations: Sequence[str] | None = None
) -> Callable[[Callable[..., Any]], FunctionScorer]: ...


def scorer(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    aggregations: Sequence[str] | None = None,
) -> Any:
    """Make a scorer from a function whose parameters are any of inputs, outputs, expectations, trace.

    >>> @scorer
    ... def is_short(outputs) -> bool:
    ...     return len(outputs) < 200
    """
    if func is None:
        return lambda f: FunctionScorer(f, name, aggregations)
    return FunctionScorer(func, name, aggregations)


def to_feedbacks(scorer_: Scorer, value: Any) -> list[Feedback]:
    """A scorer's return value as Feedback objects named after the scorer (unless they are named)."""
    if value is None:
        return []
    items = (
        value
        if isinstance(value, list) and all(isinstance(v, Feedback) for v in value) and value
        else [value]
    )
    out = []
    code = AssessmentSource(AssessmentSourceType.CODE, scorer_.name)
    for item in items:
        if isinstance(item, Feedback):
            if item.name == "feedback":
                item.name = scorer_.name
            out.append(item)
        elif isinstance(item, BaseException):
            out.append(
                Feedback(
                    scorer_.name, None, source=code, error=AssessmentError.from_exception(item)
                )
            )
        else:
            out.append(Feedback(scorer_.name, item, source=code))
    return out
