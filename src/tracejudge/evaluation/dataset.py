"""The rows evaluate() scores, from whatever form the data comes in."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tracejudge.entities import Trace
from tracejudge.entities._json import to_jsonable
from tracejudge.errors import InvalidArgumentError
from tracejudge.evaluation.datasets import EvaluationDataset, is_missing
from tracejudge.evaluation.expectations import logged_expectations

logger = logging.getLogger("tracejudge.evaluation")


@dataclass
class EvalRow:
    index: int
    inputs: Any = None
    outputs: Any = None
    expectations: dict[str, Any] = field(default_factory=dict)
    trace: Trace | None = None
    record_id: str | None = None
    """The evaluation dataset record the row came from."""

    @property
    def trace_id(self) -> str | None:
        return self.trace.info.trace_id if self.trace is not None else None


def _as_trace(value: Any, index: int) -> Trace | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, Trace):
        return value
    try:
        if isinstance(value, str):
            return Trace.from_json(value)
        if isinstance(value, Mapping):
            return Trace.from_dict(dict(value))
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgumentError(
            f"Row {index}: the 'trace' value is not a trace ({exc})."
        ) from None
    raise InvalidArgumentError(
        f"Row {index}: 'trace' must be a Trace, its dict or its JSON, not {type(value).__name__}."
    )


def _row(index: int, record: Mapping[str, Any]) -> EvalRow:
    trace = _as_trace(record.get("trace"), index)
    inputs = record.get("inputs")
    outputs = record.get("outputs")
    expectations = record.get("expectations")
    if is_missing(expectations):
        expectations = {}
    if not isinstance(expectations, Mapping):
        raise InvalidArgumentError(
            f"Row {index}: 'expectations' must be a dict, not {type(expectations).__name__}."
        )
    # a missing ground truth (NaN in a DataFrame column) is no expectation; the others as JSON
    # data (a numpy array read from Parquet becomes a list, a NaN inside it None, a Decimal text)
    expectations = {k: _plain(v) for k, v in expectations.items() if not is_missing(v)}
    if trace is not None:
        # the trace speaks for its inputs and outputs; logged expectations apply unless the row overrides them
        inputs = (
            trace.data.inputs if is_missing(inputs) or trace.data.request is not None else inputs
        )
        outputs = (
            trace.data.outputs
            if is_missing(outputs) or trace.data.response is not None
            else outputs
        )
        expectations = {**logged_expectations(trace), **expectations}
    elif is_missing(inputs):
        raise InvalidArgumentError(f"Row {index} has neither 'inputs' nor a 'trace'.")
    record_id = record.get("dataset_record_id")
    return EvalRow(
        index,
        inputs,
        None if is_missing(outputs) else outputs,
        dict(expectations),
        trace,
        None if is_missing(record_id) else str(record_id),
    )


def _plain(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist) and not isinstance(value, type):
        with contextlib.suppress(Exception):  # a tolist() that fails: the value as it is
            value = tolist()
    return to_jsonable(value)


def row_from_trace(trace: Trace, index: int = 0) -> EvalRow:
    """The row of a stored trace: its inputs, outputs and logged expectations."""
    return _row(index, {"trace": trace})


def rows_from_data(data: Any) -> list[EvalRow]:
    """Rows from a list of dicts, a DataFrame (including the one search_traces returns), a list
    of Traces or an evaluation dataset."""
    if isinstance(data, EvaluationDataset):
        data = data.to_evaluation_rows()
    if isinstance(data, pd.DataFrame):
        known = {"inputs", "outputs", "expectations", "trace"}
        if not known & set(data.columns):
            raise InvalidArgumentError(
                f"The DataFrame needs an 'inputs' or a 'trace' column; it has {list(data.columns)}."
            )
        records: Sequence[Any] = data.to_dict(orient="records")
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        records = data
    else:
        raise InvalidArgumentError(
            "evaluate(data=...) takes a list of dicts, a pandas DataFrame, a list of Traces or "
            "an EvaluationDataset, "
            f"not {type(data).__name__}."
        )
    rows = []
    for index, record in enumerate(records):
        if isinstance(record, Trace):
            rows.append(_row(index, {"trace": record}))
        elif isinstance(record, Mapping):
            unknown = set(record) - {
                "inputs",
                "outputs",
                "expectations",
                "trace",
                "trace_id",
                "tags",
                "dataset_record_id",
            }
            if unknown and not isinstance(data, pd.DataFrame):
                raise InvalidArgumentError(
                    f"Row {index} has unknown key(s) {sorted(unknown)}; rows take inputs, outputs, expectations, trace."
                )
            rows.append(_row(index, record))
        else:
            raise InvalidArgumentError(
                f"Row {index} is a {type(record).__name__}, not a dict or a Trace."
            )
    if not rows:
        raise InvalidArgumentError("evaluate(data=...) got no rows.")
    return _once_per_trace(rows)


def _once_per_trace(rows: list[EvalRow]) -> list[EvalRow]:
    """The rows without a second row for a trace already in them (concatenated search results,
    say): a run judges each trace once, so no trace gets two verdicts of one scorer from it."""
    seen: set[str] = set()
    kept, dropped = [], []
    for row in rows:
        trace_id = row.trace_id
        if trace_id is not None:
            if trace_id in seen:
                dropped.append(row.index)
                continue
            seen.add(trace_id)
        kept.append(row)
    if not dropped:
        return kept
    logger.warning(
        "evaluate(): row(s) %s repeat a trace given earlier in the data; each trace is scored "
        "once, and the rows that are left are numbered 0 to %d",
        ", ".join(map(str, dropped[:20])) + (", …" if len(dropped) > 20 else ""),
        len(kept) - 1,
    )
    # a row's index is its place among the rows scored (its verdicts' slot in the results)
    return [dataclasses.replace(row, index=i) for i, row in enumerate(kept)]
