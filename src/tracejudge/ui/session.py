"""Who is looking at a page, what they may do, and the CSRF check on every write.

- Role: with no tokens configured the server is open and everyone may write. With tokens the
  server's token middleware decides (:mod:`tracejudge.server.auth`) from the bearer header or
  the HttpOnly ``tracejudge_token`` cookie the sign-in page sets: ``write``, ``read`` (no write
  controls shown, writes refused) or none (sent to sign in).
- Name: the person's name, given at sign-in, is the ``source_id`` of what they write.
- CSRF: a random token in an HttpOnly, SameSite=Strict cookie, repeated in every form as a
  hidden field; a write whose field does not match the cookie, or whose Origin is another site,
  is refused (double-submit cookie).
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from fastapi import Request
from starlette.responses import Response

from tracejudge.server.auth import UI_TOKEN_COOKIE

CSRF_COOKIE = "tracejudge_csrf"
NAME_COOKIE = "tracejudge_user"
ANONYMOUS = "anonymous"


def role(request: Request) -> str | None:
    """``write`` | ``read`` | None (must sign in). Open servers have no token middleware."""
    state = request.scope.get("state") or {}
    return state.get("ui_role", "write")


def auth_enabled(request: Request) -> bool:
    return "ui_role" in (request.scope.get("state") or {})


def user_name(request: Request) -> str:
    name = (request.cookies.get(NAME_COOKIE) or "").strip()
    return name[:100] or ANONYMOUS


def csrf_token(request: Request) -> str:
    """The page's CSRF token: the cookie's, or a new one the response must set."""
    token = request.cookies.get(CSRF_COOKIE)
    if token and len(token) == 64:
        return token
    cached = getattr(request.state, "new_csrf", None)
    if cached is None:
        cached = request.state.new_csrf = secrets.token_hex(32)
    return cached


def finish(request: Request, response: Response) -> Response:
    """Set the CSRF cookie when this page created the token."""
    new = getattr(request.state, "new_csrf", None)
    if new is not None:
        response.set_cookie(CSRF_COOKIE, new, httponly=True, samesite="strict", path="/")
    return response


def csrf_ok(request: Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE) or ""
    if not cookie or not submitted or not secrets.compare_digest(cookie, submitted):
        return False
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return urlsplit(origin).netloc == request.headers.get("host", "")
    return True


def sign_in(response: Response, token: str | None, name: str) -> None:
    if token:
        response.set_cookie(
            UI_TOKEN_COOKIE, token.encode().hex(), httponly=True, samesite="strict", path="/"
        )
    response.set_cookie(NAME_COOKIE, name[:100], httponly=True, samesite="strict", path="/")


def sign_out(response: Response) -> None:
    response.delete_cookie(UI_TOKEN_COOKIE, path="/")
    response.delete_cookie(NAME_COOKIE, path="/")
