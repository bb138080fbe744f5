"""Every ``TRACEJUDGE_*`` environment variable in one place: its type, default and meaning.

Read when used, not at import (so a typo never breaks ``import tracejudge``, and tests and
long-running processes see changes), and checked then: a value that does not parse raises
:class:`InvalidSettingError` naming the variable and what it expects. Code on the tracing
path, which must never raise into the application, uses :meth:`Setting.get_or_default`
instead, which logs the problem and goes on with the default.

Hand-written rather than pydantic-settings: eighteen variables, read lazily one at a time, with no
other use for pydantic in the core package.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from tracejudge.errors import InvalidSettingError as InvalidSettingError

T = TypeVar("T")
logger = logging.getLogger("tracejudge")


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be at least 0")
    return value


def _fraction(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 1:
        raise ValueError("must be from 0 to 1")
    return value


def _seconds(raw: str) -> float:
    value = float(raw)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be a number of seconds >= 0")
    return value


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(raw: str) -> float:
    """Seconds in a duration written ``30d``, ``12h``, ``90m``, ``45s`` or ``2w``."""
    text = raw.strip().lower()
    unit = _DURATION_UNITS.get(text[-1:]) if text else None
    try:
        number = float(text[:-1]) if unit else float("nan")
    except ValueError:
        number = float("nan")
    if unit is None or not number > 0 or number == float("inf"):
        raise ValueError("must be a positive number followed by s, m, h, d or w, such as 30d")
    return number * unit


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(raw: str) -> bool:
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("must be one of 1/0, true/false, yes/no, on/off")


def _text(raw: str) -> str:
    return raw.strip()


def _path(raw: str) -> Path:
    return Path(raw.strip()).expanduser()


@dataclass(frozen=True)
class Setting(Generic[T]):
    name: str
    parse: Callable[[str], T]
    default: T
    expects: str
    help: str

    def raw(self) -> str | None:
        value = os.environ.get(self.name)
        return None if value is None or not value.strip() else value

    def get(self) -> T:
        """The value (the default when unset or blank); InvalidSettingError when it does not parse."""
        raw = self.raw()
        if raw is None:
            return self.default
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise InvalidSettingError(
                f"{self.name}={raw!r}: expected {self.expects} ({exc})."
            ) from None

    def get_or_default(self) -> T:
        """The value, or the default with a logged warning when it does not parse (never raises)."""
        try:
            return self.get()
        except InvalidSettingError as exc:
            logger.warning("%s Using the default, %r.", exc, self.default)
            return self.default


TRACKING_URI = Setting[str | None](
    "TRACEJUDGE_TRACKING_URI",
    _text,
    None,
    "a store URI",
    "Where traces are stored: sqlite:///path.db or postgresql+psycopg://… (default ./tracejudge.db).",
)
TRACKING_TOKEN = Setting[str | None](
    "TRACEJUDGE_TRACKING_TOKEN",
    _text,
    None,
    "a bearer token",
    "The token the SDK sends to a tracking server that asks for one.",
)
EXPERIMENT_NAME = Setting[str | None](
    "TRACEJUDGE_EXPERIMENT_NAME",
    _text,
    None,
    "an experiment name",
    "The experiment new traces go to when set_experiment() was not called.",
)
JUDGE_MODEL = Setting[str | None](
    "TRACEJUDGE_JUDGE_MODEL",
    _text,
    None,
    "a model URI",
    "The judge model when a scorer names none (else OpenAI with OPENAI_API_KEY, else local:/default).",
)
MODEL_DIR = Setting[Path](
    "TRACEJUDGE_MODEL_DIR",
    _path,
    Path.home() / ".cache" / "tracejudge" / "models",
    "a folder",
    "Where the local model's assembled weights are kept.",
)
CALL_CACHE = Setting[bool](
    "TRACEJUDGE_CALL_CACHE",
    _flag,
    True,
    "on or off",
    "Cache model calls in the store, so identical judgements are not paid twice.",
)
PROGRESS = Setting[bool | None](
    "TRACEJUDGE_PROGRESS",
    _flag,
    None,
    "on or off",
    "Show evaluate()'s progress bar (default: when stderr is a terminal).",
)
TRACE_QUEUE_SIZE = Setting[int](
    "TRACEJUDGE_TRACE_QUEUE_SIZE",
    _positive_int,
    10_000,
    "a positive integer",
    "Finished traces waiting for the background writer; beyond it traces are dropped and counted.",
)
TRACE_SAMPLING_RATIO = Setting[float](
    "TRACEJUDGE_TRACE_SAMPLING_RATIO",
    _fraction,
    1.0,
    "a number from 0 to 1",
    "The share of traces recorded, decided from each trace's id (a trace is kept whole or not "
    "at all); evaluate() records every trace of its runs.",
)
EXIT_FLUSH_TIMEOUT_S = Setting[float](
    "TRACEJUDGE_EXIT_FLUSH_TIMEOUT",
    _seconds,
    30.0,
    "seconds",
    "How long a process waits at exit for its traces to be written.",
)
STATEMENT_TIMEOUT_S = Setting[float](
    "TRACEJUDGE_STATEMENT_TIMEOUT_S",
    _seconds,
    60.0,
    "seconds (0: no limit)",
    "How long one PostgreSQL statement may run before the server stops it.",
)
TRACKING_RETRIES = Setting[int](
    "TRACEJUDGE_TRACKING_RETRIES",
    _non_negative_int,
    6,
    "an integer >= 0",
    "How often one call to a tracking server is tried again (backoff from 0.25 s) before it fails.",
)
EXPORT_RETRY_S = Setting[float](
    "TRACEJUDGE_EXPORT_RETRY_S",
    _seconds,
    300.0,
    "seconds",
    "How long the background writer holds traces while the store is unreachable before dropping them.",
)
SERVER_TOKEN = Setting[str | None](
    "TRACEJUDGE_SERVER_TOKEN",
    _text,
    None,
    "bearer tokens, comma-separated",
    "Tokens the tracking server accepts for reading and writing (same as --auth-token).",
)
SERVER_READ_TOKEN = Setting[str | None](
    "TRACEJUDGE_SERVER_READ_TOKEN",
    _text,
    None,
    "bearer tokens, comma-separated",
    "Tokens the tracking server accepts for reading only (same as --read-only-token).",
)
SERVER_STORE_URI = Setting[str | None](
    "TRACEJUDGE_SERVER_STORE_URI",
    _text,
    None,
    "a store URI",
    "The store a tracking-server worker serves (set by 'tracejudge server --workers N').",
)
SERVER_MAX_BODY_BYTES = Setting[int | None](
    "TRACEJUDGE_SERVER_MAX_BODY_BYTES",
    _positive_int,
    None,
    "a positive integer",
    "The largest request body a tracking-server worker accepts (set by 'tracejudge server').",
)
SERVER_BODY_TIMEOUT_S = Setting[float](
    "TRACEJUDGE_SERVER_BODY_TIMEOUT_S",
    _seconds,
    30.0,
    "seconds (0: no limit)",
    "How long the tracking server waits for the next part of a request body before it answers 408 and closes the connection.",
)
RETENTION_S = Setting[float | None](
    "TRACEJUDGE_RETENTION",
    parse_duration,
    None,
    "a duration such as 30d",
    "Traces older than this are deleted by the tracking server, hourly (same as --retention).",
)

ALL: tuple[Setting[Any], ...] = (
    TRACKING_URI,
    TRACKING_TOKEN,
    EXPERIMENT_NAME,
    JUDGE_MODEL,
    MODEL_DIR,
    CALL_CACHE,
    PROGRESS,
    TRACE_QUEUE_SIZE,
    TRACE_SAMPLING_RATIO,
    EXIT_FLUSH_TIMEOUT_S,
    STATEMENT_TIMEOUT_S,
    TRACKING_RETRIES,
    EXPORT_RETRY_S,
    SERVER_TOKEN,
    SERVER_READ_TOKEN,
    SERVER_STORE_URI,
    SERVER_MAX_BODY_BYTES,
    SERVER_BODY_TIMEOUT_S,
    RETENTION_S,
)
