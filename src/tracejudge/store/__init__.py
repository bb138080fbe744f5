"""Persistence of traces: the ``TraceStore`` protocol, its SQL implementation and the tracking URI."""

from tracejudge.store.base import PagedList, TraceStore
from tracejudge.store.http_store import HttpTraceStore
from tracejudge.store.registry import (
    DEFAULT_TRACKING_URI,
    TRACKING_URI_ENV,
    get_store,
    get_tracking_uri,
    reset_stores,
    set_tracking_uri,
)
from tracejudge.store.sql_store import SqlTraceStore

__all__ = [
    "DEFAULT_TRACKING_URI",
    "TRACKING_URI_ENV",
    "HttpTraceStore",
    "PagedList",
    "SqlTraceStore",
    "TraceStore",
    "get_store",
    "get_tracking_uri",
    "reset_stores",
    "set_tracking_uri",
]
