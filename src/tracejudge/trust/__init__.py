"""The trustworthiness score: how far to trust a response, with no ground truth."""

from tracejudge.trust.options import PRESETS, TrustOptions
from tracejudge.trust.scorer import TrustScore, TrustScorer, token_probability

TLM = TrustScorer
"""Cleanlab's name: ``from tracejudge.trust import TLM; TLM(options={"log": ["explanation"]})``."""

__all__ = ["PRESETS", "TLM", "TrustOptions", "TrustScore", "TrustScorer", "token_probability"]
