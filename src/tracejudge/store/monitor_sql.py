"""The monitor's tables on a SQL store: registered scorers, their versions, and trace claims.

Several monitor processes may share one database. They never score a trace twice because a
trace is taken by inserting its claim row, whose primary key is (experiment, scorer, trace):
of two processes inserting the same claim, one inserts it and the other's insert does nothing
(``ON CONFLICT DO NOTHING``, on SQLite and PostgreSQL alike, with no lock held while scoring).
A claim still ``claimed`` after its lease belongs to a process that died; a conditional update
hands it to one other process. The watermark only moves forward (a conditional update too).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from tracejudge.entities import RegisteredScorer, ScorerStatus
from tracejudge.errors import InvalidArgumentError, ScorerNotFoundError
from tracejudge.query.filter_parser import parse_filter
from tracejudge.store import schema as s
from tracejudge.store.db_errors import wrap_db_errors
from tracejudge.store.filter_sql import to_sql

FINISHED = ("done", "failed")
CLAIM_CHUNK = 500
"""Claims inserted per statement (9 parameters each: under SQLite's limit of 32,766)."""


@dataclass(frozen=True)
class Candidate:
    """A trace past a scorer's watermark: where it sorts, and whether it is still running."""

    trace_id: str
    timestamp_ms: int
    in_progress: bool


@dataclass(frozen=True)
class ClaimResult:
    """How scoring a claimed trace ended: ``done`` (verdicts written) or ``failed``."""

    trace_id: str
    state: str
    calls: int = 0
    cost: float = 0.0
    passed: float | None = None
    """1.0 pass, 0.0 fail, None when the verdict is neither (a number, an error)."""
    error: str | None = None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _number(value: Any, low: float | None = None, high: float | None = None) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value  # not NaN
        and (low is None or value >= low)
        and (high is None or value <= high)
    )


_SETTING_CHECKS: dict[str, tuple[Any, str]] = {
    "status": (lambda v: isinstance(v, str) and v in {x.value for x in ScorerStatus}, "a status"),
    "sample_rate": (lambda v: _number(v, 0, 1), "a number in [0, 1]"),
    "filter_string": (lambda v: v is None or isinstance(v, str), "a filter string or null"),
    "max_calls_per_hour": (
        lambda v: v is None or (_number(v, 0) and float(v).is_integer()),
        "a whole number ≥ 0 or null",
    ),
    "max_cost_per_day": (lambda v: v is None or _number(v, 0), "a number ≥ 0 or null"),
    "alert_below": (lambda v: v is None or _number(v, 0, 1), "a number in [0, 1] or null"),
    "alert_webhook": (lambda v: v is None or isinstance(v, str), "a URL or null"),
    "failures": (lambda v: _number(v, 0) and float(v).is_integer(), "a whole number ≥ 0"),
    "backoff_until_ms": (lambda v: v is None or _number(v, 0), "a time in ms or null"),
    "last_error": (lambda v: v is None or isinstance(v, str), "a string or null"),
}
"""What each setting may be. Checked by the store, whichever client sent it (the REST API
included): a wrong type written once would break the monitor thread and every page that
reads the setting, for every experiment."""
UPDATABLE = frozenset(_SETTING_CHECKS)
"""What ``update`` may change in place; a new definition is a new version (``register``)."""


def _check_changes(changes: dict[str, Any]) -> None:
    """InvalidArgumentError for a setting of the wrong type or range, or a filter that does
    not parse."""
    for key, value in changes.items():
        check, wanted = _SETTING_CHECKS[key]
        if not check(value):
            raise InvalidArgumentError(f"{key} must be {wanted}, not {value!r}.")
    if changes.get("filter_string"):
        parse_filter(str(changes["filter_string"]))


def _experiment_key(experiment_id: str) -> int:
    try:
        return int(experiment_id)
    except (TypeError, ValueError):
        raise ScorerNotFoundError(f"No experiment with id {experiment_id!r}.") from None


class SqlMonitorStore:
    """The monitor's reads and writes, on the trace store's engine (``store.monitor``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    # ------------------------------------------------------------ registry

    @wrap_db_errors
    def register(
        self, experiment_id: str, name: str, definition: dict[str, Any], **settings: Any
    ) -> RegisteredScorer:
        """Register ``name`` with ``definition``: a new scorer at version 1, the same scorer
        unchanged, or a new version when the definition differs. ``settings`` (budgets, alert)
        are updated in place."""
        unknown = sorted(set(settings) - UPDATABLE)
        if unknown:
            raise InvalidArgumentError(f"Unknown scorer setting(s) {unknown}.")
        _check_changes(settings)
        key = _experiment_key(experiment_id)
        text = json.dumps(definition, sort_keys=True)
        now = _now_ms()
        sc, sv = s.monitor_scorers, s.monitor_scorer_versions
        with self.engine.begin() as conn:
            current = conn.execute(
                select(sc.c.version).where(sc.c.experiment_id == key, sc.c.name == name)
            ).first()
            if current is None:
                conn.execute(
                    sc.insert().values(
                        experiment_id=key,
                        name=name,
                        version=1,
                        status=ScorerStatus.STOPPED.value,
                        sample_rate=0.0,
                        failures=0,
                        create_time_ms=now,
                        update_time_ms=now,
                        **settings,
                    )
                )
                version = 1
            else:
                version = int(current[0])
                stored = conn.execute(
                    select(sv.c.definition).where(
                        sv.c.experiment_id == key, sv.c.name == name, sv.c.version == version
                    )
                ).scalar_one()
                if stored != text:
                    version += 1
                conn.execute(
                    update(sc)
                    .where(sc.c.experiment_id == key, sc.c.name == name)
                    .values(version=version, update_time_ms=now, **settings)
                )
            conn.execute(
                self._insert(sv)
                .values(
                    experiment_id=key,
                    name=name,
                    version=version,
                    definition=text,
                    create_time_ms=now,
                )
                .on_conflict_do_nothing()
            )
            return self._get(conn, key, name)

    @wrap_db_errors
    def get(self, experiment_id: str, name: str) -> RegisteredScorer:
        with self.engine.connect() as conn:
            return self._get(conn, _experiment_key(experiment_id), name)

    def _get(self, conn: Connection, key: int, name: str) -> RegisteredScorer:
        found = self._rows(
            conn, and_(s.monitor_scorers.c.experiment_id == key, s.monitor_scorers.c.name == name)
        )
        if not found:
            raise ScorerNotFoundError(
                f"No scorer named {name!r} is registered in experiment {key}."
            )
        return found[0]

    @wrap_db_errors
    def list_scorers(self, experiment_id: str | None = None) -> list[RegisteredScorer]:
        condition = (
            s.monitor_scorers.c.experiment_id == _experiment_key(experiment_id)
            if experiment_id is not None
            else None
        )
        with self.engine.connect() as conn:
            return self._rows(conn, condition)

    def _rows(self, conn: Connection, condition: Any) -> list[RegisteredScorer]:
        sc, sv = s.monitor_scorers, s.monitor_scorer_versions
        query = select(sc, sv.c.definition).join(
            sv,
            and_(
                sv.c.experiment_id == sc.c.experiment_id,
                sv.c.name == sc.c.name,
                sv.c.version == sc.c.version,
            ),
        )
        if condition is not None:
            query = query.where(condition)
        scorers = []
        for row in conn.execute(query.order_by(sc.c.experiment_id, sc.c.name)).mappings():
            versions = conn.execute(
                select(sv.c.version)
                .where(sv.c.experiment_id == row["experiment_id"], sv.c.name == row["name"])
                .order_by(sv.c.version)
            ).scalars()
            mark = row["watermark_ms"]
            scorers.append(
                RegisteredScorer(
                    experiment_id=str(row["experiment_id"]),
                    name=row["name"],
                    version=row["version"],
                    definition=json.loads(row["definition"]),
                    status=ScorerStatus(row["status"]),
                    sample_rate=row["sample_rate"],
                    filter_string=row["filter_string"],
                    max_calls_per_hour=row["max_calls_per_hour"],
                    max_cost_per_day=row["max_cost_per_day"],
                    alert_below=row["alert_below"],
                    alert_webhook=row["alert_webhook"],
                    watermark=None if mark is None else (mark, row["watermark_trace_id"]),
                    failures=row["failures"],
                    backoff_until_ms=row["backoff_until_ms"],
                    last_error=row["last_error"],
                    create_time_ms=row["create_time_ms"],
                    update_time_ms=row["update_time_ms"],
                    versions=[int(v) for v in versions],
                )
            )
        return scorers

    @wrap_db_errors
    def update(self, experiment_id: str, name: str, **changes: Any) -> RegisteredScorer:
        unknown = sorted(set(changes) - UPDATABLE)
        if unknown:
            raise InvalidArgumentError(f"Unknown scorer setting(s) {unknown}.")
        _check_changes(changes)
        if isinstance(changes.get("status"), ScorerStatus):
            changes["status"] = changes["status"].value
        key = _experiment_key(experiment_id)
        sc = s.monitor_scorers
        with self.engine.begin() as conn:
            done = conn.execute(
                update(sc)
                .where(sc.c.experiment_id == key, sc.c.name == name)
                .values(update_time_ms=_now_ms(), **changes)
            )
            if done.rowcount == 0:
                raise ScorerNotFoundError(
                    f"No scorer named {name!r} is registered in experiment {key}."
                )
            return self._get(conn, key, name)

    @wrap_db_errors
    def delete(self, experiment_id: str, name: str) -> None:
        """Forget the scorer, its versions and its claims (its verdicts stay on the traces)."""
        key = _experiment_key(experiment_id)
        with self.engine.begin() as conn:
            for table, column in (
                (s.monitor_claims, s.monitor_claims.c.scorer),
                (s.monitor_scorer_versions, s.monitor_scorer_versions.c.name),
                (s.monitor_scorers, s.monitor_scorers.c.name),
            ):
                gone = conn.execute(
                    delete(table).where(table.c.experiment_id == key, column == name)
                )
            if gone.rowcount == 0:
                raise ScorerNotFoundError(
                    f"No scorer named {name!r} is registered in experiment {key}."
                )

    # ------------------------------------------------------------ the monitor's work

    @wrap_db_errors
    def candidates(
        self,
        experiment_id: str,
        after: tuple[int, str] | None,
        until_ms: int,
        filter_string: str | None,
        limit: int,
    ) -> list[Candidate]:
        """Traces of the experiment past ``after`` (in (timestamp, trace id) order) that started
        at or before ``until_ms`` and match the filter, oldest first."""
        t = s.traces.c
        where = [t.experiment_id == _experiment_key(experiment_id), t.timestamp_ms <= until_ms]
        if filter_string:
            where.append(to_sql(parse_filter(filter_string)))
        if after is not None:
            where.append(
                or_(
                    t.timestamp_ms > after[0],
                    and_(t.timestamp_ms == after[0], t.trace_id > after[1]),
                )
            )
        query = (
            select(t.trace_id, t.timestamp_ms, t.status)
            .where(*where)
            .order_by(t.timestamp_ms, t.trace_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [
                Candidate(row.trace_id, int(row.timestamp_ms), row.status == "IN_PROGRESS")
                for row in conn.execute(query)
            ]

    @wrap_db_errors
    def claim(
        self,
        experiment_id: str,
        scorer: str,
        version: int,
        trace_ids: Sequence[str],
        owner: str,
        lease_ms: int,
    ) -> list[str]:
        """Take the traces no other process has: new claims, claims whose lease ran out (their
        process died mid-work), and this owner's own open claims (a retried call whose answer
        was lost takes them again). Returns the trace ids this call took."""
        key = _experiment_key(experiment_id)
        c = s.monitor_claims
        now = _now_ms()
        wanted = list(dict.fromkeys(trace_ids))
        taken: set[str] = set()
        with self.engine.begin() as conn:  # two statements per chunk, whatever its size
            for i in range(0, len(wanted), CLAIM_CHUNK):
                chunk = wanted[i : i + CLAIM_CHUNK]
                rows = [
                    {
                        "experiment_id": key,
                        "scorer": scorer,
                        "trace_id": trace_id,
                        "version": version,
                        "state": "claimed",
                        "owner": owner,
                        "claimed_ms": now,
                        "calls": 0,
                        "cost": 0.0,
                    }
                    for trace_id in chunk
                ]
                inserted = conn.execute(
                    self._insert(c).values(rows).on_conflict_do_nothing().returning(c.c.trace_id)
                )
                taken.update(inserted.scalars())
                rest = [t for t in chunk if t not in taken]
                if not rest:
                    continue
                retaken = conn.execute(
                    update(c)
                    .where(
                        c.c.experiment_id == key,
                        c.c.scorer == scorer,
                        c.c.trace_id.in_(rest),
                        c.c.state == "claimed",
                        or_(c.c.claimed_ms < now - lease_ms, c.c.owner == owner),
                    )
                    .values(owner=owner, claimed_ms=now, version=version)
                    .returning(c.c.trace_id)
                )
                taken.update(retaken.scalars())
        return [t for t in wanted if t in taken]

    @wrap_db_errors
    def finish(
        self, experiment_id: str, scorer: str, owner: str, results: Iterable[ClaimResult]
    ) -> int:
        """Record how each of this owner's claims ended; returns how many were still its own
        (a claim taken over after its lease ran out is the new owner's to finish)."""
        key = _experiment_key(experiment_id)
        c = s.monitor_claims
        rows = [
            {
                "b_trace": r.trace_id,
                "b_state": r.state,
                "b_calls": r.calls,
                "b_cost": r.cost,
                "b_passed": r.passed,
                "b_error": r.error,
            }
            for r in results
        ]
        if not rows:
            return 0
        statement = (
            update(c)
            .where(
                c.c.experiment_id == key,
                c.c.scorer == scorer,
                c.c.trace_id == bindparam("b_trace"),
                c.c.owner == owner,
                c.c.state == "claimed",
            )
            .values(
                state=bindparam("b_state"),
                finished_ms=_now_ms(),
                calls=bindparam("b_calls"),
                cost=bindparam("b_cost"),
                passed=bindparam("b_passed"),
                error=bindparam("b_error"),
            )
        )
        with self.engine.begin() as conn:  # one executemany: pipelined on PostgreSQL
            return int(conn.execute(statement, rows).rowcount)

    @wrap_db_errors
    def release(
        self, experiment_id: str, scorer: str, owner: str, trace_ids: Sequence[str]
    ) -> None:
        """Give back claims not scored (the provider was down): a later pass takes them again."""
        c = s.monitor_claims
        with self.engine.begin() as conn:
            conn.execute(
                delete(c).where(
                    c.c.experiment_id == _experiment_key(experiment_id),
                    c.c.scorer == scorer,
                    c.c.owner == owner,
                    c.c.state == "claimed",
                    c.c.trace_id.in_(list(trace_ids)),
                )
            )

    @wrap_db_errors
    def finished(self, experiment_id: str, scorer: str, trace_ids: Sequence[str]) -> set[str]:
        """Which of the traces have a finished claim (done or failed) for this scorer."""
        c = s.monitor_claims
        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    select(c.c.trace_id).where(
                        c.c.experiment_id == _experiment_key(experiment_id),
                        c.c.scorer == scorer,
                        c.c.state.in_(FINISHED),
                        c.c.trace_id.in_(list(trace_ids)),
                    )
                ).scalars()
            )

    @wrap_db_errors
    def advance_watermark(self, experiment_id: str, name: str, mark: tuple[int, str]) -> None:
        """Move the scorer's watermark to ``mark`` if that is further on (never back)."""
        sc = s.monitor_scorers
        behind = or_(
            sc.c.watermark_ms.is_(None),
            sc.c.watermark_ms < mark[0],
            and_(sc.c.watermark_ms == mark[0], sc.c.watermark_trace_id < mark[1]),
        )
        with self.engine.begin() as conn:
            conn.execute(
                update(sc)
                .where(
                    sc.c.experiment_id == _experiment_key(experiment_id), sc.c.name == name, behind
                )
                .values(watermark_ms=mark[0], watermark_trace_id=mark[1])
            )

    @wrap_db_errors
    def usage(self, experiment_id: str, scorer: str, since_ms: int) -> dict[str, Any]:
        """What the scorer did since ``since_ms``: claims by state, model calls, cost, and the
        pass rate of the verdicts that are pass/fail."""
        c = s.monitor_claims
        where = [
            c.c.experiment_id == _experiment_key(experiment_id),
            c.c.scorer == scorer,
            func.coalesce(c.c.finished_ms, c.c.claimed_ms) >= since_ms,
        ]
        with self.engine.connect() as conn:
            by_state: dict[str, int] = dict(
                conn.execute(
                    select(c.c.state, func.count()).where(*where).group_by(c.c.state)
                ).all()
            )
            calls, cost, passed, judged = conn.execute(
                select(
                    func.coalesce(func.sum(c.c.calls), 0),
                    func.coalesce(func.sum(c.c.cost), 0.0),
                    func.coalesce(func.sum(c.c.passed), 0.0),
                    func.count(c.c.passed),
                ).where(*where)
            ).one()
        return {
            "sampled": sum(by_state.values()),
            "scored": by_state.get("done", 0),
            "failed": by_state.get("failed", 0),
            "in_progress": by_state.get("claimed", 0),
            "calls": int(calls),
            "cost": float(cost),
            "pass_rate": (float(passed) / judged) if judged else None,
            "judged": int(judged),
        }

    @wrap_db_errors
    def pass_rate_by_hour(
        self, experiment_id: str, scorer: str, since_ms: int
    ) -> list[tuple[int, float, int]]:
        """``(hour start ms, pass rate, verdicts)`` per hour since ``since_ms``, oldest first,
        by the hour the trace arrived (not the hour it was scored: a backfill fills in past hours
        and a monitor catching up does not lump them into the current one)."""
        c = s.monitor_claims
        t = s.traces.c
        hour = t.timestamp_ms - t.timestamp_ms % 3_600_000
        query = (
            select(hour.label("hour"), func.avg(c.c.passed), func.count(c.c.passed))
            .select_from(c.join(s.traces, t.trace_id == c.c.trace_id))
            .where(
                c.c.experiment_id == _experiment_key(experiment_id),
                c.c.scorer == scorer,
                t.timestamp_ms >= since_ms,
                c.c.passed.is_not(None),
            )
            .group_by("hour")
            .order_by("hour")
        )
        with self.engine.connect() as conn:
            return [(int(h), float(rate), int(n)) for h, rate, n in conn.execute(query)]
