"""The built-in scorers by the names people type (CLI ``--scorers``, saved configurations)."""

from __future__ import annotations

from tracejudge.errors import InvalidArgumentError
from tracejudge.scorer import Scorer
from tracejudge.scorers.builtin import (
    Correctness,
    ExpectationsGuidelines,
    JudgeScorer,
    RelevanceToQuery,
    RetrievalGroundedness,
    RetrievalRelevance,
    RetrievalSufficiency,
    Safety,
    Trustworthiness,
)

BUILTIN_SCORERS: dict[str, type[JudgeScorer] | type[Trustworthiness]] = {
    "trustworthiness": Trustworthiness,
    "groundedness": RetrievalGroundedness,
    "retrieval_groundedness": RetrievalGroundedness,
    "relevance": RelevanceToQuery,
    "relevance_to_query": RelevanceToQuery,
    "retrieval_relevance": RetrievalRelevance,
    "sufficiency": RetrievalSufficiency,
    "retrieval_sufficiency": RetrievalSufficiency,
    "correctness": Correctness,
    "safety": Safety,
    "expectations_guidelines": ExpectationsGuidelines,
}
"""Name (and short alias) -> scorer class. Guidelines take their own name and text, so they are
made with ``Guidelines(name=..., guidelines=...)`` rather than looked up here."""


def builtin_scorer(name: str, model: str | None = None, preset: str = "medium") -> Scorer:
    """A built-in scorer by name, judged by ``model`` (``preset``: the trust score's quality)."""
    cls = BUILTIN_SCORERS.get(name)
    if cls is None:
        raise InvalidArgumentError(
            f"Unknown scorer {name!r}; known: {', '.join(sorted(BUILTIN_SCORERS))}."
        )
    if cls is Trustworthiness:
        return Trustworthiness(model=model, quality_preset=preset)
    return cls(model=model)
