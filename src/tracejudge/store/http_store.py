"""The ``TraceStore`` protocol spoken to a tracking server (``tracejudge server``) over HTTP.

``set_tracking_uri("http://host:5000")`` makes every SDK call, search, ``evaluate()`` and the
CLI go through here unchanged. One ``httpx.Client`` keeps connections alive; a request that
did not get through (connection refused or reset, 429, 5xx) is retried with
exponential backoff and jitter, as long as repeating it cannot write twice: trace and verdict
writes are upserts keyed by ids the client fills in before sending. Errors come back as the
typed error the server raised (``InvalidFilterError``, ``TraceNotFoundError``, …).
"""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import orjson

from tracejudge.entities import Assessment, EvaluationRun, Experiment, Span, Trace
from tracejudge.entities._json import json_bytes
from tracejudge.errors import (
    AuthenticationError,
    InvalidArgumentError,
    StoreError,
    StoreUnavailableError,
    TraceJudgeError,
    TraceNotFoundError,
    error_from_code,
)
from tracejudge.store.base import PagedList
from tracejudge.store.dataset_http import HttpDatasetStore
from tracejudge.store.monitor_http import HttpMonitorStore

API = "/api/v1"
RETRY_STATUSES = {429, 500, 502, 503, 504}
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""The request never reached the server: always safe to send again."""
_LOST_ANSWER = (httpx.ReadError, httpx.ReadTimeout, httpx.WriteError, httpx.RemoteProtocolError)
"""The server may have acted on it: sent again only when repeating it is harmless."""
_LIMITS = httpx.Limits(max_keepalive_connections=16, max_connections=64)
MAX_RETRY_AFTER_S = 30.0


class HttpTraceStore:
    """A :class:`~tracejudge.store.base.TraceStore` on a tracking server.

    ``max_retries`` and ``backoff_s`` bound how long one call keeps trying (about
    ``backoff_s * 2**max_retries`` seconds; defaults 6 and 0.25 s: some 16 s), after which it
    raises :class:`~tracejudge.errors.StoreUnavailableError`. The trace exporter holds its
    traces through longer outages (``TRACEJUDGE_EXPORT_RETRY_S``).
    """

    def __init__(
        self,
        uri: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 6,
        backoff_s: float = 0.25,
    ) -> None:
        self.uri = uri.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = httpx.Timeout(timeout, connect=10.0)
        self._client = self._new_client()
        self.max_retries = max_retries
        self.backoff_s = backoff_s

    def _new_client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.uri, headers=self._headers, timeout=self._timeout, limits=_LIMITS
        )

    def __repr__(self) -> str:
        return f"HttpTraceStore({self.uri!r})"

    def close(self) -> None:
        self._client.close()

    @functools.cached_property
    def monitor(self) -> HttpMonitorStore:
        """The monitoring tables, on the server: registered scorers and the monitor's claims."""
        return HttpMonitorStore(self)

    @functools.cached_property
    def datasets(self) -> HttpDatasetStore:
        """Evaluation datasets and their records, on the server."""
        return HttpDatasetStore(self)

    def forget_connections(self) -> None:
        """After a fork: a new connection pool for this process."""
        self._client = self._new_client()

    # ---------------------------------------------------------------- calls

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        idempotent: bool = True,
        missing_ok: bool = False,
        **params: Any,
    ) -> Any:
        """One API call, retried while it did not get through; the reply's JSON, or None for a
        404 when ``missing_ok``. Gives up with StoreUnavailableError."""
        content = None if body is None else _encode(method, path, body)
        headers = {"Content-Type": "application/json"} if content is not None else None
        attempt = 0
        while True:
            wait: float | None = None
            try:
                response = self._client.request(
                    method, API + path, content=content, headers=headers, params=params or None
                )
            except _NOT_SENT as exc:
                problem: str = f"cannot reach the tracking server {self.uri}: {exc}"
            except _LOST_ANSWER as exc:
                if not idempotent:
                    raise StoreUnavailableError(
                        f"{method} {path}: the tracking server did not answer ({exc}); "
                        "the request may or may not have been applied."
                    ) from exc
                problem = f"the tracking server {self.uri} did not answer: {exc}"
            except httpx.HTTPError as exc:
                raise StoreError(f"{method} {path} failed: {exc}") from exc
            else:
                if response.status_code < 400:
                    return response.json()
                if response.status_code == 404 and missing_ok:
                    return None
                if response.status_code not in RETRY_STATUSES or (
                    response.status_code == 500 and not idempotent
                ):
                    raise _typed_error(response)
                problem = f"the tracking server answered {response.status_code}"
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    wait = min(float(retry_after), MAX_RETRY_AFTER_S)
            attempt += 1
            if attempt > self.max_retries:
                raise StoreUnavailableError(
                    f"{method} {path}: {problem} (gave up after {attempt} attempts)"
                )
            if wait is None:
                wait = self.backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
            time.sleep(wait)

    # ------------------------------------------------------------ experiments

    def create_experiment(self, name: str) -> Experiment:
        return Experiment.from_dict(
            self._call("POST", "/experiments", {"name": name}, idempotent=False)
        )

    def get_experiment(self, experiment_id: str) -> Experiment:
        return Experiment.from_dict(self._call("GET", f"/experiments/{_segment(experiment_id)}"))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        found = self._call("POST", "/experiments/by-name", {"name": name})["experiment"]
        return None if found is None else Experiment.from_dict(found)

    def get_or_create_experiment(self, name: str) -> Experiment:
        return Experiment.from_dict(
            self._call("POST", "/experiments/get-or-create", {"name": name})
        )

    def list_experiments(self) -> list[Experiment]:
        return [Experiment.from_dict(e) for e in self._call("GET", "/experiments")["experiments"]]

    def experiment_activity(self) -> dict[str, dict[str, int | None]]:
        return self._call("GET", "/experiments/activity")["activity"]

    # ----------------------------------------------------------------- traces

    def log_traces(self, traces: Sequence[Trace]) -> None:
        stamped = [_with_stamped_assessments(t) for t in traces]
        self._call("POST", "/traces/batch", {"traces": [t.to_dict() for t in stamped]})

    def merge_traces(
        self, parts: Sequence[Trace], merge: Callable[[Trace | None, Trace], Trace]
    ) -> int:
        """The server merges each part with its own rule (``merge`` is not sent)."""
        stamped = [_with_stamped_assessments(t) for t in parts]
        reply = self._call("POST", "/traces/merge", {"traces": [t.to_dict() for t in stamped]})
        return int(reply["new"])

    def log_spans(self, trace_id: str, spans: Sequence[Span]) -> None:
        self._call(
            "POST", f"/traces/{_segment(trace_id)}/spans", {"spans": [s.to_dict() for s in spans]}
        )

    def get_trace(self, trace_id: str, include_spans: bool = True) -> Trace | None:
        found = self._call(
            "GET",
            f"/traces/{_segment(trace_id)}",
            missing_ok=True,
            include_spans=str(include_spans).lower(),
        )
        return None if found is None else Trace.from_dict(found["trace"])

    def get_traces(self, trace_ids: Sequence[str], include_spans: bool = True) -> list[Trace]:
        body = {"trace_ids": list(trace_ids), "include_spans": include_spans}
        return [Trace.from_dict(t) for t in self._call("POST", "/traces/get", body)["traces"]]

    def search_traces(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
        include_spans: bool = True,
    ) -> PagedList[Trace]:
        body = {
            "experiment_ids": list(experiment_ids) if experiment_ids else None,
            "filter_string": filter_string,
            "order_by": [order_by] if isinstance(order_by, str) else order_by,
            "max_results": max_results,
            "page_token": page_token,
            "include_spans": include_spans,
        }
        reply = self._call("POST", "/traces/search", body)
        return PagedList([Trace.from_dict(t) for t in reply["traces"]], reply["next_page_token"])

    def delete_traces(self, trace_ids: Sequence[str]) -> int:
        return int(self._call("POST", "/traces/delete", {"trace_ids": list(trace_ids)})["deleted"])

    def delete_traces_before(
        self,
        before_ms: int,
        experiment_ids: Sequence[str] | None = None,
        batch_size: int | None = None,
        max_batches: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """The server deletes in its own batches, a few per request; this repeats the request
        until nothing is left (or ``max_batches`` requests were made)."""
        body = {
            "before_ms": int(before_ms),
            "experiment_ids": list(experiment_ids) if experiment_ids else None,
        }
        total = requests = 0
        while max_batches is None or requests < max_batches:
            requests += 1
            reply = self._call("POST", "/traces/delete-before", body, idempotent=True)
            total += int(reply["deleted"])
            if on_batch is not None and reply["deleted"]:
                on_batch(int(reply["deleted"]))
            if reply["done"]:
                break
        return total

    def trace_stats(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str | None = None,
        group_by: str | None = None,
        metrics: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        body = {
            "experiment_ids": list(experiment_ids) if experiment_ids else None,
            "filter_string": filter_string,
            "group_by": group_by,
            "metrics": list(metrics) if metrics is not None else None,
        }
        return list(self._call("POST", "/traces/stats", body)["rows"])

    # ------------------------------------------------------------------- tags

    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None:
        self._call("POST", f"/traces/{_segment(trace_id)}/tags", {"key": key, "value": str(value)})

    def delete_trace_tag(self, trace_id: str, key: str) -> None:
        self._call("POST", f"/traces/{_segment(trace_id)}/tags/delete", {"key": key})

    # ------------------------------------------------------------ assessments

    def log_assessments(self, assessments: Sequence[Assessment]) -> list[Assessment]:
        stamped = [a.stamped(a.trace_id) if a.trace_id else a for a in assessments]
        reply = self._call(
            "POST", "/assessments/batch", {"assessments": [a.to_dict() for a in stamped]}
        )
        return [Assessment.from_dict(a) for a in reply["assessments"]]

    def log_assessment(self, assessment: Assessment) -> Assessment:
        return self.log_assessments([assessment])[0]

    def get_assessment(self, trace_id: str, assessment_id: str) -> Assessment:
        return Assessment.from_dict(self._call("GET", _assessment_path(trace_id, assessment_id)))

    def update_assessment(
        self, trace_id: str, assessment_id: str, changes: dict[str, Any]
    ) -> Assessment:
        body = {
            "changes": {k: v.to_dict() if hasattr(v, "to_dict") else v for k, v in changes.items()}
        }
        return Assessment.from_dict(
            self._call("PATCH", _assessment_path(trace_id, assessment_id), body)
        )

    def delete_assessment(self, trace_id: str, assessment_id: str) -> None:
        self._call("DELETE", _assessment_path(trace_id, assessment_id), idempotent=False)

    def override_assessment(
        self, trace_id: str, assessment_id: str, replacement: Assessment
    ) -> Assessment:
        path = _assessment_path(trace_id, assessment_id) + "/override"
        reply = self._call("POST", path, {"replacement": replacement.to_dict()}, idempotent=False)
        return Assessment.from_dict(reply)

    # ------------------------------------------------------------------- runs

    def create_run(self, run: EvaluationRun) -> None:
        self._call("POST", "/runs", {"run": _run_dict(run)}, idempotent=False)

    def update_run(self, run: EvaluationRun) -> None:
        self._call("PUT", f"/runs/{_segment(run.run_id)}", {"run": _run_dict(run)})

    def get_run(self, run_id: str) -> EvaluationRun:
        return EvaluationRun.from_dict(self._call("GET", f"/runs/{_segment(run_id)}"))

    def search_runs(
        self, experiment_ids: Sequence[str] | None = None, max_results: int = 1000
    ) -> list[EvaluationRun]:
        body = {
            "experiment_ids": list(experiment_ids) if experiment_ids else None,
            "max_results": max_results,
        }
        return [
            EvaluationRun.from_dict(r) for r in self._call("POST", "/runs/search", body)["runs"]
        ]

    def get_run_assessments(self, run_id: str) -> list[Assessment]:
        reply = self._call("GET", f"/runs/{_segment(run_id)}/assessments")
        return [Assessment.from_dict(a) for a in reply["assessments"]]

    # ------------------------------------------------------------ call cache

    def get_cached_call(self, key: str) -> str | None:
        response = self._call("GET", f"/llm-cache/{_segment(key)}")["response"]
        return None if response is None else str(response)

    def put_cached_calls(self, entries: Sequence[tuple[str, str, str]]) -> None:
        self._call("POST", "/llm-cache", {"entries": [list(e) for e in entries]})


def _encode(method: str, path: str, body: Any) -> bytes:
    """``body`` as JSON (orjson: a batch of traces is serialised several times faster than with
    json); a lone surrogate is replaced rather than losing the batch."""
    try:
        return json_bytes(body)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidArgumentError(f"{method} {path}: cannot send {exc}") from None


def _segment(value: str) -> str:
    """One path segment: ids with ``/`` or ``?`` in them must not change the route."""
    from urllib.parse import quote

    return quote(str(value), safe="")


def _assessment_path(trace_id: str, assessment_id: str) -> str:
    return f"/traces/{_segment(trace_id)}/assessments/{_segment(assessment_id)}"


def _run_dict(run: EvaluationRun) -> dict[str, Any]:
    """A run as JSON; metrics that are not finite numbers are not stored (as in the SQL store)."""
    data = run.to_dict()
    data["metrics"] = {
        k: v for k, v in data["metrics"].items() if v is not None and math.isfinite(float(v))
    }
    return data


def _with_stamped_assessments(trace: Trace) -> Trace:
    """Give the trace's assessments their ids here, so that a retried write replaces rather than
    duplicates them."""
    if not trace.info.assessments:
        return trace
    trace.info.assessments = [a.stamped(trace.info.trace_id) for a in trace.info.assessments]
    return trace


def _typed_error(response: httpx.Response) -> TraceJudgeError:
    try:
        body = response.json()
        code, message = str(body["error_code"]), str(body["message"])
    except Exception:
        code, message = "", response.text[:500] or f"HTTP {response.status_code}"
    if response.status_code in (401, 403):
        return AuthenticationError(message)
    if code == "" and response.status_code == 404:
        return TraceNotFoundError(message)
    if code == "" and response.status_code >= 500:
        return StoreUnavailableError(
            f"the tracking server answered {response.status_code}: {message}"
        )
    if code == "":
        return StoreError(f"the tracking server answered {response.status_code}: {message}")
    return error_from_code(code, message)
