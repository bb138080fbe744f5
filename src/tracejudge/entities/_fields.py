"""Checks of the typed fields an entity reads back from a dict (a client's JSON included).

``from_dict`` used to pass such a field through as it came: ``"valid": "false"`` became a
valid assessment (``bool("false")``), a time of ``"yesterday"`` was stored and made every later
read of the trace fail. A TypeError here is the client's error (the server answers 400).
"""

from __future__ import annotations

from typing import Any


def optional_int(data: dict[str, Any], key: str) -> int | None:
    """``data[key]`` as an integer, None when missing or null; TypeError for anything else (a
    bool, a string, a fractional number)."""
    value = data.get(key)
    if value is None:
        return None
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise TypeError(f"{key} must be an integer, not {value!r}")
    return int(value)


def flag(data: dict[str, Any], key: str, default: bool) -> bool:
    """``data[key]`` as a bool (``default`` when missing or null); TypeError for a non-bool."""
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise TypeError(f"{key} must be true or false, not {value!r}")
    return value
