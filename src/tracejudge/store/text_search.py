"""Word search (``response MATCH 'refund policy'``) over trace requests, responses and spans.

A match means every word of the query appears in the text as a whole word, in any order and
case. Each database tokenises the query with the tokenizer that indexed the text, so a query
finds what its own index holds:

- SQLite: FTS5 tables ``traces_fts(request, response)`` and ``spans_fts(content)`` with
  *external content*: they keep only the inverted index and read nothing back, so the text is
  not stored twice. Triggers keep them current on insert, update and delete (the store writes
  a batch of these tables' rows in one statement, ``sqlite_bulk``, since the triggers make
  per-row statements about three times slower). The rowid of the
  indexed row is the link, so a ``VACUUM`` (which may renumber rowids of tables without an
  integer primary key) must be followed by :func:`rebuild_statements`.
- PostgreSQL: GIN indexes on ``to_tsvector('simple', left(col, N))``, for requests and
  responses stored in generated columns (``PG_STORED_VECTORS``), for span payloads an
  expression index; PostgreSQL maintains them itself. The ``simple`` configuration lowercases and neither stems nor drops
  stop words, like FTS5's ``unicode61`` tokenizer. Only the first ``PG_INDEXED_CHARS``
  characters of a text are indexed: that bounds a ``tsvector`` far below PostgreSQL's 1 MB
  limit, so no text, however long, can make a write fail.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Table,
    exists,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.ext.compiler import compiles

PG_INDEXED_CHARS = 100_000
"""PostgreSQL indexes (and so matches words in) the first this many characters of each text."""

SQLITE_FTS_TABLES = {
    "traces_fts": ("traces", ("request", "response")),
    "spans_fts": ("spans", ("content",)),
}
"""FTS5 table → (the table it indexes, its indexed columns)."""

PG_INDEXES = {
    "ix_traces_request_words": ("traces", "request"),
    "ix_traces_response_words": ("traces", "response"),
    "ix_spans_content_words": ("spans", "content"),
}

PG_STORED_VECTORS = {"request": "request_words", "response": "response_words"}
"""Trace columns whose word vector PostgreSQL stores in a generated column (migration 0010),
indexed there: a search that walks another index (slowest first) and checks each row's words
reads the vector instead of tokenising the text again per row. Span payloads, searched
through the span index alone, keep the expression index and store no second copy."""


def _pg_vector_sql(column: str) -> str:
    return f"to_tsvector('simple'::regconfig, left({column}, {PG_INDEXED_CHARS}))"


def _sqlite_triggers(fts: str, table: str, columns: tuple[str, ...]) -> list[str]:
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    add = f"INSERT INTO {fts}(rowid, {cols}) VALUES (new.rowid, {new});"
    remove = f"INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.rowid, {old});"
    return [
        f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {table} BEGIN {add} END",
        f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {table} BEGIN {remove} END",
        f"CREATE TRIGGER {fts}_update AFTER UPDATE OF {cols} ON {table} BEGIN {remove} {add} END",
    ]


def create_statements(dialect: str) -> list[str]:
    """DDL that creates the word-search structures and indexes what the store already holds."""
    if dialect == "sqlite":
        out = []
        for fts, (table, columns) in SQLITE_FTS_TABLES.items():
            out.append(
                f"CREATE VIRTUAL TABLE {fts} USING fts5({', '.join(columns)}, "
                f"content='{table}', content_rowid='rowid', tokenize='unicode61')"
            )
            out.extend(_sqlite_triggers(fts, table, columns))
        return out + rebuild_statements(dialect)
    return [
        f"CREATE INDEX {name} ON {table} USING gin ({_pg_vector_sql(column)})"
        for name, (table, column) in PG_INDEXES.items()
    ]


def _stored_vector(table: str, column: str) -> str | None:
    """The generated column holding ``column``'s word vector, if PostgreSQL stores one."""
    return PG_STORED_VECTORS.get(column) if table == "traces" else None


def _stored_vector_indexes() -> list[tuple[str, str, str, str]]:
    """(index, table, column, vector column) of each index on a stored vector."""
    return [
        (name, table, column, stored)
        for name, (table, column) in PG_INDEXES.items()
        if (stored := _stored_vector(table, column)) is not None
    ]


def pg_stored_vector_statements() -> list[str]:
    """PostgreSQL DDL of migration 0010: the request and response word vectors as generated
    columns, their GIN indexes rebuilt on the columns."""
    out = []
    for name, table, column, stored in _stored_vector_indexes():
        out += [
            f"DROP INDEX IF EXISTS {name}",
            f"ALTER TABLE {table} ADD COLUMN {stored} tsvector "
            f"GENERATED ALWAYS AS ({_pg_vector_sql(column)}) STORED",
            f"CREATE INDEX {name} ON {table} USING gin ({stored})",
        ]
    return out


def pg_expression_index_statements() -> list[str]:
    """The downgrade of :func:`pg_stored_vector_statements`."""
    out = []
    for name, table, column, stored in _stored_vector_indexes():
        out += [
            f"ALTER TABLE {table} DROP COLUMN IF EXISTS {stored}",
            f"CREATE INDEX {name} ON {table} USING gin ({_pg_vector_sql(column)})",
        ]
    return out


def drop_statements(dialect: str) -> list[str]:
    if dialect == "sqlite":
        return [f"DROP TABLE IF EXISTS {fts}" for fts in SQLITE_FTS_TABLES] + [
            f"DROP TRIGGER IF EXISTS {fts}_{event}"
            for fts in SQLITE_FTS_TABLES
            for event in ("insert", "delete", "update")
        ]
    return [f"DROP INDEX IF EXISTS {name}" for name in PG_INDEXES]


def rebuild_statements(dialect: str) -> list[str]:
    """Re-index every row from the tables (SQLite; PostgreSQL's indexes need no rebuild)."""
    if dialect != "sqlite":
        return []
    return [f"INSERT INTO {fts}({fts}) VALUES ('rebuild')" for fts in SQLITE_FTS_TABLES]


MERGE_PAGES = 500
"""Pages of FTS5 index one compaction step writes: a transaction of tens of milliseconds, so
writers go on between the steps."""


def merge_statement(fts: str, start: bool) -> str:
    """One step of an incremental optimize of ``fts`` (all its segments merged into one): a
    negative page count starts it, positive counts carry it on; a step that changes fewer than
    two rows found nothing left to merge."""
    pages = -MERGE_PAGES if start else MERGE_PAGES
    return f"INSERT INTO {fts}({fts}, rank) VALUES('merge', {pages})"


def is_search_structure(name: str | None) -> bool:
    """Tables and indexes this module makes outside ``schema.metadata`` (FTS5 shadow tables too)."""
    if name is None:
        return False
    return (
        name in PG_INDEXES
        or name in PG_STORED_VECTORS.values()
        or any(name.startswith(fts) for fts in SQLITE_FTS_TABLES)
    )


def sqlite_match_query(words: str) -> str:
    """An FTS5 query: every whitespace-separated word a quoted string, all of them required.

    Quoting makes every character literal (no FTS5 syntax can be injected); FTS5 tokenises
    the quoted text with the tokenizer of the index, so ``e-mail`` matches as it was indexed.
    """
    return " ".join('"' + word.replace('"', '""') + '"' for word in words.split())


def _fts_query(table_name: str, column: str, words: str) -> tuple[str, str]:
    """The FTS5 table for ``table_name.column`` and the MATCH query restricted to that column."""
    fts, columns = next((f, c) for f, (t, c) in SQLITE_FTS_TABLES.items() if t == table_name)
    query = sqlite_match_query(words)
    if len(columns) > 1:  # restrict the match to one column of the FTS table
        query = f"{{{column}}} : ({query})"
    return fts, query


def _sqlite_condition(table: Table, column: str, words: str, via_hits: bool) -> ColumnElement[bool]:
    """``via_hits``: the row is among the index's hits (SQLite reads the hit list once, and can
    look the rows up from it); else a probe of the index for this row's rowid (no list built:
    what a scan that stops after a page wants when the word is common)."""
    fts, query = _fts_query(table.name, column, words)
    matching = literal_column(fts).op("MATCH")(query)
    rowid: Any = literal_column(f"{table.name}.rowid")
    if via_hits:
        hits: Any = select(literal_column("rowid")).select_from(text(fts)).where(matching)
        return rowid.in_(hits)
    probe: Any = (
        select(literal_column("1"))
        .select_from(text(fts))
        .where(matching, literal_column(f"{fts}.rowid") == rowid)
    )
    return exists(probe)


FEW_HITS = 20_000
"""Up to this many hits a word search is served from the hit list, beyond it by probing the
index row by row (SQLite). Measured at 1M traces: a rare word through probes scanned the whole
store (31 s), a common one through the list built a list of 800k rows (0.8 s); on the right
side of this line each took under 50 ms."""


def count_hits(conn: Connection, table_name: str, column: str, words: str) -> int:
    """How many rows of ``table_name`` hold every word (SQLite), counted up to ``FEW_HITS``."""
    fts, query = _fts_query(table_name, column, words)
    capped = text(f"SELECT count(*) FROM (SELECT 1 FROM {fts} WHERE {fts} MATCH :q LIMIT :n)")
    return int(conn.execute(capped, {"q": query, "n": FEW_HITS}).scalar() or 0)


def _pg_condition(table: Table, column: str, words: str) -> ColumnElement[bool]:
    """The stored vector of a trace column, or the very expression of a span payload's GIN
    index (literal config and length), so the index serves it."""
    config: Any = literal_column("'simple'::regconfig")
    vector: Any
    stored = _stored_vector(table.name, column)
    if stored is not None:
        vector = literal_column(f"{table.name}.{stored}")
    else:
        vector = func.to_tsvector(
            config, func.left(table.c[column], literal_column(str(PG_INDEXED_CHARS)))
        )
    query: Any = func.plainto_tsquery(config, words)
    return vector.op("@@")(query)


class WordMatch(ColumnElement[bool]):
    """``column MATCH words``, rendered for the database the statement is compiled for."""

    inherit_cache = False  # the rendering depends on the words, which are not bound values
    _is_implicitly_boolean = True  # a condition as it is: never wrapped in "= 1" on SQLite

    def __init__(self, table: Table, column: str, words: str, via_hits: bool = True) -> None:
        self.table, self.column, self.words, self.via_hits = table, column, words, via_hits
        self.type = Boolean()


@compiles(WordMatch, "sqlite")
def _render_sqlite(element: WordMatch, compiler: Any, **kw: Any) -> str:
    return str(
        compiler.process(
            _sqlite_condition(element.table, element.column, element.words, element.via_hits),
            **kw,
        )
    )


@compiles(WordMatch, "postgresql")
def _render_postgresql(element: WordMatch, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(_pg_condition(element.table, element.column, element.words), **kw))


@compiles(WordMatch)
def _render_other(element: WordMatch, compiler: Any, **kw: Any) -> str:
    raise NotImplementedError(f"word search is not supported on {compiler.dialect.name}")


def matches(table: Table, column: str, words: str, via_hits: bool = True) -> ColumnElement[bool]:
    """A condition on ``table``'s rows: every word of ``words`` is in ``column`` (``via_hits``:
    see :func:`_sqlite_condition`; PostgreSQL plans this itself)."""
    return WordMatch(table, column, words, via_hits)


__all__ = [
    "FEW_HITS",
    "PG_INDEXED_CHARS",
    "WordMatch",
    "count_hits",
    "create_statements",
    "drop_statements",
    "is_search_structure",
    "matches",
    "merge_statement",
    "rebuild_statements",
]
