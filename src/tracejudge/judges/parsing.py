"""Reading a judge's reply, which small or chatty models do not always give as clean JSON.

Accepts code fences, prose around the JSON, single quotes, Python literals, trailing
commas, "Yes."/"NO"-style verdict-only replies, and ``verdict: yes`` lines.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def _objects(text: str) -> list[str]:
    """Every balanced ``{...}`` span, outermost first, skipping braces inside strings."""
    spans, depth, start, quote, escaped = [], 0, -1, "", False
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
            continue
        if ch in "\"'" and depth > 0:
            quote = ch
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


def _load(candidate: str) -> dict[str, Any] | None:
    for attempt in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
        try:
            value = json.loads(attempt)
        except ValueError:
            try:  # single quotes, True/False/None
                value = ast.literal_eval(attempt)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                continue
        if isinstance(value, dict):
            return {str(k).strip().lower(): v for k, v in value.items()}
    return None


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON-like object in ``text`` (keys lower-cased), or None."""
    if not text:
        return None
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        for span in _objects(candidate):
            loaded = _load(span)
            if loaded is not None:
                return loaded
    return None


_YES = {
    "yes",
    "y",
    "true",
    "pass",
    "passed",
    "correct",
    "grounded",
    "safe",
    "supported",
    "relevant",
}
_NO = {
    "no",
    "n",
    "false",
    "fail",
    "failed",
    "incorrect",
    "ungrounded",
    "unsafe",
    "unsupported",
    "irrelevant",
}
_VERDICT_LINE = re.compile(
    r"(?:verdict|answer|result|judg(?:e)?ment|rating)\s*[:=]\s*[\"'*]*\s*([A-Za-z]+)", re.IGNORECASE
)
_WORD = re.compile(r"[A-Za-z]+")


def yes_no(value: Any) -> str | None:
    """ "yes"/"no" from a verdict value in any common spelling, else None."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, str):
        return None
    word = value.strip().strip("\"'*.!`").lower()
    if word in _YES:
        return "yes"
    if word in _NO:
        return "no"
    return None


def parse_verdict(text: str) -> tuple[str, str | None] | None:
    """``("yes"|"no", rationale)`` from a judge reply, or None when no verdict can be read."""
    obj = parse_json_object(text)
    if obj is not None:
        for key in ("verdict", "result", "answer", "value", "rating"):
            if key in obj:
                verdict = yes_no(obj[key])
                if verdict is not None:
                    rationale = (
                        obj.get("rationale") or obj.get("reasoning") or obj.get("explanation")
                    )
                    return verdict, None if rationale is None else str(rationale)
                break
    stripped = text.strip()
    line = _VERDICT_LINE.search(stripped)
    if line and yes_no(line.group(1)):
        rationale = stripped[: line.start()].strip() or None
        return yes_no(line.group(1)) or "no", rationale
    words = _WORD.findall(stripped)
    if 0 < len(words) <= 3 and yes_no(words[0]):  # "Yes.", "NO", "yes, grounded"
        return yes_no(words[0]) or "no", None
    return None
