"""What the pages show, computed from entities: plain values the templates only lay out.

Nothing here renders HTML (the templates do, with autoescaping on), so everything here can be
unit-tested without a browser: which verdict is a trace's current one, how a score is coloured,
the span tree and its waterfall, whether a payload is a chat conversation or a list of documents.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tracejudge.entities import Assessment, Feedback, Span, SpanType, TraceInfo
from tracejudge.entities.assessment import numeric_value
from tracejudge.entities.chat_payloads import output_text, prompt_messages
from tracejudge.entities.span_tree import span_tree
from tracejudge.judges.agreement import as_pass
from tracejudge.tracing.constants import CHAT_TOKEN_USAGE

PREVIEW_CHARS = 160


def fmt_time(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(ms: float | None) -> str:
    if ms is None:
        return "running"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.2f} s"


def preview(text: str | None, limit: int = PREVIEW_CHARS) -> str:
    if not text:
        return ""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if math.isfinite(value) else str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return "" if value is None else str(value)


def pretty_json(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class VerdictCell:
    """One feedback value as a list cell: its text, a CSS class and an inline colour."""

    text: str
    css: str = ""
    """``pass`` | ``fail`` | ``score`` | ``error`` | ``""``."""
    colour: str = ""
    title: str = ""


def score_colour(score: float) -> str:
    """A 0–1 score on a red (0) to green (1) scale, as a CSS colour."""
    hue = round(120 * min(1.0, max(0.0, score)))
    return f"hsl({hue} 70% 85%)"


def verdict_cell(feedback: Feedback | None) -> VerdictCell:
    if feedback is None:
        return VerdictCell("")
    if feedback.error is not None:
        return VerdictCell("error", "error", title=feedback.error.error_code)
    value = feedback.value
    title = preview(feedback.rationale, 300)
    if isinstance(value, (bool, str)):
        verdict = as_pass(value)
        if verdict is not None:
            return VerdictCell(fmt_value(value), "pass" if verdict else "fail", title=title)
        return VerdictCell(preview(fmt_value(value), 40), title=title)
    number = numeric_value(value)
    if number is not None and 0.0 <= number <= 1.0:
        return VerdictCell(fmt_value(number), "score", score_colour(number), title)
    return VerdictCell(preview(fmt_value(value), 40), title=title)


def current_feedback(assessments: Iterable[Assessment], name: str) -> Feedback | None:
    """A trace's standing verdict of ``name``: the newest valid feedback, ties broken by id —
    the one the store marks ``latest`` and sorts by, so a column and its sort always agree."""
    found = [a for a in assessments if isinstance(a, Feedback) and a.name == name and a.valid]
    return (
        max(found, key=lambda a: (a.create_time_ms or 0, a.assessment_id or "")) if found else None
    )


def feedback_names(infos: Iterable[TraceInfo], extra: Iterable[str] = ()) -> list[str]:
    """The feedback names to show as columns: those on these traces and those asked for."""
    names = set(extra)
    for info in infos:
        names.update(a.name for a in info.assessments if isinstance(a, Feedback))
    return sorted(names)


# ----------------------------------------------------------------- the span tree


@dataclass
class SpanRow:
    span: Span
    depth: int
    offset_pct: float
    width_pct: float
    duration: str
    messages_in: list[dict[str, str]] | None = None
    messages_out: list[dict[str, str]] | None = None
    documents: list[dict[str, Any]] | None = None
    usage: dict[str, Any] = field(default_factory=dict)


def span_rows(spans: Sequence[Span]) -> list[SpanRow]:
    """Spans in tree order, each placed on the trace's timeline (percent)."""
    if not spans:
        return []
    start = min(s.start_time_ns for s in spans)
    end = max((s.end_time_ns or s.start_time_ns) for s in spans)
    total = max(end - start, 1)
    return [
        SpanRow(
            span=s,
            depth=depth,
            offset_pct=round(100 * (s.start_time_ns - start) / total, 2),
            width_pct=max(0.5, round(100 * ((s.end_time_ns or end) - s.start_time_ns) / total, 2)),
            duration=fmt_duration(s.duration_ms),
            messages_in=chat_messages(s.inputs),
            messages_out=chat_messages(s.outputs),
            documents=documents(s) if s.span_type == SpanType.RETRIEVER else None,
            usage=token_usage(s),
        )
        for s, depth in span_tree(spans)
    ]


def _message(item: Any) -> dict[str, str] | None:
    if not isinstance(item, dict) or "role" not in item:
        return None
    content = item.get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        content = "\n".join(
            str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content
        )
    text = "" if content is None else str(content)
    if item.get("tool_calls"):
        text = (text + "\n" if text else "") + pretty_json(item["tool_calls"])
    return {"role": str(item["role"]), "content": text}


def chat_messages(payload: Any) -> list[dict[str, str]] | None:
    """Chat messages in a span's inputs (``messages``; a Responses API call's instructions and
    input) or outputs (``choices[].message``; a Responses API response's output text)."""
    candidates: Any = None
    if isinstance(payload, dict):
        if (prompt := prompt_messages(payload)) is not None:
            candidates = prompt
        elif isinstance(payload.get("choices"), list):
            candidates = [c.get("message") for c in payload["choices"] if isinstance(c, dict)]
        elif (answer := output_text(payload.get("output"))) is not None:
            candidates = [{"role": "assistant", "content": answer}]
    elif isinstance(payload, list):
        candidates = payload
    if not candidates:
        return None
    messages = [_message(m) for m in candidates]
    return messages if all(m is not None for m in messages) else None  # type: ignore[return-value]


def documents(span: Span) -> list[dict[str, Any]] | None:
    """A retriever's documents (``page_content`` + metadata) from its outputs."""
    out = span.outputs
    if isinstance(out, dict):
        out = out.get("documents", out.get("output"))
    if not isinstance(out, list):
        return None
    docs = [
        {"content": str(d.get("page_content", "")), "metadata": d.get("metadata") or {}}
        for d in out
        if isinstance(d, dict) and "page_content" in d
    ]
    return docs or None


def token_usage(span: Span) -> dict[str, Any]:
    attrs = span.attributes or {}
    usage = attrs.get(CHAT_TOKEN_USAGE) or attrs.get("usage")
    if isinstance(usage, dict):
        return usage
    keys = ("input_tokens", "output_tokens", "total_tokens")
    found = {k: attrs[f"gen_ai.usage.{k}"] for k in keys if f"gen_ai.usage.{k}" in attrs}
    return found


# ------------------------------------------------------------ assessment history


@dataclass
class AssessmentView:
    assessment: Assessment
    value: str
    cell: VerdictCell
    source: str
    time: str
    struck: bool
    """Overridden (no longer valid): shown struck through, never hidden."""
    overridden_by: str | None = None


def assessment_views(assessments: Sequence[Assessment]) -> list[AssessmentView]:
    """Every assessment of a trace, grouped by name, newest first within a name."""
    replaced_by = {a.overrides: a.assessment_id for a in assessments if a.overrides}
    views = []
    for a in sorted(
        assessments, key=lambda a: (a.kind, getattr(a, "name", ""), -(a.create_time_ms or 0))
    ):
        source = a.source
        label = (
            f"{source.source_type.replace('_', ' ').lower()}: {source.source_id}" if source else ""
        )
        views.append(
            AssessmentView(
                assessment=a,
                value=fmt_value(getattr(a, "value", None)),
                cell=verdict_cell(a) if isinstance(a, Feedback) else VerdictCell(""),
                source=label,
                time=fmt_time(a.create_time_ms),
                struck=not a.valid,
                overridden_by=replaced_by.get(a.assessment_id) if a.assessment_id else None,
            )
        )
    return views


# ------------------------------------------------------------------- run plots


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    height: float
    label: str
    count: int


def histogram(values: Sequence[float], bins: int = 10, height: float = 80.0) -> list[Bar]:
    """Bars for an inline SVG (viewBox 0 0 100 height): values in [0, 1] on fixed bins, others
    on bins spanning their range."""
    if not values:
        return []
    lo, hi = (0.0, 1.0) if all(0 <= v <= 1 for v in values) else (min(values), max(values))
    span = (hi - lo) or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / span * bins))] += 1
    top = max(counts)
    width = 100 / bins
    return [
        Bar(
            x=round(i * width, 2),
            width=round(width * 0.9, 2),
            height=round(height * c / top, 2),
            label=f"{lo + i * span / bins:.2f}–{lo + (i + 1) * span / bins:.2f}",
            count=c,
        )
        for i, c in enumerate(counts)
    ]


@dataclass(frozen=True)
class HourBar:
    """One hour of a scorer's pass-rate chart: where its bar sits in the SVG and its tooltip."""

    x: float
    height: float
    pass_rate: float
    verdicts: int
    label: str


CHART_HOURS = 24
CHART_WIDTH = 240.0
CHART_HEIGHT = 40.0


def pass_rate_bars(hours: Iterable[tuple[int, float, int]], now_ms: int) -> list[HourBar]:
    """The last 24 hours' pass rates as bars, oldest at the left; an hour with no verdicts has
    no bar (a gap, not a zero)."""
    slot = CHART_WIDTH / CHART_HOURS
    this_hour = now_ms - now_ms % 3_600_000
    bars = []
    for hour_ms, rate, verdicts in hours:
        back = (this_hour - hour_ms) // 3_600_000
        if not 0 <= back < CHART_HOURS:
            continue
        bars.append(
            HourBar(
                x=(CHART_HOURS - 1 - back) * slot,
                height=max(1.0, rate * CHART_HEIGHT),
                pass_rate=rate,
                verdicts=verdicts,
                label=f"{fmt_time(hour_ms)[:13]}:00 UTC: {rate:.0%} of {verdicts} passed",
            )
        )
    return bars
