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
    """The distinct (experiment, hour) of the transition table ``rows``."""
    if table == "traces":
        return f"SELECT DISTINCT experiment_id, {_hour_sql('timestamp_ms')} AS hour_ms FROM {rows}"
    return (
        f"SELECT DISTINCT t.experiment_id, {_hour_sql('t.timestamp_ms')} AS hour_ms "
        f"FROM {rows} r JOIN traces t ON t.trace_id = r.trace_id"
        + (f" WHERE r.{only}" if only else "")
    )


def _pg_forget(touched: str) -> str:
    """PL/pgSQL: take the shared lock of every (experiment, hour) that ``touched`` selects, in
    order, then delete those hours' sums."""
    lock_key = f"((h.hour_ms / {HOUR_MS} % {LOCK_SPACE} + {LOCK_SPACE}) % {LOCK_SPACE})::int"
    return (
        f"PERFORM pg_advisory_xact_lock_shared(h.experiment_id, {lock_key}) "
        f"FROM ({touched} ORDER BY 1, 2) h; "
        f"DELETE FROM trace_hours stale USING ({touched}) h "
        "WHERE stale.experiment_id = h.experiment_id AND stale.hour_ms = h.hour_ms;"
    )
