"""Where the text is in an LLM call's payload, as the OpenAI client records it: chat
completions (``messages``, ``choices[].message``) and the Responses API (``input``,
``instructions``, ``output`` items). Shared by trace previews and by the scorers, which read
the same payloads; values are plain JSON (dicts and lists)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def content_text(content: Any) -> str | None:
    """A message's content as text: a string, or the text of its parts (``{"type": "text" |
    "input_text" | "output_text", "text": ...}``); None for other content (images, say)."""
    if isinstance(content, str):
        return content
    if is_list(content) and content:
        texts = [p.get("text") for p in content if isinstance(p, Mapping)]
        if len(texts) == len(content) and all(isinstance(t, str) for t in texts):
            return "\n".join(str(t) for t in texts)
    return None


def last_user_message(messages: Any) -> Mapping[str, Any] | None:
    """The last message with role ``user`` in a list of messages (or Responses input items)."""
    if is_list(messages):
        for message in reversed(messages):
            if isinstance(message, Mapping) and message.get("role") == "user":
                return message
    return None


def output_text(output: Any) -> str | None:
    """The text of a Responses API ``output``: its message items' output_text parts."""
    if not is_list(output):
        return None
    messages = [i for i in output if isinstance(i, Mapping) and i.get("type") == "message"]
    if not messages:
        return None
    return "".join(
        str(part.get("text") or "")
        for item in messages
        for part in item.get("content") or ()
        if isinstance(part, Mapping) and part.get("type") == "output_text"
    )


def completion_content(payload: Mapping[str, Any]) -> Any:
    """The first choice's message content of a chat completion; None when there is none."""
    choices = payload.get("choices")
    if is_list(choices) and choices and isinstance(choices[0], Mapping):
        message = choices[0].get("message")
        if isinstance(message, Mapping):
            return message.get("content")
    return None


def prompt_messages(inputs: Mapping[str, Any]) -> list[Any] | None:
    """An LLM call's prompt as messages: chat ``messages``; a Responses API call's
    ``instructions`` (as the system message) and ``input`` (text or items). A call names its
    ``model``: a function of the app that takes an ``input`` argument is not one."""
    messages = inputs.get("messages")
    if is_list(messages) and messages:
        return list(messages)
    if "input" in inputs and "model" in inputs:
        given = inputs["input"]
        turns = list(given) if is_list(given) else [{"role": "user", "content": given}]
        instructions = inputs.get("instructions")
        return ([{"role": "system", "content": instructions}] if instructions else []) + turns
    return None
