"""A rich progress bar on a terminal; nothing when output goes to a file or a pipe."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tracejudge import settings

PROGRESS_ENV = settings.PROGRESS.name


def progress_wanted() -> bool:
    forced = settings.PROGRESS.get()
    if forced is not None:
        return forced
    return Console(stderr=True).is_terminal


class RunProgress:
    """One bar per phase (predict, score); ``advance`` is safe to call when disabled."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = progress_wanted() if enabled is None else enabled
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RunProgress:
        if self.enabled:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._progress.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)

    def phase(self, key: str, description: str, total: int) -> None:
        if self._progress is not None:
            self._tasks[key] = self._progress.add_task(description, total=total)

    def advance(self, key: str, amount: int = 1) -> None:
        if self._progress is not None and key in self._tasks:
            self._progress.advance(self._tasks[key], amount)
