"""What other instrumentations call things, in tracejudge's terms.

Apps traced with OpenInference (Arize Phoenix's instrumentors) or with the OpenTelemetry GenAI
semantic conventions (OpenLLMetry, the official OpenAI instrumentation, …) describe an LLM call
in span attributes. Mapped here onto a span's type, inputs, outputs, retrieved documents and
token usage, the judges see them exactly as they see spans from tracejudge's own SDK: a
RETRIEVER span's outputs are the documents groundedness is checked against, an LLM span's
inputs hold the messages the trust score re-asks. The original attributes are kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from tracejudge.entities import Span, SpanType
from tracejudge.tracing import constants as c

_OPENINFERENCE_KINDS = {
    "LLM": SpanType.CHAT_MODEL,
    "CHAIN": SpanType.CHAIN,
    "RETRIEVER": SpanType.RETRIEVER,
    "RERANKER": SpanType.RERANKER,
    "EMBEDDING": SpanType.EMBEDDING,
    "TOOL": SpanType.TOOL,
    "AGENT": SpanType.AGENT,
    "GUARDRAIL": "GUARDRAIL",
    "EVALUATOR": "EVALUATOR",
}
_GENAI_OPERATIONS = {
    "chat": SpanType.CHAT_MODEL,
    "text_completion": SpanType.LLM,
    "generate_content": SpanType.CHAT_MODEL,
    "embeddings": SpanType.EMBEDDING,
    "execute_tool": SpanType.TOOL,
    "invoke_agent": SpanType.AGENT,
    "create_agent": SpanType.AGENT,
}
_INDEXED = re.compile(r"^(?P<prefix>.+?)\.(?P<index>\d+)\.(?P<field>.+)$")


def _parse(value: Any, mime: Any = None) -> Any:
    """``input.value``/``output.value`` are JSON when their mime type says so (or they look it)."""
    if not isinstance(value, str):
        return value
    looks_json = value[:1] in ("{", "[")
    if mime == "application/json" or (mime is None and looks_json):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):  # not JSON, or nested past any real payload
            return value
    return value


def _indexed(attrs: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """``prefix.0.a.b = 1`` … as ``[{"a.b": 1}, …]`` in index order."""
    items: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix + "."):
            continue
        found = _INDEXED.match(key)
        if found and found.group("prefix") == prefix:
            items.setdefault(int(found.group("index")), {})[found.group("field")] = value
    return [items[i] for i in sorted(items)]


def _messages(attrs: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    out = []
    for item in _indexed(attrs, prefix):
        role = item.get("message.role") or item.get("role")
        content = item.get("message.content", item.get("content"))
        if role is not None or content is not None:
            out.append({"role": str(role or "user"), "content": content})
    return out


def _json_messages(value: Any) -> list[dict[str, Any]] | None:
    """GenAI's ``gen_ai.input.messages`` / ``output.messages``: role + parts (or content)."""
    parsed = _parse(value, "application/json")
    if not isinstance(parsed, list):
        return None
    out = []
    for message in parsed:
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        parts = message.get("parts")
        if content is None and isinstance(parts, list):
            content = "".join(str(p.get("content", "")) for p in parts if isinstance(p, Mapping))
        out.append({"role": str(message.get("role") or "user"), "content": content})
    return out or None


def _documents(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    docs = []
    for item in _indexed(attrs, "retrieval.documents"):
        content = item.get("document.content")
        if content is None:
            continue
        metadata = _parse(item.get("document.metadata"), "application/json")
        doc: dict[str, Any] = {
            "page_content": str(content),
            "metadata": dict(metadata) if isinstance(metadata, Mapping) else {},
        }
        if item.get("document.id") is not None:
            doc["id"] = str(item["document.id"])
        if item.get("document.score") is not None:
            doc["metadata"]["score"] = item["document.score"]
        docs.append(doc)
    return docs


def _usage(attrs: Mapping[str, Any]) -> dict[str, int] | None:
    pairs = {
        "input_tokens": (
            "llm.token_count.prompt",
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.prompt_tokens",
        ),
        "output_tokens": (
            "llm.token_count.completion",
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
        ),
    }
    usage = {}
    for name, keys in pairs.items():
        for key in keys:
            if isinstance(attrs.get(key), int):
                usage[name] = int(attrs[key])
                break
    if not usage:
        return None
    usage["total_tokens"] = usage.get("input_tokens", 0) + usage.get("output_tokens", 0)
    return usage


def _chat_outputs(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Output messages in the chat-completion shape the judges read answers from."""
    return {
        "choices": [
            {"index": i, "message": {"role": m["role"], "content": m["content"]}}
            for i, m in enumerate(messages)
        ]
    }


def apply_conventions(span: Span) -> Span:
    """The span with its type, inputs, outputs and token usage filled from OpenInference or
    GenAI attributes, where tracejudge's own attributes did not already set them."""
    attrs = dict(span.attributes)
    kind = attrs.get("openinference.span.kind")
    operation = attrs.get("gen_ai.operation.name")
    span_type = span.span_type
    if span_type in (SpanType.UNKNOWN, ""):
        if isinstance(kind, str):
            span_type = str(_OPENINFERENCE_KINDS.get(kind.upper(), kind.upper()))
        elif isinstance(operation, str):
            span_type = str(_GENAI_OPERATIONS.get(operation, SpanType.LLM))
        elif any(k.startswith("gen_ai.") for k in attrs):
            span_type = SpanType.LLM
    inputs = span.inputs if span.inputs is not None else _inputs(attrs)
    outputs = span.outputs if span.outputs is not None else _outputs(span_type, attrs)
    usage = _usage(attrs)
    if usage and c.CHAT_TOKEN_USAGE not in attrs:
        attrs[c.CHAT_TOKEN_USAGE] = usage
    model = attrs.get("llm.model_name") or attrs.get("gen_ai.request.model")
    if model and c.LLM_MODEL not in attrs:
        attrs[c.LLM_MODEL] = model
    return replace(span, span_type=span_type, inputs=inputs, outputs=outputs, attributes=attrs)


def _inputs(attrs: Mapping[str, Any]) -> Any:
    messages = (
        _messages(attrs, "llm.input_messages")
        or _json_messages(attrs.get("gen_ai.input.messages"))
        or _messages(attrs, "gen_ai.prompt")
    )
    if messages:
        system = attrs.get("gen_ai.system_instructions")
        if isinstance(system, str) and not any(m["role"] == "system" for m in messages):
            messages = [{"role": "system", "content": system}, *messages]
        return {"messages": messages}
    if "input.value" in attrs:
        return _parse(attrs["input.value"], attrs.get("input.mime_type"))
    return None


def _outputs(span_type: str, attrs: Mapping[str, Any]) -> Any:
    if span_type == SpanType.RETRIEVER:
        docs = _documents(attrs)
        if docs:
            return docs
    messages = (
        _messages(attrs, "llm.output_messages")
        or _json_messages(attrs.get("gen_ai.output.messages"))
        or _messages(attrs, "gen_ai.completion")
    )
    if messages:
        return _chat_outputs(messages)
    if "output.value" in attrs:
        return _parse(attrs["output.value"], attrs.get("output.mime_type"))
    return None
