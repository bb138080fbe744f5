"""``tracejudge.openai.autolog()``: trace the official OpenAI client's chat completions."""

from tracejudge.integrations.openai_autolog import autolog, is_enabled

__all__ = ["autolog", "is_enabled"]
