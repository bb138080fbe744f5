"""Any provider LiteLLM reaches: ``litellm:/PROVIDER/MODEL`` (optional extra ``[litellm]``)."""

from __future__ import annotations

import os
from typing import Any

from tracejudge.errors import ModelNotAvailableError
from tracejudge.models.providers.base import Provider
from tracejudge.models.providers.openai_provider import map_openai_error, parse_choice_logprobs
from tracejudge.models.types import ChatRequest, ChatResult, Usage
from tracejudge.models.uri import ModelSpec


class LiteLLMProvider(Provider):
    supports_logprobs = True

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch at import
        try:
            import litellm
        except ImportError:
            raise ModelNotAvailableError(
                "LiteLLM is not installed: pip install 'tracejudge[litellm]'"
            ) from None
        litellm.suppress_debug_info = True
        key_env = spec.params.get("api_key_env")
        self.api_key = os.environ.get(key_env) if key_env else None

    def request_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.spec.model,
            "messages": list(request.messages),
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "num_retries": 0,
        }
        if "api_base" in self.spec.params:
            kwargs["api_base"] = self.spec.params["api_base"]
        if self.api_key:
            kwargs["api_key"] = self.api_key
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.logprobs:
            kwargs["logprobs"] = True
            if request.top_logprobs:
                kwargs["top_logprobs"] = request.top_logprobs
        return kwargs

    async def complete(self, request: ChatRequest) -> ChatResult:
        import litellm

        try:
            response = await litellm.acompletion(**self.request_kwargs(request))
        except Exception as exc:  # LiteLLM raises subclasses of openai's exceptions
            raise map_openai_error(exc, self.model_id) from exc
        choice = response.choices[0]
        usage = getattr(response, "usage", None)
        return ChatResult(
            text=choice.message.content or "",
            model_id=self.model_id,
            usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(),
            logprobs=parse_choice_logprobs(getattr(choice, "logprobs", None))
            if request.logprobs
            else None,
            finish_reason=choice.finish_reason,
        )
