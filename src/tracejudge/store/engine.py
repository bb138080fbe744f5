"""Opening a database for the store: engine settings per dialect and migrations on open."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import StaticPool

from tracejudge import settings
from tracejudge.errors import InvalidTrackingURIError, StoreError
from tracejudge.store import db_errors
from tracejudge.store.migrations.env_constants import VERSION_TABLE

logger = logging.getLogger(__name__)

_MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 7_413_001  # an arbitrary advisory-lock key shared by all tracejudge processes


SQLITE_CACHE_KIB = 65_536
SQLITE_MMAP_BYTES = 1 << 30
"""Per connection: a 64 MiB page cache (SQLite's default is 2 MiB) and reads through a memory
map of up to 1 GiB (pages shared with the OS cache, no copy per read). A search over a large
store walks an index and looks rows up at random: these turned most of its page reads from
system calls into memory reads."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA case_sensitive_like=ON")  # LIKE is case-sensitive, as on PostgreSQL
    cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cur.close()


PG_CONNECT_TIMEOUT_S = 10


def _pg_session_settings(dbapi_conn: Any, _record: Any) -> None:
    """A statement timeout, so that no query can hold the server for minutes (the server stops
    it, the caller gets a StoreError); migrations lift it for their own transaction."""
    seconds = settings.STATEMENT_TIMEOUT_S.get()
    ms = max(1, round(seconds * 1000)) if seconds > 0 else 0  # 0 is PostgreSQL's "no limit"
    with dbapi_conn.cursor() as cur:
        cur.execute(f"SET statement_timeout = {ms}")
    dbapi_conn.commit()


def create_store_engine(uri: str) -> Engine:
    """An engine for ``sqlite:///path.db`` or ``postgresql+psycopg://…``, with tuned settings."""
    try:
        url = make_url(uri)
    except ArgumentError as exc:
        raise InvalidTrackingURIError(f"Cannot parse tracking URI {uri!r}: {exc}") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        memory = url.database in (None, "", ":memory:")
        if not memory and url.database:
            folder = Path(url.database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"Cannot create the folder of SQLite store {uri!r}: {exc}"
                ) from exc
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 30, "check_same_thread": False}}
        if memory:
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=10,
            # a server that accepts the connection but never answers must not hang the app
            connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S},
        )
        event.listen(engine, "connect", _pg_session_settings)
        return engine
    raise InvalidTrackingURIError(
        f"Unsupported tracking URI {uri!r}; use sqlite:///path.db or postgresql+psycopg://user@host/db"
    )


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS_DIR))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision, all or nothing; a no-op when it already is there.

    PostgreSQL runs DDL inside the transaction (serialised across processes by an advisory
    lock). SQLite's Python driver would commit each ``CREATE TABLE`` on its own, so a process
    killed midway left a half-made schema that every later open tripped over; there the
    migration runs in one ``BEGIN IMMEDIATE`` transaction issued by hand, which also makes a
    second process wait for the first instead of racing it.
    """
    cfg = _alembic_config()
    head = ScriptDirectory.from_config(cfg).get_current_head()
    for attempt in range(5):
        try:
            if engine.dialect.name == "sqlite":
                _migrate_sqlite(engine, cfg, head)
            else:
                with engine.begin() as conn:
                    conn.execute(text("SET LOCAL statement_timeout = 0"))  # index builds take long
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK}
                    )
                    _upgrade(conn, cfg, head)
            return
        except OperationalError as exc:
            # Two processes creating the same new SQLite file can race while setting it up
            # (WAL mode); the loser retries.
            if engine.dialect.name != "sqlite" or attempt == 4:
                raise db_errors.translate(exc, "Migrating the tracejudge store") from exc
            time.sleep(0.2 * (attempt + 1))


def _upgrade(conn: Connection, cfg: Config, head: str | None) -> None:
    current = MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()
    if current == head:
        return
    logger.info("Migrating tracejudge store from %s to %s", current, head)
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


def _migrate_sqlite(engine: Engine, cfg: Config, head: str | None) -> None:
    with immediate_transaction(engine) as conn:
        _upgrade(conn, cfg, head)


@contextmanager
def immediate_transaction(engine: Engine) -> Iterator[Connection]:
    """A SQLite transaction that takes the write lock at its start (``BEGIN IMMEDIATE``), so
    that what it reads cannot change before it writes; the Python driver's own transactions
    start deferred and only on the first write."""
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        saved = driver.isolation_level  # type: ignore[union-attr]
        driver.isolation_level = None  # type: ignore[union-attr]  # we issue BEGIN/COMMIT
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
        finally:
            driver.isolation_level = saved  # type: ignore[union-attr]


def plan_as_short_query(conn: Connection) -> None:
    """For the rest of this transaction (PostgreSQL), plan as for a query that reads a few
    hundred rows. A page of a search (``LIMIT 101`` over millions of traces) is costed by the
    whole walk it could take, so PostgreSQL starts JIT compilation (12 ms at 10M traces) and
    parallel workers (several ms to start, then a merge) for a walk that ends after a few
    hundred rows: at 10M traces a tag filter's first page took 14.7 ms with them and about 9
    without. Scans over every trace (aggregates) keep both."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "SELECT set_config('jit', 'off', true), "
            "set_config('max_parallel_workers_per_gather', '0', true)"
        )
