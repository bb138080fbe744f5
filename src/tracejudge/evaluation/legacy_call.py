"""MLflow 2's way of calling evaluate: ``evaluate(model=None, data=df, predictions="column",
targets=..., extra_metrics=[...], evaluator_config={"col_mapping": {...}})``.

The DataFrame's rows become evaluation rows (every other column an input the metrics can ask
for by name, or by the name ``col_mapping`` gives it), and the result carries MLflow 2's
``tables["eval_results_table"]``: the data's columns, then ``<metric>/score`` and
``<metric>/justification`` for each metric or scorer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from tracejudge.errors import InvalidArgumentError

SUPPORTED_CONFIG = {"col_mapping"}


def check_legacy_arguments(
    model: Any, model_type: str | None, evaluator_config: Mapping[str, Any] | None
) -> dict[str, str]:
    """The column mapping; a clear error for what MLflow 2 accepted and we do not."""
    if model is not None:
        raise InvalidArgumentError(
            "evaluate(model=...) takes no model here: pass model=None with predictions='column', "
            "or predict_fn=your_function."
        )
    config = dict(evaluator_config or {})
    unknown = sorted(set(config) - SUPPORTED_CONFIG)
    if unknown:
        raise InvalidArgumentError(
            f"evaluator_config keys {unknown} are not supported; only 'col_mapping' is."
        )
    mapping = config.get("col_mapping") or {}
    if not isinstance(mapping, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise InvalidArgumentError("evaluator_config['col_mapping'] maps names to column names.")
    del model_type  # accepted for compatibility; the metrics decide what is computed
    return dict(mapping)


def legacy_rows(data: Any, predictions: str, targets: str | None) -> list[dict[str, Any]]:
    """Rows from a DataFrame with the predictions (and targets) in named columns."""
    if not isinstance(data, pd.DataFrame):
        raise InvalidArgumentError("evaluate(predictions='column') needs data as a DataFrame.")
    for column in (predictions, targets):
        if column is not None and column not in data.columns:
            raise InvalidArgumentError(
                f"The data has no column {column!r} (it has {list(data.columns)})."
            )
    rows = []
    for record in data.to_dict(orient="records"):
        inputs = {k: v for k, v in record.items() if k not in (predictions, targets)}
        row: dict[str, Any] = {"inputs": inputs, "outputs": record[predictions]}
        if targets is not None:
            row["expectations"] = {"expected_response": record[targets]}
        rows.append(row)
    return rows


def results_table(data: pd.DataFrame | None, result_df: pd.DataFrame) -> pd.DataFrame:
    """MLflow 2's ``eval_results_table``: the data's columns (or inputs and outputs), then a
    score and a justification column per verdict name."""
    base = (
        data.reset_index(drop=True).copy()
        if data is not None
        else result_df[[c for c in ("trace_id", "inputs", "outputs") if c in result_df]].copy()
    )
    for column in result_df.columns:
        name, _, part = column.rpartition("/")
        if part == "value":
            base[f"{name}/score"] = result_df[column].to_numpy()
        elif part == "rationale":
            base[f"{name}/justification"] = result_df[column].to_numpy()
    return base
