"""Which store the SDK talks to: the tracking URI and one cached store per URI.

Resolution order: ``set_tracking_uri(...)``, then ``TRACEJUDGE_TRACKING_URI``, then an
SQLite file ``./tracejudge.db`` in the current directory.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from tracejudge import settings
from tracejudge.errors import InvalidTrackingURIError
from tracejudge.store.base import TraceStore
from tracejudge.store.http_store import HttpTraceStore
from tracejudge.store.sql_store import SqlTraceStore

DEFAULT_TRACKING_URI = "sqlite:///./tracejudge.db"
TRACKING_URI_ENV = settings.TRACKING_URI.name

_lock = threading.Lock()
_explicit_uri: str | None = None
_stores: dict[str, TraceStore] = {}
_normalized: dict[tuple[str, str], str] = {}


def set_tracking_uri(uri: str | Path | None) -> None:
    """Use ``uri`` for every later store access in this process (``None`` restores the default).

    A plain path is taken as an SQLite file.
    """
    global _explicit_uri
    if uri is None:
        _explicit_uri = None
        return
    _explicit_uri = normalize_uri(str(uri))


def get_tracking_uri() -> str:
    if _explicit_uri:
        return _explicit_uri
    raw = settings.TRACKING_URI.get() or DEFAULT_TRACKING_URI
    key = (raw, os.getcwd()) if "://" not in raw or raw.startswith("sqlite") else (raw, "")
    uri = _normalized.get(key)
    if uri is None:  # cached: this runs at the start of every trace
        uri = _normalized[key] = normalize_uri(raw)
    return uri


_NOT_A_PATH = {"databricks", "databricks-uc", "uc", "file", "sqlite", "postgresql", "http", "https"}
"""Words people pass as a tracking URI (MLflow's names, a bare scheme) that must not quietly
become a database file in the working directory."""


def normalize_uri(uri: str) -> str:
    """Absolute SQLite paths (so a later ``chdir`` does not move the store); paths become SQLite URIs."""
    if not isinstance(uri, str):
        raise InvalidTrackingURIError(f"A tracking URI is a string, not {type(uri).__name__}.")
    uri = uri.strip()
    if not uri:
        raise InvalidTrackingURIError(
            "The tracking URI is empty; use sqlite:///path.db, postgresql+psycopg://user@host/db, "
            "or set_tracking_uri(None) for the default ./tracejudge.db."
        )
    if uri.lower() in _NOT_A_PATH or uri.lower().startswith(("databricks:", "databricks://")):
        raise InvalidTrackingURIError(
            f"Tracking URI {uri!r} is not supported by tracejudge; use sqlite:///path.db or "
            "postgresql+psycopg://user@host/db (a plain file path is an SQLite file)."
        )
    if "\x00" in uri:
        raise InvalidTrackingURIError(f"Tracking URI {uri!r} contains a NUL character.")
    if "://" not in uri:
        uri = "sqlite:///" + str(_absolute(uri))
    if uri.startswith(("http://", "https://")):
        return _server_uri(uri)
    try:
        url = make_url(uri)
    except (ArgumentError, ValueError) as exc:
        raise InvalidTrackingURIError(f"Cannot parse tracking URI {uri!r}: {exc}") from None
    on_disk = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if on_disk and not Path(str(url.database)).is_absolute():  # relative, or "~/…"
        path = _absolute(str(url.database))
        return url.set(database=str(path)).render_as_string(hide_password=False)
    return uri


def _server_uri(uri: str) -> str:
    """``http(s)://host[:port][/prefix]`` of a tracking server, without a trailing slash."""
    parts = urlsplit(uri)
    if not parts.hostname or parts.query or parts.fragment:
        raise InvalidTrackingURIError(
            f"Tracking URI {uri!r}: a tracking server is given as http://host:port "
            "(optionally with a path prefix), with no query or fragment."
        )
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise InvalidTrackingURIError(f"Tracking URI {uri!r}: {exc}") from None
    return uri.rstrip("/")


def _absolute(path: str) -> Path:
    """``path`` with ``~`` expanded, made absolute; an unusable path is an invalid URI."""
    try:
        return Path(path).expanduser().resolve()
    except (RuntimeError, OSError, ValueError) as exc:  # "~nobody", a loop of symlinks
        raise InvalidTrackingURIError(f"Cannot use {path!r} as an SQLite file: {exc}") from None


def get_store(uri: str | None = None) -> TraceStore:
    """The store for ``uri`` (default: the current tracking URI), opened and migrated once."""
    key = normalize_uri(uri) if uri else get_tracking_uri()
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = _open(key)
            _stores[key] = store
        return store


def _open(uri: str) -> TraceStore:
    if uri.startswith(("http://", "https://")):
        return HttpTraceStore(
            uri, token=settings.TRACKING_TOKEN.get(), max_retries=settings.TRACKING_RETRIES.get()
        )
    return SqlTraceStore(uri)


def _forget_inherited_connections() -> None:
    """In a forked child, drop the parent's pooled connections without closing them.

    A connection shared by two processes interleaves their traffic (seen on PostgreSQL: both
    sides dropped batches). The child opens its own on first use; the parent keeps its own.
    The registry's lock is renewed too: a thread of the parent may have held it (opening a
    store, migrating) at the fork, and would never release it in the child.
    """
    global _lock
    _lock = threading.Lock()
    for store in list(_stores.values()):
        dispose = getattr(store, "forget_connections", None)
        if dispose is not None:
            dispose()


os.register_at_fork(after_in_child=_forget_inherited_connections)


def reset_stores() -> None:
    """Close every cached store (tests and long-running servers that switch databases)."""
    with _lock:
        for store in _stores.values():
            store.close()
        _stores.clear()
