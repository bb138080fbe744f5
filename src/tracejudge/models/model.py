"""The one door every model call goes through: cache, concurrency limit, timeout and retries."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from typing import Any

from tracejudge.entities._json import valid_text, with_valid_text
from tracejudge.errors import (
    ModelBadRequestError,
    ModelError,
    ModelRateLimitError,
    ModelTimeoutError,
)
from tracejudge.models import usage
from tracejudge.models.cache import CallCache, cache_enabled_by_default, cache_key
from tracejudge.models.limiter import AimdLimiter
from tracejudge.models.pricing import cost_usd
from tracejudge.models.providers.base import Provider
from tracejudge.models.retry import RetryPolicy
from tracejudge.models.sync import blocks_a_loop, run_sync
from tracejudge.models.types import ChatRequest, ChatResult, Message
from tracejudge.tracing_switch import tracing_disabled

logger = logging.getLogger("tracejudge.models")

_held_slots: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar(
    "tracejudge_held_model_slots", default=frozenset()
)
"""Models (by id) whose concurrency slot the current task holds through :meth:`ChatModel.session`."""


def _accepted(cache_if: Callable[[ChatResult], bool], result: ChatResult) -> bool:
    try:
        return bool(cache_if(result))
    except Exception:  # a checker that fails accepts nothing
        logger.debug("cache_if raised; the reply is not cached", exc_info=True)
        return False


class ChatModel:
    """A model behind a URI. ``await model.achat(messages)`` or ``model.chat(messages)``.

    Every call: looks in the call cache (unless ``use_cache=False``), waits for a slot of the
    model's adaptive concurrency limit, runs under a timeout, and retries timeouts, 429 and
    5xx with exponential backoff and jitter (honouring ``Retry-After``). Failures surface as
    :class:`~tracejudge.errors.ModelError` subclasses.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        cache: CallCache | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        self.provider = provider
        spec = provider.spec
        self.uri = provider.model_id
        self.cache = cache if cache is not None else CallCache()
        self.retry = retry or RetryPolicy(max_retries=int(spec.float_param("max_retries", 5)))
        self.timeout = timeout or spec.float_param("timeout", provider.default_timeout)
        initial = max_concurrency or int(
            spec.float_param("max_concurrency", provider.default_concurrency)
        )
        self.limiter = AimdLimiter(initial, maximum=max(initial, 64 if initial > 1 else 1))
        self.provider_calls = 0
        """Calls that reached the provider, retries included (cache hits are not calls)."""
        self._in_flight: dict[str, asyncio.Future[ChatResult]] = {}

    def __repr__(self) -> str:
        return f"ChatModel({self.uri!r})"

    @property
    def supports_logprobs(self) -> bool:
        return self.provider.supports_logprobs

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        """Hold one concurrency slot for several calls made one after another by this task.

        A judgement that asks the model several questions about the same material runs them
        back to back, so a local model reuses the evaluation of their shared prompt prefix
        instead of having other work interleaved between them. Nested sessions are free.
        """
        if not self._needs_slot():
            yield
            return
        async with self.limiter.slot():
            token = _held_slots.set(_held_slots.get() | {id(self)})
            try:
                yield
            finally:
                _held_slots.reset(token)

    def _needs_slot(self) -> bool:
        """False inside this task's :meth:`session` (it holds one) and for a sync call made
        inside a running loop (:func:`~tracejudge.models.sync.blocks_a_loop`)."""
        return id(self) not in _held_slots.get() and not blocks_a_loop()

    async def achat(
        self,
        messages: Sequence[Message],
        *,
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
        logprobs: bool = False,
        top_logprobs: int = 0,
        json_schema: dict[str, Any] | None = None,
        sample_index: int = 0,
        use_cache: bool | None = None,
        cache_if: Callable[[ChatResult], bool] | None = None,
    ) -> ChatResult:
        """One chat completion. ``cache_if`` decides whether a fresh reply is worth caching: a
        judge passes its parser, so a reply it could not read is asked again next time instead
        of being served from the cache for ever."""
        request = ChatRequest(
            messages=_valid_messages(messages),
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            logprobs=logprobs and self.supports_logprobs,
            top_logprobs=top_logprobs if logprobs and self.supports_logprobs else 0,
            json_schema=json_schema,
            sample_index=sample_index,
        )
        return await self._run(request, use_cache, cache_if)

    async def aread(
        self, messages: Sequence[Message], reply: str, *, use_cache: bool | None = None
    ) -> ChatResult:
        """How likely the model finds ``reply`` as its answer to ``messages``: the result's
        ``logprobs`` hold each reply token's log-probability (its text is the reply). One
        call, cached and retried like a chat call; ModelBadRequestError where the provider
        cannot read a reply (see :attr:`supports_reading`)."""
        if not self.supports_reading:
            raise ModelBadRequestError(
                f"{self.uri}: this provider cannot read a given reply's log-probabilities"
            )
        request = ChatRequest(
            messages=_valid_messages(messages),
            max_tokens=0,
            logprobs=True,
            continuation=valid_text(reply),
        )
        return await self._run(request, use_cache, None)

    @property
    def supports_reading(self) -> bool:
        """Whether :meth:`aread` works here (in-process llama.cpp models, today)."""
        return self.provider.supports_continuation

    async def _run(
        self,
        request: ChatRequest,
        use_cache: bool | None,
        cache_if: Callable[[ChatResult], bool] | None,
    ) -> ChatResult:
        caching = cache_enabled_by_default() if use_cache is None else use_cache
        if not caching:
            return await self._fresh(request)
        key = cache_key(self.uri, request)
        loop = asyncio.get_running_loop()
        pending = self._in_flight.get(key)
        if pending is not None and pending.get_loop() is loop:
            # the same call is already under way: share its answer instead of paying twice
            result = (await asyncio.shield(pending)).with_(cached=True)
            usage.record(result)
            return result
        # registered before the first await, so a twin that starts while the cache is read
        # waits for this call instead of making its own (single flight)
        future: asyncio.Future[ChatResult] = loop.create_future()
        self._in_flight[key] = future
        try:
            hit = await self.cache.get(key)
            if hit is not None:
                usage.record(hit)
                future.set_result(hit)
                return hit
            result = await self._fresh(request)
            if cache_if is None or _accepted(cache_if, result):
                self.cache.put(key, result)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else needs to
            raise
        finally:
            if self._in_flight.get(key) is future:
                del self._in_flight[key]

    async def _fresh(self, request: ChatRequest) -> ChatResult:
        try:
            result = await self._call_with_retries(request)
        except ModelError:
            usage.record_failure()
            raise
        usage.record(result)
        return result

    def chat(self, messages: Sequence[Message], **kwargs: Any) -> ChatResult:
        """Synchronous :meth:`achat` (works inside a running event loop too)."""
        return run_sync(self.achat(messages, **kwargs))

    async def _call_with_retries(self, request: ChatRequest) -> ChatResult:
        attempt = 0
        while True:
            slot = self.limiter.slot() if self._needs_slot() else contextlib.nullcontext()
            async with slot:
                started = time.perf_counter()  # after the wait for a slot: the call's own time
                try:
                    self.provider_calls += 1
                    with tracing_disabled():  # judge traffic stays out of the app's traces
                        result = await asyncio.wait_for(
                            self.provider.complete(request), self.timeout
                        )
                except asyncio.TimeoutError:
                    error: ModelError = ModelTimeoutError(
                        f"{self.uri}: no answer within {self.timeout:g} s"
                    )
                except ModelError as exc:
                    error = exc
                else:
                    self.limiter.on_success()
                    latency = time.perf_counter() - started
                    spec = self.provider.spec
                    price = cost_usd(
                        spec.provider,
                        spec.model,
                        result.usage.input_tokens,
                        result.usage.output_tokens,
                    )
                    return replace(result, latency_s=latency, cost_usd=price)
            if isinstance(error, ModelRateLimitError):
                self.limiter.on_rate_limited()
            attempt += 1
            delay = self.retry.delay(attempt, error.retry_after) if error.retryable else None
            if delay is None:
                if error.retryable:
                    error.args = (f"{error.args[0]} (gave up after {attempt} attempt(s))",)
                raise error
            logger.info(
                "%s: %s; retry %d in %.2f s", self.uri, type(error).__name__, attempt, delay
            )
            await asyncio.sleep(delay)


def _valid_messages(messages: Sequence[Message]) -> tuple[Message, ...]:
    """The messages with every string made encodable: a judged text may hold a lone surrogate
    (bytes decoded with ``surrogateescape``), which neither the cache key nor an HTTP body nor
    a tokenizer accepts (U+FFFD takes its place, as in the stored trace)."""
    return tuple(with_valid_text(dict(m)) for m in messages)
