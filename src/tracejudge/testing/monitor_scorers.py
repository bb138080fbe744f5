"""``@scorer`` functions at the top level of an importable module, for the tests of work done in
other processes (the monitor, Ray workers): a function scorer travels by reference, and the
other process imports it."""

from __future__ import annotations

import os
import time
from typing import Any

from tracejudge.errors import ModelNotConfiguredError
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
    pid_dir = os.environ.get("TRACEJUDGE_TEST_PID_DIR")
    if pid_dir:  # which processes score: a test can kill one mid-run
        open(os.path.join(pid_dir, str(os.getpid())), "a").close()
    time.sleep(float(os.environ.get("TRACEJUDGE_TEST_SCORER_DELAY_S", "0.2")))
    return bool(str(outputs or "").strip())


@scorer
def answered_unless_stopped(outputs: Any) -> bool:
    """``answered``, but a configuration error (which stops a run) on a response that contains
    ``TRACEJUDGE_TEST_STOP_WORD``: a run can be interrupted part way, then resumed."""
    word = os.environ.get("TRACEJUDGE_TEST_STOP_WORD")
    if word and word in str(outputs or ""):
        raise ModelNotConfiguredError(f"stopped on {word!r} (a test's interruption)")
    return bool(str(outputs or "").strip())
