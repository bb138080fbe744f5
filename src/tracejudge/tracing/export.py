"""Background export of finished traces to the store.

The caller's thread only appends to a bounded queue; one daemon thread drains it in
batches and writes each batch in one transaction. Nothing here raises into user code. A store
that cannot be reached (a tracking server restarting, a database failing over) is waited for,
with the traces held, for ``TRACEJUDGE_EXPORT_RETRY_S``; a full queue, a longer outage or a
trace the store refuses drops traces, counts them and warns (rate-limited), and the count is
kept for :func:`get_export_stats`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tracejudge import settings
from tracejudge.entities import Trace
from tracejudge.errors import StoreUnavailableError
from tracejudge.process_exit import at_process_exit
from tracejudge.store import get_store
from tracejudge.tracing.otel_convert import SpanRecord, assemble_trace, span_from_record
from tracejudge.tracing.payload import SpanPayload
from tracejudge.tracing.trace_merge import merge_part

logger = logging.getLogger("tracejudge.tracing")

QUEUE_SIZE_ENV = settings.TRACE_QUEUE_SIZE.name
BATCH_SIZE = 200
LINGER_S = 0.01
"""After the first trace of a batch arrives, wait this long for more: fewer wake-ups of the
writer (each one takes the GIL from the traced application) and larger transactions."""
_WARN_EVERY_S = 5.0
MAX_RETRY_DELAY_S = 15.0
T = TypeVar("T")


def queue_size_from_env() -> int:
    """``TRACEJUDGE_TRACE_QUEUE_SIZE``, or the default (logged) when it is not a positive integer.

    Read when an exporter is made, never raising: a typo in the environment must not break
    ``import tracejudge``, and 0 must not mean an unbounded queue.
    """
    return settings.TRACE_QUEUE_SIZE.get_or_default()


@dataclass
class ExportItem:
    """The finished spans of one trace bound for one store, with what the trace was given.

    When ``late_trace_id`` is set the spans belong to a trace already written (children that
    ended after their root) and are appended to it. A ``shared`` trace (distributed tracing:
    other processes write parts of it) is merged into what the store holds of it.
    """

    store_uri: str
    experiment_name: str | None
    spans: list[SpanRecord]
    payloads: dict[int, SpanPayload] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    late_trace_id: str | None = None
    shared: bool = False

    @property
    def size(self) -> int:
        return 0 if self.late_trace_id else 1

    def to_trace(self) -> Trace:
        spans = [span_from_record(s, self.payloads.get(s.span_id)) for s in self.spans]
        return assemble_trace(spans, "0", self.tags, self.metadata, self.overrides)


@dataclass
class ExportStats:
    exported: int = 0
    dropped_queue_full: int = 0
    dropped_store_error: int = 0
    dropped_at_exit: int = 0
    """Traces whose root ended while the interpreter was shutting down (a generator or an
    object finalised then): no thread can write them any more."""
    late_spans_lost: int = 0
    """Spans that ended after their trace was written and forgotten (after more than
    ``processor._REMEMBERED_TRACES`` other traces): not appended to it."""
    retries: int = 0
    """Writes tried again because the store was unavailable (nothing lost by these)."""
    last_error: str | None = None

    @property
    def dropped(self) -> int:
        return self.dropped_queue_full + self.dropped_store_error + self.dropped_at_exit


class TraceExporter:
    """A bounded queue plus one writer thread (started on first use, restarted after fork)."""

    def __init__(self, max_queue: int | None = None, batch_size: int = BATCH_SIZE) -> None:
        size = max_queue or queue_size_from_env()
        self._queue: queue.Queue[ExportItem] = queue.Queue(maxsize=size)
        self._batch_size = batch_size
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._experiment_ids: dict[tuple[str, str], str] = {}
        self.stats = ExportStats()
        self._last_warning = 0.0
        self._resumed = threading.Event()
        self._resumed.set()
        self.exit_flushed = False
        """Set once the flush at process exit has run: later traces are written one by one."""

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold the writer for the block: traces queue up (or drop when full) but none are written.

        For measuring the caller's own cost apart from the writer's, and for testing a full queue.
        """
        self._resumed.clear()
        try:
            yield
        finally:
            self._resumed.set()

    # ------------------------------------------------------------- caller side

    def submit(self, item: ExportItem) -> None:
        if sys.is_finalizing():  # no thread can start now: Thread.start() would never return
            self.stats.dropped_at_exit += max(item.size, 1)
            return
        if self._thread is None or not self._thread.is_alive():
            self._start()
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.stats.dropped_queue_full += max(item.size, 1)
            self._warn_dropped("the export queue is full (the store cannot keep up)")
            return
        if self.exit_flushed:  # ended in an exit handler after ours: written before it returns
            self.flush(timeout=settings.EXIT_FLUSH_TIMEOUT_S.get_or_default())

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every submitted trace is written or dropped; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        done = self._queue.all_tasks_done
        with done:
            while self._queue.unfinished_tasks:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                done.wait(remaining)
        return True

    # ------------------------------------------------------------ writer side

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="tracejudge-export", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._resumed.wait()
            first = self._queue.get()
            self._resumed.wait()
            if self._queue.qsize() < self._batch_size:
                time.sleep(LINGER_S)
            batch = [first]
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _experiment_id(self, store: Any, uri: str, name: str | None) -> str:
        if name is None:
            return "0"
        key = (uri, name)
        if key not in self._experiment_ids:
            self._experiment_ids[key] = store.get_or_create_experiment(name).experiment_id
        return self._experiment_ids[key]

    def _write(self, batch: list[ExportItem]) -> None:
        by_store: dict[str, list[ExportItem]] = defaultdict(list)
        for item in batch:
            by_store[item.store_uri].append(item)
        for uri, items in by_store.items():
            for shared in (False, True):
                whole = [i for i in items if i.late_trace_id is None and i.shared == shared]
                if whole:
                    self._write_traces(uri, whole, shared)
            for item in items:
                if item.late_trace_id is not None:
                    self._write_late_spans(uri, item)

    def _write_traces(self, uri: str, items: list[ExportItem], shared: bool = False) -> None:
        """Write the traces in one transaction (``shared``: each merged into what the store
        holds of it). While the store cannot be reached, hold them and try again (for up to
        ``TRACEJUDGE_EXPORT_RETRY_S``); if the store refuses the batch, write them one by one,
        so that only the traces it refuses are dropped (and counted)."""
        try:
            store = get_store(uri)
        except Exception as exc:
            self._dropped(len(items), uri, exc)
            return
        write = (
            functools.partial(store.merge_traces, merge=merge_part) if shared else store.log_traces
        )
        traces = []
        for item in items:
            try:
                traces.append(
                    self._patiently(uri, functools.partial(self._to_trace, store, uri, item))
                )
            except Exception as exc:  # a trace that cannot be assembled loses only itself
                self._dropped(1, uri, exc)
        if not traces:
            return
        try:
            self._patiently(uri, functools.partial(write, traces))
            self.stats.exported += len(traces)
            return
        except StoreUnavailableError as exc:  # down for longer than we hold traces
            self._dropped(len(traces), uri, exc)
            return
        except Exception as exc:
            if len(traces) == 1:
                self._dropped(1, uri, exc, traces[0].info.trace_id)
                return
        for trace in traces:
            try:
                self._patiently(uri, functools.partial(write, [trace]))
                self.stats.exported += 1
            except Exception as exc:
                self._dropped(1, uri, exc, trace.info.trace_id)

    def _patiently(self, uri: str, write: Callable[[], T]) -> T:
        """``write()``, tried again with backoff while the store is unavailable (down,
        restarting, locked), until ``TRACEJUDGE_EXPORT_RETRY_S`` has passed."""
        deadline = time.monotonic() + settings.EXPORT_RETRY_S.get_or_default()
        delay = 0.5
        while True:
            try:
                return write()
            except StoreUnavailableError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                self.stats.retries += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                self._warn(
                    f"tracejudge: the store {uri} is unavailable ({exc}); holding "
                    f"{self._queue.unfinished_tasks} trace(s) and trying again"
                )
                time.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY_S)

    def _to_trace(self, store: Any, uri: str, item: ExportItem) -> Trace:
        trace = item.to_trace()
        trace.info.experiment_id = self._experiment_id(store, uri, item.experiment_name)
        return trace

    def _dropped(self, count: int, uri: str, exc: Exception, trace_id: str | None = None) -> None:
        self.stats.dropped_store_error += count
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        which = f" (trace {trace_id})" if trace_id else ""
        self._warn_dropped(f"writing to {uri} failed{which}: {self.stats.last_error}")

    def _write_late_spans(self, uri: str, item: ExportItem) -> None:
        assert item.late_trace_id is not None
        try:
            spans = [span_from_record(s, item.payloads.get(s.span_id)) for s in item.spans]
            get_store(uri).log_spans(item.late_trace_id, spans)
        except Exception as exc:
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            logger.warning(
                "tracejudge dropped %d late span(s) of trace %s: %s",
                len(item.spans),
                item.late_trace_id,
                self.stats.last_error,
            )

    def _warn_dropped(self, reason: str) -> None:
        self._warn(
            f"tracejudge dropped traces because {reason}; {self.stats.dropped} dropped so far "
            f"({self.stats.dropped_queue_full} queue full, "
            f"{self.stats.dropped_store_error} store errors)"
        )

    def _warn(self, message: str) -> None:
        """A warning, at most one every few seconds (a flood would bury the app's own logs)."""
        now = time.monotonic()
        if not self._last_warning or now - self._last_warning > _WARN_EVERY_S:
            self._last_warning = now
            logger.warning("%s", message)


_exporter: TraceExporter | None = None
_exporter_lock = threading.Lock()


def get_exporter() -> TraceExporter:
    """The process's exporter, made on first use (its settings are read then, not at import)."""
    global _exporter
    if _exporter is None:
        with _exporter_lock:
            if _exporter is None:
                _exporter = TraceExporter()
    return _exporter


def _reset_after_fork() -> None:
    """A forked child gets a fresh queue and thread (the parent's thread does not exist there)."""
    global _exporter, _exporter_lock
    _exporter_lock = threading.Lock()
    _exporter = None


def _flush_at_exit() -> None:
    exporter = _exporter
    if exporter is None:  # nothing was ever traced
        return
    exporter.exit_flushed = True
    if not exporter.flush(timeout=settings.EXIT_FLUSH_TIMEOUT_S.get_or_default()):
        logger.warning(
            "tracejudge: traces still unwritten at exit after the flush timeout were lost"
        )
    if exporter.stats.dropped:
        logger.warning(
            "tracejudge dropped %d trace(s) in this process (%d queue full, %d store errors; last error: %s)",
            exporter.stats.dropped,
            exporter.stats.dropped_queue_full,
            exporter.stats.dropped_store_error,
            exporter.stats.last_error,
        )


os.register_at_fork(after_in_child=_reset_after_fork)
at_process_exit(_flush_at_exit)  # atexit, and multiprocessing children's own exit path
