"""The trustworthiness score: how far to trust a response, with no ground truth."""

from tracejudge.trust.options import PRESETS, TrustOptions
from tracejudge.trust.scorer import TrustScore, TrustScorer, token_probability

__all__ = ["PRESETS", "TrustOptions", "TrustScore", "TrustScorer", "token_probability"]
