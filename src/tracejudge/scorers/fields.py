"""What scorers read from a row: the request and response as text, retrieved documents, the
prompt the app's LLM saw. Chat completions and OpenAI's Responses API (``input``,
``instructions``, ``output`` items) are read alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracejudge.entities import Span, SpanType, Trace
from tracejudge.entities.chat_payloads import (
    completion_content,
    content_text,
    last_user_message,
    output_text,
    prompt_messages,
)
from tracejudge.judges.formatting import to_text

_REQUEST_KEYS = ("question", "query", "request", "input", "prompt", "user_input", "message")
_RESPONSE_KEYS = ("answer", "response", "output", "content", "text", "result")


def _content_text(content: Any) -> str:
    found = content_text(content)
    return found if found is not None else to_text(content)


def _last_user_message(messages: Any) -> str | None:
    message = last_user_message(messages)
    return None if message is None else _content_text(message.get("content"))


def request_text(inputs: Any) -> str:
    """The user's request: a string as is; from a dict, the one value, a known key, or the last
    user message; otherwise JSON."""
    if isinstance(inputs, str):
        return inputs
    if (found := _last_user_message(inputs)) is not None:  # a list of messages (Responses input)
        return found
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
    """The answer shown to the user: a string as is; an OpenAI completion's message or a
    Responses API response's output text (object or dict), as MLflow's scorers read them; a
    known key."""
    outputs = _plain(outputs)
    if isinstance(outputs, str):
        return outputs
    if isinstance(outputs, Mapping):
        if (content := completion_content(outputs)) is not None:
            return _content_text(content)
        if (text := output_text(outputs.get("output"))) is not None:
            return text
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
    if isinstance(inputs, Mapping):
        messages = prompt_messages(inputs)
        if messages is None and inputs.get("prompt") is not None:
            messages = [{"role": "user", "content": to_text(inputs["prompt"])}]
    else:
        messages = None if inputs is None else [{"role": "user", "content": to_text(inputs)}]
    if messages is None:
        return None
    clean = [
        {"role": str(m.get("role")), "content": _content_text(m.get("content"))}
        for m in messages
        if isinstance(m, Mapping) and m.get("role")
    ]
    answer = response_text(span.outputs) if span.outputs is not None else None
    return clean, answer
