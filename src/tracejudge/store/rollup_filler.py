"""Keep the hourly rollups filled in the background, so that a dashboard's first aggregate
over days or the whole store reads stored hours instead of computing each one from the
traces while its user waits (at 10M traces on PostgreSQL: 21-27 s, against 3-82 ms)."""

from __future__ import annotations

import threading
from typing import Protocol

from tracejudge.store.periodic import start_periodic

FILL_EVERY_S = 300.0
"""How often the server looks for ended hours not stored yet (an hour ends every hour; the
rest of the time a pass reads only which hours are stored)."""


class FillsRollups(Protocol):
    def fill_hourly_rollups(self) -> int: ...


def start_rollup_thread(store: FillsRollups, every_s: float = FILL_EVERY_S) -> threading.Event:
    """Fill the rollups now and every ``every_s`` in a daemon thread; set the event to stop."""

    def fill() -> str | None:
        filled = store.fill_hourly_rollups()
        return f"{filled} hours computed and stored" if filled else None

    return start_periodic("rollups", every_s, fill)
