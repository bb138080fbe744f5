"""evaluate(): scorers over rows or traces, verdicts written onto traces, stored runs."""

from tracejudge.evaluation.evaluate import evaluate
from tracejudge.evaluation.result import EvaluationResult
from tracejudge.evaluation.runs import RunComparison, compare_runs, get_run, search_runs

__all__ = [
    "EvaluationResult",
    "RunComparison",
    "compare_runs",
    "evaluate",
    "get_run",
    "search_runs",
]
