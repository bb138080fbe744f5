"""The persistent model-call cache, kept in the tracking store's ``llm_cache`` table.

The key hashes the model, every message, every parameter and the sample index, so
temperature-1 samples stay distinct while a re-run of the same evaluation makes no calls.
New entries are written by one background thread in batches (many concurrent one-row
transactions would queue on SQLite's write lock); until written they are served from memory.
A cache that fails (store down) is logged and skipped: it never fails the call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time

import orjson

from tracejudge import settings
from tracejudge.entities._json import json_bytes
from tracejudge.models.types import ChatRequest, ChatResult
from tracejudge.process_exit import at_process_exit
from tracejudge.store import TraceStore, get_store

logger = logging.getLogger("tracejudge.models")

CACHE_ENV = settings.CALL_CACHE.name


def cache_enabled_by_default() -> bool:
    return settings.CALL_CACHE.get()


def cache_key(model_id: str, request: ChatRequest) -> str:
    raw = orjson.dumps(request.cache_fields(model_id), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()


class _CacheWriter:
    """Writes new cache entries in batches from one thread; unwritten ones stay readable here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, str], tuple[TraceStore, str, str]] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def pending(self, store: TraceStore, key: str) -> str | None:
        with self._lock:
            entry = self._pending.get((id(store), key))
        return entry[2] if entry else None

    def add(self, store: TraceStore, key: str, model: str, raw: str) -> None:
        with self._lock:
            self._pending[(id(store), key)] = (store, model, raw)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="tracejudge-cache", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(0.05)  # gather what arrives meanwhile into the same transaction
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch = dict(self._pending)
        by_store: dict[int, tuple[TraceStore, list[tuple[str, str, str]]]] = {}
        for (store_id, key), (store, model, raw) in batch.items():
            by_store.setdefault(store_id, (store, []))[1].append((key, model, raw))
        for store, entries in by_store.values():
            try:
                store.put_cached_calls(entries)
            except Exception as exc:
                logger.warning(
                    "tracejudge could not write %d call-cache entries: %s", len(entries), exc
                )
        with self._lock:
            for item_key, entry in batch.items():
                if self._pending.get(item_key) is entry:
                    del self._pending[item_key]


_writer = _CacheWriter()


def _new_writer_after_fork() -> None:
    """A forked child starts with its own writer: the parent's lock may have been held at the
    fork and its thread does not exist here; the parent writes its own pending entries."""
    global _writer
    _writer = _CacheWriter()


def flush_call_cache() -> None:
    """Write the cache entries still pending now (a process about to be killed, such as a Ray
    actor at the end of a run, gets no exit hook)."""
    _writer.flush()


os.register_at_fork(after_in_child=_new_writer_after_fork)
at_process_exit(flush_call_cache)


class CallCache:
    def __init__(self, store: TraceStore | None = None) -> None:
        self._store = store  # None: the current tracking store, looked up at each call

    @property
    def store(self) -> TraceStore:
        return self._store or get_store()

    async def get(self, key: str) -> ChatResult | None:
        try:
            store = self.store
            raw = _writer.pending(store, key) or await asyncio.to_thread(store.get_cached_call, key)
        except Exception as exc:
            logger.warning("tracejudge call cache unavailable (%s); calling the model", exc)
            return None
        if raw is None:
            return None
        try:
            return ChatResult.from_dict(orjson.loads(raw)).with_(cached=True)
        except Exception:
            logger.warning("tracejudge call cache entry %s is unreadable; ignoring it", key[:12])
            return None

    def put(self, key: str, result: ChatResult) -> None:
        try:
            raw = json_bytes(result.to_dict()).decode()  # a lone surrogate in a reply: replaced
            _writer.add(self.store, key, result.model_id, raw)
        except Exception as exc:
            logger.warning("tracejudge could not cache a model call: %s", exc)
