"""Which store the SDK talks to: the tracking URI and one cached store per URI.

Resolution order: ``set_tracking_uri(...)``, then ``TRACEJUDGE_TRACKING_URI``, then an
SQLite file ``./tracejudge.db`` in the current directory.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from tracejudge.errors import InvalidTrackingURIError
from tracejudge.store.base import TraceStore
from tracejudge.store.sql_store import SqlTraceStore

DEFAULT_TRACKING_URI = "sqlite:///./tracejudge.db"
TRACKING_URI_ENV = "TRACEJUDGE_TRACKING_URI"

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
    raw = os.environ.get(TRACKING_URI_ENV) or DEFAULT_TRACKING_URI
    key = (raw, os.getcwd()) if "://" not in raw or raw.startswith("sqlite") else (raw, "")
    uri = _normalized.get(key)
    if uri is None:  # cached: this runs at the start of every trace
        uri = _normalized[key] = normalize_uri(raw)
    return uri


def normalize_uri(uri: str) -> str:
    """Absolute SQLite paths (so a later ``chdir`` does not move the store); paths become SQLite URIs."""
    uri = uri.strip()
    if "://" not in uri:
        uri = "sqlite:///" + str(Path(uri).expanduser().resolve())
    if uri.startswith(("http://", "https://")):
        raise InvalidTrackingURIError(
            f"Tracking URI {uri!r}: a tracking server is not supported by this version; "
            "use sqlite:///path.db or postgresql+psycopg://user@host/db"
        )
    try:
        url = make_url(uri)
    except ArgumentError as exc:
        raise InvalidTrackingURIError(f"Cannot parse tracking URI {uri!r}: {exc}") from None
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = Path(url.database).expanduser()
        if not path.is_absolute():
            return url.set(database=str(path.resolve())).render_as_string(hide_password=False)
    return uri


def get_store(uri: str | None = None) -> TraceStore:
    """The store for ``uri`` (default: the current tracking URI), opened and migrated once."""
    key = normalize_uri(uri) if uri else get_tracking_uri()
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = SqlTraceStore(key)
            _stores[key] = store
        return store


def _forget_inherited_connections() -> None:
    """In a forked child, drop the parent's pooled connections without closing them.

    A connection shared by two processes interleaves their traffic (seen on PostgreSQL: both
    sides dropped batches). The child opens its own on first use; the parent keeps its own.
    """
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
