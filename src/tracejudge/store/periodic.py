"""Store maintenance that a server repeats in the background (retention, hourly rollups): one
daemon thread per task, which survives the database being down or busy."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from tracejudge.errors import TraceJudgeError

logger = logging.getLogger(__name__)


def start_periodic(name: str, every_s: float, work: Callable[[], str | None]) -> threading.Event:
    """Run ``work`` now and every ``every_s`` in a daemon thread ``tracejudge-<name>``; what it
    returns, if anything, is logged. A store error (the database down or busy) is logged and
    the next run tries again. Set the returned event to stop."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                done = work()
                if done:
                    logger.info("%s: %s", name, done)
            except TraceJudgeError as exc:
                logger.warning("%s: %s", name, exc)
            stop.wait(every_s)

    threading.Thread(target=loop, name=f"tracejudge-{name}", daemon=True).start()
    return stop
