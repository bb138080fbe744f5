"""The one exception hierarchy of tracejudge.

Every error a user can cause or meet derives from :class:`TraceJudgeError`, so one
``except TraceJudgeError`` catches them all, while the subclasses say what went wrong.
This module imports nothing from the package so that every layer may use it.
"""

from __future__ import annotations


class TraceJudgeError(Exception):
    """Base class of every error raised by tracejudge."""


class InvalidArgumentError(TraceJudgeError, ValueError):
    """An argument has a value tracejudge cannot use."""


class InvalidFilterError(InvalidArgumentError):
    """A search filter string does not parse or names something that cannot be filtered.

    ``position`` is the 1-based column where the problem starts (``None`` when the problem is
    not tied to one place) and ``expected`` lists what would have been accepted there.
    """

    def __init__(
        self,
        message: str,
        *,
        filter_string: str | None = None,
        position: int | None = None,
        expected: list[str] | None = None,
    ) -> None:
        self.filter_string = filter_string
        self.position = position
        self.expected = list(expected or [])
        text = message
        if position is not None:
            text = f"{message} (at column {position})"
            if filter_string is not None:
                caret = " " * (position - 1) + "^"
                text = f"{text}\n  {filter_string}\n  {caret}"
        super().__init__(text)


class InvalidOrderByError(InvalidArgumentError):
    """An ``order_by`` clause names an unknown field or direction."""


class InvalidPageTokenError(InvalidArgumentError):
    """A page token is malformed or belongs to a different search."""


class InvalidTrackingURIError(InvalidArgumentError):
    """A tracking URI has a scheme tracejudge does not support."""


class NotFoundError(TraceJudgeError, LookupError):
    """Base class for an entity that does not exist."""


class TraceNotFoundError(NotFoundError):
    """No trace has the given id."""


class AssessmentNotFoundError(NotFoundError):
    """No assessment has the given id on the given trace."""


class ExperimentNotFoundError(NotFoundError):
    """No experiment has the given id or name."""


class StoreError(TraceJudgeError):
    """The trace store failed (database down, disk full, migration failed)."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached now (database or tracking server down, restarting, locked,
    overloaded): the same request may succeed later, and the trace exporter holds its traces
    and tries again."""


class RequestTooLargeError(InvalidArgumentError):
    """A request to the tracking server is over its size limit (HTTP 413), compressed or not."""


class DataRefusedError(InvalidArgumentError):
    """The store refused the data itself (a constraint it breaks, a value its column cannot
    hold): sending it again will not help, and other data is not affected."""


class ModelURIError(InvalidArgumentError):
    """A model URI is malformed or names an unknown provider."""


class ModelNotConfiguredError(TraceJudgeError):
    """No judge model was given and none could be found (no API key, no local model)."""


class ModelError(TraceJudgeError):
    """A call to a model failed. ``retryable`` says whether trying again may help."""

    retryable = False

    def __init__(
        self, message: str, *, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class ModelNotAvailableError(ModelError):
    """The model cannot be loaded here (a package or model file is missing or corrupt), or the
    provider says it does not exist (HTTP 404)."""


class ModelAuthenticationError(ModelError):
    """The provider rejected the credentials (HTTP 401/403)."""


MODEL_CONFIGURATION_ERRORS = (ModelAuthenticationError, ModelNotAvailableError)
"""Model errors every call would repeat (credentials refused, no such model): they stop the
work instead of being recorded on each item."""


class ModelBadRequestError(ModelError):
    """The provider rejected the request itself (HTTP 400/422): retrying will not help."""


class ModelRateLimitError(ModelError):
    """HTTP 429 and its retries were exhausted."""

    retryable = True


class ModelUnavailableError(ModelError):
    """The provider is down or failing (HTTP 5xx, connection refused) and retries were exhausted."""

    retryable = True


class ModelTimeoutError(ModelError):
    """The call did not finish in time, on every attempt."""

    retryable = True


class RunNotFoundError(NotFoundError):
    """No evaluation run has the given id."""


class ScorerNotFoundError(NotFoundError):
    """No scorer of the given name is registered in the experiment."""


class DatasetNotFoundError(NotFoundError):
    """No evaluation dataset has the given id or name."""


class InvalidSettingError(InvalidArgumentError):
    """A ``TRACEJUDGE_*`` environment variable holds a value that cannot be used."""


class AuthenticationError(TraceJudgeError):
    """The tracking server refused the request's credentials (HTTP 401/403)."""


class IntegrationError(TraceJudgeError):
    """An optional integration cannot run: its package is missing or of an unsupported version,
    or the system it talks to (an MLflow server, say) refused the request."""


# ------------------------------------------------------------------ over HTTP


def _all_subclasses(cls: type[TraceJudgeError]) -> list[type[TraceJudgeError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


def error_code(exc: TraceJudgeError) -> str:
    """The stable code an error travels under in the REST API: its class name."""
    return type(exc).__name__


def http_status(exc: TraceJudgeError) -> int:
    """400 for bad input (413 when too large), 401 for credentials, 404 for what does not exist,
    503 when the store is failing, 500 otherwise."""
    if isinstance(exc, RequestTooLargeError):
        return 413
    if isinstance(exc, InvalidArgumentError):
        return 400
    if isinstance(exc, AuthenticationError):
        return 401
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, StoreError):
        return 503
    return 500


def error_from_code(code: str, message: str) -> TraceJudgeError:
    """The typed error a REST error response stands for (the base class for an unknown code), so
    that code talking to a tracking server catches the same errors as against a database."""
    for cls in _all_subclasses(TraceJudgeError):
        if cls.__name__ == code:
            return cls(message)
    return TraceJudgeError(message)
