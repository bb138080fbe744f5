"""Automatic tracing of LLM client libraries (``tracejudge.openai.autolog()``)."""
