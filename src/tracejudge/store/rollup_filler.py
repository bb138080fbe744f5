"""Keep the hourly rollups filled in the background, so that a dashboard's first aggregate
over days or the whole store reads stored hours instead of computing each one from the
traces while its user waits (at 1M traces on PostgreSQL: seconds, against milliseconds)."""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from tracejudge.errors import TraceJudgeError

logger = logging.getLogger(__name__)

FILL_EVERY_S = 300.0
"""How often the server looks for ended hours not stored yet (an hour ends every hour; the
rest of the time a pass reads only which hours are stored)."""


class FillsRollups(Protocol):
    def fill_hourly_rollups(self) -> int: ...


def start_rollup_thread(store: FillsRollups, every_s: float = FILL_EVERY_S) -> threading.Event:
    """Fill the rollups now and every ``every_s`` in a daemon thread; set the event to stop."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                filled = store.fill_hourly_rollups()
                if filled:
                    logger.info("hourly rollups: %d hours computed and stored", filled)
            except TraceJudgeError as exc:  # the store is down or busy: try again next time
                logger.warning("hourly rollups: %s", exc)
            stop.wait(every_s)

    threading.Thread(target=loop, name="tracejudge-rollups", daemon=True).start()
    return stop
