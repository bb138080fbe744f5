"""The monitor: every started scorer, on the new traces its sampling picks, once.

One pass per scorer (:meth:`Monitor.run_once`; ``run_forever`` repeats it):

1. Read the traces past the scorer's watermark ``(timestamp, trace id)`` that started at least
   ``settle_s`` ago and match its filter, oldest first. A trace still in progress stops the
   pass there (its late spans may change what is judged), unless it has been in progress
   longer than ``stale_s``.
2. Of those its sample picks (a hash of trace id and scorer name), claim the ones no other
   process has (:mod:`tracejudge.store.monitor_sql`), and score them as ``evaluate()`` does:
   the same scorer code, the Feedback written onto the trace, with the scorer's version and
   the monitor named in its metadata. Feedback ids are derived from (scorer, trace), so a
   trace re-scored after its process died mid-write replaces its verdict instead of doubling it.
3. Move the watermark past the longest run of traces that are all settled: not sampled, or
   finished by some process. A trace claimed by a process that dies holds the watermark until
   its lease runs out and another process scores it: a restart neither skips nor repeats.

A scorer whose model is down (timeouts, 5xx, 429, a bad key) gives its claims back, backs off
exponentially and is reported unhealthy; a scorer over its budget (``max_calls_per_hour``,
``max_cost_per_day``) is paused until its window has room again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tracejudge.entities import Feedback, RegisteredScorer, ScorerStatus, Trace
from tracejudge.entities.assessment import AssessmentError, AssessmentSource, AssessmentSourceType
from tracejudge.errors import TraceJudgeError
from tracejudge.evaluation.batches import verdict_id
from tracejudge.evaluation.dataset import logged_expectations
from tracejudge.models import run_sync, track_usage
from tracejudge.monitoring.alerts import AlertSender
from tracejudge.scorer import Scorer
from tracejudge.scorers.base import to_feedbacks
from tracejudge.scorers.definitions import scorer_from_definition
from tracejudge.scorers.registration import is_sampled, monitor_tables
from tracejudge.store import TraceStore
from tracejudge.store.monitor_sql import Candidate, ClaimResult

logger = logging.getLogger("tracejudge.monitoring")

PROVIDER_DOWN = frozenset(
    {
        "ModelUnavailableError",
        "ModelRateLimitError",
        "ModelTimeoutError",
        "ModelAuthenticationError",
        "ModelNotAvailableError",
        "ModelNotConfiguredError",
        "ModelURIError",
    }
)
"""Errors that say nothing about the trace: the claim is given back and the scorer backs off."""
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass
class MonitorOptions:
    settle_s: float = 30.0
    """A trace is scored once it started this long ago (its spans have arrived)."""
    stale_s: float = 3600.0
    """A trace still in progress after this long is scored as it is."""
    lease_s: float = 600.0
    """A claim older than this whose process has not finished it is taken over."""
    batch: int = 200
    """Traces read per scorer per pass."""
    concurrency: int = 8
    """Traces scored at once per scorer."""
    write_every: int = 25
    """Verdicts written per store write while a batch is scored."""
    backoff_s: float = 30.0
    """First backoff after a provider failure; doubles per consecutive failure."""
    max_backoff_s: float = 3600.0
    unhealthy_after: int = 3
    """Consecutive failures after which a scorer is reported unhealthy."""


@dataclass
class ScorerPass:
    """What one pass of one scorer did."""

    name: str
    version: int = 0
    read: int = 0
    sampled: int = 0
    claimed: int = 0
    scored: int = 0
    failed: int = 0
    released: int = 0
    calls: int = 0
    cost: float = 0.0
    skipped: str | None = None
    """Why the scorer did not run: stopped, backing off, over budget, cannot be built."""
    watermark: tuple[int, str] | None = None


@dataclass
class PassReport:
    scorers: list[ScorerPass] = field(default_factory=list)

    @property
    def scored(self) -> int:
        return sum(p.scored for p in self.scorers)


def _now_ms() -> int:
    return int(time.time() * 1000)


def passed(feedbacks: Sequence[Feedback]) -> float | None:
    """1.0 when the scorer's main verdict passes, 0.0 when it fails, None when not pass/fail."""
    for fb in feedbacks:
        if fb.error is not None:
            continue
        value = fb.value
        if isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and value.lower() in ("yes", "no"):
            return 1.0 if value.lower() == "yes" else 0.0
    return None


def over_budget(
    info: RegisteredScorer, last_hour: dict[str, Any] | None, last_day: dict[str, Any] | None
) -> str | None:
    """Why the scorer is over its budget, given its usage in the last hour and day, or None."""
    hour_budget, day_budget = info.max_calls_per_hour, info.max_cost_per_day
    if hour_budget is not None and last_hour is not None and last_hour["calls"] >= hour_budget:
        return f"paused: {last_hour['calls']} model calls in the last hour (budget {info.max_calls_per_hour})"
    if day_budget is not None and last_day is not None and last_day["cost"] >= day_budget:
        return f"paused: ${last_day['cost']:.4f} spent in the last day (budget ${info.max_cost_per_day:g})"
    return None


class Monitor:
    """Runs the started scorers of some experiments (all, by default) on their new traces."""

    def __init__(
        self,
        store: TraceStore,
        experiment_ids: Sequence[str] | None = None,
        options: MonitorOptions | None = None,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.tables = monitor_tables(store)
        self.experiment_ids = list(experiment_ids) if experiment_ids else None
        self.options = options or MonitorOptions()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._scorers: dict[tuple[str, str, int], Scorer] = {}
        self.alerts = AlertSender()
        self.last_report: PassReport | None = None

    def registered(self) -> list[RegisteredScorer]:
        if self.experiment_ids is None:
            return list(self.tables.list_scorers())
        return [s for e in self.experiment_ids for s in self.tables.list_scorers(e)]

    def run_once(self) -> PassReport:
        """One pass over every registered scorer."""
        report = PassReport()
        for info in self.registered():
            report.scorers.append(self.run_scorer(info))
        self.last_report = report
        return report

    def run_forever(self, poll_s: float = 5.0, stop: threading.Event | None = None) -> None:
        """Passes until ``stop`` is set; a pass that fails (store down, or an unexpected
        error) is logged and retried."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                report = self.run_once()
                busy = any(p.read >= self.options.batch for p in report.scorers)
            except TraceJudgeError as exc:
                logger.warning("monitor pass failed: %s", exc)
                busy = False
            except Exception:  # a bug must not end monitoring for every scorer, silently
                logger.exception("monitor pass failed unexpectedly; trying again")
                busy = False
            if not busy:  # a full batch means more is waiting: go on at once
                stop.wait(poll_s)

    # ------------------------------------------------------------ one scorer

    def _scorer(self, info: RegisteredScorer) -> Scorer:
        key = (info.experiment_id, info.name, info.version)
        if key not in self._scorers:
            self._scorers[key] = scorer_from_definition(info.definition)
        return self._scorers[key]

    def budget_pause(self, info: RegisteredScorer, now_ms: int) -> str | None:
        """Why the scorer is over its budget now, or None (reads only the windows it has)."""
        hour = day = None
        if info.max_calls_per_hour is not None:
            hour = self.tables.usage(info.experiment_id, info.name, now_ms - HOUR_MS)
        if info.max_cost_per_day is not None:
            day = self.tables.usage(info.experiment_id, info.name, now_ms - DAY_MS)
        return over_budget(info, hour, day)

    def run_scorer(self, info: RegisteredScorer) -> ScorerPass:
        result = ScorerPass(info.name, info.version, watermark=info.watermark)
        now = _now_ms()
        if info.status != ScorerStatus.STARTED:
            result.skipped = "stopped"
            return result
        if info.backoff_until_ms is not None and info.backoff_until_ms > now:
            result.skipped = f"backing off after {info.failures} failure(s): {info.last_error}"
            return result
        pause = self.budget_pause(info, now)
        if pause is not None:
            logger.info("scorer %s %s", info.name, pause)
            result.skipped = pause
            return result
        try:
            scorer = self._scorer(info)
        except TraceJudgeError as exc:
            self._record_failure(info, f"{type(exc).__name__}: {exc}")
            result.skipped = f"cannot be built: {exc}"
            return result
        candidates = self._settled(
            self.tables.candidates(
                info.experiment_id,
                info.watermark,
                now - int(self.options.settle_s * 1000),
                info.filter_string,
                self.options.batch,
            ),
            now,
        )
        result.read = len(candidates)
        self.score_candidates(info, scorer, candidates, result)
        self._advance(info, candidates, result)
        self._check_alert(info)
        return result

    def score_candidates(
        self,
        info: RegisteredScorer,
        scorer: Scorer,
        candidates: Sequence[Candidate],
        result: ScorerPass | None = None,
    ) -> ScorerPass:
        """Claim the candidates the scorer samples that no process has, and score them."""
        result = result or ScorerPass(info.name, info.version)
        wanted = [
            c.trace_id for c in candidates if is_sampled(c.trace_id, info.name, info.sample_rate)
        ]
        result.sampled = len(wanted)
        mine = self.tables.claim(
            info.experiment_id,
            info.name,
            info.version,
            wanted,
            self.owner,
            int(self.options.lease_s * 1000),
        )
        result.claimed = len(mine)
        if mine:
            run_sync(self._score_claimed(info, scorer, mine, result))
        return result

    def _settled(self, candidates: list[Candidate], now_ms: int) -> list[Candidate]:
        """The leading candidates that may be scored: up to the first trace still running."""
        stale_ms = int(self.options.stale_s * 1000)
        for i, c in enumerate(candidates):
            if c.in_progress and c.timestamp_ms > now_ms - stale_ms:
                return candidates[:i]
        return candidates

    async def _score_claimed(
        self, info: RegisteredScorer, scorer: Scorer, trace_ids: list[str], result: ScorerPass
    ) -> None:
        """Score the claimed traces, ``concurrency`` at a time. Verdicts are written (and their
        claims finished) in chunks of ``write_every`` while the scoring goes on, so the store's
        work overlaps the model's and a verdict does not wait for the whole batch."""
        traces = {t.info.trace_id: t for t in self.store.get_traces(trace_ids)}
        gate = asyncio.Semaphore(self.options.concurrency)
        writer = asyncio.Lock()  # one write at a time (SQLite has one writer anyway)
        pending: list[tuple[ClaimResult, list[Feedback]]] = []
        outcomes: list[ClaimResult] = []
        released: list[str] = []
        failures: list[str] = []
        budget_left = self._calls_left(info)
        taken_over = 0
        writes: list[asyncio.Task[None]] = []

        async def write() -> None:
            nonlocal taken_over
            async with writer:
                chunk = pending[:]
                pending.clear()
                if not chunk:
                    return
                verdicts = [f for _, feedbacks in chunk for f in feedbacks]
                try:  # one batch per chunk (as evaluate() writes)
                    await asyncio.to_thread(self.store.log_assessments, verdicts)
                except TraceJudgeError as exc:  # not written: these claims go back
                    logger.warning(
                        "scorer %s: writing %d verdicts failed: %s", info.name, len(verdicts), exc
                    )
                    released.extend(o.trace_id for o, _ in chunk)
                    failures.append(f"{type(exc).__name__}: {exc}")
                    return
                done = [o for o, _ in chunk]
                finished = await asyncio.to_thread(
                    self.tables.finish, info.experiment_id, info.name, self.owner, done
                )
                taken_over += len(done) - finished
                outcomes.extend(done)

        async def one(trace_id: str) -> None:
            nonlocal budget_left
            trace = traces.get(trace_id)
            async with gate:
                if budget_left is not None and budget_left <= 0:
                    released.append(trace_id)  # over budget mid-pass: the next window takes it
                    return
                if trace is None:  # deleted since it was read
                    pending.append((ClaimResult(trace_id, "failed", error="trace deleted"), []))
                    return
                with track_usage() as meter:
                    feedbacks, down = await self._score_trace(info, scorer, trace)
                calls = meter.calls
                if budget_left is not None:
                    budget_left -= calls
                if down is not None:
                    released.append(trace_id)
                    failures.append(down)
                    return
                errors = [f.error for f in feedbacks if f.error is not None]
                outcome = ClaimResult(
                    trace_id,
                    "failed" if errors and len(errors) == len(feedbacks) else "done",
                    calls=calls,
                    cost=meter.cost_usd,
                    passed=passed(feedbacks),
                    error=f"{errors[0].error_code}: {errors[0].error_message}"[:2000]
                    if errors
                    else None,
                )
                pending.append((outcome, feedbacks))
                if len(pending) >= self.options.write_every and not writer.locked():
                    writes.append(asyncio.create_task(write()))

        await asyncio.gather(*(one(t) for t in trace_ids))
        await asyncio.gather(*writes)
        await write()  # the rest
        if taken_over:
            logger.warning(
                "scorer %s: %d claim(s) were taken over by another monitor before they were "
                "finished here (lease %ss too short for the scorer?)",
                info.name,
                taken_over,
                self.options.lease_s,
            )
        if released:
            await asyncio.to_thread(
                self.tables.release, info.experiment_id, info.name, self.owner, released
            )
        result.scored = sum(1 for o in outcomes if o.state == "done")
        result.failed = sum(1 for o in outcomes if o.state == "failed")
        result.released = len(released)
        result.calls = sum(o.calls for o in outcomes)
        result.cost = sum(o.cost for o in outcomes)
        if failures:
            self._record_failure(info, failures[0])
        elif outcomes and info.failures:
            self.tables.update(
                info.experiment_id, info.name, failures=0, backoff_until_ms=None, last_error=None
            )

    def _calls_left(self, info: RegisteredScorer) -> int | None:
        if info.max_calls_per_hour is None:
            return None
        used = self.tables.usage(info.experiment_id, info.name, _now_ms() - HOUR_MS)["calls"]
        return int(info.max_calls_per_hour) - int(used)

    async def _score_trace(
        self, info: RegisteredScorer, scorer: Scorer, trace: Trace
    ) -> tuple[list[Feedback], str | None]:
        """The scorer's Feedback for one trace, ready to store; or the provider error that
        stopped it (then nothing is stored and the claim is given back)."""
        try:
            value = await scorer.ascore(
                inputs=trace.data.inputs,
                outputs=trace.data.outputs,
                expectations=logged_expectations(trace),
                trace=trace,
            )
            feedbacks = to_feedbacks(scorer, value)
        except Exception as exc:
            if type(exc).__name__ in PROVIDER_DOWN:
                return [], f"{type(exc).__name__}: {exc}"
            source = AssessmentSource(AssessmentSourceType.CODE, scorer.name)
            feedbacks = [
                Feedback(
                    scorer.name, None, source=source, error=AssessmentError.from_exception(exc)
                )
            ]
        down = [
            f.error
            for f in feedbacks
            if f.error is not None and f.error.error_code in PROVIDER_DOWN
        ]
        if down and len(down) == len(feedbacks):
            return [], f"{down[0].error_code}: {down[0].error_message}"
        for i, fb in enumerate(feedbacks):
            fb.trace_id = trace.info.trace_id
            fb.assessment_id = verdict_id(info.experiment_id, info.name, trace.info.trace_id, fb, i)
            fb.metadata = {
                **(fb.metadata or {}),
                "monitor": {"scorer": info.name, "version": info.version, "owner": self.owner},
            }
        return feedbacks, None

    def _record_failure(self, info: RegisteredScorer, error: str) -> None:
        failures = info.failures + 1
        delay = min(self.options.backoff_s * 2 ** (failures - 1), self.options.max_backoff_s)
        logger.warning(
            "scorer %s failed (%d in a row), backing off %.0f s: %s",
            info.name,
            failures,
            delay,
            error,
        )
        self.tables.update(
            info.experiment_id,
            info.name,
            failures=failures,
            backoff_until_ms=_now_ms() + int(delay * 1000),
            last_error=error[:2000],
        )

    def _advance(
        self, info: RegisteredScorer, candidates: list[Candidate], result: ScorerPass
    ) -> None:
        """Move the watermark over the leading traces that need nothing more."""
        sampled = [
            c.trace_id for c in candidates if is_sampled(c.trace_id, info.name, info.sample_rate)
        ]
        finished = (
            self.tables.finished(info.experiment_id, info.name, sampled) if sampled else set()
        )
        wanted = set(sampled)
        mark: tuple[int, str] | None = None
        for c in candidates:
            if c.trace_id in wanted and c.trace_id not in finished:
                break
            mark = (c.timestamp_ms, c.trace_id)
        if mark is not None:
            self.tables.advance_watermark(info.experiment_id, info.name, mark)
            result.watermark = mark

    def _check_alert(self, info: RegisteredScorer) -> None:
        if info.alert_below is None or not info.alert_webhook:
            return
        usage = self.tables.usage(info.experiment_id, info.name, _now_ms() - HOUR_MS)
        rate = usage["pass_rate"]
        if rate is not None and rate < info.alert_below:
            self.alerts.send(info, rate, usage["judged"])
