"""Helpers for testing code that uses tracejudge: a scripted OpenAI-compatible HTTP server."""

from tracejudge.testing.chat_server import ChatServer, Reply

__all__ = ["ChatServer", "Reply"]
