"""Scorers: what evaluate() runs on each row. ``@scorer`` for functions, built-ins for judges."""

from tracejudge.scorer import AGGREGATIONS, Scorer
from tracejudge.scorers.base import FunctionScorer, scorer, to_feedbacks
from tracejudge.scorers.builtin import (
    Correctness,
    ExpectationsGuidelines,
    Guidelines,
    JudgeScorer,
    RelevanceToQuery,
    RetrievalGroundedness,
    RetrievalRelevance,
    RetrievalSufficiency,
    Safety,
    Trustworthiness,
)
from tracejudge.scorers.registration import (
    RegisteredScorerHandle,
    ScorerSamplingConfig,
    get_scorer,
    list_scorers,
    register_scorer,
)

__all__ = [
    "AGGREGATIONS",
    "Correctness",
    "ExpectationsGuidelines",
    "FunctionScorer",
    "Guidelines",
    "JudgeScorer",
    "RegisteredScorerHandle",
    "RelevanceToQuery",
    "RetrievalGroundedness",
    "RetrievalRelevance",
    "RetrievalSufficiency",
    "Safety",
    "Scorer",
    "ScorerSamplingConfig",
    "Trustworthiness",
    "get_scorer",
    "list_scorers",
    "register_scorer",
    "scorer",
    "to_feedbacks",
]
