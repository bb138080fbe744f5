"""evaluate(): scorers over rows or traces, verdicts written onto traces, stored runs."""

from tracejudge.evaluation.evaluate import evaluate
from tracejudge.evaluation.executors import LocalExecutor
from tracejudge.evaluation.ray_executor import RayExecutor
from tracejudge.evaluation.result import EvaluationResult
from tracejudge.evaluation.runs import RunComparison, compare_runs, get_run, search_runs
from tracejudge.evaluation.selection import TraceQuery

__all__ = [
    "EvaluationResult",
    "LocalExecutor",
    "RayExecutor",
    "RunComparison",
    "TraceQuery",
    "compare_runs",
    "evaluate",
    "get_run",
    "search_runs",
]
