"""The prompt being scored, as chat messages, and how it is shown to the verifier."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tracejudge.errors import InvalidArgumentError

Messages = list[dict[str, Any]]


def as_messages(prompt: str | Sequence[Mapping[str, Any]]) -> Messages:
    """A prompt string becomes one user message; a message list is checked and copied."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    messages = [dict(m) for m in prompt]
    if not messages or not all(isinstance(m.get("role"), str) and "content" in m for m in messages):
        raise InvalidArgumentError(
            "A prompt must be a string or a list of {'role': ..., 'content': ...} messages."
        )
    return messages


def render_request(messages: Messages) -> str:
    """The conversation as the verifier reads it: a lone user message as is, else role-labelled."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return str(messages[0]["content"])
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
