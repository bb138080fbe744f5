"""Opening a database for the store: engine settings per dialect and migrations on open."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import StaticPool

from tracejudge.errors import InvalidTrackingURIError, StoreError
from tracejudge.store.migrations.env_constants import VERSION_TABLE

logger = logging.getLogger(__name__)

_MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 7_413_001  # an arbitrary advisory-lock key shared by all tracejudge processes


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA case_sensitive_like=ON")  # LIKE is case-sensitive, as on PostgreSQL
    cur.close()


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
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    raise InvalidTrackingURIError(
        f"Unsupported tracking URI {uri!r}; use sqlite:///path.db or postgresql+psycopg://user@host/db"
    )


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS_DIR))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; a no-op when it already is there."""
    cfg = _alembic_config()
    head = ScriptDirectory.from_config(cfg).get_current_head()
    for attempt in range(5):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK}
                    )
                current = MigrationContext.configure(
                    conn, opts={"version_table": VERSION_TABLE}
                ).get_current_revision()
                if current == head:
                    return
                logger.info("Migrating tracejudge store from %s to %s", current, head)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                return
        except OperationalError as exc:
            # Two processes creating the same new SQLite file race here; the loser retries.
            if engine.dialect.name != "sqlite" or attempt == 4:
                raise StoreError(f"Could not migrate the tracejudge store: {exc}") from exc
            time.sleep(0.2 * (attempt + 1))
