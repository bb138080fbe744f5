"""Run a function when this process ends, including multiprocessing children.

``atexit`` does not run in multiprocessing children (fork, forkserver and spawn alike, and the
workers of a ProcessPoolExecutor): multiprocessing ends them with ``os._exit`` after running its
own finalizers. A child also clears the finalizers it inherited or registered while starting,
then runs its after-fork hooks; the hook here registers the functions again in every child.
Each function runs at most once per process, whichever path gets there first.
"""

from __future__ import annotations

import atexit
import multiprocessing.util
import os
import threading
from collections.abc import Callable

_functions: list[Callable[[], None]] = []
_done: dict[int, set[int]] = {}  # pid -> ids of the functions already run in that process
_lock = threading.Lock()


def at_process_exit(fn: Callable[[], None]) -> None:
    """Call ``fn()`` once when this process (or a multiprocessing child of it) ends."""
    _functions.append(fn)
    atexit.register(_run_once, fn)
    multiprocessing.util.Finalize(None, _run_once, args=(fn,), exitpriority=100)


def _run_once(fn: Callable[[], None]) -> None:
    with _lock:
        done = _done.setdefault(os.getpid(), set())
        if id(fn) in done:
            return
        done.add(id(fn))
    fn()


class _ChildHook:
    """Held at module level: multiprocessing keeps only a weak reference to it."""

    def __init__(self) -> None:
        multiprocessing.util.register_after_fork(self, _ChildHook._in_child)

    @staticmethod
    def _in_child(_self: object) -> None:
        for fn in _functions:
            multiprocessing.util.Finalize(None, _run_once, args=(fn,), exitpriority=100)


_hook = _ChildHook()
