"""Anthropic's Messages API via the ``anthropic`` library."""

from __future__ import annotations

import asyncio
import inspect
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
from tracejudge.models.types import ChatRequest, ChatResult, Usage
from tracejudge.models.uri import ModelSpec


def _map_error(exc: Exception, what: str) -> ModelError:
    import anthropic

    status = getattr(exc, "status_code", None)
    retry_after = parse_retry_after(getattr(getattr(exc, "response", None), "headers", None))
    detail = f"{what}: {type(exc).__name__}: {exc}"
    if isinstance(exc, anthropic.APITimeoutError):
        return ModelTimeoutError(detail)
    if isinstance(exc, anthropic.APIConnectionError):
        return ModelUnavailableError(detail)
    if isinstance(exc, (anthropic.AuthenticationError, anthropic.PermissionDeniedError)):
        return ModelAuthenticationError(detail, status=status)
    if isinstance(exc, anthropic.RateLimitError):
        return ModelRateLimitError(detail, retry_after=retry_after, status=status)
    if isinstance(exc, anthropic.APIStatusError) and (status or 0) >= 500:
        return ModelUnavailableError(detail, retry_after=retry_after, status=status)
    if isinstance(exc, anthropic.APIStatusError):
        return ModelBadRequestError(detail, status=status)
    if isinstance(exc, anthropic.APIError):
        return ModelUnavailableError(detail)
    return ModelBadRequestError(detail)


def to_anthropic_messages(
    messages: tuple[dict[str, Any], ...],
) -> tuple[str | None, list[dict[str, Any]]]:
    """System messages become the ``system`` parameter; the rest keep their order."""
    system = [str(m.get("content", "")) for m in messages if m.get("role") == "system"]
    rest = [
        {"role": m["role"], "content": m.get("content", "")}
        for m in messages
        if m.get("role") in ("user", "assistant")
    ]
    return ("\n\n".join(system) or None), rest


def _create_parameters() -> frozenset[str]:
    """What this version of the library's ``messages.create`` accepts (it changes across releases)."""
    from anthropic.resources.messages import AsyncMessages

    return frozenset(inspect.signature(AsyncMessages.create).parameters)


class AnthropicProvider(Provider):
    """``anthropic:/MODEL``. No log-probabilities.

    Recent versions of the API take no ``temperature`` and enforce a JSON schema through
    ``output_config``; older ones take ``temperature`` and get JSON by prompting. The adapter
    sends what the installed library accepts.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        try:
            import anthropic  # noqa: F401
        except ImportError:
            raise ModelNotAvailableError(
                "The anthropic package is not installed: pip install 'tracejudge[anthropic]'"
            ) from None
        key_env = spec.params.get("api_key_env", "ANTHROPIC_API_KEY")
        self.api_key = os.environ.get(key_env)
        if self.api_key is None:
            raise ModelAuthenticationError(f"{spec.uri}: set {key_env} to call Anthropic")
        self.base_url = spec.params.get("base_url")
        self._accepts = _create_parameters()
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> Any:
        import anthropic

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = anthropic.AsyncAnthropic(
                api_key=self.api_key, base_url=self.base_url, max_retries=0
            )
            self._clients[loop] = client
            close_with_loop(client.close)  # on this loop, when run_sync made it
        return client

    def request_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        system, messages = to_anthropic_messages(request.messages)
        kwargs: dict[str, Any] = {
            "model": self.spec.model,
            "messages": messages,
            "max_tokens": request.max_tokens,
        }
        if "temperature" in self._accepts:
            kwargs["temperature"] = request.temperature
        if system:
            kwargs["system"] = system
        if request.json_schema is not None and "output_config" in self._accepts:
            kwargs["output_config"] = {
                "format": {"type": "json_schema", "schema": request.json_schema}
            }
        return kwargs

    async def complete(self, request: ChatRequest) -> ChatResult:
        try:
            response = await self._client().messages.create(**self.request_kwargs(request))
        except Exception as exc:
            raise _map_error(exc, self.model_id) from exc
        text = "".join(getattr(block, "text", "") for block in response.content)
        usage = response.usage
        return ChatResult(
            text=text,
            model_id=self.model_id,
            usage=Usage(usage.input_tokens, usage.output_tokens) if usage else Usage(),
            finish_reason=response.stop_reason,
        )
