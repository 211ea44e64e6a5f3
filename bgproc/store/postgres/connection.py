"""A PostgreSQL store's connection: connecting, transactions, statements (the
shared SQL's ``?`` placeholders turned into psycopg's), wake-ups, the watch, the
database's clock, and its dialect (``timestamptz``, ``bool`` and ``jsonb`` as they
are, heartbeats on the server's clock, rows locked one by one). The store's
concerns (``bgproc.store.sql``) are classes over this one.

One connection in autocommit mode: each store operation that writes is one
explicit transaction (READ COMMITTED), so each statement of a claim pass sees
what the others committed; a read is a statement of its own. A connection lost
raises ``StoreIOError`` once, and the next operation connects again.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ...errors import StoreError, StoreIOError
from ..base import DatabaseProblem, Notifier
from ..sql.connection import Dialect, SQLConnection, operation
from . import network, notifier
from .faults import fault, faults_named, first_line, named
from .schema import migrate

BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 10


def display_name(url: str) -> str:
    """The URL with its password masked, for messages."""
    from .. import shown

    return shown(url)


class GoneWatch:
    """``Store.watch`` for a database on a server: it is not a file, so nothing
    happens to it under the store but being dropped (noticed when connecting again)."""

    def __init__(self, gone: Callable[[], str | None]) -> None:
        self._gone = gone

    def check(self) -> DatabaseProblem | None:
        why = self._gone()
        return None if why is None else DatabaseProblem(why, gone=True)


class PostgresDialect(Dialect):
    """Values as psycopg gives them (aware datetimes in the session's UTC, bools,
    ``jsonb`` as Python values); heartbeats on the server's clock, each daemon row read
    with the seconds since its heartbeat by that clock (``silent_s``); rows locked
    one by one."""

    daemon_select = (
        "SELECT *, EXTRACT(EPOCH FROM clock_timestamp() - heartbeat_at)::float8 AS silent_s FROM daemons"
    )
    server_clock = "clock_timestamp()"
    row_locks = True
    lock_registrations = "LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE"

    def any_of(self, column: str, ids: Sequence[int]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?)", [list(ids)]

    def json(self, value: Any) -> Jsonb:
        return Jsonb(value)


class PostgresConnection(SQLConnection):
    """A bgproc database on a PostgreSQL server, connected. Open with ``open(url)``."""

    dialect: ClassVar[Dialect] = PostgresDialect()
    driver_error: ClassVar[type[Exception]] = psycopg.Error

    def __init__(self, url: str, conn: psycopg.Connection[Any]) -> None:
        self.url = url
        self.name = display_name(url)
        self._conn = conn
        self._closed = False
        self._depth = 0  # transactions this store has open (nested ones are part of the outer)
        self._busy_ms = BUSY_TIMEOUT_MS
        self._gone: str | None = None
        self._listeners: list[notifier.Listener] = []
        # Where a retry's jitter comes from (0 to 1); tests make it steady.
        self.jitter: Callable[[], float] = random.random

    @property
    def target(self) -> str:
        return self.url

    @property
    def path(self) -> Path | None:
        return None

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> Self:
        """Connect and migrate; a database without bgproc's tables is set up only with
        ``create`` (``register``, ``daemon`` and ``demo``), else refused."""
        _check_url(url)
        store = cls(url, _connect(url, display_name(url), opening=True))
        try:
            with faults_named():
                migrate(store._conn, store.name, create=create)
        except BaseException:
            store.close()
            raise
        return store

    @property
    def conn(self) -> psycopg.Connection[Any]:
        """The connection, connected again if it was lost."""
        if self._conn.closed:
            if self._closed:
                raise StoreError(f"the store on {self.name} is closed")
            try:
                self._conn = _connect(self.url, self.name, opening=False)
            except psycopg.Error as exc:
                if not _no_database(exc):
                    raise
                # Said by the watch, so that a daemon gives up on it (see ``GoneWatch``).
                self._gone = f"the database {self.name} was dropped (it does not exist any more)"
                raise fault(StoreIOError, self._gone) from exc
            self._conn.execute(f"SET lock_timeout = {int(self._busy_ms)}")
        return self._conn

    def close(self) -> None:
        self._closed = True
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------
    # Transactions and queries

    def named(self, exc: Exception) -> StoreError:
        assert isinstance(exc, psycopg.Error)
        return named(exc)

    def write(self) -> AbstractContextManager[None]:
        return self.transaction()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction (inside one already: a part of it)."""
        if self._depth:
            yield
            return
        conn = self.conn
        self._depth += 1
        try:
            with conn.transaction():
                yield
        finally:
            self._depth -= 1

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside ``transaction()``: undo only this block's writes if it raises."""
        with self.conn.transaction():
            yield

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(_placeholders(sql), _clean(params))
            return cursor.fetchall()

    def tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(_placeholders(sql), _clean(params)).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(_placeholders(sql), _clean(params)).rowcount

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        (row_id,) = self.values(sql + " RETURNING id", params)
        return int(row_id)

    def update_ids(self, table: str, sets: str, where: str, params: Sequence[Any], keys: Sequence[Any]) -> list[int]:
        changed = self.values(f"UPDATE {table} SET {sets} WHERE {where} RETURNING id", [*params, *keys])
        return sorted(int(v) for v in changed)

    # ------------------------------------------------------------------
    # The store itself

    @operation
    def set_busy_timeout(self, ms: int) -> None:
        self._busy_ms = int(ms)
        self.conn.execute(f"SET lock_timeout = {int(ms)}")

    @operation
    def changes(self) -> Hashable:
        """The server's transaction snapshot: it moves when any transaction is given an
        id or ends (on the whole server: false moves are fine)."""
        self._listeners = [listener for listener in self._listeners if not listener.closed]
        for listener in self._listeners:
            listener.revive()
        return str(self.values("SELECT pg_current_snapshot()::text")[0])

    @operation
    def clock_offset(self, wall: Callable[[], datetime]) -> float:
        """How far the server's clock is ahead of ``wall``, in seconds: the server's time
        against the middle of the round trip that read it."""
        before = wall()
        (server,) = self.values("SELECT clock_timestamp()")
        after = wall()
        return float((server - (before + (after - before) / 2)).total_seconds())

    @property
    def heartbeats_expire(self) -> bool:
        """Yes: a row silent for the expiry by the server's clock is a dead daemon's."""
        return True

    def listen(self, name: str) -> Notifier | None:
        """A connection of its own that LISTENs (see ``notifier``)."""
        try:
            listener = notifier.Listener.start(self.url, self.notify_all)
        except psycopg.Error as exc:
            raise StoreError(f"no wake-ups from {self.name} ({first_line(exc)})") from None
        self._listeners.append(listener)
        return listener

    def watch(self) -> GoneWatch:
        return GoneWatch(lambda: self._gone)

    def notify_all(self) -> None:
        """Wake every daemon listening on this database (best effort: never raises)."""
        try:
            self.conn.execute(f"NOTIFY {notifier.CHANNEL}")
        except (psycopg.Error, StoreError):
            pass

    def _notify(self) -> None:
        self.notify_all()


@functools.lru_cache(maxsize=1024)
def _placeholders(sql: str) -> str:
    """The shared SQL's ``?`` placeholders as psycopg's ``%s`` (a ``%`` of its own doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _clean(params: Sequence[Any]) -> Sequence[Any]:
    """PostgreSQL's text holds no NUL character: one in a log or a message is kept as
    U+FFFD rather than refused."""
    if not any(isinstance(p, str) and "\x00" in p for p in params):
        return params
    return [p.replace("\x00", "\ufffd") if isinstance(p, str) else p for p in params]


def _no_database(exc: psycopg.Error) -> bool:
    """Whether connecting failed because the database does not exist (libpq gives the
    server's words, without their SQLSTATE)."""
    text = str(exc)
    return isinstance(exc, psycopg.errors.InvalidCatalogName) or ('database "' in text and "does not exist" in text)


def _check_url(url: str) -> None:
    """A URL libpq cannot read (a port that is not a number, an unknown parameter) is
    refused in one line, before connecting."""
    from .. import POSTGRES_FORM

    try:
        urlsplit(url).port  # noqa: B018 - what it says of a port that is not a number
        conninfo_to_dict(url)
    except (ValueError, psycopg.Error) as exc:
        why = " ".join(str(exc).split())
        raise StoreError(
            f"cannot read the PostgreSQL URL {display_name(url)} in --db / BGPROC_DB ({why}); "
            f"write it as {POSTGRES_FORM}"
        ) from None


def _connect(url: str, name: str, *, opening: bool) -> psycopg.Connection[Any]:
    try:
        conn = network.connect(url, connect_timeout=CONNECT_TIMEOUT_S, application_name="bgproc")
    except psycopg.Error as exc:
        if not opening:
            raise
        if _no_database(exc):
            raise StoreError(
                f"{name}: the server has no such database; create it (`createdb NAME`) or check --db / BGPROC_DB"
            ) from None
        raise StoreError(
            f"cannot connect to {name} ({first_line(exc)}); check that the server runs, and --db / BGPROC_DB"
        ) from None
    try:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute(f"SET lock_timeout = {BUSY_TIMEOUT_MS}")
    except BaseException:
        conn.close()
        raise
    return conn

