"""``@scorer`` functions at the top level of an importable module, for the monitoring tests:
a registered function scorer is kept by reference, and a monitor in another process imports it."""

from __future__ import annotations

import os
import time
from typing import Any

from tracejudge.scorers import scorer


@scorer
def answered(outputs: Any) -> bool:
    """Passes when the response is not empty (no model call)."""
    return bool(str(outputs or "").strip())


@scorer
def says_yes(outputs: Any) -> bool:
    """Passes when the response contains "yes": a pass rate the tests set."""
    return "yes" in str(outputs or "").lower()


@scorer
def slow_answered(outputs: Any) -> bool:
    """``answered`` that takes ``TRACEJUDGE_TEST_SCORER_DELAY_S`` seconds (a monitor can be killed
    mid-work)."""
    time.sleep(float(os.environ.get("TRACEJUDGE_TEST_SCORER_DELAY_S", "0.2")))
    return bool(str(outputs or "").strip())
