"""``tracejudge.client``: where MLflow users look for the client (``mlflow.client.MlflowClient``).

The same :class:`~tracejudge.tracing.client.Client` under the names the documents use."""

from tracejudge.tracing.client import Client

TracejudgeClient = Client
MlflowClient = Client
"""So ``from mlflow.client import MlflowClient`` needs only its module name changed."""

__all__ = ["Client", "MlflowClient", "TracejudgeClient"]
