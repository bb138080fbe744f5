"""Trace every model call made with the official ``openai`` client (v1 and later).

``autolog()`` patches ``chat.completions.create`` and ``.parse``, ``responses.create`` and
``.parse`` (the Responses API, structured outputs) and ``embeddings.create`` on the sync and
async resource classes, so clients created before or after the call are traced. Each chat or
response call becomes a CHAT_MODEL span holding the whole request (every message, the system
prompt or instructions included, model and parameters), the response and the token usage,
nested under the current span. A streamed response is passed through chunk by chunk (event by
event) and recorded, once consumed, as the one completion (response) it adds up to. An
embeddings call becomes an EMBEDDING span with its inputs and usage; its vectors are recorded as
their count and dimensions, not their values (kilobytes per input that no one reads in a trace).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from tracejudge.entities import SpanType
from tracejudge.entities._json import to_jsonable
from tracejudge.tracing import constants as c
from tracejudge.tracing.fluent import open_detached_span
from tracejudge.tracing.live_span import LiveSpan

logger = logging.getLogger("tracejudge.integrations.openai")

SPAN_NAME = "chat.completions.create"
RESPONSES_SPAN_NAME = "responses.create"
EMBEDDINGS_SPAN_NAME = "embeddings.create"
_PRIVATE_KWARGS = ("extra_headers", "extra_query", "timeout")
_originals: dict[tuple[type, str], Any] = {}


class _Collector(Protocol):
    def add(self, item: Any) -> None: ...
    def result(self) -> Any: ...


def _as_recorded(response: Any) -> Any:
    return response


@dataclass(frozen=True)
class _Endpoint:
    """One traced method: its span name and type, and how its result is recorded (streamed
    items gathered by ``collector`` into one result, which ``recorded`` turns into the span's
    outputs)."""

    span_name: str
    collector: Callable[[], _Collector]
    classes: Callable[[], tuple[type, type]]
    """The sync and async resource classes whose ``method`` is patched."""
    method: str = "create"
    span_type: str = SpanType.CHAT_MODEL
    recorded: Callable[[Any], Any] = _as_recorded


def _chat_classes() -> tuple[type, type]:
    from openai.resources.chat.completions import AsyncCompletions, Completions

    return Completions, AsyncCompletions


def _responses_classes() -> tuple[type, type]:
    from openai.resources.responses import AsyncResponses, Responses

    return Responses, AsyncResponses


def _embeddings_classes() -> tuple[type, type]:
    from openai.resources.embeddings import AsyncEmbeddings, Embeddings

    return Embeddings, AsyncEmbeddings


def _embeddings_recorded(response: Any) -> Any:
    """The response with each vector replaced by its length."""
    data = to_jsonable(response)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        return data
    vectors = []
    for item in data["data"]:
        if isinstance(item, dict):
            vector = item.get("embedding")
            item = {k: v for k, v in item.items() if k != "embedding"}
            item["dimensions"] = len(vector) if isinstance(vector, list) else None
        vectors.append(item)
    return {**data, "data": vectors}


def _provider(resource: Any) -> str:
    client = getattr(resource, "_client", None)
    base_url = str(getattr(client, "base_url", "") or "")
    return "openai" if "api.openai.com" in base_url or not base_url else base_url


def _start(resource: Any, kwargs: dict[str, Any], endpoint: _Endpoint) -> LiveSpan:
    span = open_detached_span(endpoint.span_name, endpoint.span_type)
    span.set_inputs({k: v for k, v in kwargs.items() if k not in _PRIVATE_KWARGS})
    span.set_attribute(c.LLM_MODEL, kwargs.get("model"))
    span.set_attribute(c.LLM_PROVIDER, _provider(resource))
    return span


def _usage_dict(usage: Any) -> dict[str, int] | None:
    if usage is None:
        return None
    data = to_jsonable(usage)
    if not isinstance(data, dict):
        return None
    # chat completions name them prompt/completion tokens, the Responses API input/output
    prompt = int(data.get("prompt_tokens") or data.get("input_tokens") or 0)
    completion = int(data.get("completion_tokens") or data.get("output_tokens") or 0)
    return {
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": int(data.get("total_tokens") or prompt + completion),
    }


def _finish(span: LiveSpan, response: Any) -> None:
    span.set_outputs(response)
    usage = _usage_dict(
        response.get("usage") if isinstance(response, dict) else getattr(response, "usage", None)
    )
    if usage:
        span.set_attribute(c.CHAT_TOKEN_USAGE, usage)
    span.end()


def _fail(span: LiveSpan, exc: BaseException) -> None:
    span.record_exception(exc)
    span.end()


class _ChunkCollector:
    """Gathers streamed chunks into the one completion they add up to."""

    def __init__(self) -> None:
        self.content: dict[int, list[str]] = {}
        self.finish: dict[int, str | None] = {}
        self.role: dict[int, str] = {}
        self.tool_calls: dict[int, dict[int, dict[str, Any]]] = {}
        self.meta: dict[str, Any] = {}
        self.usage: Any = None

    def add(self, chunk: Any) -> None:
        try:
            for key in ("id", "model", "created", "system_fingerprint"):
                if getattr(chunk, key, None) is not None:
                    self.meta[key] = getattr(chunk, key)
            if getattr(chunk, "usage", None) is not None:
                self.usage = chunk.usage
            for choice in getattr(chunk, "choices", None) or []:
                delta = choice.delta
                i = choice.index
                if getattr(delta, "role", None):
                    self.role[i] = delta.role
                if getattr(delta, "content", None):
                    self.content.setdefault(i, []).append(delta.content)
                for call in getattr(delta, "tool_calls", None) or []:
                    slot = self.tool_calls.setdefault(i, {}).setdefault(
                        call.index,
                        {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                    )
                    if call.id:
                        slot["id"] = call.id
                    if call.function is not None:
                        slot["function"]["name"] += call.function.name or ""
                        slot["function"]["arguments"] += call.function.arguments or ""
                if choice.finish_reason is not None:
                    self.finish[i] = choice.finish_reason
        except Exception:
            logger.debug("tracejudge could not read a streamed chunk", exc_info=True)

    def result(self) -> dict[str, Any]:
        indexes = sorted(
            set(self.content) | set(self.finish) | set(self.role) | set(self.tool_calls)
        )
        choices = []
        for i in indexes:
            message: dict[str, Any] = {
                "role": self.role.get(i, "assistant"),
                "content": "".join(self.content.get(i, [])),
            }
            if i in self.tool_calls:
                message["tool_calls"] = [self.tool_calls[i][k] for k in sorted(self.tool_calls[i])]
            choices.append({"index": i, "message": message, "finish_reason": self.finish.get(i)})
        out = {**self.meta, "object": "chat.completion", "choices": choices}
        if self.usage is not None:
            out["usage"] = to_jsonable(self.usage)
        return out


class _ResponseEventCollector:
    """Keeps the response a Responses API stream ends with (its ``response.completed``,
    ``.incomplete`` or ``.failed`` event); the text deltas, where it ends without one."""

    def __init__(self) -> None:
        self.response: Any = None
        self.deltas: list[str] = []

    def add(self, event: Any) -> None:
        try:
            kind = str(getattr(event, "type", ""))
            if kind == "response.output_text.delta":
                self.deltas.append(str(getattr(event, "delta", "") or ""))
            elif getattr(event, "response", None) is not None:
                self.response = event.response  # created, in progress, then the final one
        except Exception:
            logger.debug("tracejudge could not read a streamed event", exc_info=True)

    def result(self) -> Any:
        final = to_jsonable(self.response) if self.response is not None else {}
        if not isinstance(final, dict):
            final = {}
        if not final.get("output") and self.deltas:  # the stream stopped before its end
            text = "".join(self.deltas)
            final["output"] = [
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text}],
                }
            ]
        return final


CHAT = _Endpoint(SPAN_NAME, _ChunkCollector, _chat_classes)
RESPONSES = _Endpoint(RESPONSES_SPAN_NAME, _ResponseEventCollector, _responses_classes)
_ENDPOINTS = (
    CHAT,
    _Endpoint("chat.completions.parse", _ChunkCollector, _chat_classes, method="parse"),
    RESPONSES,
    _Endpoint("responses.parse", _ResponseEventCollector, _responses_classes, method="parse"),
    _Endpoint(
        EMBEDDINGS_SPAN_NAME,
        _ChunkCollector,  # never streamed
        _embeddings_classes,
        span_type=SpanType.EMBEDDING,
        recorded=_embeddings_recorded,
    ),
)


class _TracedStream:
    """Wraps a sync ``Stream``: yields its chunks unchanged and ends the span when it is done."""

    def __init__(self, stream: Any, span: LiveSpan, chunks: _Collector) -> None:
        self._stream = stream
        self._span: LiveSpan | None = span
        self._chunks = chunks

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __iter__(self) -> Iterator[Any]:
        try:
            for chunk in self._stream:
                self._chunks.add(chunk)
                yield chunk
        except GeneratorExit:  # the caller stopped reading (``break``): a normal end
            self._stop_early()
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        self._end()

    def _stop_early(self) -> None:
        """Close the HTTP response the caller no longer reads and record what arrived."""
        try:
            self._stream.close()
        except Exception:
            logger.debug("tracejudge could not close an abandoned stream", exc_info=True)
        finally:
            if self._span is not None:
                self._span.set_attribute("stream_stopped_early", True)
            self._end()

    def __next__(self) -> Any:
        try:
            chunk = next(self._stream)
        except StopIteration:
            self._end()
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        self._chunks.add(chunk)
        return chunk

    def __enter__(self) -> _TracedStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._end()

    def _end(self, exc: BaseException | None = None) -> None:
        span, self._span = self._span, None
        if span is None:
            return
        if exc is not None:
            _fail(span, exc)
        else:
            _finish(span, self._chunks.result())


class _TracedAsyncStream:
    """The async twin of :class:`_TracedStream`."""

    def __init__(self, stream: Any, span: LiveSpan, chunks: _Collector) -> None:
        self._stream = stream
        self._span: LiveSpan | None = span
        self._chunks = chunks

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    async def __aiter__(self) -> AsyncIterator[Any]:
        try:
            async for chunk in self._stream:
                self._chunks.add(chunk)
                try:
                    yield chunk
                except (GeneratorExit, asyncio.CancelledError):
                    # Thrown in at the yield, so by the caller, who stopped reading (``break``
                    # leaves the generator to be closed by the event loop, and asyncio.run
                    # cancels that close): a normal end. The model call itself did not fail.
                    await self._stop_early()
                    raise
        except BaseException as exc:
            self._end(exc)  # a no-op after _stop_early
            raise
        self._end()

    async def _stop_early(self) -> None:
        """Close the HTTP response the caller no longer reads and record what arrived."""
        try:
            await self._stream.close()
        except Exception:
            logger.debug("tracejudge could not close an abandoned stream", exc_info=True)
        finally:
            if self._span is not None:
                self._span.set_attribute("stream_stopped_early", True)
            self._end()

    async def __anext__(self) -> Any:
        try:
            chunk = await self._stream.__anext__()
        except StopAsyncIteration:
            self._end()
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        self._chunks.add(chunk)
        return chunk

    async def __aenter__(self) -> _TracedAsyncStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        try:
            await self._stream.close()
        finally:
            self._end()

    def _end(self, exc: BaseException | None = None) -> None:
        span, self._span = self._span, None
        if span is None:
            return
        if exc is not None:
            _fail(span, exc)
        else:
            _finish(span, self._chunks.result())


def _patched_sync(original: Any, endpoint: _Endpoint) -> Any:
    @functools.wraps(original)
    def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        span = _start(self, kwargs, endpoint)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            _fail(span, exc)
            raise
        if kwargs.get("stream"):
            return _TracedStream(result, span, endpoint.collector())
        _finish(span, endpoint.recorded(result))
        return result

    traced.__tracejudge_patched__ = True  # type: ignore[attr-defined]
    return traced


def _patched_async(original: Any, endpoint: _Endpoint) -> Any:
    @functools.wraps(original)
    async def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        span = _start(self, kwargs, endpoint)
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            _fail(span, exc)
            raise
        if kwargs.get("stream"):
            return _TracedAsyncStream(result, span, endpoint.collector())
        _finish(span, endpoint.recorded(result))
        return result

    traced.__tracejudge_patched__ = True  # type: ignore[attr-defined]
    return traced


def autolog(disable: bool = False) -> None:
    """Trace every call of the methods listed in the module's docstring (``disable=True``
    removes the patches)."""
    for endpoint in _ENDPOINTS:
        try:
            sync_cls, async_cls = endpoint.classes()
        except ImportError:  # an openai release without this API
            logger.debug("openai has no %s to trace", endpoint.span_name)
            continue
        for cls, patch in ((sync_cls, _patched_sync), (async_cls, _patched_async)):
            key = (cls, endpoint.method)
            if disable:
                if key in _originals:
                    setattr(cls, endpoint.method, _originals.pop(key))
            elif key not in _originals and hasattr(cls, endpoint.method):
                _originals[key] = getattr(cls, endpoint.method)
                setattr(cls, endpoint.method, patch(_originals[key], endpoint))


def is_enabled() -> bool:
    return bool(_originals)
