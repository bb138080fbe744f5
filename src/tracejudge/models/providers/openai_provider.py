"""OpenAI and OpenAI-compatible servers (vLLM, Ollama, llama.cpp server, LM Studio) via ``openai``."""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any

from tracejudge.errors import (
    ModelAuthenticationError,
    ModelBadRequestError,
    ModelError,
    ModelNotAvailableError,
    ModelRateLimitError,
    ModelTimeoutError,
    ModelUnavailableError,
)
from tracejudge.models.providers.base import Provider
from tracejudge.models.retry import parse_retry_after
from tracejudge.models.sync import close_with_loop
from tracejudge.models.types import ChatRequest, ChatResult, TokenLogprob, Usage
from tracejudge.models.uri import ModelSpec


def map_openai_error(exc: Exception, what: str) -> ModelError:
    """The typed error for an exception of the ``openai`` library (also raised by LiteLLM)."""
    import openai

    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    retry_after = parse_retry_after(getattr(response, "headers", None))
    detail = f"{what}: {type(exc).__name__}: {exc}"
    if isinstance(exc, openai.APITimeoutError):
        return ModelTimeoutError(detail)
    if isinstance(exc, openai.APIConnectionError):
        return ModelUnavailableError(detail)
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return ModelAuthenticationError(detail, status=status)
    if isinstance(exc, openai.RateLimitError):
        return ModelRateLimitError(detail, retry_after=retry_after, status=status)
    if isinstance(exc, openai.NotFoundError):  # every call would fail alike: stop the run
        return ModelNotAvailableError(
            f"{detail} (the model or its endpoint does not exist: check the model URI)",
            status=status,
        )
    if isinstance(exc, openai.APIStatusError) and (status or 0) >= 500:
        return ModelUnavailableError(detail, retry_after=retry_after, status=status)
    if isinstance(exc, openai.APIStatusError):
        return ModelBadRequestError(detail, status=status)
    if isinstance(exc, openai.APIError):  # e.g. a body that is not JSON
        return ModelUnavailableError(detail)
    return ModelBadRequestError(detail)


def parse_choice_logprobs(logprobs: Any) -> tuple[TokenLogprob, ...] | None:
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    if not content:
        return None
    return tuple(
        TokenLogprob(
            token.token,
            float(token.logprob),
            tuple((alt.token, float(alt.logprob)) for alt in (token.top_logprobs or [])),
        )
        for token in content
    )


class OpenAIProvider(Provider):
    """``openai:/MODEL`` and ``openai-compatible:/MODEL?base_url=...``."""

    supports_logprobs = True

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        try:
            import openai  # noqa: F401
        except ImportError:
            raise ModelNotAvailableError(
                "The openai package is not installed: pip install 'tracejudge[openai]'"
            ) from None
        self.compatible = spec.provider == "openai-compatible"
        self.base_url = spec.params.get("base_url")
        key_env = spec.params.get("api_key_env", "OPENAI_API_KEY")
        self.api_key = os.environ.get(key_env) or ("not-needed" if self.compatible else None)
        if self.api_key is None:
            raise ModelAuthenticationError(f"{spec.uri}: set {key_env} to call OpenAI")
        self.response_format = spec.params.get(
            "response_format", "none" if self.compatible else "json_schema"
        )
        if self.compatible and spec.params.get("logprobs") == "0":
            self.supports_logprobs = False
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> Any:
        """One AsyncOpenAI per event loop: its connection pool belongs to the loop it was made in."""
        import openai

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = openai.AsyncOpenAI(api_key=self.api_key, base_url=self.base_url, max_retries=0)
            self._clients[loop] = client
            close_with_loop(client.close)  # on this loop, when run_sync made it
        return client

    def _kwargs(self, request: ChatRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.spec.model,
            "messages": list(request.messages),
            "temperature": request.temperature,
        }
        kwargs["max_tokens" if self.compatible else "max_completion_tokens"] = request.max_tokens
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.logprobs:
            kwargs["logprobs"] = True
            if request.top_logprobs:
                kwargs["top_logprobs"] = request.top_logprobs
        if request.json_schema is not None and self.response_format == "json_schema":
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": request.json_schema, "strict": True},
            }
        elif request.json_schema is not None and self.response_format == "json_object":
            kwargs["response_format"] = {"type": "json_object"}
        return kwargs

    async def complete(self, request: ChatRequest) -> ChatResult:
        try:
            response = await self._client().chat.completions.create(**self._kwargs(request))
        except Exception as exc:
            raise map_openai_error(exc, self.model_id) from exc
        if not response.choices:
            raise ModelUnavailableError(f"{self.model_id}: the response has no choices")
        choice = response.choices[0]
        usage = response.usage
        return ChatResult(
            text=choice.message.content or "",
            model_id=self.model_id,
            usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(),
            logprobs=parse_choice_logprobs(choice.logprobs) if request.logprobs else None,
            finish_reason=choice.finish_reason,
        )
