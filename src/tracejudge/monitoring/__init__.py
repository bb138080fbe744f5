"""Production monitoring: registered scorers run on live traces (``tracejudge monitor``).

Registering, starting and sampling are :mod:`tracejudge.scorers.registration`; this package
runs them: :class:`Monitor` (one pass, or forever), ``backfill`` and the status figures.
"""

from tracejudge.monitoring.backfill import backfill
from tracejudge.monitoring.monitor import Monitor, MonitorOptions, PassReport, ScorerPass
from tracejudge.monitoring.status import ScorerStatusReport, monitor_status
from tracejudge.scorers.registration import set_backfill_runner

set_backfill_runner(backfill)

__all__ = [
    "Monitor",
    "MonitorOptions",
    "PassReport",
    "ScorerPass",
    "ScorerStatusReport",
    "backfill",
    "monitor_status",
]
