"""``make_judge``: an LLM judge from natural-language instructions.

The instructions refer to what is judged as ``{{ inputs }}``, ``{{ outputs }}``,
``{{ expectations }}`` (and ``{{ trace }}``); each becomes a delimited data block.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tracejudge.entities import Feedback, Trace
from tracejudge.errors import InvalidArgumentError
from tracejudge.judges.agreement import as_pass, human_label, judge_verdict
from tracejudge.judges.builtin import ModelArg, missing_input
from tracejudge.judges.engine import JudgeSpec, run_judge
from tracejudge.judges.formatting import to_text
from tracejudge.judges.parsing import parse_json_object, yes_no
from tracejudge.judges.probes import Probe
from tracejudge.scorer import Scorer

VARIABLES = ("inputs", "outputs", "expectations", "trace")
_VARIABLE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
CUSTOM_FORMAT = (
    "Reason first, then decide. Reply with one JSON object and nothing else: "
    '{{"rationale": "<your reasoning in one to three sentences>", "result": {shape}}}.'
)


DIRECT_QUESTION = "Judged by the instructions above, is the answer yes (true)?"


def _is_pass_fail(value_type: Any) -> bool:
    """A bool judge, or a Literal of exactly a yes and a no: these get a continuous score."""
    if value_type is bool:
        return True
    if typing.get_origin(value_type) is typing.Literal:
        return sorted(yes_no(str(o)) or "" for o in typing.get_args(value_type)) == ["no", "yes"]
    return False


def _value_kind(value_type: Any) -> tuple[dict[str, Any], str, Callable[[Any], Any]]:
    """JSON schema, a description for the prompt, and a converter for the judge's value type."""
    if typing.get_origin(value_type) is typing.Literal:
        options = [str(o) for o in typing.get_args(value_type)]
        lookup = {o.lower(): o for o in options}

        def literal(raw: Any) -> Any:
            word = str(raw).strip().strip("\"'.*").lower()
            if word in lookup:
                return lookup[word]
            raise ValueError(f"{raw!r} is not one of {options}")

        return (
            {"type": "string", "enum": options},
            " or ".join(json.dumps(o) for o in options),
            literal,
        )
    if value_type is bool:

        def boolean(raw: Any) -> bool:
            verdict = yes_no(
                raw
                if not isinstance(raw, (int, float)) or isinstance(raw, bool)
                else str(bool(raw))
            )
            if verdict is None:
                raise ValueError(f"{raw!r} is not true or false")
            return verdict == "yes"

        return {"type": "boolean"}, "true or false", boolean
    if value_type in (int, float):

        def number(raw: Any) -> Any:
            if isinstance(raw, bool):
                raise ValueError("a boolean is not a number")
            if isinstance(raw, (int, float)):
                return value_type(raw)
            match = _NUMBER.search(str(raw))
            if match is None:
                raise ValueError(f"{raw!r} is not a number")
            return value_type(float(match.group()))

        schema_type = "integer" if value_type is int else "number"
        return {"type": schema_type}, f"<a {'whole ' if value_type is int else ''}number>", number
    if value_type is str:
        return {"type": "string"}, "<your answer as a short string>", str
    raise InvalidArgumentError(
        f"feedback_value_type must be bool, int, float, str or a Literal[...] of strings, not {value_type!r}"
    )


def _check_example(example: Mapping[str, Any], variables: Sequence[str]) -> dict[str, Any]:
    """An example is ``{"inputs": ..., "outputs": ..., "value": <the right result>, "rationale": ...}``."""
    if not isinstance(example, Mapping) or "value" not in example:
        raise InvalidArgumentError(
            "Each example is a dict with the judged fields (inputs, outputs, expectations) and "
            f"the correct 'value' (and optionally a 'rationale'); got {example!r}."
        )
    if not any(v in example for v in variables):
        raise InvalidArgumentError(
            f"An example must give at least one of the judge's fields {list(variables)}."
        )
    return dict(example)


def _trace_text(trace: Trace) -> str:
    spans = [
        {"name": s.name, "type": s.span_type, "inputs": s.inputs, "outputs": s.outputs}
        for s in trace.search_spans()
    ]
    return to_text(spans)


class Judge(Scorer):
    """A custom judge; call it with ``inputs=``, ``outputs=``, ``expectations=``, ``trace=``.

    A :class:`~tracejudge.scorer.Scorer`, so ``evaluate(scorers=[make_judge(...)])`` runs it
    like the built-ins.
    """

    def __init__(
        self,
        name: str,
        instructions: str,
        model: ModelArg = None,
        feedback_value_type: Any = typing.Literal["yes", "no"],
        examples: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        if not name or not isinstance(name, str):
            raise InvalidArgumentError("A judge needs a name.")
        super().__init__(name)
        used = [v for v in _VARIABLE.findall(instructions or "")]
        unknown = sorted({v for v in used if v not in VARIABLES})
        if unknown:
            raise InvalidArgumentError(
                f"Unknown template variable(s) {unknown} in the instructions; use {', '.join('{{ ' + v + ' }}' for v in VARIABLES)}."
            )
        if not used:
            raise InvalidArgumentError(
                "The instructions must refer to what is judged: {{ inputs }}, {{ outputs }}, {{ expectations }} or {{ trace }}."
            )
        self.name = name
        self.instructions = instructions
        self.model = model
        self.feedback_value_type = feedback_value_type
        self.variables = tuple(dict.fromkeys(used))
        self.examples = tuple(_check_example(e, self.variables) for e in examples or ())
        self._schema, shape, self._convert = _value_kind(feedback_value_type)
        self._reply_format = CUSTOM_FORMAT.format(shape=shape)
        self._probes = (
            (Probe("direct", DIRECT_QUESTION),) if _is_pass_fail(feedback_value_type) else ()
        )
        self._repair = (
            "Your reply could not be read. Reply again with only one JSON object of the form "
            f'{{"rationale": "<reasoning>", "result": {shape}}}, and nothing before or after it.'
        )

    def __repr__(self) -> str:
        shots = f", examples={len(self.examples)}" if self.examples else ""
        return f"Judge(name={self.name!r}, variables={list(self.variables)}{shots})"

    def align(
        self,
        traces: Sequence[Trace],
        *,
        max_examples: int = 6,
        expectation: str | None = None,
    ) -> Judge:
        """A copy of this judge that learns from people's verdicts on ``traces`` (few-shot).

        Traces with a human verdict of this judge's name (human feedback or an override; or
        the expectation named ``expectation``) become examples in the prompt: first those where
        this judge's stored verdict disagreed with the person, then the others, alternating
        pass and fail, up to ``max_examples``. Measure the gain on other traces with
        :func:`tracejudge.judges.agreement`.

        >>> aligned = tone.align(tracejudge.search_traces(return_type="list"))
        """
        wrong: list[dict[str, Any]] = []
        right: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
        for trace in traces:
            human = human_label(trace, self.name, expectation)
            label = as_pass(human.value) if human is not None else None
            if human is None or label is None:
                continue
            example: dict[str, Any] = {
                "inputs": trace.data.inputs,
                "outputs": trace.data.outputs,
                "value": human.value,
                "rationale": human.rationale,
            }
            if "expectations" in self.variables:
                expected = {
                    getattr(e, "name", ""): getattr(e, "value", None)
                    for e in trace.search_assessments(type="expectation")
                }
                if not expected:
                    continue
                example["expectations"] = expected
            judged = judge_verdict(trace, self.name)
            if judged is not None and as_pass(judged.value) not in (None, label):
                wrong.append(example)
            else:
                right[label].append(example)
        chosen = wrong[:max_examples]
        pools = [right[True], right[False]]
        while len(chosen) < max_examples and any(pools):
            for pool in pools:
                if pool and len(chosen) < max_examples:
                    chosen.append(pool.pop(0))
        if not chosen:
            raise InvalidArgumentError(
                f"None of the {len(traces)} traces has a human verdict named {self.name!r} "
                "to learn from (log_feedback(..., source='HUMAN') or override_feedback)."
            )
        return Judge(
            self.name,
            self.instructions,
            self.model,
            self.feedback_value_type,
            examples=chosen,
        )

    def _examples_block(self) -> str:
        parts = []
        for i, example in enumerate(self.examples, 1):
            lines = [f"Example {i}"]
            for v in self.variables:
                if v in example and v != "trace":
                    lines.append(f"{v.upper()}: {to_text(example[v])}")
            lines.append(f"Correct result: {to_text(example['value'])}")
            if example.get("rationale"):
                lines.append(f"Why: {to_text(example['rationale'])}")
            parts.append("\n".join(lines))
        return "\n\n".join(parts)

    def _parse(self, text: str) -> tuple[Any, str | None] | None:
        obj = parse_json_object(text)
        raw: Any = None
        rationale = None
        if obj is not None:
            for key in ("result", "verdict", "value", "answer", "score"):
                if key in obj:
                    raw = obj[key]
                    break
            rationale = obj.get("rationale") or obj.get("reasoning")
        elif len(text.split()) <= 3:
            raw = text.strip()
        if raw is None:
            return None
        try:
            return self._convert(raw), None if rationale is None else str(rationale)
        except (ValueError, TypeError):
            return None

    async def acall(
        self,
        *,
        inputs: Any = None,
        outputs: Any = None,
        expectations: Any = None,
        trace: Trace | None = None,
    ) -> Feedback:
        values = {
            "inputs": inputs,
            "outputs": outputs,
            "expectations": expectations,
            "trace": trace,
        }
        missing = [v for v in self.variables if values[v] is None]
        if missing:
            return missing_input(
                self.name,
                self.model,
                f"The judge's instructions use {missing}, which were not given.",
            )
        blocks = {
            v.upper(): _trace_text(values[v]) if v == "trace" else to_text(values[v])
            for v in self.variables
        }
        task = _VARIABLE.sub(lambda m: f"the {m.group(1).upper()} block", self.instructions)
        if self.examples:  # first, so judgements with the same examples share a prompt prefix
            blocks = {"EXAMPLES": self._examples_block(), **blocks}
            task += (
                "\n\nThe EXAMPLES block holds results that people gave on similar material; "
                "judge by the standard they set."
            )
        spec = JudgeSpec(
            self.name,
            task,
            blocks,
            schema={
                "type": "object",
                "properties": {"rationale": {"type": "string"}, "result": self._schema},
                "required": ["rationale", "result"],
                "additionalProperties": False,
            },
            parse=self._parse,
            repair_prompt=self._repair,
            reply_format=self._reply_format,
            probes=self._probes,
            boolean=self.feedback_value_type is bool,
        )
        return await run_judge(spec, self.model)

    async def ascore(
        self, *, inputs: Any, outputs: Any, expectations: Any, trace: Trace | None
    ) -> Feedback:
        return await self.acall(
            inputs=inputs, outputs=outputs, expectations=expectations, trace=trace
        )

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            instructions=self.instructions,
            feedback_value_type=repr(self.feedback_value_type),
            examples=len(self.examples),
        )
        return info


def make_judge(
    name: str,
    instructions: str,
    model: ModelArg = None,
    feedback_value_type: Any = typing.Literal["yes", "no"],
    examples: Sequence[Mapping[str, Any]] | None = None,
) -> Judge:
    """A judge from instructions that mention ``{{ inputs }}``, ``{{ outputs }}``, ``{{ expectations }}``.

    >>> polite = make_judge("politeness", "Is {{ outputs }} polite to the user who wrote {{ inputs }}?")
    >>> polite(inputs={"question": "..."}, outputs="...").value
    'yes'
    """
    return Judge(name, instructions, model, feedback_value_type, examples)
