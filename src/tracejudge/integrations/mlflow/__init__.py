"""MLflow interop (``pip install 'tracejudge[mlflow]'``, MLflow 3.3 or newer 3.x).

- ``to_mlflow_scorer(s)``: any tracejudge scorer or judge as an MLflow 3 scorer for
  ``mlflow.genai.evaluate``; ``trust_metric()``: the trust score as an MLflow 2-style metric for
  ``mlflow.evaluate(extra_metrics=[...])``.
- ``search_traces(tracking_uri, experiment=...)``: MLflow's traces, ready for
  ``tracejudge.evaluate``, which writes the verdicts back onto them (``write_back=True``).
- ``import_experiment`` / ``export_experiment``: copy traces with their assessments either way.

MLflow itself is imported only when one of these is called.
"""

from tracejudge.integrations.mlflow.compat import SUPPORTED, check_version, require_mlflow
from tracejudge.integrations.mlflow.scorers import to_mlflow_scorer, to_mlflow_scorers, trust_metric
from tracejudge.integrations.mlflow.traces import MlflowTraces, search_traces
from tracejudge.integrations.mlflow.transfer import (
    TransferCounts,
    export_experiment,
    import_experiment,
)

__all__ = [
    "SUPPORTED",
    "MlflowTraces",
    "TransferCounts",
    "check_version",
    "export_experiment",
    "import_experiment",
    "require_mlflow",
    "search_traces",
    "to_mlflow_scorer",
    "to_mlflow_scorers",
    "trust_metric",
]
