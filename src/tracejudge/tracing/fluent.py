"""The tracing API users call: ``@trace``, ``start_span``, ``update_current_trace``, ``flush``.

Spans nest through OpenTelemetry's context, which lives in ``contextvars``: asyncio tasks
inherit their parent's span; a new thread starts a new trace unless it runs in a copied
context (``contextvars.copy_context().run(...)``).
"""

from __future__ import annotations

import functools
import inspect
import logging
import types
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from types import TracebackType
from typing import Any, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace

from tracejudge.entities import SpanStatusCode, SpanType, TraceState
from tracejudge.entities._json import to_jsonable
from tracejudge.tracing import constants as c
from tracejudge.tracing.export import ExportStats, get_exporter
from tracejudge.tracing.live_span import (
    NO_INPUTS,
    LiveSpan,
    NoOpSpan,
    encode_attributes,
    safe_str,
)
from tracejudge.tracing.provider import get_assembler, start_otel_span
from tracejudge.tracing_switch import tracing_is_off

logger = logging.getLogger("tracejudge.tracing")

F = TypeVar("F", bound=Callable[..., Any])
_LIVE_SPAN_KEY = otel_context.create_key("tracejudge-live-span")


class _SpanScope:
    """Opens a span, makes it current for the block, and ends it with the block's outcome."""

    __slots__ = (
        "_attributes",
        "_context",
        "_inputs",
        "_name",
        "_open",
        "_span_type",
        "_token",
        "span",
    )

    def __init__(
        self, name: str, span_type: str, attributes: dict[str, str], inputs: Any = NO_INPUTS
    ) -> None:
        self._name = name
        self._span_type = span_type
        self._attributes = attributes  # already encoded by encode_attributes()
        self._inputs = inputs
        self._token: object | None = None
        self._context: object | None = None  # the context the block made current
        self._open = False
        self.span: LiveSpan | None = None

    def __enter__(self) -> LiveSpan:
        if tracing_is_off():
            self.span = NoOpSpan()
            return self.span
        try:
            otel_span = start_otel_span(self._name)
            span = LiveSpan(otel_span, self._span_type, self._inputs, self._attributes)
            ctx = otel_context.set_value(
                _LIVE_SPAN_KEY, span, otel_trace.set_span_in_context(otel_span)
            )
            token = otel_context.attach(ctx)
            before = token.old_value
            span.context_before = None if before is token.MISSING else before
            self._token, self._context = token, ctx
            self.span = span
        except Exception:
            logger.exception("tracejudge could not start span %r; running untraced", self._name)
            self.span = NoOpSpan()
        return self.span

    def keep_open(self) -> None:
        """Leave the span open when the block ends (its context is restored all the same):
        whoever called this ends it."""
        self._open = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self.span
        if span is None:
            return
        if exc is not None:
            span.record_exception(exc)
        if not self._open:
            span.end()
        token, self._token = self._token, None
        if token is None:
            return
        try:  # in order (the common case: the context is still the block's own), or not
            if otel_context.get_current() is self._context or _restores(span):
                otel_context.detach(token)  # type: ignore[arg-type]
        except Exception:
            logger.debug("tracejudge could not detach span context", exc_info=True)


def _restores(span: LiveSpan) -> bool:
    """Whether the end of ``span``'s block gives the context back to what it was before.

    It does when ``span`` is current, or when the current span was opened inside it (a block
    begun there that did not end in this context: the context returns to before ``span``).
    Otherwise the block ends after the block it began in — a generator that held ``span``
    open across its yields is finished after its caller's span ended (a streamed response) —
    and the context has moved on: restoring it would make the caller's ended span current
    again, and every later trace of the thread would join its finished trace.
    """
    current = otel_context.get_value(_LIVE_SPAN_KEY)
    while current is not None:
        if current is span:
            return True
        before = getattr(current, "context_before", None)
        current = None if before is None else otel_context.get_value(_LIVE_SPAN_KEY, before)
    return False


def start_span(
    name: str = "span",
    span_type: str = SpanType.UNKNOWN,
    attributes: dict[str, Any] | None = None,
) -> _SpanScope:
    """Open a span for a ``with`` block; it nests under the current span, or starts a trace.

    >>> with tracejudge.start_span("retrieve", span_type="RETRIEVER") as span:
    ...     span.set_inputs({"query": q})
    ...     span.set_outputs(docs)
    """
    return _SpanScope(
        safe_str(name) or "span",
        safe_str(span_type) or SpanType.UNKNOWN,
        encode_attributes(attributes),
    )


def get_current_active_span() -> LiveSpan | None:
    """The innermost open tracejudge span in this context, or ``None``."""
    span = otel_context.get_value(_LIVE_SPAN_KEY)
    return span if isinstance(span, LiveSpan) else None


class _InputCapture:
    """Turns a call's arguments into ``{parameter: value}`` (without ``self``/``cls``).

    Built once per decorated function: plain positional-or-keyword signatures take a fast
    path that avoids ``Signature.bind`` on every call. Never raises: a capture that fails
    records the raw arguments.
    """

    __slots__ = ("_defaults", "_names", "_receiver", "_sig", "_simple")

    def __init__(self, fn: Callable[..., Any]) -> None:
        try:
            self._sig: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            self._sig = None
        params = list(self._sig.parameters.values()) if self._sig else []
        plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        self._simple = self._sig is not None and all(p.kind in plain for p in params)
        self._names = tuple(
            p.name for p in params if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        self._defaults = {
            p.name: p.default for p in params if p.default is not inspect.Parameter.empty
        }
        first = params[0] if params else None
        receiver_kinds = (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        )
        self._receiver = (
            first.name
            if first is not None and first.name in ("self", "cls") and first.kind in receiver_kinds
            else None
        )

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        try:
            inputs = self._capture(args, kwargs)
        except Exception:  # never let recording the inputs break the call
            logger.debug("tracejudge could not capture a call's arguments", exc_info=True)
            return self._raw(args, kwargs)
        if self._receiver is not None:
            inputs.pop(self._receiver, None)
        return inputs

    def _raw(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The arguments as given, without the receiver of a method."""
        positional = list(args[1:] if self._receiver is not None and args else args)
        return {"args": positional, "kwargs": dict(kwargs)}

    def _capture(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if self._simple and len(args) <= len(self._names):
            inputs = dict(self._defaults)
            inputs.update(zip(self._names, args, strict=False))  # args may be fewer
            inputs.update(kwargs)
            return inputs
        if self._sig is None:
            return {"args": list(args), "kwargs": dict(kwargs)}
        try:
            bound = self._sig.bind(*args, **kwargs)
        except TypeError:  # the call itself is wrong; the function will raise
            return self._raw(args, kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)


@overload
def trace(func: F) -> F: ...
@overload
def trace(
    func: None = None,
    *,
    name: str | None = None,
    span_type: str = SpanType.UNKNOWN,
    attributes: dict[str, Any] | None = None,
) -> Callable[[F], F]: ...


def trace(
    func: Any = None,
    *,
    name: str | None = None,
    span_type: str = SpanType.UNKNOWN,
    attributes: dict[str, Any] | None = None,
) -> Any:
    """Trace every call of a function as a span: inputs are its arguments, outputs its result.

    Works bare (``@trace``) or configured (``@trace(name=..., span_type="RETRIEVER")``), on
    sync and async functions, generators and async generators (outputs: the yielded items),
    methods, classmethods and staticmethods. An exception marks the span ERROR, is recorded
    as an ``exception`` event, and is re-raised unchanged.
    """
    if func is None:
        return lambda f: trace(f, name=name, span_type=span_type, attributes=attributes)
    if isinstance(func, (staticmethod, classmethod)):
        inner = trace(name=name, span_type=span_type, attributes=attributes)(func.__func__)
        return type(func)(inner)
    span_name = str(name or getattr(func, "__name__", "span"))
    capture = _InputCapture(func)
    attrs = encode_attributes(attributes)  # encoded once, reused by every call
    if inspect.isasyncgenfunction(func):
        wrapper = _wrap_async_generator(func, span_name, span_type, attrs, capture)
    elif inspect.isgeneratorfunction(func):
        wrapper = _wrap_generator(func, span_name, span_type, attrs, capture)
    elif inspect.iscoroutinefunction(func):
        wrapper = _wrap_coroutine(func, span_name, span_type, attrs, capture)
    else:
        wrapper = _wrap_function(func, span_name, span_type, attrs, capture)
    wrapper.__tracejudge_traced__ = True  # type: ignore[attr-defined]
    return wrapper


def _wrap_function(
    fn: Any, name: str, span_type: str, attrs: dict[str, str], capture: _InputCapture
) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        scope = _SpanScope(name, span_type, attrs, capture(args, kwargs))
        with scope as span:
            result = fn(*args, **kwargs)
            if isinstance(result, types.CoroutineType) and not span.outputs_set:
                # an ``async def`` behind a plain decorator: the work runs when it is awaited
                scope.keep_open()
                return _ending_when_done(result, span)
            if not span.outputs_set:
                span.set_outputs(result)
            return result

    return wrapper


async def _ending_when_done(coro: Any, span: LiveSpan) -> Any:
    """Await ``coro`` with ``span`` current, then give the span its outcome and end it."""
    try:
        with _Reactivate(span):
            result = await coro
    except BaseException as exc:
        span.record_exception(exc)
        span.end()
        raise
    if not span.outputs_set:
        span.set_outputs(result)
    span.end()
    return result


def _wrap_coroutine(
    fn: Any, name: str, span_type: str, attrs: dict[str, str], capture: _InputCapture
) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _SpanScope(name, span_type, attrs, capture(args, kwargs)) as span:
            result = await fn(*args, **kwargs)
            if not span.outputs_set:
                span.set_outputs(result)
            return result

    return wrapper


class _Reactivate:
    """Makes an already-open span current again for one step of a generator."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: LiveSpan) -> None:
        self._span = span
        self._token: object | None = None

    def __enter__(self) -> None:
        if isinstance(self._span, NoOpSpan):
            return
        ctx = otel_trace.set_span_in_context(self._span.otel_span)
        self._token = otel_context.attach(otel_context.set_value(_LIVE_SPAN_KEY, self._span, ctx))

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None


def open_detached_span(name: str, span_type: str, attrs: dict[str, str] | None = None) -> LiveSpan:
    """Start a span under the current one without making it current (the caller ends it).

    Generators make it current per step; integrations use it for calls that end later.
    ``attrs`` are encoded attributes (:func:`encode_attributes`).
    """
    if tracing_is_off():
        return NoOpSpan()
    try:
        return LiveSpan(start_otel_span(name), span_type, attributes=attrs)
    except Exception:
        logger.exception("tracejudge could not start span %r; running untraced", name)
        return NoOpSpan()


_IMMUTABLE = (str, bytes, int, float, bool, type(None))


def _snapshot(item: Any) -> Any:
    """A yielded item as it is now: a generator may yield one buffer it keeps changing, and
    the span's outputs, written when the stream ends, must show what the consumer saw."""
    return item if isinstance(item, _IMMUTABLE) else to_jsonable(item)


def _wrap_generator(
    fn: Any, name: str, span_type: str, attrs: dict[str, str], capture: _InputCapture
) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        span = open_detached_span(name, span_type, attrs)
        span.set_inputs(capture(args, kwargs))
        items: list[Any] = []
        step = _Reactivate(span)
        try:
            with step:
                gen = fn(*args, **kwargs)
                item = next(gen)
            while True:
                items.append(_snapshot(item))
                try:
                    sent = yield item
                except GeneratorExit:
                    with step:
                        gen.close()
                    raise
                except BaseException as thrown:
                    with step:
                        item = gen.throw(thrown)
                    continue
                with step:
                    item = gen.send(sent)
        except StopIteration as stop:
            if not span.outputs_set:
                span.set_outputs(items)
            span.end()
            return stop.value
        except GeneratorExit:
            if not span.outputs_set:
                span.set_outputs(items)
            span.end()
            raise
        except BaseException as exc:
            span.record_exception(exc)
            if not span.outputs_set:
                span.set_outputs(items)
            span.end()
            raise

    return wrapper


def _wrap_async_generator(
    fn: Any, name: str, span_type: str, attrs: dict[str, str], capture: _InputCapture
) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        span = open_detached_span(name, span_type, attrs)
        span.set_inputs(capture(args, kwargs))
        items: list[Any] = []
        step = _Reactivate(span)
        try:
            with step:
                agen = fn(*args, **kwargs)
                item = await agen.__anext__()
            while True:
                items.append(_snapshot(item))
                try:
                    sent = yield item
                except GeneratorExit:
                    with step:
                        await agen.aclose()
                    raise
                except BaseException as thrown:
                    with step:
                        item = await agen.athrow(thrown)
                    continue
                with step:
                    item = await agen.asend(sent)
        except StopAsyncIteration:
            if not span.outputs_set:
                span.set_outputs(items)
            span.end()
        except GeneratorExit:
            if not span.outputs_set:
                span.set_outputs(items)
            span.end()
            raise
        except BaseException as exc:
            span.record_exception(exc)
            if not span.outputs_set:
                span.set_outputs(items)
            span.end()
            raise

    return wrapper


def update_current_trace(
    tags: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    client_request_id: str | None = None,
    request_preview: str | None = None,
    response_preview: str | None = None,
    state: str | TraceState | None = None,
    session_id: str | None = None,
    user: str | None = None,
) -> None:
    """Add tags/metadata to, or override fields of, the trace being recorded in this context.

    Values are stored as strings. Outside a trace this logs a warning and does nothing.
    """
    try:
        _update_trace_buffer(
            tags,
            metadata,
            client_request_id,
            request_preview,
            response_preview,
            state,
            session_id,
            user,
        )
    except Exception:  # tracing never raises into the app
        logger.warning("tracejudge.update_current_trace failed; ignored", exc_info=True)


def _string_map(name: str, values: Any) -> dict[str, str]:
    """``{str(k): str(v)}`` of a mapping; entries whose ``str()`` raises are skipped (logged)."""
    if not values:
        return {}
    if not isinstance(values, Mapping):
        logger.warning(
            "update_current_trace: %s must be a dict, not %s; ignored", name, type(values).__name__
        )
        return {}
    out = {}
    for key, value in values.items():
        k, v = safe_str(key), safe_str(value)
        if k is not None and v is not None:
            out[k] = v
    return out


def _update_trace_buffer(
    tags: Any,
    metadata: Any,
    client_request_id: Any,
    request_preview: Any,
    response_preview: Any,
    state: Any,
    session_id: Any,
    user: Any,
) -> None:
    span = get_current_active_span()
    buffer = None
    if span is not None and not isinstance(span, NoOpSpan):
        context = span.otel_span.get_span_context()
        buffer = get_assembler().buffer_for(context.trace_id, context.span_id)
    if buffer is None:
        logger.warning("tracejudge.update_current_trace called outside of a trace; ignored")
        return
    buffer.tags.update(_string_map("tags", tags))
    buffer.metadata.update(_string_map("metadata", metadata))
    fields: list[tuple[dict[str, Any], str, Any]] = [
        (buffer.metadata, c.TRACE_SESSION, session_id),
        (buffer.metadata, c.TRACE_USER, user),
        (buffer.overrides, "client_request_id", client_request_id),
        (buffer.overrides, "request_preview", request_preview),
        (buffer.overrides, "response_preview", response_preview),
    ]
    for target, key, value in fields:
        text = None if value is None else safe_str(value)
        if text is not None:
            target[key] = text
    if state is not None:
        value = state.value if isinstance(state, TraceState) else str(state).upper()
        if value not in (TraceState.OK.value, TraceState.ERROR.value):
            logger.warning(
                "update_current_trace: state must be OK or ERROR, not %r; ignored", state
            )
        else:
            buffer.overrides["state"] = value


def get_last_active_trace_id(thread_local: bool = False) -> str | None:
    """The id of the trace that finished most recently in this process, or with
    ``thread_local=True`` in the calling thread (what a multi-threaded server wants: another
    request's trace may have finished in between). MLflow 3's name and argument. ``None``
    when that trace was left out by head sampling (``TRACEJUDGE_TRACE_SAMPLING_RATIO``)."""
    assembler = get_assembler()
    return assembler.last_trace_id_in_thread() if thread_local else assembler.last_trace_id


def get_active_trace_id() -> str | None:
    """The id of the trace the calling code is inside (its innermost open span), or ``None``."""
    span = get_current_active_span()
    return None if span is None else span.trace_id


def flush(timeout: float | None = 30.0) -> bool:
    """Block until every finished trace is written to the store (or ``timeout`` seconds pass)."""
    return get_exporter().flush(timeout)


def get_export_stats() -> ExportStats:
    """Counts of traces written and dropped (queue full, store errors) in this process."""
    return get_exporter().stats


__all__ = [
    "SpanStatusCode",
    "flush",
    "get_active_trace_id",
    "get_current_active_span",
    "get_export_stats",
    "get_last_active_trace_id",
    "start_span",
    "trace",
    "update_current_trace",
]
