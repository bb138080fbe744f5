"""A scorer as stored data, and back: what a registration keeps so a monitor can rebuild it.

Three kinds, as MLflow registers them: a built-in scorer by its class and configuration, a
``make_judge`` judge by its instructions, value type and examples, an ``@scorer`` function by
reference to an importable function (its code stays in the app's package, importable where the
monitor runs). The judge model is part of the definition: a scorer registered without one gets
the default judge model of the moment it is registered, so where the monitor runs does not
change which model judges.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from typing import Any

from tracejudge.errors import InvalidArgumentError
from tracejudge.models import ChatModel, default_model_uri
from tracejudge.scorer import Scorer
from tracejudge.scorers import builtin
from tracejudge.scorers.base import FunctionScorer

_VALUE_TYPES: dict[str, Any] = {"bool": bool, "int": int, "float": float, "str": str}


def _model_uri(model: Any) -> str:
    if model is None:
        return default_model_uri()
    return model.uri if isinstance(model, ChatModel) else str(model)


def _value_type_name(value_type: Any) -> Any:
    if typing.get_origin(value_type) is typing.Literal:
        return {"literal": [str(o) for o in typing.get_args(value_type)]}
    for name, kind in _VALUE_TYPES.items():
        if value_type is kind:
            return name
    raise InvalidArgumentError(f"A judge's value type {value_type!r} cannot be registered.")


def _value_type(name: Any) -> Any:
    if isinstance(name, dict) and "literal" in name:
        return typing.Literal[tuple(name["literal"])]
    if name in _VALUE_TYPES:
        return _VALUE_TYPES[name]
    raise InvalidArgumentError(f"Unknown judge value type {name!r} in a scorer definition.")


def definition_of(scorer: Scorer) -> dict[str, Any]:
    """The stored form of ``scorer``. Raises InvalidArgumentError for a scorer that cannot be
    rebuilt elsewhere (a function defined in ``__main__`` or inside another function)."""
    from tracejudge.judges.custom import Judge

    aggregations = list(scorer.aggregations) if scorer.aggregations is not None else None
    if isinstance(scorer, Judge):
        return {
            "kind": "judge",
            "name": scorer.name,
            "instructions": scorer.instructions,
            "model": _model_uri(scorer.model),
            "feedback_value_type": _value_type_name(scorer.feedback_value_type),
            "examples": [dict(e) for e in scorer.examples],
        }
    if isinstance(scorer, FunctionScorer):
        return {
            "kind": "function",
            "ref": function_reference(scorer),
            "name": scorer.name,
            "aggregations": aggregations,
        }
    cls = type(scorer)
    if getattr(builtin, cls.__name__, None) is not cls:
        raise InvalidArgumentError(
            f"{cls.__name__} is neither a built-in scorer, a make_judge judge nor an @scorer "
            "function: register an @scorer function that calls it instead."
        )
    args: dict[str, Any] = {}
    for param in inspect.signature(cls.__init__).parameters:
        if param in ("self", "aggregations"):
            continue
        value = getattr(scorer, param)
        args[param] = _model_uri(value) if param == "model" else value
    return {"kind": "builtin", "class": cls.__name__, "args": args, "aggregations": aggregations}


def function_reference(scorer: FunctionScorer) -> str:
    """``module:qualname`` of an ``@scorer`` function, checked to import back to it."""
    fn = scorer.__wrapped__  # type: ignore[attr-defined]
    module, qualname = fn.__module__, fn.__qualname__
    if module == "__main__" or "<locals>" in qualname:
        raise InvalidArgumentError(
            f"The @scorer function {qualname!r} is defined in {module!r}"
            + (" inside another function" if "<locals>" in qualname else "")
            + ": a registered scorer is kept by reference, so define it at the top level of an "
            "importable module."
        )
    ref = f"{module}:{qualname}"
    if _resolve(ref) is not scorer and _resolve(ref) is not fn:
        raise InvalidArgumentError(f"{ref} does not import back to the scorer being registered.")
    return ref


def _resolve(ref: str) -> Any:
    module_name, _, qualname = ref.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise InvalidArgumentError(f"Unknown scorer reference {ref!r}: {exc}") from exc
    return found


def scorer_from_definition(definition: dict[str, Any]) -> Scorer:
    """Rebuild a registered scorer. Raises InvalidArgumentError for a definition that does not
    name a scorer this process can build (an unknown class, a function that no longer imports)."""
    from tracejudge.judges.custom import Judge

    kind = definition.get("kind")
    if kind == "judge":
        return Judge(
            definition["name"],
            definition["instructions"],
            model=definition.get("model"),
            feedback_value_type=_value_type(definition["feedback_value_type"]),
            examples=definition.get("examples") or None,
        )
    if kind == "function":
        found = _resolve(str(definition.get("ref")))
        if isinstance(found, FunctionScorer):
            return found
        if callable(found):
            return FunctionScorer(found, definition.get("name"), definition.get("aggregations"))
        raise InvalidArgumentError(f"Scorer reference {definition.get('ref')!r} is not callable.")
    if kind == "builtin":
        cls = getattr(builtin, str(definition.get("class")), None)
        if not (isinstance(cls, type) and issubclass(cls, Scorer)):
            raise InvalidArgumentError(f"Unknown built-in scorer {definition.get('class')!r}.")
        return cls(**definition.get("args", {}), aggregations=definition.get("aggregations"))
    raise InvalidArgumentError(f"Unknown scorer definition kind {kind!r}.")
