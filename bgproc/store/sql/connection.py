"""What the shared SQL needs of a store's connection: a ``Dialect`` (how values go in
and come out, and the few expressions that differ) and the ``SQLConnection`` each
store implements (statements, a write transaction, the id of a row inserted).

Shared SQL is written with ``?`` placeholders; a connection whose driver takes
another style translates them. Instants go in through ``dialect.instant`` and come
out through ``dialect.to_instant``; flags and JSON likewise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar

from ...errors import StoreError


class Dialect:
    """One store's SQL and values where they differ. A subclass says its own; these
    defaults are the plain ones (values as the driver gives them, no row locks)."""

    # The SELECT that reads a daemon's row (a store may add what it knows of it).
    daemon_select: ClassVar[str] = "SELECT * FROM daemons"
    # The database's own time, as an expression; None: heartbeats take the caller's ``now``.
    server_clock: ClassVar[str | None] = None
    # Whether a transaction locks rows one by one (else it holds the whole database).
    row_locks: ClassVar[bool] = False
    # A statement that makes registrations go one at a time, if the transaction does not already.
    lock_registrations: ClassVar[str | None] = None

    def locking(self, select: str, strength: str = "NO KEY UPDATE") -> str:
        """``select`` locking the rows it reads (``FOR UPDATE``...), where rows are locked."""
        return f"{select} FOR {strength}" if self.row_locks else select

    def last_chars(self, expression: str, count: int) -> str:
        """An expression for the last ``count`` characters of a text."""
        return f"right({expression}, {int(count)})"

    def any_of(self, column: str, ids: Sequence[int]) -> tuple[str, list[Any]]:
        """A condition that ``column`` is one of ``ids``, and its parameters."""
        return f"{column} IN ({', '.join('?' for _ in ids)})", list(ids)

    def instant(self, value: datetime | None) -> Any:
        return value

    def to_instant(self, value: Any) -> datetime | None:
        return value  # type: ignore[no-any-return]

    def flag(self, value: bool | None) -> Any:
        return value

    def to_flag(self, value: Any) -> bool | None:
        return None if value is None else bool(value)

    def json(self, value: Any) -> Any:
        return value

    def to_json(self, value: Any) -> Any:
        return value


class SQLConnection:
    """A connection the shared concerns (``tasks``, ``requests``, ``runs``, ``daemons``,
    ``due``) run over. Each store's connection class implements these."""

    dialect: ClassVar[Dialect]
    # The driver's error class: what ``operation`` names (see ``named``).
    driver_error: ClassVar[type[Exception]]
    # Where a retry's jitter comes from (0 to 1); tests make it steady.
    jitter: Callable[[], float]

    def named(self, exc: Exception) -> StoreError:
        """The store's error for one the driver raised."""
        raise NotImplementedError

    def write(self) -> AbstractContextManager[None]:
        """One write transaction (inside one already: a part of it)."""
        raise NotImplementedError

    def savepoint(self) -> AbstractContextManager[None]:
        """Inside ``write()``: undo only this block's writes if it raises."""
        raise NotImplementedError

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; returns how many rows it changed."""
        raise NotImplementedError

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def row(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows as tuples (cheaper than ``rows`` where the columns are known)."""
        raise NotImplementedError

    def values(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The first column of each row."""
        return [row[0] for row in self.tuples(sql, params)]

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an INSERT of one row; returns the row's ``id``."""
        raise NotImplementedError

    def update_ids(self, table: str, sets: str, where: str, params: Sequence[Any], keys: Sequence[Any]) -> list[int]:
        """``UPDATE table SET sets WHERE where`` (with ``params``, then ``keys``) inside
        ``write()``; returns the ids of the rows it changed, in order."""
        raise NotImplementedError

    def _notify(self) -> None:
        """Wake the daemons on this database after a change they should see."""
        raise NotImplementedError


C = TypeVar("C", bound=SQLConnection)
P = ParamSpec("P")
R = TypeVar("R")


def operation(method: Callable[Concatenate[C, P], R]) -> Callable[Concatenate[C, P], R]:
    """A store operation: whatever the driver raises in it comes out named (see
    ``SQLConnection.named``)."""

    @functools.wraps(method)
    def named_method(self: C, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except self.driver_error as exc:
            raise self.named(exc) from exc

    return named_method
