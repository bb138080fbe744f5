"""Names of the OpenTelemetry attributes and trace metadata keys tracejudge writes.

Span attribute values are stored JSON-encoded (as MLflow does), so any JSON value survives
an OTLP round trip and decoding is unambiguous.
"""

SPAN_TYPE = "tracejudge.spanType"
SPAN_INPUTS = "tracejudge.spanInputs"
SPAN_OUTPUTS = "tracejudge.spanOutputs"
SPAN_FUNCTION_NAME = "tracejudge.spanFunctionName"
CHAT_TOKEN_USAGE = "tracejudge.chat.tokenUsage"
LLM_MODEL = "tracejudge.llm.model"
LLM_PROVIDER = "tracejudge.llm.provider"

RESERVED_ATTRIBUTES = frozenset({SPAN_TYPE, SPAN_INPUTS, SPAN_OUTPUTS})

TRACE_TOKEN_USAGE = "tracejudge.trace.tokenUsage"
TRACE_SESSION = "tracejudge.trace.session"
TRACE_USER = "tracejudge.trace.user"
SOURCE_RUN = "tracejudge.sourceRun"
DATASET_RECORD = "tracejudge.datasetRecord"
"""On a trace evaluate() made for a dataset record: the record's id (runs on one dataset are
compared record by record)."""
OTEL_PARENT_TRACE_ID = "tracejudge.otel.parentTraceId"
"""Set on a trace that began inside another SDK's span: that span's trace and span id (hex)."""
OTEL_PARENT_SPAN_ID = "tracejudge.otel.parentSpanId"

EXCEPTION_EVENT = "exception"
