"""The tracking server's REST API: the ``TraceStore`` protocol over HTTP, under ``/api/v1/``.

Every route is a thin translation: JSON in, one store call, JSON out. Entities travel as
their ``to_dict`` form, errors as ``{"error_code": <the typed error's class>, "message": …}``
with the status :func:`tracejudge.errors.http_status` gives it, so the HTTP store on the other
side raises the very error the SQL store would have raised. A write is answered only after its
transaction has committed. Routes are plain ``def``: FastAPI runs them in its thread pool, which
suits the synchronous SQL store.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tracejudge import settings
from tracejudge.entities import Assessment, EvaluationRun, Span, Trace
from tracejudge.entities._json import json_bytes
from tracejudge.errors import (
    InvalidArgumentError,
    TraceJudgeError,
    TraceNotFoundError,
    error_code,
    http_status,
)
from tracejudge.server import wire
from tracejudge.server.auth import BearerTokens
from tracejudge.server.dataset_api import add_dataset_routes
from tracejudge.server.metrics import MeasureRequests, ServerMetrics
from tracejudge.server.monitor_api import add_monitor_routes, monitor_metrics
from tracejudge.server.otlp import add_otlp_routes
from tracejudge.store.base import TraceStore
from tracejudge.tracing.trace_merge import merge_part
from tracejudge.ui.pages import add_ui

API = "/api/v1"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_PAGE = 5_000
"""The most traces one answer carries (a search page, a batch get): bounded server memory."""


class JsonAnswer(JSONResponse):
    """Answers as JSON by orjson, and no response model: they are entities' ``to_dict``, already
    plain JSON. (FastAPI's own ``ORJSONResponse`` is deprecated.) A lone surrogate (which a
    client's JSON may spell, and UTF-8 cannot encode) is answered as U+FFFD, as the store keeps
    it, instead of failing the answer with a 500."""

    def render(self, content: Any) -> bytes:
        return json_bytes(content, option=_ORJSON_OPTIONS)


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown field is a 400, not silently ignored


class NameBody(_Body):
    name: str


class TracesBody(_Body):
    traces: list[dict[str, Any]]


class SearchBody(_Body):
    experiment_ids: list[str] | None = None
    filter_string: str | None = None
    order_by: list[str] | None = None
    max_results: int = 100
    page_token: str | None = None
    include_spans: bool = True


class TraceIdsBody(_Body):
    trace_ids: list[str]


class StatsBody(_Body):
    experiment_ids: list[str] | None = None
    filter_string: str | None = None
    group_by: str | None = None
    metrics: list[str] | None = None


class RetentionBody(_Body):
    before_ms: int
    experiment_ids: list[str] | None = None
    max_batches: int = 20


class GetTracesBody(_Body):
    trace_ids: list[str]
    include_spans: bool = True


class SpansBody(_Body):
    spans: list[dict[str, Any]]


class TagBody(_Body):
    key: str
    value: str


class KeyBody(_Body):
    key: str


class AssessmentsBody(_Body):
    assessments: list[dict[str, Any]]


class ChangesBody(_Body):
    changes: dict[str, Any]


class ReplacementBody(_Body):
    replacement: dict[str, Any]


class RunBody(_Body):
    run: dict[str, Any]


class RunSearchBody(_Body):
    experiment_ids: list[str] | None = None
    max_results: int = 1000


class CacheBody(_Body):
    entries: list[tuple[str, str, str]]


class BodyLimit:
    """Refuse a request body over the limit with 413: before reading it when its Content-Length
    says so, else as soon as a chunked body passes the limit. The body is read here, whole,
    before the route sees it (a route's own body parsing would turn the refusal into a 400).

    A client that stops sending part-way through its body gets a 408 after ``idle_timeout``
    seconds without a byte, and its connection is closed: the server behind (uvicorn) has no
    such limit, and each stalled client held a connection open for ever."""

    def __init__(self, app: ASGIApp, limit: int, idle_timeout: float | None = None) -> None:
        self.app = app
        self.limit = limit
        self.idle_timeout = idle_timeout or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(send, self.limit)
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.idle_timeout)
            except asyncio.TimeoutError:
                await _stalled(send, self.idle_timeout)
                return
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await _too_large(send, self.limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(send: Send, limit: int) -> None:
    response = JSONResponse(
        {
            "error_code": "RequestTooLargeError",
            "message": f"The request body is over the server's limit of {limit:,} bytes.",
        },
        status_code=413,
    )
    await response({"type": "http"}, _no_body, send)


async def _stalled(send: Send, idle_timeout: float | None) -> None:
    response = JSONResponse(
        {
            "error_code": "RequestTimeoutError",
            "message": f"No part of the request body arrived for {idle_timeout:g} s.",
        },
        status_code=408,
        headers={"Connection": "close"},
    )
    await response({"type": "http"}, _no_body, send)


async def _no_body() -> dict[str, Any]:  # pragma: no cover - JSONResponse never reads
    return {"type": "http.request", "body": b""}


E = TypeVar("E")


def _entity(cls: type[E], data: dict[str, Any], shape: Any = wire.FREE) -> E:
    """``cls.from_dict(data)``, refusing fields the entity does not have (``shape``: a typo would
    otherwise lose data in silence). A body of the wrong shape is the client's error (400), while
    the same exceptions raised anywhere else stay server errors."""
    unknown = wire.unknown_fields(data, shape)
    if unknown:
        raise InvalidArgumentError(
            f"Malformed {cls.__name__}: unknown field(s) {', '.join(unknown[:10])}"
        )
    try:
        return cls.from_dict(data)  # type: ignore[attr-defined]
    except TraceJudgeError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidArgumentError(
            f"Malformed {cls.__name__}: {type(exc).__name__}: {exc}"
        ) from None


def _error(exc: TraceJudgeError) -> JSONResponse:
    return JsonAnswer(  # the message may quote the request's text, lone surrogates included
        {"error_code": error_code(exc), "message": str(exc)}, status_code=http_status(exc)
    )


def create_app(
    store: TraceStore,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    *,
    tokens: frozenset[str] = frozenset(),
    read_only: frozenset[str] = frozenset(),
) -> FastAPI:
    """The API over ``store`` (the server opens it; tests may hand one in). With ``tokens`` or
    ``read_only`` tokens, every request but ``/health`` must carry one (:mod:`.auth`)."""
    app = FastAPI(
        default_response_class=JsonAnswer,
        title="tracejudge tracking server",
        version="1",
        description="Traces, verdicts and evaluation runs of LLM applications.",
    )
    app.state.store = store
    metrics = app.state.metrics = ServerMetrics()

    @app.exception_handler(TraceJudgeError)
    async def typed_error(request: Request, exc: TraceJudgeError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "NotFound", 405: "MethodNotAllowed"}
        message = {
            404: f"No route {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
        }
        return JSONResponse(
            {
                "error_code": codes.get(exc.status_code, "HTTPError"),
                "message": message.get(exc.status_code, str(exc.detail)),
            },
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return JSONResponse(
            {"error_code": "InvalidArgumentError", "message": f"Malformed request: {where}"},
            status_code=400,
        )

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus_metrics() -> str:
        return metrics.render(monitor_metrics(store))

    @app.get("/health", response_model=None)
    def health() -> dict[str, str]:
        store.list_experiments()  # the database answers
        return {"status": "ok"}

    # ------------------------------------------------------------ experiments

    @app.post(f"{API}/experiments", response_model=None)
    def create_experiment(body: NameBody) -> dict[str, Any]:
        return store.create_experiment(body.name).to_dict()

    @app.post(f"{API}/experiments/get-or-create", response_model=None)
    def get_or_create_experiment(body: NameBody) -> dict[str, Any]:
        return store.get_or_create_experiment(body.name).to_dict()

    @app.get(f"{API}/experiments", response_model=None)
    def list_experiments() -> dict[str, Any]:
        return {"experiments": [e.to_dict() for e in store.list_experiments()]}

    @app.get(f"{API}/experiments/activity", response_model=None)
    def experiment_activity() -> dict[str, Any]:
        return {"activity": store.experiment_activity()}

    @app.post(f"{API}/experiments/by-name", response_model=None)
    def get_experiment_by_name(body: NameBody) -> dict[str, Any]:
        found = store.get_experiment_by_name(body.name)
        return {"experiment": None if found is None else found.to_dict()}

    @app.get(f"{API}/experiments/{{experiment_id}}", response_model=None)
    def get_experiment(experiment_id: str) -> dict[str, Any]:
        return store.get_experiment(experiment_id).to_dict()

    # ----------------------------------------------------------------- traces

    @app.post(f"{API}/traces/batch", response_model=None)
    def log_traces(body: TracesBody) -> dict[str, Any]:
        traces = [_entity(Trace, t, wire.trace_shape()) for t in body.traces]
        store.log_traces(traces)
        metrics.ingested(len(traces), sum(len(t.data.spans) for t in traces))
        return {"logged": len(traces)}

    @app.post(f"{API}/traces/merge", response_model=None)
    def merge_traces(body: TracesBody) -> dict[str, Any]:
        """Parts of distributed traces, each merged into what the store holds of it."""
        parts = [_entity(Trace, t, wire.trace_shape()) for t in body.traces]
        new = store.merge_traces(parts, merge_part)
        metrics.ingested(new, sum(len(t.data.spans) for t in parts))
        return {"merged": len(parts), "new": new}

    @app.post(f"{API}/traces/search", response_model=None)
    def search_traces(body: SearchBody) -> dict[str, Any]:
        page = store.search_traces(
            body.experiment_ids,
            body.filter_string,
            body.order_by,
            min(body.max_results, MAX_PAGE),  # a longer list continues with the page token
            body.page_token,
            body.include_spans,
        )
        return {"traces": [t.to_dict() for t in page], "next_page_token": page.token}

    @app.post(f"{API}/traces/delete", response_model=None)
    def delete_traces(body: TraceIdsBody) -> dict[str, Any]:
        return {"deleted": store.delete_traces(body.trace_ids)}

    @app.post(f"{API}/traces/stats", response_model=None)
    def trace_stats(body: StatsBody) -> dict[str, Any]:
        rows = store.trace_stats(
            body.experiment_ids, body.filter_string, body.group_by, body.metrics
        )
        return {"rows": rows}

    @app.post(f"{API}/traces/delete-before", response_model=None)
    def delete_traces_before(body: RetentionBody) -> dict[str, Any]:
        """At most ``max_batches`` batches per request, so that no request runs for minutes:
        the client repeats it until ``done``."""
        cap = max(1, min(body.max_batches, 1000))
        batches: list[int] = []
        deleted = store.delete_traces_before(
            body.before_ms, body.experiment_ids, max_batches=cap, on_batch=batches.append
        )
        return {"deleted": deleted, "done": len(batches) < cap}  # it ran out before the cap

    @app.get(f"{API}/traces/{{trace_id}}", response_model=None)
    def get_trace(trace_id: str, include_spans: bool = True) -> dict[str, Any]:
        found = store.get_trace(trace_id, include_spans)
        if found is None:
            raise TraceNotFoundError(f"No trace with id {trace_id!r}.")
        return {"trace": found.to_dict()}

    @app.post(f"{API}/traces/get", response_model=None)
    def get_traces(body: GetTracesBody) -> dict[str, Any]:
        if len(body.trace_ids) > MAX_PAGE:
            raise InvalidArgumentError(f"At most {MAX_PAGE:,} trace ids per request.")
        return {
            "traces": [t.to_dict() for t in store.get_traces(body.trace_ids, body.include_spans)]
        }

    @app.post(f"{API}/traces/{{trace_id}}/spans", response_model=None)
    def log_spans(trace_id: str, body: SpansBody) -> dict[str, Any]:
        store.log_spans(trace_id, [_entity(Span, s, wire.span_shape()) for s in body.spans])
        return {"logged": len(body.spans)}

    @app.post(f"{API}/traces/{{trace_id}}/tags", response_model=None)
    def set_trace_tag(trace_id: str, body: TagBody) -> dict[str, Any]:
        store.set_trace_tag(trace_id, body.key, body.value)
        return {}

    @app.post(f"{API}/traces/{{trace_id}}/tags/delete", response_model=None)
    def delete_trace_tag(trace_id: str, body: KeyBody) -> dict[str, Any]:
        store.delete_trace_tag(trace_id, body.key)
        return {}

    # ------------------------------------------------------------ assessments

    @app.post(f"{API}/assessments/batch", response_model=None)
    def log_assessments(body: AssessmentsBody) -> dict[str, Any]:
        stored = store.log_assessments(
            [_entity(Assessment, a, wire.assessment_shape()) for a in body.assessments]
        )
        return {"assessments": [a.to_dict() for a in stored]}

    @app.get(f"{API}/traces/{{trace_id}}/assessments/{{assessment_id}}", response_model=None)
    def get_assessment(trace_id: str, assessment_id: str) -> dict[str, Any]:
        return store.get_assessment(trace_id, assessment_id).to_dict()

    @app.patch(f"{API}/traces/{{trace_id}}/assessments/{{assessment_id}}", response_model=None)
    def update_assessment(trace_id: str, assessment_id: str, body: ChangesBody) -> dict[str, Any]:
        return store.update_assessment(trace_id, assessment_id, body.changes).to_dict()

    @app.delete(f"{API}/traces/{{trace_id}}/assessments/{{assessment_id}}", response_model=None)
    def delete_assessment(trace_id: str, assessment_id: str) -> dict[str, Any]:
        store.delete_assessment(trace_id, assessment_id)
        return {}

    @app.post(
        f"{API}/traces/{{trace_id}}/assessments/{{assessment_id}}/override", response_model=None
    )
    def override_assessment(
        trace_id: str, assessment_id: str, body: ReplacementBody
    ) -> dict[str, Any]:
        replacement = _entity(Assessment, body.replacement, wire.assessment_shape())
        new = store.override_assessment(trace_id, assessment_id, replacement)
        return new.to_dict()

    # ------------------------------------------------------------------- runs

    @app.post(f"{API}/runs", response_model=None)
    def create_run(body: RunBody) -> dict[str, Any]:
        store.create_run(_entity(EvaluationRun, body.run, wire.run_shape()))
        return {}

    @app.put(f"{API}/runs/{{run_id}}", response_model=None)
    def update_run(run_id: str, body: RunBody) -> dict[str, Any]:
        store.update_run(_entity(EvaluationRun, {**body.run, "run_id": run_id}, wire.run_shape()))
        return {}

    @app.get(f"{API}/runs/{{run_id}}", response_model=None)
    def get_run(run_id: str) -> dict[str, Any]:
        return store.get_run(run_id).to_dict()

    @app.post(f"{API}/runs/search", response_model=None)
    def search_runs(body: RunSearchBody) -> dict[str, Any]:
        found = store.search_runs(body.experiment_ids, body.max_results)
        return {"runs": [r.to_dict() for r in found]}

    @app.get(f"{API}/runs/{{run_id}}/assessments", response_model=None)
    def get_run_assessments(run_id: str) -> dict[str, Any]:
        return {"assessments": [a.to_dict() for a in store.get_run_assessments(run_id)]}

    # ------------------------------------------------------------ call cache

    @app.get(f"{API}/llm-cache/{{key}}", response_model=None)
    def get_cached_call(key: str) -> dict[str, Any]:
        return {"response": store.get_cached_call(key)}

    @app.post(f"{API}/llm-cache", response_model=None)
    def put_cached_calls(body: CacheBody) -> dict[str, Any]:
        store.put_cached_calls(body.entries)
        return {"stored": len(body.entries)}

    if getattr(store, "monitor", None) is not None:
        add_monitor_routes(app, store)
    if getattr(store, "datasets", None) is not None:
        add_dataset_routes(app, store)
    add_otlp_routes(app, store, max_body_bytes, metrics)
    app.state.ui_tokens = (tokens, read_only)
    add_ui(app, store)
    app.add_middleware(
        BodyLimit, limit=max_body_bytes, idle_timeout=settings.SERVER_BODY_TIMEOUT_S.get()
    )
    if tokens or read_only:  # before the body is read
        app.add_middleware(BearerTokens, tokens=tokens, read_only=read_only)
    app.add_middleware(MeasureRequests, metrics=metrics)  # outermost: it sees every refusal
    return app
