"""The triggers that keep ``hourly_rollups`` true: every write or delete of a trace, of a
trace's feedback or of a trace's tag deletes the stored sums of that trace's hour (and, by
cascade, its feedback and tag breakdowns), so the next aggregate computes the hour again.

SQLite: row triggers. PostgreSQL: statement triggers over the transition tables, which first
take a shared advisory lock per (experiment, hour) they touch, in order, held to commit: a
reader stores an hour only under that hour's exclusive lock (see ``hourly_rollups``).
"""

from __future__ import annotations

HOUR_MS = 3_600_000
LOCK_SPACE = 2_147_483_647
"""Advisory-lock keys are (experiment, hour number modulo this): two int4 keys."""


def _hour_sql(column: str) -> str:
    """The start of ``column``'s UTC hour, flooring negative times too (as Python's ``//``)."""
    return f"({column} - ((({column}) % {HOUR_MS}) + {HOUR_MS}) % {HOUR_MS})"


_EVENTS = ("insert", "update", "delete")
_TRANSITION = {
    "insert": "NEW TABLE AS new_rows",
    "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "OLD TABLE AS old_rows",
}


_WATCHED = {
    "traces": ("trace", None),
    "assessments": ("feedback", "kind = 'feedback'"),
    "trace_tags": ("tag", None),
}
"""Table → (name of its triggers, the rows that count). Rows of ``assessments`` and
``trace_tags`` point at their trace, whose hour they touch."""


def create_statements(dialect: str) -> list[str]:
    """The triggers that delete the stored hours a write touches. Deleting an hour of
    ``trace_hours`` deletes its ``feedback_hours`` and ``tag_hours`` by cascade."""
    statements = []
    for table, (name, only) in _WATCHED.items():
        if dialect == "sqlite":
            statements += _sqlite_triggers(table, name, only)
            continue
        function = f"tracejudge_{name}_hours_stale"
        statements.append(
            f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "DECLARE es integer[]; hs bigint[]; "
            "BEGIN IF TG_OP IN ('UPDATE', 'DELETE') THEN "
            + _pg_forget(_pg_touched(table, "old_rows", only))
            + " END IF; IF TG_OP IN ('INSERT', 'UPDATE') THEN "
            + _pg_forget(_pg_touched(table, "new_rows", only))
            + " END IF; RETURN NULL; END $$"
        )
        statements += [
            f"CREATE TRIGGER {name}_hours_stale_{event} AFTER {event.upper()} ON {table} "
            f"REFERENCING {_TRANSITION[event]} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            for event in _EVENTS
        ]
    return statements


def drop_statements(dialect: str) -> list[str]:
    statements = [
        f"DROP TRIGGER IF EXISTS {name}_hours_stale_{event}"
        + ("" if dialect == "sqlite" else f" ON {table}")
        for table, (name, _) in _WATCHED.items()
        for event in _EVENTS
    ]
    if dialect == "postgresql":
        statements += [
            f"DROP FUNCTION IF EXISTS tracejudge_{name}_hours_stale()"
            for name, _ in _WATCHED.values()
        ]
    return statements


_FORGET_HOUR = "DELETE FROM trace_hours WHERE experiment_id = {exp} AND hour_ms = {hour};"


def _sqlite_triggers(table: str, name: str, only: str | None) -> list[str]:
    def forget(row: str) -> str:
        if table == "traces":
            return _FORGET_HOUR.format(
                exp=f"{row}.experiment_id", hour=_hour_sql(f"{row}.timestamp_ms")
            )
        trace = f"FROM traces WHERE trace_id = {row}.trace_id"
        return _FORGET_HOUR.format(
            exp=f"(SELECT experiment_id {trace})",
            hour=f"(SELECT {_hour_sql('timestamp_ms')} {trace})",
        )

    body = {
        "insert": forget("new"),
        "update": forget("old") + " " + forget("new"),
        "delete": forget("old"),
    }
    when = {
        "insert": f" WHEN new.{only}",
        "update": f" WHEN old.{only} OR new.{only}",
        "delete": f" WHEN old.{only}",
    }
    return [
        f"CREATE TRIGGER {name}_hours_stale_{event} AFTER {event.upper()} ON {table}"
        f"{when[event] if only else ''} BEGIN {body[event]} END"
        for event in _EVENTS
    ]


def _pg_touched(table: str, rows: str, only: str | None) -> str:
    """The distinct (experiment, hour) of the transition table ``rows``. A child row's trace
    is looked up by id through LATERAL: the planner knows nothing of a transition table's
    size, and as a join it hashed every trace in the store to meet a batch of tags (37 µs
    per inserted tag at 1M traces, against about 2 looked up)."""
    if table == "traces":
        return f"SELECT DISTINCT experiment_id, {_hour_sql('timestamp_ms')} AS hour_ms FROM {rows}"
    return (
        f"SELECT DISTINCT t.experiment_id, {_hour_sql('t.timestamp_ms')} AS hour_ms "
        f"FROM (SELECT DISTINCT trace_id FROM {rows}"
        + (f" WHERE {only}" if only else "")
        + ") r CROSS JOIN LATERAL (SELECT experiment_id, timestamp_ms FROM traces "
        "WHERE traces.trace_id = r.trace_id) t"
    )


def _pg_forget(touched: str) -> str:
    """PL/pgSQL: collect the (experiment, hour) pairs ``touched`` selects, take the shared lock
    of each in order, then delete those hours' sums."""
    lock_key = f"((u.h / {HOUR_MS} % {LOCK_SPACE} + {LOCK_SPACE}) % {LOCK_SPACE})::int"
    return (
        "SELECT array_agg(experiment_id ORDER BY experiment_id, hour_ms), "
        f"array_agg(hour_ms ORDER BY experiment_id, hour_ms) INTO es, hs FROM ({touched}) x; "
        f"PERFORM pg_advisory_xact_lock_shared(u.e, {lock_key}) "
        "FROM unnest(es, hs) WITH ORDINALITY AS u(e, h, n) ORDER BY n; "
        "DELETE FROM trace_hours stale USING unnest(es, hs) AS u(e, h) "
        "WHERE stale.experiment_id = u.e AND stale.hour_ms = u.h;"
    )
