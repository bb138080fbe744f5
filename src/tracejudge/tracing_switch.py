"""The switch that keeps tracejudge's own model calls out of the application's traces.

A leaf module: the model layer turns it on around every provider call, and the tracing SDK
reads it, without either importing the other.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_disabled: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "tracejudge_tracing_disabled", default=False
)


@contextlib.contextmanager
def tracing_disabled() -> Iterator[None]:
    """Record no spans in this block (and in tasks it starts): traced functions just run.

    tracejudge's own judge calls run in such a block, so autologged clients do not add the
    judges' traffic to the application's traces.
    """
    token = _disabled.set(True)
    try:
        yield
    finally:
        _disabled.reset(token)


def tracing_is_off() -> bool:
    """True inside a :func:`tracing_disabled` block."""
    return _disabled.get()
