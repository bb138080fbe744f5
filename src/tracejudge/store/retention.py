"""Retention: delete traces older than a maximum age, in bounded batches, then hand the space
back. ``tracejudge gc`` runs it once; ``tracejudge server --retention 30d`` every hour."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from tracejudge.errors import InvalidArgumentError
from tracejudge.store.base import TraceStore
from tracejudge.store.periodic import start_periodic

RETENTION_EVERY_S = 3600.0
"""How often the server applies its retention."""


def cutoff_ms(max_age_s: float, now_ms: int | None = None) -> int:
    """The start time before which a trace is older than ``max_age_s``."""
    if not max_age_s > 0:
        raise InvalidArgumentError(f"A retention age must be positive, not {max_age_s!r} s.")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return now - int(max_age_s * 1000)


def enforce_retention(
    store: TraceStore,
    max_age_s: float,
    experiment_ids: Sequence[str] | None = None,
    on_batch: Callable[[int], None] | None = None,
    full_vacuum: bool = False,
) -> int:
    """Delete the traces older than ``max_age_s`` and reclaim the space; returns the count."""
    deleted = store.delete_traces_before(cutoff_ms(max_age_s), experiment_ids, on_batch=on_batch)
    # a tracking server's store has no reclaim here: its database reuses the freed space
    # (PostgreSQL's autovacuum, SQLite's free pages), and its own --retention reclaims
    reclaim = getattr(store, "reclaim_space", None)
    if reclaim is not None and (deleted or full_vacuum):
        reclaim(full=full_vacuum)
    elif hasattr(store, "compact_word_search"):  # nothing deleted: the word index still merges
        store.compact_word_search()
    return deleted


def start_retention_thread(
    store: TraceStore, max_age_s: float, every_s: float = RETENTION_EVERY_S
) -> threading.Event:
    """Apply retention now and every ``every_s`` in a daemon thread; set the event to stop."""

    def apply() -> str | None:
        deleted = enforce_retention(store, max_age_s)
        return f"deleted {deleted} traces older than {max_age_s:.0f} s" if deleted else None

    return start_periodic("retention", every_s, apply)
