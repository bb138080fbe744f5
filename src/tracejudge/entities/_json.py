"""Turning arbitrary Python values into JSON-safe data.

Span inputs and outputs are whatever the user's functions take and return; they must be
stored as JSON without ever raising into the user's code. ``to_jsonable`` converts the
common rich types (dataclasses, pydantic models, objects with ``to_dict``, sets, bytes,
dates) and falls back to ``repr`` for anything else.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import decimal
import enum
import json
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

_PRIMITIVES = (str, int, float, bool, type(None))
_MAX_DEPTH = 50


def to_jsonable(value: Any, _depth: int = 0) -> Any:
    """Return a structure of dicts, lists and primitives that ``json.dumps`` accepts."""
    if isinstance(value, _PRIMITIVES):
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            return None  # JSON has no NaN or infinity (orjson writes null too)
        return value
    if _depth > _MAX_DEPTH:
        return _safe_repr(value)
    nxt = _depth + 1
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, nxt) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(v, nxt) for v in items]
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, nxt)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes_b64__": base64.b64encode(bytes(value)).decode("ascii")}
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and not isinstance(value, type):
        try:
            return to_jsonable(to_dict(), nxt)
        except Exception:
            pass
    model_dump = getattr(value, "model_dump", None)  # pydantic v2
    if callable(model_dump) and not isinstance(value, type):
        try:
            return to_jsonable(model_dump(), nxt)
        except Exception:
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name), nxt) for f in dataclasses.fields(value)}
    return _safe_repr(value)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def _orjson_default(value: Any) -> Any:
    converted = to_jsonable(value)
    if converted is value:  # pragma: no cover - to_jsonable always converts what orjson cannot
        raise TypeError
    return converted


def dumps(value: Any) -> str:
    """Serialise any value to a JSON string; never raises.

    orjson (about ten times faster than ``json``) handles the common case on the tracing hot
    path; values it rejects (integers beyond 64 bits, say) go through :func:`to_jsonable`.
    NaN and infinities become ``null``.
    """
    try:
        return orjson.dumps(value, default=_orjson_default, option=_ORJSON_OPTIONS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(to_jsonable(value), ensure_ascii=False)


def loads(text: str | bytes | None) -> Any:
    """Parse JSON text stored by :func:`dumps`; ``None`` stays ``None``."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # what orjson refuses (NaN literals, huge integers)
