"""What evaluate() returns: the run id, its metrics and a table of every row's verdicts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tracejudge.entities import EvaluationRun, Feedback
from tracejudge.evaluation.dataset import EvalRow
from tracejudge.evaluation.legacy_call import results_table


@dataclass
class EvaluationResult:
    run_id: str
    metrics: dict[str, float]
    frame: pd.DataFrame | None
    """The table of every row's verdicts; None until first read when ``load_frame`` is given
    (a run scored in batches on workers: the driver never held its rows)."""
    run: EvaluationRun
    delivered: dict[str, int] | None = None
    """When the data takes its verdicts back (``receive_verdicts``, e.g. traces searched in
    MLflow): what it did with them (written, replaced, failed)."""
    legacy_table: pd.DataFrame | None = None
    """For MLflow 2's call (``predictions="column"``): the data's columns, ``<name>/score`` and
    ``<name>/justification``."""
    load_frame: Callable[[], pd.DataFrame] | None = field(default=None, repr=False)

    @property
    def result_df(self) -> pd.DataFrame:
        if self.frame is None:
            self.frame = self.load_frame() if self.load_frame is not None else result_frame([], [])
        return self.frame

    @property
    def tables(self) -> dict[str, pd.DataFrame]:  # MLflow-style access (3.x and 2.x names)
        legacy = self.legacy_table
        if legacy is None:  # not an MLflow 2 call: the same table, from inputs and outputs
            legacy = results_table(None, self.result_df)
        return {"eval_results": self.result_df, "eval_results_table": legacy}

    def __repr__(self) -> str:
        rows = self.run.row_count if self.frame is None else len(self.frame)
        return f"EvaluationResult(run_id={self.run_id!r}, rows={rows}, metrics={len(self.metrics)})"


def _cell(feedbacks: Sequence[Feedback], attribute: str) -> Any:
    if attribute in ("score", "suspected_injection"):
        values = [f.metadata.get(attribute) for f in feedbacks]
    elif attribute == "error":
        values = [
            f"{f.error.error_code}: {f.error.error_message}" if f.error else None for f in feedbacks
        ]
    else:
        values = [getattr(f, attribute) for f in feedbacks]
    return values[0] if len(values) == 1 else values


def result_frame(
    rows: Sequence[EvalRow], feedback_by_row: Sequence[Sequence[Feedback]]
) -> pd.DataFrame:
    """One row per evaluated row: trace_id, inputs, outputs, expectations, then for each
    feedback name ``<name>/value``, ``<name>/rationale``, ``<name>/error``, ``<name>/score`` (the
    judge's continuous score, where it gives one) and, when any row's judged text looked like a
    prompt injection, ``<name>/suspected_injection``. A name with several feedbacks on one row
    (per retrieved document, say) gets lists."""
    names: list[str] = []
    flagged: set[str] = set()
    for feedbacks in feedback_by_row:
        for f in feedbacks:
            if f.name not in names:
                names.append(f.name)
            if f.metadata.get("suspected_injection"):
                flagged.add(f.name)
    records = []
    for row, feedbacks in zip(rows, feedback_by_row, strict=True):
        record: dict[str, Any] = {
            "trace_id": row.trace_id,
            "inputs": row.inputs,
            "outputs": row.outputs,
            "expectations": row.expectations,
        }
        for name in names:
            mine = [f for f in feedbacks if f.name == name]
            attributes = ["value", "rationale", "error", "score"]
            if name in flagged:
                attributes.append("suspected_injection")
            for attribute in attributes:
                record[f"{name}/{attribute}"] = _cell(mine, attribute) if mine else None
        records.append(record)
    columns = list(records[0]) if records else ["trace_id", "inputs", "outputs", "expectations"]
    # object columns keep Python values as they are (pandas would turn None into NaN in a string column)
    return pd.DataFrame({c: pd.Series([r.get(c) for r in records], dtype=object) for c in columns})
