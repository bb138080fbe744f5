"""Bulk loading into PostgreSQL the way ``pg_restore`` does it: rows first, then indexes and
foreign keys, each built once over the whole table instead of maintained row by row.

Filling a benchmark store of 10M traces with every index and foreign-key check in place runs
at about 1,600 traces/s (hours); without them, COPY is bound by generating the rows. The
definitions of what is dropped are kept in a table of the database itself, in the same
transaction as the drop, so a load that is interrupted and run again still rebuilds them.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine, text

PENDING = "bench_pending_ddl"
"""Table holding the DDL to run once the rows are in (in order: indexes, then foreign keys)."""


def defer(engine: Engine, tables: tuple[str, ...]) -> int:
    """Drop the secondary indexes and foreign keys of ``tables``, remembering how to rebuild
    them. Primary keys stay (they keep COPY from duplicating a row). Returns how many were
    dropped now (0 when an interrupted load already dropped them)."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {PENDING} (seq serial, ddl text)")
        if conn.exec_driver_sql(f"SELECT count(*) FROM {PENDING}").scalar():
            return 0
        foreign_keys = conn.execute(
            text(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                "FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text = ANY(:t)"
            ),
            {"t": list(tables)},
        ).all()
        indexes = conn.execute(
            text(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                "JOIN pg_class c ON c.relname = i.indexname "
                "JOIN pg_index x ON x.indexrelid = c.oid "
                "WHERE i.tablename = ANY(:t) AND NOT x.indisprimary AND NOT x.indisunique"
            ),
            {"t": list(tables)},
        ).all()
        rebuild = [ddl for _, ddl in indexes] + [
            f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"
            for table, name, definition in foreign_keys
        ]
        for ddl in rebuild:
            conn.execute(text(f"INSERT INTO {PENDING} (ddl) VALUES (:d)"), {"d": ddl})
        for table, name, _ in foreign_keys:
            conn.exec_driver_sql(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        for name, _ in indexes:
            conn.exec_driver_sql(f"DROP INDEX {name}")
    return len(rebuild)


def restore(engine: Engine, maintenance_work_mem: str = "1GB", parallel: int = 2) -> None:
    """Build what :func:`defer` dropped, then ``VACUUM ANALYZE`` so the planner knows the new
    tables. PostgreSQL builds an index on one core, so ``parallel`` connections build them side
    by side, each taking the next when it is done: the word-search (GIN) indexes of the largest
    tables first, as they take longest; foreign keys last."""
    with engine.connect() as conn:
        if not conn.exec_driver_sql(f"SELECT to_regclass('{PENDING}') IS NOT NULL").scalar():
            return
        pending = conn.exec_driver_sql(f"SELECT seq, ddl FROM {PENDING}").all()
        sizes = dict(
            conn.exec_driver_sql(
                "SELECT relname, pg_relation_size(oid) FROM pg_class WHERE relkind = 'r'"
            ).all()
        )

    def cost(ddl: str) -> tuple[bool, int]:  # "CREATE [UNIQUE] INDEX name ON public.table …"
        table = ddl.split(" ON ", 1)[1].split()[0].rsplit(".", 1)[-1]
        return "USING gin" not in ddl, -sizes.get(table, 0)

    indexes = sorted(
        (row for row in pending if row[1].startswith("CREATE")), key=lambda r: cost(r[1])
    )
    keys = [row for row in pending if not row[1].startswith("CREATE")]

    def build(row: tuple[int, str]) -> None:
        seq, ddl = row
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            timeout = conn.exec_driver_sql("SHOW statement_timeout").scalar()
            conn.exec_driver_sql(f"SET maintenance_work_mem = '{maintenance_work_mem}'")
            conn.exec_driver_sql("SET statement_timeout = 0")  # the store's own is for queries
            start = time.perf_counter()
            try:
                conn.exec_driver_sql(ddl)
                conn.exec_driver_sql(f"DELETE FROM {PENDING} WHERE seq = {int(seq)}")
            finally:  # the connection goes back to the pool: queries keep the store's limit
                conn.exec_driver_sql(f"SET statement_timeout = '{timeout}'")
            print(f"  {time.perf_counter() - start:,.0f} s  {ddl[:110]}", file=sys.stderr)

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(build, indexes))
    for row in keys:
        build(row)
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql(f"DROP TABLE {PENDING}")
        conn.exec_driver_sql("VACUUM ANALYZE")
