"""Bearer tokens for the tracking server: read-write and read-only ones.

Every API request but ``/health`` must carry ``Authorization: Bearer <token>`` (the REST API,
OTLP ingestion, ``/metrics``, the docs). A read-only token may only read (GET and the POST
searches); anything else it sends gets 403. Tokens are compared in constant time.

The web UI's pages are passed through with the role their token earns (``scope["state"]
["ui_role"]``: ``"write"``, ``"read"`` or ``None``), read from the bearer header or the UI's
HttpOnly cookie; the UI sends a person with no role to its sign-in page and shows a read-only
one no write controls (:mod:`tracejudge.ui.session`).
"""

from __future__ import annotations

import secrets

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

READ_ONLY_POSTS = frozenset(
    {
        "/api/v1/traces/search",
        "/api/v1/traces/get",
        "/api/v1/runs/search",
        "/api/v1/experiments/by-name",
        "/api/v1/datasets/get",
        "/api/v1/datasets/search",
        "/api/v1/datasets/records",
    }
)
"""POST routes that only read (a search's filter travels in the body)."""
OPEN_PATHS = frozenset({"/health"})
"""The only path answered without a token: load balancers and orchestrators probe it."""
API_PREFIXES = ("/api/", "/v1/", "/metrics", "/docs", "/redoc", "/openapi.json")
"""Machine-facing paths; every other path is the web UI's."""
UI_TOKEN_COOKIE = "tracejudge_token"


class BearerTokens:
    """The token check, as ASGI middleware (inside the request metrics, so refusals are counted)."""

    def __init__(self, app: ASGIApp, tokens: frozenset[str], read_only: frozenset[str]) -> None:
        self.app = app
        self.tokens = tokens
        self.read_only = read_only

    @staticmethod
    def _match(given: bytes, tokens: frozenset[str]) -> bool:
        # bytes: compare_digest refuses str with non-ASCII characters, which a client may send
        return any(secrets.compare_digest(given, t.encode()) for t in tokens)

    def role(self, token: bytes) -> str | None:
        return token_role(token, self.tokens, self.read_only)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(API_PREFIXES):
            if scope["path"] not in OPEN_PATHS:
                scope.setdefault("state", {})["ui_role"] = self.role(_ui_token(scope))
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            role = self.role(_bearer(scope))
            if role == "write":
                await self.app(scope, receive, send)
                return
            reads = scope["method"] in ("GET", "HEAD") or scope["path"] in READ_ONLY_POSTS
            if role == "read":
                if reads:
                    await self.app(scope, receive, send)
                    return
                await _refuse(scope, receive, send, 403, "This token may only read.")
                return
            await _refuse(
                scope,
                receive,
                send,
                401,
                "Missing or wrong bearer token (TRACEJUDGE_TRACKING_TOKEN).",
            )
            return
        await self.app(scope, receive, send)


def token_role(token: bytes, tokens: frozenset[str], read_only: frozenset[str]) -> str | None:
    """``write`` | ``read`` | None for a token, compared in constant time."""
    if token and BearerTokens._match(token, tokens):
        return "write"
    if token and BearerTokens._match(token, read_only):
        return "read"
    return None


def _bearer(scope: Scope) -> bytes:
    """The ``Authorization: Bearer`` token (empty when there is none)."""
    header = dict(scope.get("headers") or []).get(b"authorization", b"")
    scheme, _, given = header.partition(b" ")
    return given if scheme.lower() == b"bearer" else b""


def _ui_token(scope: Scope) -> bytes:
    """The bearer token, else the UI's cookie."""
    given = _bearer(scope)
    if given:
        return given
    for part in dict(scope.get("headers") or []).get(b"cookie", b"").split(b";"):
        key, _, value = part.strip().partition(b"=")
        if key == UI_TOKEN_COOKIE.encode():
            try:  # hex: a token may hold characters a cookie cannot
                return bytes.fromhex(value.decode("ascii"))
            except ValueError:
                return b""
    return b""


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    response = JSONResponse(
        {"error_code": "AuthenticationError", "message": message},
        status_code=status,
        headers={"WWW-Authenticate": "Bearer"},
    )
    await response(scope, receive, send)
