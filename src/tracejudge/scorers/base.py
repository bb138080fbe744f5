"""``@scorer`` makes a scorer from a function; subclass :class:`Scorer` (``tracejudge.scorer``)
for scorers with configuration or state."""

from __future__ import annotations

import asyncio
import functools
import inspect
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
from tracejudge.scorer import PARAMETERS, Scorer


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
