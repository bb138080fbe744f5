"""Quality presets and options of the trust score: how many calls buy how much accuracy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tracejudge.errors import InvalidArgumentError

SIMILARITY_MEASURES = ("llm", "embedding", "string")
PARTS = ("self_reflection", "consistency", "exact_match", "token_probability")
LOG_KEYS = ("explanation", "per_component")


@dataclass(frozen=True)
class TrustOptions:
    num_self_reflections: int = 4
    num_consistency_samples: int = 3
    similarity_measure: str = "string"
    max_tokens: int = 256
    """Longest response ``prompt()`` generates, and longest consistency sample."""
    weights: Mapping[str, float] = field(default_factory=dict)
    """Weight of each part; a part not named takes the model's weight
    (:mod:`tracejudge.trust.weights`)."""
    log: tuple[str, ...] = ()
    early_stop: bool = True
    """Draw the consistency samples first and skip the self-reflections when every sample agrees
    with the response or every one contradicts it. Measured with the local model on its dev
    split: it fired on 25 of 70 items, saved 1.4 of 7-8 calls per item on average, and cost
    0.003 (generated answers) and 0.020 (given answers) of AUROC."""
    early_stop_margin: float = 0.25
    """"Agrees" means a sample's similarity to the response is within this of 1, "contradicts"
    within this of 0."""
    explanation_threshold: float = 0.8
    max_concurrency: int = 16
    """Items of a batch scored at once (each model also has its own adaptive limit)."""
    model: str | None = None

    def calls_per_item(self) -> int:
        """Model calls to score one given response, at most (early stop can save the reflections)."""
        per_sample = 2 if self.similarity_measure == "llm" else 1
        return self.num_self_reflections + self.num_consistency_samples * per_sample


PRESETS: dict[str, TrustOptions] = {
    # calls per scored item: base 1, low 2, medium 4 + 3 samples, high 4 + 5 samples x 2, best 5 + 8 x 2
    "base": TrustOptions(num_self_reflections=1, num_consistency_samples=0, early_stop=False),
    "low": TrustOptions(num_self_reflections=2, num_consistency_samples=0, early_stop=False),
    "medium": TrustOptions(
        num_self_reflections=4, num_consistency_samples=3, similarity_measure="string"
    ),
    "high": TrustOptions(
        num_self_reflections=4, num_consistency_samples=5, similarity_measure="llm"
    ),
    "best": TrustOptions(
        num_self_reflections=5, num_consistency_samples=8, similarity_measure="llm"
    ),
}


def resolve_options(
    quality_preset: str, options: Mapping[str, Any] | TrustOptions | None
) -> TrustOptions:
    """The preset's options with the caller's overrides, validated."""
    if quality_preset not in PRESETS:
        raise InvalidArgumentError(
            f"Unknown quality_preset {quality_preset!r}; expected one of {', '.join(PRESETS)}."
        )
    resolved = PRESETS[quality_preset]
    if isinstance(options, TrustOptions):
        resolved = options
    elif options:
        known = set(TrustOptions.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise InvalidArgumentError(
                f"Unknown trust option(s) {unknown}; known: {sorted(known)}."
            )
        changes = dict(options)
        if "weights" in changes:
            changes["weights"] = dict(changes["weights"])
        if "log" in changes:
            changes["log"] = tuple(changes["log"])
        resolved = replace(resolved, **changes)
    _validate(resolved)
    return resolved


def _validate(o: TrustOptions) -> None:
    from tracejudge.trust.reflection import REFLECTIONS

    if not 0 <= o.num_self_reflections <= len(REFLECTIONS):
        raise InvalidArgumentError(f"num_self_reflections must be 0..{len(REFLECTIONS)}.")
    if not 0 <= o.num_consistency_samples <= 20:
        raise InvalidArgumentError("num_consistency_samples must be 0..20.")
    if o.num_self_reflections == 0 and o.num_consistency_samples == 0:
        raise InvalidArgumentError("At least one self-reflection or consistency sample is needed.")
    if o.similarity_measure not in SIMILARITY_MEASURES:
        raise InvalidArgumentError(f"similarity_measure must be one of {SIMILARITY_MEASURES}.")
    unknown = set(o.weights) - set(PARTS)
    if unknown or any(w < 0 for w in o.weights.values()):
        raise InvalidArgumentError(
            f"weights take non-negative values for {PARTS}; got {dict(o.weights)}."
        )
    bad_log = set(o.log) - set(LOG_KEYS)
    if bad_log:
        raise InvalidArgumentError(f"log takes {LOG_KEYS}; got {sorted(bad_log)}.")
    if o.max_tokens < 16 or o.max_concurrency < 1:
        raise InvalidArgumentError("max_tokens must be >= 16 and max_concurrency >= 1.")
