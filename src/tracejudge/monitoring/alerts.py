"""Pass-rate alerts: a JSON POST to the scorer's webhook when its pass rate drops.

At most one alert per scorer per ``every_s`` from one monitor process: a pass rate that stays
low does not flood the webhook. A webhook that fails is logged; monitoring goes on.
"""

from __future__ import annotations

import logging
import threading
import time

import httpx

from tracejudge.entities import RegisteredScorer

logger = logging.getLogger("tracejudge.monitoring")


class AlertSender:
    def __init__(self, every_s: float = 3600.0, timeout_s: float = 10.0) -> None:
        self.every_s = every_s
        self.timeout_s = timeout_s
        self._last: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self.sent = 0

    def send(self, info: RegisteredScorer, pass_rate: float, judged: int) -> bool:
        """POST the alert unless one for this scorer went out less than ``every_s`` ago."""
        key = (info.experiment_id, info.name)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.every_s:
                return False
            self._last[key] = now
        body = {
            "alert": "pass_rate_below",
            "experiment_id": info.experiment_id,
            "scorer": info.name,
            "version": info.version,
            "pass_rate": round(pass_rate, 4),
            "alert_below": info.alert_below,
            "verdicts": judged,
            "window_s": 3600,
        }
        try:
            reply = httpx.post(str(info.alert_webhook), json=body, timeout=self.timeout_s)
            reply.raise_for_status()
        except httpx.HTTPError as exc:
            logger.warning("alert webhook for scorer %s failed: %s", info.name, exc)
            return False
        self.sent += 1
        return True
