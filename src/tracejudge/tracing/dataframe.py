"""The pandas form of search results: one row per trace, columns users can filter and read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from tracejudge.entities import Expectation, Trace

COLUMNS = [
    "trace_id",
    "trace",
    "client_request_id",
    "state",
    "request_time",
    "execution_duration",
    "request",
    "response",
    "inputs",
    "outputs",
    "expectations",
    "assessments",
    "tags",
    "trace_metadata",
    "spans",
]


def _row(trace: Trace) -> dict[str, Any]:
    info = trace.info
    expectations = {
        a.name: a.value for a in info.assessments if isinstance(a, Expectation) and a.valid
    }
    return {
        "trace_id": info.trace_id,
        "trace": trace,
        "client_request_id": info.client_request_id,
        "state": info.state.value,
        "request_time": info.request_time,
        "execution_duration": info.execution_duration,
        "request": trace.data.request,
        "response": trace.data.response,
        "inputs": trace.data.inputs,
        "outputs": trace.data.outputs,
        "expectations": expectations,
        "assessments": [a.to_dict() for a in info.assessments],
        "tags": dict(info.tags),
        "trace_metadata": dict(info.trace_metadata),
        "spans": [s.to_dict() for s in trace.data.spans],
    }


def traces_to_dataframe(traces: Sequence[Trace]) -> pd.DataFrame:
    """``trace`` holds the Trace object; ``request``/``response`` the root span's JSON text,
    ``inputs``/``outputs`` the same decoded; ``expectations`` maps name to value."""
    rows = [_row(t) for t in traces]
    # object columns keep Python values as they are (pandas would turn None into NaN in a string column)
    return pd.DataFrame({c: pd.Series([r[c] for r in rows], dtype=object) for c in COLUMNS})
