"""The web UI's routes: pages (GET) and the writes their forms send (POST, then redirect).

Pages call the same store the REST routers call, never the REST API over HTTP. A user's error
(a bad filter, an unknown trace, a stale page token) is shown on the page it came from with
status 400/404, never a 500. Every write checks the CSRF token and the person's role, is
attributed to the signed-in name, and redirects back (post/redirect/get).
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from tracejudge.entities import (
    AssessmentSource,
    AssessmentSourceType,
    EvaluationRun,
    Expectation,
    Feedback,
)
from tracejudge.entities.assessment import numeric_value
from tracejudge.errors import (
    DatasetNotFoundError,
    InvalidArgumentError,
    InvalidFilterError,
    InvalidOrderByError,
    InvalidPageTokenError,
    TraceJudgeError,
    TraceNotFoundError,
    http_status,
)
from tracejudge.evaluation.datasets import records_from
from tracejudge.evaluation.runs import compare_runs
from tracejudge.judges.agreement import agreement
from tracejudge.monitoring.status import monitor_status
from tracejudge.server.auth import token_role
from tracejudge.store.base import TraceStore
from tracejudge.ui import session, views

HERE = Path(__file__).parent
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
AGREEMENT_TRACES = 5_000
"""The newest traces of an experiment the agreement page reads (one query, no spans)."""
DEFAULT_ORDER = "timestamp_ms DESC"
SORTABLE = {
    "timestamp_ms": "Time",
    "execution_time_ms": "Duration",
    "status": "Status",
    "name": "Name",
}


SECURITY_HEADERS = {
    # no inline script, no remote anything: trace content that slips past escaping cannot run
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class UiError(Exception):
    """A page cannot be shown: rendered as an error page with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def posted(request: Request) -> dict[str, Any]:
    """The posted form after the CSRF and role checks (UiError 403 otherwise); a
    dependency, so the handlers stay synchronous and run in the thread pool."""
    data = await request.form()
    fields: dict[str, Any] = {k: data.getlist(k) for k in data}
    flat = {k: (v[0] if len(v) == 1 else v) for k, v in fields.items()}
    role = session.role(request)
    if role is None:
        raise UiError(401, "Sign in first: this server asks for a token.")
    if role != "write":
        raise UiError(403, "This token may only read: no changes can be made with it.")
    if not session.csrf_ok(request, str(flat.get("csrf", ""))):
        raise UiError(403, "The form's security token did not match; reload the page and retry.")
    return flat


Posted = Annotated[dict[str, Any], Depends(posted)]


def add_ui(app: FastAPI, store: TraceStore) -> None:
    """Serve the pages at ``/`` and their assets at ``/static`` (all shipped in the package)."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.globals.update(
        fmt_time=views.fmt_time,
        fmt_duration=views.fmt_duration,
        fmt_value=views.fmt_value,
        preview=views.preview,
        pretty_json=views.pretty_json,
        score_colour=views.score_colour,
    )
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
        who = session.role(request)
        if who is None and template != "login.html":
            return RedirectResponse(f"/login?{urlencode({'next': _here(request)})}", 303)
        context.update(
            request=request,
            role=who,
            can_write=who == "write",
            auth=session.auth_enabled(request),
            user=session.user_name(request),
            csrf=session.csrf_token(request),
        )
        response = templates.TemplateResponse(request, template, context, status_code=status)
        response.headers.update(SECURITY_HEADERS)
        return session.finish(request, response)

    def page(handler: Callable[..., Response]) -> Callable[..., Response]:
        """A typed error raised by the store as an error page, with the status the API gives."""

        @functools.wraps(handler)
        def wrapped(request: Request, *args: Any, **kwargs: Any) -> Response:
            started = time.perf_counter()
            try:
                response = handler(request, *args, **kwargs)
            except TraceJudgeError as exc:
                response = render(request, "error.html", http_status(exc), message=str(exc))
            elapsed = (time.perf_counter() - started) * 1000
            response.headers["Server-Timing"] = f"page;dur={elapsed:.1f}"  # store + template
            return response

        return wrapped

    @app.exception_handler(UiError)
    async def ui_error(request: Request, exc: UiError) -> Response:
        return render(request, "error.html", exc.status, message=str(exc))

    def human(request: Request) -> AssessmentSource:
        return AssessmentSource(AssessmentSourceType.HUMAN, session.user_name(request))

    # --------------------------------------------------------------- sign in

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request, next: str = "/") -> Response:
        return render(request, "login.html", next=_safe_next(next), failed=False)

    @app.post("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login(request: Request) -> Response:
        data = await request.form()
        token = str(data.get("token") or "").strip()
        name = str(data.get("name") or "").strip() or session.ANONYMOUS
        target = _safe_next(str(data.get("next") or "/"))
        middleware_role = _token_role(app, token)
        if session.auth_enabled(request) and middleware_role is None:
            return render(request, "login.html", 401, next=target, failed=True)
        response = RedirectResponse(target, 303)
        session.sign_in(response, token if session.auth_enabled(request) else None, name)
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        response = RedirectResponse("/login", 303)
        session.sign_out(response)
        return response

    # ----------------------------------------------------------- experiments

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        return RedirectResponse("/experiments", 307)

    @app.get("/experiments", response_class=HTMLResponse, include_in_schema=False)
    @page
    def experiments_page(request: Request) -> Response:
        activity = store.experiment_activity()
        latest: dict[str, EvaluationRun] = {}
        for run in store.search_runs(None, 1000):  # newest first
            latest.setdefault(run.experiment_id, run)
        rows = [
            {
                "experiment": e,
                "traces": activity.get(e.experiment_id, {}).get("trace_count", 0),
                "last": activity.get(e.experiment_id, {}).get("last_trace_ms"),
                "run": latest.get(e.experiment_id),
                "scores": _scorer_summaries(latest.get(e.experiment_id)),
            }
            for e in store.list_experiments()
        ]
        return render(request, "experiments.html", rows=rows)

    # ---------------------------------------------------------------- traces

    @app.get(
        "/experiments/{experiment_id}/traces", response_class=HTMLResponse, include_in_schema=False
    )
    @page
    def traces_page(
        request: Request,
        experiment_id: str,
        filter: str = "",
        order: str = DEFAULT_ORDER,
        page: str | None = None,
        size: int = PAGE_SIZE,
    ) -> Response:
        experiment = store.get_experiment(experiment_id)
        size = min(max(1, size), MAX_PAGE_SIZE)
        error = None
        try:
            found = store.search_traces(
                [experiment_id], filter or None, [order], size, page or None, False
            )
        except (InvalidFilterError, InvalidOrderByError, InvalidPageTokenError) as exc:
            error, found = str(exc), None
        infos = [t.info for t in found or []]
        latest_run = store.search_runs([experiment_id], 1)
        names = views.feedback_names(infos, (s["name"] for r in latest_run for s in r.scorers))
        rows = [
            {
                "info": info,
                "cells": [
                    views.verdict_cell(views.current_feedback(info.assessments, n)) for n in names
                ],
                "flagged": any(
                    a.metadata.get("suspected_injection")
                    for a in info.assessments
                    if isinstance(a, Feedback) and a.valid
                ),
            }
            for info in infos
        ]

        def link(**changes: Any) -> str:
            params = {"filter": filter, "order": order, "size": size} | changes
            kept = {k: v for k, v in params.items() if v not in (None, "")}
            return f"/experiments/{experiment_id}/traces?{urlencode(kept)}"

        sorted_field, _, direction = order.partition(" ")

        def sort_link(field: str) -> str:
            flip = "ASC" if sorted_field == field and direction.upper() != "ASC" else "DESC"
            if field.startswith("feedback.") and sorted_field != field:
                flip = "ASC"  # the worst verdicts first
            return link(order=f"{field} {flip}", page=None)

        return render(
            request,
            "traces.html",
            400 if error else 200,
            experiment=experiment,
            rows=rows,
            names=names,
            filter=filter,
            order=order,
            sorted_field=sorted_field,
            direction=direction.upper() or "ASC",
            sortable=SORTABLE,
            sort_link=sort_link,
            error=error,
            next_link=link(page=found.token) if found is not None and found.token else None,
            first_link=link(page=None) if page else None,
            size=size,
            here=_here(request),
        )

    @app.post("/experiments/{experiment_id}/traces/tag", include_in_schema=False)
    @page
    def tag_selected(request: Request, experiment_id: str, data: Posted) -> Response:
        ids = data.get("trace_id") or []
        ids = [ids] if isinstance(ids, str) else list(ids)
        key, value = str(data.get("key", "")).strip(), str(data.get("value", "")).strip()
        if not ids:
            raise UiError(400, "Select at least one trace to tag.")
        if not key:
            raise UiError(400, "A tag needs a key.")
        for trace_id in ids:
            store.set_trace_tag(trace_id, key, value)
        return RedirectResponse(_safe_next(str(data.get("next", "/"))), 303)

    @app.get("/traces/{trace_id}", response_class=HTMLResponse, include_in_schema=False)
    @page
    def trace_page(request: Request, trace_id: str) -> Response:
        trace = store.get_trace(trace_id)
        if trace is None:
            raise UiError(404, f"No trace with id {trace_id!r}.")
        experiment = store.get_experiment(trace.info.experiment_id)
        assessments = views.assessment_views(trace.info.assessments)
        judged = sorted(
            {
                a.assessment.name
                for a in assessments
                if isinstance(a.assessment, Feedback) and not a.struck
            }
        )
        return render(
            request,
            "trace.html",
            trace=trace,
            experiment=experiment,
            spans=views.span_rows(trace.data.spans),
            assessments=assessments,
            judged=judged,
        )

    @app.post("/traces/{trace_id}/feedback", include_in_schema=False)
    @page
    def add_feedback(request: Request, trace_id: str, data: Posted) -> Response:
        _require_trace(store, trace_id)
        name = str(data.get("name", "")).strip()
        if not name:
            raise UiError(400, "Feedback needs a name.")
        value = _feedback_value(str(data.get("kind", "text")), str(data.get("value", "")))
        store.log_assessment(
            Feedback(
                name,
                value,
                source=human(request),
                trace_id=trace_id,
                rationale=str(data.get("rationale", "")).strip() or None,
            ).stamped(trace_id)
        )
        return RedirectResponse(f"/traces/{trace_id}#assessments", 303)

    @app.post("/traces/{trace_id}/expectation", include_in_schema=False)
    @page
    def add_expectation(request: Request, trace_id: str, data: Posted) -> Response:
        _require_trace(store, trace_id)
        name = str(data.get("name", "")).strip() or "expected_response"
        store.log_assessment(
            Expectation(
                name,
                _parsed(str(data.get("value", ""))),
                source=human(request),
                trace_id=trace_id,
            ).stamped(trace_id)
        )
        return RedirectResponse(f"/traces/{trace_id}#assessments", 303)

    @app.post("/traces/{trace_id}/assessments/{assessment_id}/override", include_in_schema=False)
    @page
    def override(request: Request, trace_id: str, assessment_id: str, data: Posted) -> Response:
        reason = str(data.get("reason", "")).strip()
        if not reason:
            raise UiError(400, "Say why the verdict is wrong: an override needs a reason.")
        old = store.get_assessment(trace_id, assessment_id)
        raw = str(data.get("value", ""))
        value = _feedback_value("auto", raw) if isinstance(old, Feedback) else _parsed(raw)
        cls = Feedback if isinstance(old, Feedback) else Expectation
        replacement = cls(
            old.name,  # type: ignore[attr-defined]
            value,
            source=human(request),
            trace_id=trace_id,
            rationale=reason,
            span_id=old.span_id,
        )
        store.override_assessment(trace_id, assessment_id, replacement)
        return RedirectResponse(f"/traces/{trace_id}#assessments", 303)

    @app.post("/traces/{trace_id}/tags", include_in_schema=False)
    @page
    def set_tag(request: Request, trace_id: str, data: Posted) -> Response:
        key = str(data.get("key", "")).strip()
        if not key:
            raise UiError(400, "A tag needs a key.")
        if data.get("delete"):
            store.delete_trace_tag(trace_id, key)
        else:
            store.set_trace_tag(trace_id, key, str(data.get("value", "")))
        return RedirectResponse(f"/traces/{trace_id}#tags", 303)

    # -------------------------------------------------------------- datasets

    def dataset_tables() -> Any:
        tables = getattr(store, "datasets", None)
        if tables is None:
            raise UiError(404, "This store keeps no evaluation datasets.")
        return tables

    @app.get("/datasets", response_class=HTMLResponse, include_in_schema=False)
    @page
    def datasets_page(request: Request) -> Response:
        names = {e.experiment_id: e.name for e in store.list_experiments()}
        found = dataset_tables().search(None, 1000)
        return render(request, "datasets.html", datasets=found, names=names)

    @app.get("/datasets/{dataset_id}", response_class=HTMLResponse, include_in_schema=False)
    @page
    def dataset_page(request: Request, dataset_id: str) -> Response:
        tables = dataset_tables()
        try:
            dataset = tables.get(dataset_id)
        except DatasetNotFoundError:
            raise UiError(404, f"No dataset with id {dataset_id!r}.") from None
        return render(request, "dataset.html", dataset=dataset, records=tables.records(dataset_id))

    @app.post("/experiments/{experiment_id}/traces/to-dataset", include_in_schema=False)
    @page
    def add_to_dataset(request: Request, experiment_id: str, data: Posted) -> Response:
        ids = data.get("trace_id") or []
        ids = [ids] if isinstance(ids, str) else list(ids)
        name = str(data.get("dataset", "")).strip()
        if not ids:
            raise UiError(400, "Select at least one trace to add.")
        if not name:
            raise UiError(400, "Name the dataset to add the traces to (a new name makes one).")
        tables = dataset_tables()
        try:
            dataset = tables.get(name=name)
        except DatasetNotFoundError:
            dataset = tables.create(name, [experiment_id])
        tables.merge_records(dataset.dataset_id, records_from(store.get_traces(ids, False)))
        return RedirectResponse(f"/datasets/{dataset.dataset_id}", 303)

    # ------------------------------------------------------------------ runs

    @app.get("/runs", response_class=HTMLResponse, include_in_schema=False)
    @page
    def runs_page(request: Request, experiment: str = "") -> Response:
        runs = store.search_runs([experiment] if experiment else None, 1000)
        names = {e.experiment_id: e.name for e in store.list_experiments()}
        return render(request, "runs.html", runs=runs, names=names, experiment=experiment)

    @app.get("/runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
    @page
    def run_page(request: Request, run_id: str) -> Response:
        run = store.get_run(run_id)
        assessments = [
            a
            for a in store.get_run_assessments(run_id)
            if isinstance(a, Feedback) and a.span_id is None
        ]
        scorers = _scorer_details(assessments)
        others = [r for r in store.search_runs([run.experiment_id], 50) if r.run_id != run_id]
        experiment = store.get_experiment(run.experiment_id)
        return render(
            request, "run.html", run=run, scorers=scorers, others=others, experiment=experiment
        )

    @app.get("/compare", response_class=HTMLResponse, include_in_schema=False)
    @page
    def compare_page(request: Request, a: str = "", b: str = "") -> Response:
        if not a or not b:
            raise UiError(400, "Choose two runs to compare (?a=RUN&b=RUN).")
        comparison = compare_runs(a, b, store=store)
        changed = comparison.changed.to_dict("records")
        return render(
            request,
            "compare.html",
            comparison=comparison,
            deltas=comparison.metric_deltas.to_dict("records"),
            changed=changed,
        )

    # ------------------------------------------------------------ monitoring

    @app.get("/monitoring", response_class=HTMLResponse, include_in_schema=False)
    @page
    def monitoring_page(request: Request, experiment: str = "") -> Response:
        reports = monitor_status(store, experiment or None)
        now_ms = int(time.time() * 1000)
        experiments = store.list_experiments()
        return render(
            request,
            "monitoring.html",
            scorers=[(r, views.pass_rate_bars(r.pass_rate_by_hour, now_ms)) for r in reports],
            experiments=experiments,
            names={e.experiment_id: e.name for e in experiments},
            experiment=experiment,
            chart=(views.CHART_WIDTH, views.CHART_HEIGHT, views.CHART_WIDTH / views.CHART_HOURS),
        )

    # ------------------------------------------------------------- agreement

    @app.get("/agreement", response_class=HTMLResponse, include_in_schema=False)
    @page
    def agreement_page(request: Request, experiment: str = "0") -> Response:
        chosen = store.get_experiment(experiment)
        traces = store.search_traces([experiment], None, None, AGREEMENT_TRACES, None, False)
        judged = sorted(
            {
                a.name
                for t in traces
                for a in t.info.assessments
                if isinstance(a, Feedback) and a.source and a.source.source_type != "HUMAN"
            }
        )
        reports = [agreement(name, traces) for name in judged]
        return render(
            request,
            "agreement.html",
            experiment=chosen,
            experiments=store.list_experiments(),
            reports=[r for r in reports if r.compared],
            unlabelled=[r.name for r in reports if not r.compared],
            read=len(traces),
            limit=AGREEMENT_TRACES,
        )


# ------------------------------------------------------------------- helpers


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _safe_next(target: str) -> str:
    """Only a path on this site: never an absolute URL (no open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _token_role(app: FastAPI, token: str) -> str | None:
    tokens, read_only = getattr(app.state, "ui_tokens", (frozenset(), frozenset()))
    return token_role(token.encode(), tokens, read_only) if token else None


def _require_trace(store: TraceStore, trace_id: str) -> None:
    if store.get_trace(trace_id, include_spans=False) is None:
        raise TraceNotFoundError(f"No trace with id {trace_id!r}.")


def _parsed(raw: str) -> Any:
    """A JSON value when the text is one (numbers, true/false, lists), else the text."""
    text = raw.strip()
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgumentError("A value must be a finite number.")
    return value


def _feedback_value(kind: str, raw: str) -> Any:
    text = raw.strip()
    if kind == "thumbs":
        if text not in ("up", "down"):
            raise UiError(400, "Thumbs feedback is up or down.")
        return text == "up"
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise UiError(400, f"Not a number: {text!r}.") from None
        if not math.isfinite(number):
            raise UiError(400, "A number must be finite.")
        return number
    if kind == "auto":
        lowered = text.lower()
        if lowered in ("yes", "no"):
            return lowered
        return _parsed(text)
    if not text:
        raise UiError(400, "Feedback needs a value.")
    return text


def _scorer_summaries(run: EvaluationRun | None) -> list[tuple[str, float]]:
    """A run's headline figure per scorer: ``<name>/pass_rate`` or ``<name>/mean``."""
    if run is None:
        return []
    out = []
    for key, value in sorted(run.metrics.items()):
        name, _, stat = key.rpartition("/")
        if stat in ("pass_rate", "mean") and name:
            out.append((key, value))
    return out


def _scorer_details(assessments: list[Feedback]) -> list[dict[str, Any]]:
    """Per scorer: histogram of numeric values, pass/fail counts, errors, the worst rows."""
    by_name: dict[str, list[Feedback]] = {}
    for a in assessments:
        by_name.setdefault(a.name, []).append(a)
    out = []
    for name, items in sorted(by_name.items()):
        judged = [
            (
                a,
                views.verdict_cell(a),
                None if a.error is not None or isinstance(a.value, str) else numeric_value(a.value),
            )
            for a in items
        ]
        numbers = [n for _, _, n in judged if n is not None]
        passed = sum(cell.css == "pass" for _, cell, _ in judged)
        failed = sum(cell.css == "fail" for _, cell, _ in judged)

        def badness(entry: tuple[Feedback, views.VerdictCell, float | None]) -> tuple[int, float]:
            _, cell, number = entry
            if cell.css == "error":
                return (0, 0.0)
            if cell.css == "fail":
                return (1, 0.0)
            return (2, number if number is not None else 1.0)

        out.append(
            {
                "name": name,
                "count": len(items),
                "errors": sum(a.error is not None for a in items),
                "passed": passed,
                "failed": failed,
                "bars": views.histogram(numbers) if numbers and not (passed or failed) else [],
                "worst": [(a, cell) for a, cell, _ in sorted(judged, key=badness)[:10]],
            }
        )
    return out
