"""The interface every provider adapter implements."""

from __future__ import annotations

import abc

from tracejudge.models.types import ChatRequest, ChatResult
from tracejudge.models.uri import ModelSpec


class Provider(abc.ABC):
    """Calls one model of one provider. Raises :class:`~tracejudge.errors.ModelError` subclasses."""

    #: calls allowed in flight at first (the AIMD limiter adapts from there)
    default_concurrency = 8
    #: whether token log-probabilities can be returned
    supports_logprobs = False
    #: whether a given reply can be read instead of one written (``ChatRequest.continuation``)
    supports_continuation = False
    #: seconds a call may take before it counts as timed out
    default_timeout = 60.0

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    @property
    def model_id(self) -> str:
        return self.spec.uri

    @abc.abstractmethod
    async def complete(self, request: ChatRequest) -> ChatResult:
        """One call, no retries (the caller retries)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients or loaded weights."""
