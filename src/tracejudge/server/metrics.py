"""``GET /metrics``: the server's own counters in the Prometheus text format.

Per server process (with ``--workers N`` each worker counts its own requests; Prometheus sums
them when it scrapes each, or the load balancer's view is used). Kept by hand rather than with
prometheus_client: a handful of counters and one latency histogram.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServerMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.traces_ingested = 0
        self.spans_ingested = 0
        self.buckets: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS_S) + 1))
        self.latency_sum_s: dict[str, float] = defaultdict(float)
        self.latency_count: dict[str, int] = defaultdict(int)
        self.in_flight = 0

    def ingested(self, traces: int, spans: int) -> None:
        with self._lock:
            self.traces_ingested += traces
            self.spans_ingested += spans

    def observe(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, status)] += 1
            self.buckets[route][bisect.bisect_left(BUCKETS_S, seconds)] += 1
            self.latency_sum_s[route] += seconds
            self.latency_count[route] += 1

    def render(self, extra: Sequence[str] = ()) -> str:
        """The counters, then ``extra`` lines (gauges read from the store when scraped)."""
        with self._lock:
            rejected: dict[int, int] = defaultdict(int)
            for (_route, status), count in self.requests.items():
                if 400 <= status < 500:
                    rejected[status] += count
            lines = [
                "# HELP tracejudge_traces_ingested_total Traces written (SDK batches and OTLP).",
                "# TYPE tracejudge_traces_ingested_total counter",
                f"tracejudge_traces_ingested_total {self.traces_ingested}",
                "# HELP tracejudge_spans_ingested_total Spans written with those traces.",
                "# TYPE tracejudge_spans_ingested_total counter",
                f"tracejudge_spans_ingested_total {self.spans_ingested}",
                "# HELP tracejudge_requests_in_flight Requests being served or waiting for a "
                "worker thread (the server's queue).",
                "# TYPE tracejudge_requests_in_flight gauge",
                f"tracejudge_requests_in_flight {self.in_flight}",
                "# HELP tracejudge_requests_rejected_total Requests refused (bad input, token, "
                "size, not found), by status.",
                "# TYPE tracejudge_requests_rejected_total counter",
                *(
                    f'tracejudge_requests_rejected_total{{status="{status}"}} {count}'
                    for status, count in sorted(rejected.items())
                ),
                "# HELP tracejudge_requests_total Requests by route and status.",
                "# TYPE tracejudge_requests_total counter",
            ]
            for (route, status), count in sorted(self.requests.items()):
                lines.append(
                    f'tracejudge_requests_total{{route="{route}",status="{status}"}} {count}'
                )
            lines += [
                "# HELP tracejudge_request_seconds Time to answer a request, by route.",
                "# TYPE tracejudge_request_seconds histogram",
            ]
            for route in sorted(self.buckets):
                cumulative = 0
                for bound, count in zip(
                    (*BUCKETS_S, float("inf")), self.buckets[route], strict=True
                ):
                    cumulative += count
                    le = "+Inf" if bound == float("inf") else f"{bound:g}"
                    lines.append(
                        f'tracejudge_request_seconds_bucket{{route="{route}",le="{le}"}} {cumulative}'
                    )
                lines.append(
                    f'tracejudge_request_seconds_sum{{route="{route}"}} {self.latency_sum_s[route]:.6f}'
                )
                lines.append(
                    f'tracejudge_request_seconds_count{{route="{route}"}} {self.latency_count[route]}'
                )
        return "\n".join([*lines, *extra]) + "\n"


class MeasureRequests:
    """Counts every request by its route template (not its raw path) and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/metrics":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        with self.metrics._lock:
            self.metrics.in_flight += 1
        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            with self.metrics._lock:
                self.metrics.in_flight -= 1
            self.metrics.observe(name, status, time.perf_counter() - started)
