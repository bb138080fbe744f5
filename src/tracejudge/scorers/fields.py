"""What scorers read from a row: the request and response as text, retrieved documents, the
prompt the app's LLM saw."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tracejudge.entities import Span, SpanType, Trace
from tracejudge.judges.formatting import to_text

_REQUEST_KEYS = ("question", "query", "request", "input", "prompt", "user_input", "message")
_RESPONSE_KEYS = ("answer", "response", "output", "content", "text", "result")


def _last_user_message(messages: Any) -> str | None:
    if isinstance(messages, Sequence) and not isinstance(messages, str):
        for message in reversed(messages):
            if isinstance(message, Mapping) and message.get("role") == "user":
                return to_text(message.get("content"))
    return None


def request_text(inputs: Any) -> str:
    """The user's request: a string as is; from a dict, the one value, a known key, or the last
    user message; otherwise JSON."""
    if isinstance(inputs, str):
        return inputs
    if isinstance(inputs, Mapping):
        if "messages" in inputs and (found := _last_user_message(inputs["messages"])) is not None:
            return found
        if len(inputs) == 1:
            return request_text(next(iter(inputs.values())))
        for key in _REQUEST_KEYS:
            if key in inputs:
                return request_text(inputs[key])
    return to_text(inputs)


def _plain(value: Any) -> Any:
    """A pydantic object (an OpenAI ``ChatCompletion``, say) as its dict."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            return dump()
        except Exception:  # a model_dump that is not pydantic's: keep the value
            return value
    return value


def response_text(outputs: Any) -> str:
    """The answer shown to the user: a string as is; an OpenAI completion's message (object or
    dict), as MLflow's scorers read it; a known key."""
    outputs = _plain(outputs)
    if isinstance(outputs, str):
        return outputs
    if isinstance(outputs, Mapping):
        choices = outputs.get("choices")
        if isinstance(choices, Sequence) and choices and isinstance(choices[0], Mapping):
            message = choices[0].get("message") or {}
            if isinstance(message, Mapping) and message.get("content") is not None:
                return str(message["content"])
        if len(outputs) == 1:
            return response_text(next(iter(outputs.values())))
        for key in _RESPONSE_KEYS:
            if key in outputs:
                return response_text(outputs[key])
    return to_text(outputs)


def last_span(trace: Trace | None, *types: str) -> Span | None:
    if trace is None:
        return None
    spans = [s for s in trace.data.spans if s.span_type in types]
    return max(spans, key=lambda s: (s.start_time_ns, s.span_id)) if spans else None


def retriever_span(trace: Trace | None) -> Span | None:
    """The last RETRIEVER span: its outputs are the documents the answer was built on."""
    return last_span(trace, SpanType.RETRIEVER)


def llm_prompt_and_response(trace: Trace | None) -> tuple[list[dict[str, Any]], str | None] | None:
    """The messages the app's last LLM call saw (system prompt included) and what it answered."""
    span = last_span(trace, SpanType.CHAT_MODEL, SpanType.LLM)
    if span is None:
        return None
    inputs = span.inputs
    messages = inputs.get("messages") if isinstance(inputs, Mapping) else None
    if not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
        prompt = inputs.get("prompt") if isinstance(inputs, Mapping) else inputs
        if prompt is None:
            return None
        messages = [{"role": "user", "content": to_text(prompt)}]
    clean = [
        {"role": str(m.get("role")), "content": to_text(m.get("content"))}
        for m in messages
        if isinstance(m, Mapping) and m.get("role")
    ]
    answer = response_text(span.outputs) if span.outputs is not None else None
    return clean, answer
