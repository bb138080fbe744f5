"""A traced service in its own process, for tests of distributed tracing.

    python -m tracejudge.testing.traced_service --tracking-uri URI [--experiment NAME]

It prints its base URL once it listens, then answers ``POST /lookup`` (a JSON ``{"question":
…}``) inside :func:`tracejudge.continue_trace` with the request's headers: a retriever span and
a chat span (with token usage) under a ``lookup`` span. ``?flush=1`` writes its part of the
trace before answering; ``POST /flush`` writes whatever is pending.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import tracejudge
from tracejudge.entities import Document, SpanType
from tracejudge.tracing import constants as c

ANSWER = "Refunds take 5 business days."


@tracejudge.trace(name="lookup", span_type=SpanType.CHAIN)
def lookup(question: str) -> str:
    with tracejudge.start_span("search", span_type=SpanType.RETRIEVER) as span:
        span.set_inputs({"query": question})
        span.set_outputs([Document("Refunds are paid within 5 business days.", id="refunds")])
    with tracejudge.start_span("chat", span_type=SpanType.CHAT_MODEL) as span:
        span.set_inputs({"messages": [{"role": "user", "content": question}]})
        span.set_outputs(ANSWER)
        span.set_attribute(
            c.CHAT_TOKEN_USAGE, {"input_tokens": 30, "output_tokens": 7, "total_tokens": 37}
        )
    return ANSWER


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        url = urlparse(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if url.path == "/flush":
            tracejudge.flush()
            self._send({"flushed": True})
            return
        question = json.loads(body or b"{}").get("question", "")
        with tracejudge.continue_trace(dict(self.headers.items())):
            answer = lookup(question)
        if parse_qs(url.query).get("flush") == ["1"]:
            tracejudge.flush()
        self._send({"answer": answer})

    def _send(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--experiment", default="distributed")
    args = parser.parse_args()
    tracejudge.set_tracking_uri(args.tracking_uri)
    tracejudge.set_experiment(args.experiment)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
