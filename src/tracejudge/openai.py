"""``tracejudge.openai.autolog()``: trace the official OpenAI client's chat completions and Responses API calls."""

from tracejudge.integrations.openai_autolog import autolog, is_enabled

__all__ = ["autolog", "is_enabled"]
