"""The triggers that keep ``hourly_rollups`` true: every write or delete of a trace, of a
trace's feedback or of a trace's tag deletes the stored sums of that trace's hour (and, by
cascade, its feedback and tag breakdowns), so the next aggregate computes the hour again.

Row triggers on both databases. On PostgreSQL each first takes the shared advisory lock of
the (experiment, hour) it touches, held to commit: a reader stores an hour only under that
hour's exclusive lock, which it tries without waiting (see ``hourly_rollups``), so the order
in which writers take their shared locks cannot deadlock.
"""

from __future__ import annotations

HOUR_MS = 3_600_000
LOCK_SPACE = 2_147_483_647
"""Advisory-lock keys are (experiment, hour number modulo this): two int4 keys."""


def lock_key_sql(hour: str) -> str:
    """The second advisory-lock key of the hour starting at ``hour`` (SQL), the same for the
    writers' shared locks here and the reader's exclusive ones (``hourly_rollups``)."""
    return f"(({hour} / {HOUR_MS} % {LOCK_SPACE} + {LOCK_SPACE}) % {LOCK_SPACE})::int"


def _hour_sql(column: str) -> str:
    """The start of ``column``'s UTC hour, flooring negative times too (as Python's ``//``)."""
    return f"({column} - ((({column}) % {HOUR_MS}) + {HOUR_MS}) % {HOUR_MS})"


_EVENTS = ("insert", "update", "delete")

_WATCHED = {
    "traces": ("trace", None),
    "assessments": ("feedback", "{row}.kind = 'feedback'"),
    "trace_tags": ("tag", None),
}
"""Table → (name of its triggers, which rows count). Rows of ``assessments`` and
``trace_tags`` point at their trace, whose hour they touch."""


def create_statements(dialect: str) -> list[str]:
    """The triggers that delete the stored hours a write touches. Deleting an hour of
    ``trace_hours`` deletes its ``feedback_hours`` and ``tag_hours`` by cascade.

    Row triggers on both databases. PostgreSQL statement triggers over transition tables were
    tried first: the store writes tags and verdicts one row per statement, so they ran once
    per row, each building its transition tables and a join, and ``log_traces`` at 1M traces
    fell from 1,367 to 636 traces/s in the search benchmark. Row triggers cost less than the
    noise of alternating runs (median of four rounds 1,260 traces/s with them, 1,225 without;
    ``log_traces`` at 1M traces, 2,000 traces a round)."""
    statements = []
    for table, (name, only) in _WATCHED.items():
        if dialect == "sqlite":
            statements += _sqlite_triggers(table, name, only)
            continue
        function = f"tracejudge_{name}_hours_stale"
        statements.append(
            f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "DECLARE e integer; h bigint; "
            "BEGIN IF TG_OP IN ('UPDATE', 'DELETE') THEN "
            + _pg_forget(table, "OLD", only)
            + " END IF; IF TG_OP IN ('INSERT', 'UPDATE') THEN "
            + _pg_forget(table, "NEW", only)
            + " END IF; RETURN NULL; END $$"
        )
        statements += [
            f"CREATE TRIGGER {name}_hours_stale_{event} AFTER {event.upper()} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()"
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
    old, new = (only.format(row="old"), only.format(row="new")) if only else ("", "")
    when = (
        {"insert": f" WHEN {new}", "update": f" WHEN {old} OR {new}", "delete": f" WHEN {old}"}
        if only
        else dict.fromkeys(_EVENTS, "")
    )
    return [
        f"CREATE TRIGGER {name}_hours_stale_{event} AFTER {event.upper()} ON {table}"
        f"{when[event]} BEGIN {body[event]} END"
        for event in _EVENTS
    ]


def _pg_forget(table: str, row: str, only: str | None) -> str:
    """PL/pgSQL for one row (``OLD`` or ``NEW``): find its trace's experiment and hour, take
    that hour's shared lock, delete its sums."""
    lock = (
        f"PERFORM pg_advisory_xact_lock_shared(e, {lock_key_sql('h')}); "
        "DELETE FROM trace_hours WHERE experiment_id = e AND hour_ms = h;"
    )
    if table == "traces":
        return f"e := {row}.experiment_id; h := {_hour_sql(f'{row}.timestamp_ms')}; {lock}"
    found = (
        f"SELECT experiment_id, {_hour_sql('timestamp_ms')} INTO e, h FROM traces "
        f"WHERE trace_id = {row}.trace_id; IF FOUND THEN {lock} END IF;"
    )
    return f"IF {only.format(row=row)} THEN {found} END IF;" if only else found
