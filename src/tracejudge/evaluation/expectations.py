"""The ground truth people logged on a trace, as evaluation rows and dataset records use it."""

from __future__ import annotations

from typing import Any

from tracejudge.entities import Expectation, Trace


def logged_expectations(trace: Trace) -> dict[str, Any]:
    """The valid Expectations logged on a trace, by name (the newest wins)."""
    return {
        a.name: a.value for a in trace.info.assessments if isinstance(a, Expectation) and a.valid
    }


__all__ = ["logged_expectations"]
