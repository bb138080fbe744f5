"""Turning arbitrary Python values into JSON-safe data.

Span inputs and outputs are whatever the user's functions take and return; they must be
stored as JSON without ever raising into the user's code. ``to_jsonable`` converts the
common rich types (dataclasses, pydantic models, objects with ``to_dict``, sets, bytes,
dates) and falls back to ``repr`` for anything else.

Python strings may hold lone surrogates (bytes decoded with ``errors="surrogateescape"``, a
JSON ``"\\ud800"`` escape), which UTF-8 cannot encode: neither database, orjson nor an HTTP
body accepts them, so one such character would lose the whole trace. ``valid_text`` makes such
a string encodable, and ``dumps`` never returns one that is not.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import decimal
import enum
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

_PRIMITIVES = (str, int, float, bool, type(None))
_MAX_DEPTH = 50


_MAX_INT_BITS = 10_000
"""Integers wider than this are stored as a description: Python refuses to write an integer of
more than 4,300 digits (about 14,000 bits) as text, and no reader wants it."""
_MAX_NODES = 100_000
"""Containers and objects converted in one value at most (members past it are cut)."""


def to_jsonable(value: Any) -> Any:
    """Return a structure of dicts, lists and primitives that ``json.dumps`` accepts; never
    raises (a value that resists every conversion becomes its description). A value that
    contains itself has ``"<cycle>"`` where it recurs, and one of more than ``_MAX_NODES``
    members in all is cut there (``"<…>"``): shared members are walked once per reference,
    so a few objects referring to each other twice each would otherwise be walked 2**depth
    times."""
    return _Walk().convert(value, 0)


class _Walk:
    """One conversion: the containers on the current path, and the members left to convert."""

    __slots__ = ("budget", "path")

    def __init__(self) -> None:
        self.budget = _MAX_NODES
        self.path: set[int] = set()

    def convert(self, value: Any, depth: int) -> Any:
        try:
            return self._jsonable(value, depth)
        except Exception:  # a hostile object: raising properties, keys or members
            return _safe_repr(value)

    def _jsonable(self, value: Any, depth: int) -> Any:
        if isinstance(value, _PRIMITIVES):
            if isinstance(value, float) and (
                value != value or value in (float("inf"), float("-inf"))
            ):
                return None  # JSON has no NaN or infinity (orjson writes null too)
            if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
                return f"<int of {value.bit_length():,} bits>"
            return value
        if depth > _MAX_DEPTH:
            return _safe_repr(value)
        self.budget -= 1
        if self.budget < 0:
            return "<…>"
        if id(value) in self.path:
            return "<cycle>"
        self.path.add(id(value))
        try:
            return self._container(value, depth + 1)
        finally:
            self.path.discard(id(value))

    def _container(self, value: Any, nxt: int) -> Any:
        if isinstance(value, Mapping):
            return {_key(k): self.convert(v, nxt) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            items: Any = value
            if isinstance(value, (set, frozenset)):
                try:
                    items = sorted(value, key=repr)
                except Exception:  # a member whose repr raises: the set's own order
                    items = list(value)
            return [self.convert(v, nxt) for v in items]
        if isinstance(value, enum.Enum):
            return self.convert(value.value, nxt)
        if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
            return value.isoformat()
        if isinstance(value, (uuid.UUID, decimal.Decimal)):
            return str(value)
        if isinstance(value, (bytes, bytearray)):
            return {"__bytes_b64__": base64.b64encode(bytes(value)).decode("ascii")}
        for method in ("to_dict", "model_dump"):  # model_dump: pydantic v2
            try:  # the lookup itself may raise (a proxy outside its context)
                convert = getattr(value, method, None)
                if callable(convert) and not isinstance(value, type):
                    return self.convert(_quietly(convert), nxt)
            except Exception:
                pass
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {
                f.name: self.convert(getattr(value, f.name), nxt) for f in dataclasses.fields(value)
            }
        return _safe_repr(value)


def _quietly(convert: Any) -> Any:
    """``convert()`` without pydantic's serialisation warnings, which would reach the app's
    output (a generic model such as openai's ``ParsedChatCompletion`` warns about its parsed
    field on every dump); a ``to_dict`` that takes no ``warnings`` argument is called bare."""
    try:
        return convert(warnings=False)
    except TypeError:
        return convert()


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    try:
        return str(key)
    except Exception:
        return _safe_repr(key)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def with_valid_text(value: Any) -> Any:
    """``value`` (dicts, lists and primitives) with every string made :func:`valid_text`."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, Mapping):
        return {with_valid_text(k): with_valid_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [with_valid_text(v) for v in value]
    return value


def json_bytes(value: Any, option: int = 0) -> bytes:
    """Plain JSON data (dicts, lists, primitives) as orjson's UTF-8 bytes; a lone surrogate,
    which orjson refuses, is replaced (:func:`valid_text`) rather than failing the whole value,
    and an integer past 64 bits is written by ``json`` instead. Anything that is not plain data
    still raises orjson's ``TypeError``."""
    try:
        return orjson.dumps(value, option=option)
    except orjson.JSONEncodeError:
        pass
    try:
        return orjson.dumps(with_valid_text(value), option=option)
    except orjson.JSONEncodeError as exc:
        if "Integer exceeds" not in str(exc):
            raise  # not plain data: the caller's to report
        # an integer past 64 bits (in a stored value, say), which ``json`` writes
        return json.dumps(with_valid_text(value), ensure_ascii=False).encode()


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def _orjson_default(value: Any) -> Any:
    converted = to_jsonable(value)
    if converted is value:  # pragma: no cover - to_jsonable always converts what orjson cannot
        raise TypeError
    return converted


_SURROGATE = re.compile("[\ud800-\udfff]")


def is_valid_text(text: str) -> bool:
    """True when ``text`` encodes to UTF-8, i.e. holds no lone surrogate."""
    return text.isascii() or _SURROGATE.search(text) is None


def valid_text(text: str) -> str:
    """``text`` with surrogate pairs joined and lone surrogates replaced by U+FFFD."""
    if is_valid_text(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def dumps(value: Any) -> str:
    """Serialise any value to a JSON string of valid UTF-8; never raises.

    orjson (about ten times faster than ``json``) handles the common case on the tracing hot
    path; values it rejects (integers beyond 64 bits, lone surrogates) go through
    :func:`to_jsonable` and :func:`valid_text`. NaN and infinities become ``null``.
    """
    try:
        return orjson.dumps(value, default=_orjson_default, option=_ORJSON_OPTIONS).decode()
    except Exception:  # TypeError, JSONEncodeError, or a key or member that raised
        pass
    try:
        return valid_text(json.dumps(to_jsonable(value), ensure_ascii=False))
    except Exception:  # what to_jsonable let through and json still refuses
        return json.dumps(_safe_repr(value))


def loads(text: str | bytes | None) -> Any:
    """Parse JSON text stored by :func:`dumps`; ``None`` stays ``None``."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # what orjson refuses (NaN literals, huge integers)
