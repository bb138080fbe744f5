"""LLM judges: functions that return a Feedback ("yes"/"no" unless stated) with a rationale."""

from tracejudge.judges.agreement import AgreementReport, Disagreement, agreement
from tracejudge.judges.builtin import (
    ais_context_relevant,
    ais_context_sufficient,
    ais_correct,
    ais_grounded,
    ais_relevant_to_query,
    ais_safe,
    ameets_guidelines,
    is_context_relevant,
    is_context_sufficient,
    is_correct,
    is_grounded,
    is_relevant_to_query,
    is_safe,
    meets_guidelines,
)
from tracejudge.judges.custom import Judge, make_judge
from tracejudge.judges.formatting import format_context

__all__ = [
    "AgreementReport",
    "Disagreement",
    "Judge",
    "agreement",
    "ais_context_relevant",
    "ais_context_sufficient",
    "ais_correct",
    "ais_grounded",
    "ais_relevant_to_query",
    "ais_safe",
    "ameets_guidelines",
    "format_context",
    "is_context_relevant",
    "is_context_sufficient",
    "is_correct",
    "is_grounded",
    "is_relevant_to_query",
    "is_safe",
    "make_judge",
    "meets_guidelines",
]
