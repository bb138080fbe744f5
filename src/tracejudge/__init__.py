"""tracejudge: capture the traces of an LLM application and find its bad responses.

>>> import tracejudge
>>> @tracejudge.trace
... def answer(question: str) -> str: ...
>>> tracejudge.search_traces(filter_string="feedback.trustworthiness < 0.5")
"""

from tracejudge.entities import (
    AssessmentSource,
    AssessmentSourceType,
    Document,
    Expectation,
    Feedback,
    SpanType,
    Trace,
)
from tracejudge.errors import TraceJudgeError
from tracejudge.evaluation import (
    RayExecutor,
    TraceQuery,
    compare_runs,
    evaluate,
    get_run,
    search_runs,
)
from tracejudge.store import get_tracking_uri, set_tracking_uri
from tracejudge.tracing import (
    Client,
    continue_trace,
    delete_traces,
    flush,
    get_active_trace_id,
    get_current_active_span,
    get_experiment_by_name,
    get_export_stats,
    get_last_active_trace_id,
    get_tracing_context_headers,
    search_traces,
    set_experiment,
    start_span,
    trace,
    trace_stats,
    update_current_trace,
)
from tracejudge.tracing.fluent_assessments import (
    delete_assessment,
    delete_trace_tag,
    get_assessment,
    get_trace,
    log_expectation,
    log_feedback,
    override_feedback,
    set_trace_tag,
    update_assessment,
)

__version__ = "0.1.0"

_SUBMODULES = frozenset(
    {"client", "datasets", "entities", "evaluation", "integrations", "judges", "models", "openai", "scorers",
     "server", "store", "testing", "tracing", "trust", "ui"}
)  # fmt: skip


def __getattr__(name: str) -> object:
    """Submodules as attributes on first use (``tracejudge.openai.autolog()`` after only
    ``import tracejudge``, as ``mlflow.openai`` works), without importing them all up front."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"tracejudge.{name}")
    raise AttributeError(f"module 'tracejudge' has no attribute {name!r}")


__all__ = [
    "AssessmentSource",
    "AssessmentSourceType",
    "Client",
    "Document",
    "Expectation",
    "Feedback",
    "RayExecutor",
    "SpanType",
    "Trace",
    "TraceJudgeError",
    "TraceQuery",
    "__version__",
    "compare_runs",
    "continue_trace",
    "delete_assessment",
    "delete_trace_tag",
    "delete_traces",
    "evaluate",
    "flush",
    "get_active_trace_id",
    "get_assessment",
    "get_current_active_span",
    "get_experiment_by_name",
    "get_export_stats",
    "get_last_active_trace_id",
    "get_run",
    "get_trace",
    "get_tracing_context_headers",
    "get_tracking_uri",
    "log_expectation",
    "log_feedback",
    "override_feedback",
    "search_runs",
    "search_traces",
    "set_experiment",
    "set_trace_tag",
    "set_tracking_uri",
    "start_span",
    "trace",
    "trace_stats",
    "update_assessment",
    "update_current_trace",
]
