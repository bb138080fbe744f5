"""What a database failure means for the caller: bad data, a store that is down, or a fault.

The distinction matters to whoever retries: a row the database refuses (a constraint, a value
its column cannot hold) fails the same way every time and must lose only itself; a database
that cannot be reached (down, restarting, locked, out of connections) may take the same write
a moment later, so the trace exporter holds its traces and tries again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import exc as sa

from tracejudge.errors import DataRefusedError, StoreError, StoreUnavailableError, TraceJudgeError

F = TypeVar("F", bound=Callable[..., Any])

_UNREACHABLE = (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError, sa.TimeoutError)


def translate(exc: sa.SQLAlchemyError, what: str) -> StoreError | DataRefusedError:
    """The typed error for a SQLAlchemy failure during ``what``."""
    cause = getattr(exc, "orig", None) or exc
    detail = f"{type(cause).__name__}: {cause}".strip()
    refused = (
        isinstance(exc, (sa.IntegrityError, sa.DataError))
        or _unbindable(exc)
        or isinstance(cause, (OverflowError, UnicodeEncodeError))  # refused by the driver
    )
    if refused:
        return DataRefusedError(f"{what}: the store refused the data ({detail})")
    if type(cause).__name__ == "QueryCanceled":  # PostgreSQL's statement timeout
        return StoreError(
            f"{what}: the query ran past the statement timeout "
            f"(TRACEJUDGE_STATEMENT_TIMEOUT_S) and was stopped ({detail})"
        )
    if isinstance(exc, _UNREACHABLE) or getattr(exc, "connection_invalidated", False):
        return StoreUnavailableError(f"{what}: the store is unavailable ({detail})")
    return StoreError(f"{what} failed: {detail}")


def _unbindable(exc: sa.SQLAlchemyError) -> bool:
    """A value the driver cannot send (a list where a number goes): bad data, not a fault of
    the store, so the caller must not retry it as if the store were down."""
    message = str(getattr(exc, "orig", None) or exc)
    return isinstance(exc, sa.ProgrammingError) and (
        "binding parameter" in message or "cannot adapt" in message
    )


def wrap_db_errors(fn: F) -> F:
    """Database failures surface as :class:`StoreError`; tracejudge's own errors pass through.
    A value no database column can hold (an integer past 64 bits, text with a lone surrogate,
    which the drivers refuse before the database sees it) is the caller's bad input."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TraceJudgeError:
            raise
        except sa.SQLAlchemyError as exc:
            raise translate(exc, fn.__name__) from exc
        except OverflowError as exc:
            raise DataRefusedError(
                f"{fn.__name__}: a number is outside the 64-bit range the store holds ({exc})"
            ) from exc
        except UnicodeEncodeError as exc:
            raise DataRefusedError(
                f"{fn.__name__}: a text holds a lone surrogate, which the store cannot encode "
                f"({exc.reason} at position {exc.start})"
            ) from exc

    return wrapper  # type: ignore[return-value]
