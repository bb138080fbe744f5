"""Running the async core from synchronous code, also from inside a running event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
logger = logging.getLogger("tracejudge.models")

_blocking_a_loop: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "tracejudge_blocking_a_loop", default=False
)

_closers: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, list[Callable[[], Awaitable[Any]]]
] = weakref.WeakKeyDictionary()


def close_with_loop(aclose: Callable[[], Awaitable[Any]]) -> None:
    """Await ``aclose()`` before the loop :func:`run_sync` made for this call ends.

    HTTP clients belong to the loop they were made in. Left to the garbage collector, their
    ``aclose`` would run after that loop is closed ("Event loop is closed", "Task exception was
    never retrieved"); the sync wrappers close them on their own loop instead. On a loop the
    caller owns this does nothing: the caller's loop outlives the call.
    """
    _closers.setdefault(asyncio.get_running_loop(), []).append(aclose)


async def _run_then_close(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return await coro
    finally:
        await _cancel_the_rest()
        for aclose in _closers.pop(asyncio.get_running_loop(), []):
            try:
                await aclose()
            except Exception:
                logger.debug("closing a client at the end of its loop failed", exc_info=True)


async def _cancel_the_rest() -> None:
    """Cancel the tasks ``coro`` left running on this loop (``gather`` leaves a failed call's
    siblings running) and wait for them, before the clients they use are closed: else each
    would fail on a closed client, and a caller could record that as its result (evaluate()
    stored "client has been closed" verdicts after a rejected API key stopped the run)."""
    current = asyncio.current_task()
    rest = [task for task in asyncio.all_tasks() if task is not current]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


def blocks_a_loop() -> bool:
    """Whether this code runs for a synchronous call made inside a running event loop, which
    stays blocked until the call returns.

    Such a call must not wait for a concurrency slot: the slots may all be held by that loop's
    own tasks (an async scorer calling a sync judge while other scorers' calls are under way),
    which cannot finish while their loop is blocked, so waiting would deadlock. A blocked loop
    makes one such call at a time, so letting it past the limit adds at most one call per
    blocked thread.
    """
    return _blocking_a_loop.get()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``, or, when a loop already runs here (a notebook, an async function
    calling a sync API), in a worker thread, marked with :func:`blocks_a_loop`.

    Clients registered with :func:`close_with_loop` are closed before the loop ends. Ctrl-C
    stops the work promptly in both cases: in a notebook the interrupt reaches only the
    waiting caller, which then cancels the work in its thread (it used to run to the end).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        in_a_loop = False
    else:
        in_a_loop = True
    if not in_a_loop:  # run outside the except block: errors would chain "no running loop"
        return asyncio.run(_interruptible(coro))
    context = contextvars.copy_context()
    context.run(_blocking_a_loop.set, True)
    call = _LoopInThread(coro)
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="tracejudge-sync"
    ) as pool:
        future = pool.submit(context.run, call.run)
        try:
            # a wait with a timeout: Ctrl-C delivered to another thread would not end a
            # wait without one, and the interrupt would be noticed only when the run ended
            while not concurrent.futures.wait([future], timeout=0.2).done:
                pass
            return future.result()
        except BaseException:
            if not future.done():  # interrupted while waiting: stop the work, then re-raise
                call.cancel()
            raise


async def _interruptible(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return await _run_then_close(coro)
    except asyncio.CancelledError:
        # A thread cannot be stopped, and asyncio waits for the loop's default executor
        # before an interrupt reaches the caller: one busy thread (a synchronous scorer)
        # would hold Ctrl-C back until it returned. The loop gets an idle executor to shut
        # down instead; the busy thread ends on its own and what it returns is dropped.
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(max_workers=1)
        )
        raise


class _LoopInThread:
    """A coroutine run on a new event loop in a worker thread, cancellable from any thread."""

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False

    def run(self) -> Any:
        return asyncio.run(self._main())

    async def _main(self) -> Any:
        with self._lock:
            if self._cancelled:
                self._coro.close()
                raise asyncio.CancelledError
            self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        return await _interruptible(self._coro)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._loop is not None and self._task is not None:
                with contextlib.suppress(RuntimeError):  # the loop has already closed
                    self._loop.call_soon_threadsafe(self._task.cancel)
