"""Starting the tracking server: options, the store it serves, tokens, and uvicorn.

One process serves on a socket bound here (so ``--port 0`` picks a free port and prints it);
``--workers N`` hands the address to uvicorn's supervisor, whose workers each build the app from
the environment this process sets for them (:func:`app_from_environment`).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
import webbrowser
from collections.abc import Callable

import click
import uvicorn
from fastapi import FastAPI

from tracejudge import settings
from tracejudge.errors import InvalidArgumentError
from tracejudge.server.app import DEFAULT_MAX_BODY_BYTES, create_app
from tracejudge.store import get_store, get_tracking_uri
from tracejudge.store.retention import start_retention_thread
from tracejudge.store.rollup_filler import start_rollup_thread
from tracejudge.store.sql_store import SqlTraceStore

STORE_ENV = settings.SERVER_STORE_URI.name
TOKENS_ENV = settings.SERVER_TOKEN.name
READ_TOKENS_ENV = settings.SERVER_READ_TOKEN.name
BODY_ENV = settings.SERVER_MAX_BODY_BYTES.name


def build_app(
    store_uri: str, tokens: frozenset[str], read_only: frozenset[str], max_body_bytes: int
) -> FastAPI:
    return create_app(get_store(store_uri), max_body_bytes, tokens=tokens, read_only=read_only)


def _tokens(raw: str | None) -> frozenset[str]:
    return frozenset(t.strip() for t in (raw or "").split(",") if t.strip())


def app_from_environment() -> FastAPI:
    """The app as a ``--workers`` worker builds it (uvicorn factory)."""
    store_uri = settings.SERVER_STORE_URI.get()
    if store_uri is None:
        raise InvalidArgumentError(
            f"{STORE_ENV} is not set: start workers with 'tracejudge server'."
        )
    return build_app(
        store_uri,
        _tokens(settings.SERVER_TOKEN.get()),
        _tokens(settings.SERVER_READ_TOKEN.get()),
        settings.SERVER_MAX_BODY_BYTES.get() or DEFAULT_MAX_BODY_BYTES,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, help="Port (0: any free port).")
@click.option(
    "--backend-store-uri",
    default=None,
    help="Store to serve: sqlite:///path.db or postgresql+psycopg://… (default: the tracking URI).",
)
@click.option("--workers", default=1, show_default=True, help="Server processes.")
@click.option(
    "--auth-token",
    "auth_tokens",
    multiple=True,
    envvar=TOKENS_ENV,
    help="Accepted bearer token (repeatable; env TRACEJUDGE_SERVER_TOKEN, comma-separated).",
)
@click.option(
    "--read-only-token",
    "read_tokens",
    multiple=True,
    envvar=READ_TOKENS_ENV,
    help="Accepted bearer token that may only read (repeatable; env TRACEJUDGE_SERVER_READ_TOKEN).",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow listening on a non-loopback address without a token.",
)
@click.option(
    "--max-body-mb",
    default=DEFAULT_MAX_BODY_BYTES // (1024 * 1024),
    show_default=True,
    help="Largest request body accepted (413 above it).",
)
@click.option(
    "--monitor",
    "run_monitor",
    is_flag=True,
    help="Also run the monitor (the started scorers on new traces) in this process.",
)
@click.option(
    "--retention",
    default=None,
    envvar="TRACEJUDGE_RETENTION",
    help="Delete traces older than this (30d, 12h…), hourly (env TRACEJUDGE_RETENTION).",
)
def server_command(
    host: str,
    port: int,
    backend_store_uri: str | None,
    workers: int,
    auth_tokens: tuple[str, ...],
    read_tokens: tuple[str, ...],
    insecure: bool,
    max_body_mb: int,
    run_monitor: bool,
    retention: str | None,
) -> None:
    """Serve the REST API (under /api/v1, docs at /docs) and the web UI (at /) on one store."""
    try:
        retention_s = settings.parse_duration(retention) if retention else None
    except ValueError as exc:
        raise InvalidArgumentError(f"--retention {retention!r}: {exc}.") from None
    serve(
        host,
        port,
        backend_store_uri,
        workers,
        auth_tokens,
        read_tokens,
        insecure,
        max_body_mb,
        run_monitor=run_monitor,
        retention_s=retention_s,
    )


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, help="Port (0: any free port).")
@click.option("--open/--no-open", "open_browser", default=True, help="Open the page in a browser.")
def ui_command(host: str, port: int, open_browser: bool) -> None:
    """Open the web UI on the tracking URI's store (by default the local ./tracejudge.db)."""

    def opened(url: str) -> None:
        if open_browser:
            threading.Timer(0.5, webbrowser.open, args=(url,)).start()

    serve(host, port, None, 1, (), (), False, DEFAULT_MAX_BODY_BYTES // 2**20, announce=opened)


def serve(
    host: str,
    port: int,
    backend_store_uri: str | None,
    workers: int,
    auth_tokens: tuple[str, ...],
    read_tokens: tuple[str, ...],
    insecure: bool,
    max_body_mb: int,
    announce: Callable[[str], None] = lambda url: None,
    run_monitor: bool = False,
    retention_s: float | None = None,
) -> None:
    """Open the store, bind the socket and run uvicorn; ``announce`` gets the UI's URL once the
    socket listens (``tracejudge ui`` opens a browser there)."""
    store_uri = backend_store_uri or get_tracking_uri()
    if store_uri.startswith(("http://", "https://")):
        raise InvalidArgumentError("The server's store must be a database, not another server.")
    tokens = _tokens(",".join(auth_tokens))
    read_only = _tokens(",".join(read_tokens))
    if not tokens and not read_only and not _is_loopback(host) and not insecure:
        raise InvalidArgumentError(
            f"Refusing to listen on {host} without a token: give --auth-token (or "
            f"{TOKENS_ENV}), or --insecure if the network is trusted."
        )
    if workers < 1:
        raise InvalidArgumentError("--workers must be at least 1.")
    max_body = max_body_mb * 1024 * 1024
    store = get_store(store_uri)  # open and migrate once, before any worker starts
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Connections inherit this: without it a kept-alive connection waits ~40 ms per answer
    # (Nagle's algorithm holding the body behind the headers until the client's delayed ACK).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    bound = sock.getsockname()[1]
    url = f"http://{f'[{host}]' if ':' in host else host}:{bound}"
    click.echo(
        f"tracejudge server listening on {url}, store {store_uri}"
        + (f", {workers} workers" if workers > 1 else "")
        + f"; web UI at {url}/"
    )
    sys.stdout.flush()
    announce(f"{url}/")
    if run_monitor:
        _start_monitor(store_uri)
    if retention_s is not None:
        start_retention_thread(store, retention_s)
        click.echo(f"deleting traces older than {retention_s:,.0f} s, every hour")
    if isinstance(store, SqlTraceStore):  # dashboards read stored hours from the first call
        start_rollup_thread(store)
    if workers > 1:  # uvicorn's supervisor; each worker builds the app from the environment
        os.environ[STORE_ENV] = store_uri
        os.environ[TOKENS_ENV] = ",".join(sorted(tokens))
        os.environ[READ_TOKENS_ENV] = ",".join(sorted(read_only))
        os.environ[BODY_ENV] = str(max_body)
        sock.set_inheritable(True)
        uvicorn.run(
            "tracejudge.server.main:app_from_environment",
            factory=True,
            fd=sock.fileno(),
            workers=workers,
            log_level="warning",
            timeout_keep_alive=30,
        )
        return
    config = uvicorn.Config(
        build_app(store_uri, tokens, read_only, max_body),
        log_level="warning",
        timeout_keep_alive=30,
    )
    uvicorn.Server(config).run(sockets=[sock])


def _start_monitor(store_uri: str) -> None:
    """The monitor in a daemon thread of this process, on the same store (``--monitor``)."""
    from tracejudge.monitoring import Monitor

    monitor = Monitor(get_store(store_uri))
    threading.Thread(target=monitor.run_forever, name="tracejudge-monitor", daemon=True).start()
    click.echo(f"monitor {monitor.owner} running in this process")
    sys.stdout.flush()
