"""The monitor's tables on a tracking server: :class:`SqlMonitorStore`'s methods over HTTP.

``register_scorer``, ``list_scorers`` and ``tracejudge monitor`` work unchanged with
``set_tracking_uri("http://…")``: each method here is one call to the server, which runs the
same method on its own database. Claims stay atomic there, so monitors on several machines can
share one server. Every call may be retried: a claim retried after a lost answer finds its own
claim and takes it again (:meth:`SqlMonitorStore.claim`), and the other writes are conditional
updates that a repeat leaves as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from tracejudge.entities import RegisteredScorer
from tracejudge.store.monitor_sql import Candidate, ClaimResult

if TYPE_CHECKING:
    from tracejudge.store.http_store import HttpTraceStore

MONITOR = "/monitor"


class HttpMonitorStore:
    """``store.monitor`` of an :class:`~tracejudge.store.http_store.HttpTraceStore`."""

    def __init__(self, store: HttpTraceStore) -> None:
        self._store = store

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._store._call("POST", MONITOR + path, body)

    # ------------------------------------------------------------ registry

    def register(
        self, experiment_id: str, name: str, definition: dict[str, Any], **settings: Any
    ) -> RegisteredScorer:
        body = {
            "experiment_id": experiment_id,
            "name": name,
            "definition": definition,
            "settings": settings,
        }
        return RegisteredScorer.from_dict(self._post("/scorers/register", body))

    def get(self, experiment_id: str, name: str) -> RegisteredScorer:
        body = {"experiment_id": experiment_id, "name": name}
        return RegisteredScorer.from_dict(self._post("/scorers/get", body))

    def list_scorers(self, experiment_id: str | None = None) -> list[RegisteredScorer]:
        reply = self._post("/scorers/list", {"experiment_id": experiment_id})
        return [RegisteredScorer.from_dict(r) for r in reply["scorers"]]

    def update(self, experiment_id: str, name: str, **changes: Any) -> RegisteredScorer:
        if hasattr(changes.get("status"), "value"):
            changes["status"] = changes["status"].value
        body = {"experiment_id": experiment_id, "name": name, "changes": changes}
        return RegisteredScorer.from_dict(self._post("/scorers/update", body))

    def delete(self, experiment_id: str, name: str) -> None:
        self._post("/scorers/delete", {"experiment_id": experiment_id, "name": name})

    # ------------------------------------------------------------ the monitor's work

    def candidates(
        self,
        experiment_id: str,
        after: tuple[int, str] | None,
        until_ms: int,
        filter_string: str | None,
        limit: int,
    ) -> list[Candidate]:
        body = {
            "experiment_id": experiment_id,
            "after": list(after) if after else None,
            "until_ms": until_ms,
            "filter_string": filter_string,
            "limit": limit,
        }
        return [Candidate(**c) for c in self._post("/candidates", body)["candidates"]]

    def claim(
        self,
        experiment_id: str,
        scorer: str,
        version: int,
        trace_ids: Sequence[str],
        owner: str,
        lease_ms: int,
    ) -> list[str]:
        body = {
            "experiment_id": experiment_id,
            "scorer": scorer,
            "version": version,
            "trace_ids": list(trace_ids),
            "owner": owner,
            "lease_ms": lease_ms,
        }
        return [str(t) for t in self._post("/claim", body)["taken"]]

    def finish(
        self, experiment_id: str, scorer: str, owner: str, results: Iterable[ClaimResult]
    ) -> int:
        body = {
            "experiment_id": experiment_id,
            "scorer": scorer,
            "owner": owner,
            "results": [asdict(r) for r in results],
        }
        return int(self._post("/finish", body)["finished"])

    def release(
        self, experiment_id: str, scorer: str, owner: str, trace_ids: Sequence[str]
    ) -> None:
        body = {
            "experiment_id": experiment_id,
            "scorer": scorer,
            "owner": owner,
            "trace_ids": list(trace_ids),
        }
        self._post("/release", body)

    def finished(self, experiment_id: str, scorer: str, trace_ids: Sequence[str]) -> set[str]:
        body = {"experiment_id": experiment_id, "scorer": scorer, "trace_ids": list(trace_ids)}
        return set(self._post("/finished", body)["finished"])

    def advance_watermark(self, experiment_id: str, name: str, mark: tuple[int, str]) -> None:
        body = {"experiment_id": experiment_id, "name": name, "mark": list(mark)}
        self._post("/watermark", body)

    def usage(self, experiment_id: str, scorer: str, since_ms: int) -> dict[str, Any]:
        body = {"experiment_id": experiment_id, "scorer": scorer, "since_ms": since_ms}
        return dict(self._post("/usage", body))

    def pass_rate_by_hour(
        self, experiment_id: str, scorer: str, since_ms: int
    ) -> list[tuple[int, float, int]]:
        body = {"experiment_id": experiment_id, "scorer": scorer, "since_ms": since_ms}
        return [(int(h), float(r), int(n)) for h, r, n in self._post("/pass-rate", body)["hours"]]

    # ------------------------------------------------------------ figures

    def status(self, experiment_id: str | None = None) -> list[dict[str, Any]]:
        """The server's ``monitor_status`` reports (one call instead of several per scorer)."""
        if experiment_id is None:
            reply = self._store._call("GET", MONITOR + "/status")
        else:
            reply = self._store._call("GET", MONITOR + "/status", experiment_id=experiment_id)
        return list(reply["scorers"])
