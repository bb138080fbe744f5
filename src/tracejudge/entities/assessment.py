"""Assessments: verdicts (Feedback) and ground truth (Expectation) attached to a trace.

A ``Feedback`` is a judgement of a response (by a person, an LLM judge or code); an
``Expectation`` is what the response should have been. Both may be attached to one span.
"""

from __future__ import annotations

import math
import numbers
import time
import traceback
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar

from tracejudge.entities._fields import flag, optional_int
from tracejudge.entities._json import to_jsonable
from tracejudge.entities.ids import time_ordered_hex
from tracejudge.errors import InvalidArgumentError


class AssessmentSourceType:
    HUMAN = "HUMAN"
    LLM_JUDGE = "LLM_JUDGE"
    CODE = "CODE"

    ALL: ClassVar[tuple[str, ...]] = (HUMAN, LLM_JUDGE, CODE)

    @classmethod
    def validate(cls, value: str) -> str:
        upper = str(value).upper()
        if upper == "AI_JUDGE":  # the older MLflow spelling
            upper = cls.LLM_JUDGE
        if upper not in cls.ALL:
            raise InvalidArgumentError(
                f"Unknown assessment source type {value!r}; expected one of {', '.join(cls.ALL)}."
            )
        return upper


@dataclass(frozen=True)
class AssessmentSource:
    """Who gave an assessment: ``source_type`` HUMAN | LLM_JUDGE | CODE and an id (user, model, function)."""

    source_type: str = AssessmentSourceType.CODE
    source_id: str = "default"

    def __post_init__(self) -> None:
        object.__setattr__(self, "source_type", AssessmentSourceType.validate(self.source_type))

    def to_dict(self) -> dict[str, Any]:
        return {"source_type": self.source_type, "source_id": self.source_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AssessmentSource:
        return cls(
            data.get("source_type", AssessmentSourceType.CODE), data.get("source_id", "default")
        )


@dataclass(frozen=True)
class AssessmentError:
    """Why an assessment has no value: the judge failed, the input lacked what it needs, …"""

    error_code: str
    error_message: str | None = None
    stack_trace: str | None = None

    @classmethod
    def coerce(
        cls, value: AssessmentError | BaseException | str | dict[str, Any] | None
    ) -> AssessmentError | None:
        """An AssessmentError from an exception, a message, a dict, or one already made."""
        if value is None or isinstance(value, AssessmentError):
            return value
        if isinstance(value, BaseException):
            return cls.from_exception(value)
        if isinstance(value, dict):
            return cls.from_dict(value)
        return cls("ERROR", str(value))

    @classmethod
    def from_exception(cls, exc: BaseException) -> AssessmentError:
        kind = type(exc).__name__
        try:
            message = str(exc)
        except Exception:  # an exception whose message cannot be made: its type says enough
            message = f"<{kind} whose str() raises>"
        try:
            stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        except Exception:
            stack = ""
        return cls(kind, message, stack or None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "error_code": self.error_code,
            "error_message": self.error_message,
            "stack_trace": self.stack_trace,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AssessmentError:
        return cls(
            data.get("error_code", "UNKNOWN"), data.get("error_message"), data.get("stack_trace")
        )


_YES_NO = {"yes": 1.0, "no": 0.0, "true": 1.0, "false": 0.0, "pass": 1.0, "fail": 0.0}
PASSING_WORDS = frozenset(w for w, v in _YES_NO.items() if v == 1.0)
FAILING_WORDS = frozenset(w for w, v in _YES_NO.items() if v == 0.0)
"""How a pass/fail verdict is spelled (lower case), for code that reads stored values."""


def numeric_value(value: Any) -> float | None:
    """The number a verdict sorts, filters and averages by: numbers as they are,
    true/yes/pass = 1, false/no/fail = 0, anything else none."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return _YES_NO.get(value.strip().lower().rstrip("."))
    return None


def sort_value(value: Any, metadata: dict[str, Any] | None = None) -> float | None:
    """The number a stored verdict is filtered and sorted by.

    A yes/no verdict that carries a continuous ``score`` in [0, 1] in its metadata (every
    built-in LLM judge records one) sorts by that score, so the least grounded response comes
    first, not one of many tied "no"s; anything else by :func:`numeric_value`.
    """
    number = numeric_value(value)
    score = (metadata or {}).get("score")
    if (
        number is not None
        and not isinstance(value, (int, float))
        and isinstance(score, (int, float))
        and not isinstance(score, bool)
        and 0.0 <= score <= 1.0
    ):
        return float(score)
    return number


def new_assessment_id() -> str:
    """A new id that sorts by creation time (see :mod:`tracejudge.entities.ids`)."""
    return "a-" + time_ordered_hex()


def _now_ms() -> int:
    return int(time.time() * 1000)


_INT64 = 2**63


def _check_value(value: Any) -> Any:
    """A value both databases store and compare alike: finite numbers within 64 bits (NaN would
    filter differently on SQLite and PostgreSQL; 10**400 fits neither), strings, JSON."""
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        value = value.item()  # a numpy scalar: numpy's bool (``mean > 3``) is no number
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        if not -_INT64 <= int(value) < _INT64:
            raise InvalidArgumentError(
                "An assessment value must fit in 64 bits; store a larger number as a string."
            )
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise InvalidArgumentError(
                f"An assessment value must be a finite number, not {value!r} (use None for no value)."
            )
        return number
    if isinstance(value, (list, tuple, dict)):
        _check_nested_numbers(value, "value")
        return to_jsonable(value)
    raise InvalidArgumentError(
        f"An assessment value must be a bool, number, string, list or dict, not {type(value).__name__}."
    )


_MAX_NESTING = 100
"""Levels of lists and dicts in an assessment value (a deeper one is refused, not stored)."""


def _check_nested_numbers(data: Any, where: str, _path: tuple[int, ...] = ()) -> None:
    """Numbers inside a list or dict value: JSON has no NaN or infinity, and a number past 64
    bits is refused by the JSON encoder on the way to the store. A list or dict that contains
    itself has no JSON form either."""
    if isinstance(data, (dict, list, tuple)):
        if id(data) in _path:
            raise InvalidArgumentError(f"{where} contains itself; a value must be a tree.")
        if len(_path) >= _MAX_NESTING:
            raise InvalidArgumentError(f"{where} is nested deeper than {_MAX_NESTING} levels.")
        path = (*_path, id(data))
        items = data.items() if isinstance(data, dict) else enumerate(data)
        for key, item in items:
            _check_nested_numbers(item, f"{where}[{key!r}]", path)
    elif isinstance(data, bool):
        return
    elif isinstance(data, int) and not -_INT64 <= data < _INT64:
        raise InvalidArgumentError(
            f"{where} must fit in 64 bits; store a larger number as a string."
        )
    elif isinstance(data, float) and not math.isfinite(data):
        raise InvalidArgumentError(f"{where} must be a finite number, not {data!r}.")


@dataclass
class Assessment:
    """Fields shared by Feedback and Expectation (all keyword-only)."""

    kind: ClassVar[str] = "assessment"
    default_source_type: ClassVar[str] = AssessmentSourceType.CODE

    _: KW_ONLY
    source: AssessmentSource | None = None
    trace_id: str | None = None
    span_id: str | None = None
    run_id: str | None = None
    rationale: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    error: AssessmentError | None = None
    assessment_id: str | None = None
    create_time_ms: int | None = None
    last_update_time_ms: int | None = None
    overrides: str | None = None
    """Id of the assessment this one replaces (``override_feedback``)."""
    valid: bool = True

    def __post_init__(self) -> None:
        name = getattr(self, "name", None)
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgumentError("An assessment needs a non-empty string name.")
        self.value = _check_value(getattr(self, "value", None))
        if self.source is None:
            self.source = AssessmentSource(self.default_source_type)
        elif isinstance(self.source, dict):
            self.source = AssessmentSource.from_dict(self.source)
        elif isinstance(self.source, str):
            self.source = AssessmentSource(self.source)
        self.error = AssessmentError.coerce(self.error)
        if self.metadata is not None and not isinstance(self.metadata, Mapping):
            raise InvalidArgumentError(
                f"An assessment's metadata must be a dict, not {type(self.metadata).__name__}."
            )
        self.metadata = dict(self.metadata or {})
        if self.rationale is not None and not isinstance(self.rationale, str):
            raise InvalidArgumentError(
                f"An assessment's rationale must be a string, not {type(self.rationale).__name__}."
            )

    def to_dict(self) -> dict[str, Any]:
        source = self.source or AssessmentSource(self.default_source_type)
        return {
            "kind": self.kind,
            "name": getattr(self, "name", None),
            "value": getattr(self, "value", None),
            "source": source.to_dict(),
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "run_id": self.run_id,
            "rationale": self.rationale,
            "metadata": to_jsonable(self.metadata),
            "error": self.error.to_dict() if self.error else None,
            "assessment_id": self.assessment_id,
            "create_time_ms": self.create_time_ms,
            "last_update_time_ms": self.last_update_time_ms,
            "overrides": self.overrides,
            "valid": self.valid,
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Assessment:
        """Rebuild a Feedback or Expectation from :meth:`to_dict` output (``kind`` decides which)."""
        kinds: dict[str, type[Feedback] | type[Expectation]] = {
            "feedback": Feedback,
            "expectation": Expectation,
        }
        cls = kinds.get(data.get("kind", "feedback"))
        if cls is None:
            raise InvalidArgumentError(f"Unknown assessment kind {data.get('kind')!r}.")
        return cls(
            data["name"],
            data.get("value"),
            source=AssessmentSource.from_dict(data["source"]) if data.get("source") else None,
            trace_id=data.get("trace_id"),
            span_id=data.get("span_id"),
            run_id=data.get("run_id"),
            rationale=data.get("rationale"),
            metadata=dict(data.get("metadata") or {}),
            error=AssessmentError.from_dict(data["error"]) if data.get("error") else None,
            assessment_id=data.get("assessment_id"),
            create_time_ms=optional_int(data, "create_time_ms"),
            last_update_time_ms=optional_int(data, "last_update_time_ms"),
            overrides=data.get("overrides"),
            valid=flag(data, "valid", True),
        )

    def stamped(self, trace_id: str) -> Assessment:
        """A copy ready to store: trace id, a fresh assessment id and timestamps filled in."""
        now = _now_ms()
        data = self.to_dict()
        data.update(
            trace_id=trace_id,
            assessment_id=self.assessment_id or new_assessment_id(),
            create_time_ms=self.create_time_ms or now,
            last_update_time_ms=now,
        )
        return Assessment.from_dict(data)


@dataclass
class Feedback(Assessment):
    """A verdict on a response: ``value`` (bool, number, string, list or dict) and its ``rationale``.

    A Feedback with ``error`` set and no value records that the verdict could not be reached.
    """

    kind: ClassVar[str] = "feedback"
    default_source_type: ClassVar[str] = AssessmentSourceType.CODE

    name: str = "feedback"
    value: Any = None


@dataclass
class Expectation(Assessment):
    """Ground truth for a trace, e.g. ``expected_response`` or ``expected_facts``."""

    kind: ClassVar[str] = "expectation"
    default_source_type: ClassVar[str] = AssessmentSourceType.HUMAN

    name: str = "expectation"
    value: Any = None
