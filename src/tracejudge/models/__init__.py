"""LLM access: one interface over OpenAI, Anthropic, OpenAI-compatible servers, LiteLLM and
in-process llama.cpp models, with retries, adaptive concurrency, a call cache and cost."""

from tracejudge.models.local_models import LOCAL_MODELS
from tracejudge.models.model import ChatModel
from tracejudge.models.registry import (
    JUDGE_MODEL_ENV,
    default_model_uri,
    get_model,
    reset_models,
    resolve_model,
)
from tracejudge.models.sync import run_sync
from tracejudge.models.types import ChatRequest, ChatResult, Message, TokenLogprob, Usage
from tracejudge.models.uri import ACCEPTED_FORMS, ModelSpec, parse_model_uri
from tracejudge.models.usage import UsageMeter, track_usage

__all__ = [
    "ACCEPTED_FORMS",
    "JUDGE_MODEL_ENV",
    "LOCAL_MODELS",
    "ChatModel",
    "ChatRequest",
    "ChatResult",
    "Message",
    "ModelSpec",
    "TokenLogprob",
    "Usage",
    "UsageMeter",
    "default_model_uri",
    "get_model",
    "parse_model_uri",
    "reset_models",
    "resolve_model",
    "run_sync",
    "track_usage",
]
