"""Plain data: traces, spans, documents, assessments and experiments.

Entities know nothing of storage or HTTP; each one round-trips through ``to_dict``/``from_dict``.
"""

from tracejudge.entities.assessment import (
    Assessment,
    AssessmentError,
    AssessmentSource,
    AssessmentSourceType,
    Expectation,
    Feedback,
)
from tracejudge.entities.document import Document
from tracejudge.entities.evaluation_run import EvaluationRun, RunStatus
from tracejudge.entities.experiment import (
    DEFAULT_EXPERIMENT_ID,
    DEFAULT_EXPERIMENT_NAME,
    Experiment,
)
from tracejudge.entities.registered_scorer import RegisteredScorer, ScorerStatus
from tracejudge.entities.span import Span, SpanEvent, SpanStatus, SpanStatusCode, SpanType
from tracejudge.entities.trace import Trace, TraceData, TraceInfo, TraceState

__all__ = [
    "DEFAULT_EXPERIMENT_ID",
    "DEFAULT_EXPERIMENT_NAME",
    "Assessment",
    "AssessmentError",
    "AssessmentSource",
    "AssessmentSourceType",
    "Document",
    "EvaluationRun",
    "Expectation",
    "Experiment",
    "Feedback",
    "RegisteredScorer",
    "RunStatus",
    "ScorerStatus",
    "Span",
    "SpanEvent",
    "SpanStatus",
    "SpanStatusCode",
    "SpanType",
    "Trace",
    "TraceData",
    "TraceInfo",
    "TraceState",
]
