"""Word search (``response MATCH 'refund policy'``) over trace requests, responses and spans.

A match means every word of the query appears in the text as a whole word, in any order and
case. Each database tokenises the query with the tokenizer that indexed the text, so a query
finds what its own index holds:

- SQLite: FTS5 tables ``traces_fts(request, response)`` and ``spans_fts(content)`` with
  *external content*: they keep only the inverted index and read nothing back, so the text is
  not stored twice. Triggers keep them current on insert, update and delete. The rowid of the
  indexed row is the link, so a ``VACUUM`` (which may renumber rowids of tables without an
  integer primary key) must be followed by :func:`rebuild_statements`.
- PostgreSQL: GIN expression indexes on ``to_tsvector('simple', left(col, N))``; PostgreSQL
  maintains them itself. The ``simple`` configuration lowercases and neither stems nor drops
  stop words, like FTS5's ``unicode61`` tokenizer. Only the first ``PG_INDEXED_CHARS``
  characters of a text are indexed: that bounds a ``tsvector`` far below PostgreSQL's 1 MB
  limit, so no text, however long, can make a write fail.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ColumnElement, Table, func, literal_column, select, text
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


def is_search_structure(name: str | None) -> bool:
    """Tables and indexes this module makes outside ``schema.metadata`` (FTS5 shadow tables too)."""
    if name is None:
        return False
    return name in PG_INDEXES or any(name.startswith(fts) for fts in SQLITE_FTS_TABLES)


def sqlite_match_query(words: str) -> str:
    """An FTS5 query: every whitespace-separated word a quoted string, all of them required.

    Quoting makes every character literal (no FTS5 syntax can be injected); FTS5 tokenises
    the quoted text with the tokenizer of the index, so ``e-mail`` matches as it was indexed.
    """
    return " ".join('"' + word.replace('"', '""') + '"' for word in words.split())


def _sqlite_condition(table: Table, column: str, words: str) -> ColumnElement[bool]:
    fts, columns = next((f, c) for f, (t, c) in SQLITE_FTS_TABLES.items() if t == table.name)
    query = sqlite_match_query(words)
    if len(columns) > 1:  # restrict the match to one column of the FTS table
        query = f"{{{column}}} : ({query})"
    hits: Any = (
        select(literal_column("rowid"))
        .select_from(text(fts))
        .where(literal_column(fts).op("MATCH")(query))
    )
    return literal_column(f"{table.name}.rowid").in_(hits)


def _pg_condition(table: Table, column: str, words: str) -> ColumnElement[bool]:
    """The very expression of the GIN index (literal config and length), so the index serves it."""
    config: Any = literal_column("'simple'::regconfig")
    vector = func.to_tsvector(
        config, func.left(table.c[column], literal_column(str(PG_INDEXED_CHARS)))
    )
    query: Any = func.plainto_tsquery(config, words)
    return vector.op("@@")(query)


class WordMatch(ColumnElement[bool]):
    """``column MATCH words``, rendered for the database the statement is compiled for."""

    inherit_cache = False  # the rendering depends on the words, which are not bound values

    def __init__(self, table: Table, column: str, words: str) -> None:
        self.table, self.column, self.words = table, column, words
        self.type = Boolean()


@compiles(WordMatch, "sqlite")
def _render_sqlite(element: WordMatch, compiler: Any, **kw: Any) -> str:
    return str(
        compiler.process(_sqlite_condition(element.table, element.column, element.words), **kw)
    )


@compiles(WordMatch, "postgresql")
def _render_postgresql(element: WordMatch, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(_pg_condition(element.table, element.column, element.words), **kw))


@compiles(WordMatch)
def _render_other(element: WordMatch, compiler: Any, **kw: Any) -> str:
    raise NotImplementedError(f"word search is not supported on {compiler.dialect.name}")


def matches(table: Table, column: str, words: str) -> ColumnElement[bool]:
    """A condition on ``table``'s rows: every word of ``words`` is in ``column``."""
    return WordMatch(table, column, words)


__all__ = [
    "PG_INDEXED_CHARS",
    "WordMatch",
    "create_statements",
    "drop_statements",
    "is_search_structure",
    "matches",
    "rebuild_statements",
]
