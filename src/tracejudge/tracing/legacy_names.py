"""MLflow 2's ``request_id=`` keyword for the trace id, accepted wherever we take ``trace_id``
(MLflow 3 kept it as a deprecated alias, and the documents our users copy still pass it)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from tracejudge.errors import InvalidArgumentError

F = TypeVar("F", bound=Callable[..., Any])


def accepts_request_id(fn: F) -> F:
    position = list(inspect.signature(fn).parameters).index("trace_id")

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "request_id" in kwargs:
            if "trace_id" in kwargs or len(args) > position:
                raise InvalidArgumentError("Give the trace id once: trace_id or request_id.")
            kwargs["trace_id"] = kwargs.pop("request_id")
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
