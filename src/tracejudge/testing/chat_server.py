"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions protocol.

It answers with scripted replies (status codes, ``Retry-After`` headers, malformed bodies,
streamed chunks, delays), so clients can be tested over a real socket with the real
``openai`` library. It also answers OpenAI's Responses API (``/v1/responses``), its embeddings
(``/v1/embeddings``) and Anthropic's ``/v1/messages`` in the same way.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tracejudge.testing.embeddings_api import embeddings_body
from tracejudge.testing.responses_api import response_body, stream_events


@dataclass
class Reply:
    """One answer: ``content`` becomes a normal completion unless ``status``/``body`` say otherwise."""

    content: str = "ok"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    """Raw response body (overrides ``content``), e.g. broken JSON or an error object."""
    delay: float = 0.0
    logprobs: list[tuple[str, float]] | None = None
    """(token, logprob) pairs to report for the content."""
    usage: tuple[int, int] = (10, 5)
    finish_reason: str = "stop"
    """"length" to act as a reply cut off at max_tokens."""


class _Server(ThreadingHTTPServer):
    request_queue_size = 512  # the default backlog of 5 resets connections under concurrent load


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(
                    str(part.get("text", "")) for part in content if isinstance(part, dict)
                )
            return str(content)
    return ""


def echo(request: dict[str, Any]) -> Reply:
    """The default responder: repeats the last user message."""
    return Reply(content=f"echo: {_last_user_text(request.get('messages', []))}")


class ChatServer:
    """``with ChatServer() as server: OpenAI(base_url=server.base_url, api_key="x")``.

    Scripted replies (``server.script(Reply(status=429, headers={"Retry-After": "0"}))``) are
    served first, in order; then ``responder(request_json)`` answers. Every request body is
    kept in ``server.requests``.
    """

    def __init__(
        self, responder: Callable[[dict[str, Any]], Reply] = echo, delay: float = 0.0
    ) -> None:
        self.responder = responder
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.requests_kept = True
        self._count = 0
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._count

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def start(self) -> ChatServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_reply(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            self._count += 1
            if self.requests_kept:
                self.requests.append(request)
            scripted = self._script.popleft() if self._script else None
        return scripted or self.responder(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = (
                True  # headers and body go out in two writes: no 40 ms ACK wait
            )

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/stats"):  # for a server in another process
                    self._send(200, {"requests": server.request_count})
                elif self.path.rstrip("/").endswith("/models"):
                    self._send(
                        200, {"object": "list", "data": [{"id": "test-model", "object": "model"}]}
                    )
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    request = json.loads(raw or b"{}")
                except ValueError:
                    self._send(400, {"error": {"message": "request body is not JSON"}})
                    return
                reply = server._next_reply(request)
                if server.delay or reply.delay:
                    time.sleep(server.delay + reply.delay)
                if reply.status != 200 or reply.body is not None:
                    body = (
                        reply.body
                        if reply.body is not None
                        else json.dumps(
                            {
                                "error": {
                                    "message": f"scripted status {reply.status}",
                                    "type": "test",
                                }
                            }
                        )
                    )
                    self._send_raw(reply.status, body.encode(), reply.headers)
                elif self.path.rstrip("/").endswith("/messages"):
                    self._send(200, _anthropic_body(request, reply), reply.headers)
                elif self.path.rstrip("/").endswith("/responses"):
                    self._respond(request, reply)
                elif self.path.rstrip("/").endswith("/embeddings"):
                    self._send(200, embeddings_body(request), reply.headers)
                elif request.get("stream"):
                    self._stream(request, reply)
                else:
                    self._send(200, _completion_body(request, reply), reply.headers)

            def _send(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                self._send_raw(status, json.dumps(payload).encode(), headers or {})

            def _send_raw(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, request: dict[str, Any], reply: Reply) -> None:
                self._start_events()
                words = reply.content.split(" ")
                pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
                base = {
                    "id": "chatcmpl-stream",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": request.get("model", "test-model"),
                }
                events = [
                    {
                        **base,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"role": "assistant", "content": ""},
                                "finish_reason": None,
                            }
                        ],
                    }
                ]
                events += [
                    {
                        **base,
                        "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}],
                    }
                    for p in pieces
                ]
                events.append(
                    {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                )
                if (request.get("stream_options") or {}).get("include_usage"):
                    events.append({**base, "choices": [], "usage": _usage(reply)})
                for event in events:
                    self._chunk(f"data: {json.dumps(event)}\n\n".encode())
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")

            def _respond(self, request: dict[str, Any], reply: Reply) -> None:
                """The Responses API: a whole response, or its events."""
                if not request.get("stream"):
                    body = response_body(request, reply.content, reply.usage)
                    self._send(200, body, reply.headers)
                    return
                self._start_events()
                for name, data in stream_events(request, reply.content, reply.usage):
                    self._chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self._chunk(b"")

            def _start_events(self) -> None:
                """Headers of a server-sent event stream, sent in chunks."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        return Handler


def _usage(reply: Reply) -> dict[str, int]:
    prompt, completion = reply.usage
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _completion_body(request: dict[str, Any], reply: Reply) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": reply.content},
        "finish_reason": reply.finish_reason,
        "logprobs": None,
    }
    if request.get("logprobs") and reply.logprobs is not None:
        k = int(request.get("top_logprobs") or 0)
        choice["logprobs"] = {
            "content": [
                {
                    "token": tok,
                    "logprob": lp,
                    "bytes": list(tok.encode()),
                    "top_logprobs": [{"token": tok, "logprob": lp, "bytes": list(tok.encode())}][
                        :k
                    ],
                }
                for tok, lp in reply.logprobs
            ]
        }
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "test-model"),
        "choices": [choice],
        "usage": _usage(reply),
    }


def _anthropic_body(request: dict[str, Any], reply: Reply) -> dict[str, Any]:
    prompt, completion = reply.usage
    return {
        "id": f"msg_{uuid.uuid4().hex[:12]}",
        "type": "message",
        "role": "assistant",
        "model": request.get("model", "test-model"),
        "content": [{"type": "text", "text": reply.content}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": prompt, "output_tokens": completion},
    }


def main() -> None:
    """Serve one fixed reply after a fixed delay until killed: ``python -m tracejudge.testing
    --delay 0.2 --reply '...'``; a request for log-probabilities (a judge's one-word probe) is
    answered "yes" with its log-probability, as a model would. Prints the base URL first."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--reply", default='{"rationale": "fine", "verdict": "yes"}')
    args = parser.parse_args()

    def fixed(request: dict[str, Any]) -> Reply:
        if request.get("logprobs"):
            return Reply("yes", logprobs=[("yes", -0.05)])
        return Reply(args.reply)

    server = ChatServer(fixed, delay=args.delay)
    server.requests_kept = False
    print(server.base_url, flush=True)
    try:
        server._httpd.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
