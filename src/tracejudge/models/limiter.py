"""A per-model concurrency limit that adapts like TCP: halve on 429, grow back on success (AIMD).

The limit is shared by every caller of a model in the process, whatever event loop (or
thread) they run in: waiters are woken with ``call_soon_threadsafe`` on their own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator


class AimdLimiter:
    def __init__(self, initial: int, *, minimum: int = 1, maximum: int = 64) -> None:
        self.minimum = max(1, minimum)
        self.maximum = max(self.minimum, maximum)
        self._limit = float(min(max(initial, self.minimum), self.maximum))
        self._in_flight = 0
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._lock = threading.Lock()
        self.peak_in_flight = 0

    @property
    def limit(self) -> int:
        return int(self._limit)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._in_flight < int(self._limit) and not self._waiters:
                self._take()
                return
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
        try:
            await future
        except asyncio.CancelledError:
            with self._lock:
                if future.done() and not future.cancelled():
                    self._in_flight -= 1  # the slot was handed to us as we were cancelled
                with contextlib.suppress(ValueError):
                    self._waiters.remove((loop, future))
            self._wake()
            raise

    def _take(self) -> None:
        self._in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self._in_flight)

    def release(self) -> None:
        with self._lock:
            self._in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        with self._lock:
            while self._waiters and self._in_flight < int(self._limit):
                loop, future = self._waiters.popleft()
                if future.done():
                    continue
                self._take()
                loop.call_soon_threadsafe(_resolve, future)

    def on_success(self) -> None:
        """Additive increase: about +1 to the limit per limit's worth of successful calls."""
        with self._lock:
            self._limit = min(self.maximum, self._limit + 1.0 / self._limit)
        self._wake()

    def on_rate_limited(self) -> None:
        """Multiplicative decrease on HTTP 429."""
        with self._lock:
            self._limit = max(float(self.minimum), self._limit / 2)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
