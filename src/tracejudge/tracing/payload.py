"""What a tracejudge span carries besides its OpenTelemetry fields: type, inputs, outputs, attributes.

Setting OpenTelemetry attributes is the most expensive part of a span (each one is validated
under a lock), so a span keeps these values here, already JSON-encoded, and hands them to the
trace assembler when it ends. They are copied onto the OpenTelemetry span as attributes only
when another span processor (an OTLP exporter, say) is attached and needs to see them.
"""

from __future__ import annotations

from tracejudge.tracing import constants as c


class SpanPayload:
    __slots__ = ("attributes", "inputs", "outputs", "span_type")

    def __init__(self, span_type: str, inputs: str | None, attributes: dict[str, str]) -> None:
        self.span_type = span_type
        self.inputs = inputs
        """JSON text, or ``None`` when never set."""
        self.outputs: str | None = None
        self.attributes = attributes
        """Attribute values as JSON text."""

    def as_otel_attributes(self, type_json: str) -> dict[str, str]:
        out = {c.SPAN_TYPE: type_json, **self.attributes}
        if self.inputs is not None:
            out[c.SPAN_INPUTS] = self.inputs
        if self.outputs is not None:
            out[c.SPAN_OUTPUTS] = self.outputs
        return out
