"""Model URIs: ``provider:/model?param=value``."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from tracejudge.errors import ModelURIError

ACCEPTED_FORMS = (
    "openai:/MODEL (e.g. openai:/gpt-4.1-mini; needs OPENAI_API_KEY)",
    "anthropic:/MODEL (e.g. anthropic:/claude-haiku-4-5; needs ANTHROPIC_API_KEY)",
    "openai-compatible:/MODEL?base_url=http://127.0.0.1:8000/v1 (vLLM, Ollama, llama.cpp server, LM Studio)",
    "litellm:/PROVIDER/MODEL (e.g. litellm:/groq/llama-3.1-8b-instant; needs tracejudge[litellm])",
    "local:/default, local:/NAME or local:/PATH.gguf (in-process llama.cpp; needs tracejudge[local])",
)
PROVIDERS = ("openai", "anthropic", "openai-compatible", "litellm", "local")
COMMON_PARAMS = {"timeout", "max_concurrency", "max_retries"}


@dataclass(frozen=True)
class ModelSpec:
    provider: str
    model: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.provider}:/{self.model}" + (f"?{query}" if query else "")

    def float_param(self, name: str, default: float) -> float:
        raw = self.params.get(name)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            raise ModelURIError(f"Model URI parameter {name}={raw!r} is not a number.") from None


def _error(uri: str, why: str) -> ModelURIError:
    forms = "\n  ".join(ACCEPTED_FORMS)
    return ModelURIError(f"Invalid model URI {uri!r}: {why}. Accepted forms:\n  {forms}")


def parse_model_uri(uri: str) -> ModelSpec:
    if not isinstance(uri, str) or ":" not in uri:
        raise _error(str(uri), "expected provider:/model")
    provider, _, rest = uri.partition(":")
    provider = provider.strip().lower()
    if provider not in PROVIDERS:
        raise _error(uri, f"unknown provider {provider!r} (known: {', '.join(PROVIDERS)})")
    if rest.startswith("/"):
        rest = rest[1:]
    model, _, query = rest.partition("?")
    if not model.strip():
        raise _error(uri, "the model name is missing")
    params = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    if provider == "openai-compatible" and not params.get("base_url"):
        raise _error(uri, "openai-compatible needs ?base_url=http://host:port/v1")
    if provider == "litellm" and "/" not in model:
        raise _error(uri, "litellm needs PROVIDER/MODEL, e.g. litellm:/groq/llama-3.1-8b-instant")
    return ModelSpec(provider, model.strip(), params)
