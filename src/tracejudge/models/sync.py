"""Running the async core from synchronous code, also from inside a running event loop."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
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
        for aclose in _closers.pop(asyncio.get_running_loop(), []):
            try:
                await aclose()
            except Exception:
                logger.debug("closing a client at the end of its loop failed", exc_info=True)


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

    Clients registered with :func:`close_with_loop` are closed before the loop ends.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_run_then_close(coro))
    context = contextvars.copy_context()
    context.run(_blocking_a_loop.set, True)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracejudge-sync") as pool:
        return pool.submit(context.run, asyncio.run, _run_then_close(coro)).result()
