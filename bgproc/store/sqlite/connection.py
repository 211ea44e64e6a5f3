"""A SQLite store's connection: opening the file safely, transactions, statements,
wake-ups, the watch on the file, and its dialect (instants as fixed-width UTC
text, flags as 0/1, JSON as text). The store's concerns (``bgproc.store.sql``)
are classes over this one.

One SQLite file in WAL mode. Each store operation that writes is one
``BEGIN IMMEDIATE`` transaction (the write lock taken at once), so writers never
deadlock on an upgrade and each claim pass sees what the others committed.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import sqlite_utils

from ... import filesafety
from ...errors import StoreError
from ..base import Notifier
from ..sql.connection import Dialect, SQLConnection, operation
from . import notifier
from .faults import faults_named, named
from .filewatch import FileWatch
from .schema import dt, migrate, schema_version, ts

BUSY_TIMEOUT_MS = 30_000


def default_path() -> Path:
    """``bgproc.db`` in the user's data directory."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("bgproc", appauthor=False)) / "bgproc.db"


class SQLiteDialect(Dialect):
    """Instants as fixed-width UTC text (text order is time order), flags as 0/1,
    JSON as text; the write lock holds the whole database, so no row is locked."""

    def last_chars(self, expression: str, count: int) -> str:
        return f"substr({expression}, -{int(count)})"

    def instant(self, value: datetime | None) -> str | None:
        return ts(value)

    def to_instant(self, value: Any) -> datetime | None:
        return dt(value)

    def flag(self, value: bool | None) -> int | None:
        return None if value is None else int(value)

    def json(self, value: Any) -> str:
        return json.dumps(value)

    def to_json(self, value: Any) -> Any:
        return json.loads(value)


class SQLiteConnection(SQLConnection):
    """A bgproc database file, open. Open with ``open(path)``."""

    dialect: ClassVar[Dialect] = SQLiteDialect()
    driver_error: ClassVar[type[Exception]] = sqlite3.Error

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        self.db = sqlite_utils.Database(conn, execute_plugins=False)
        # Where a retry's jitter comes from (0 to 1); tests make it steady.
        self.jitter: Callable[[], float] = random.random
        self._watch: FileWatch | None = None

    @property
    def target(self) -> str:
        return str(self.path)

    @classmethod
    def open(cls, path: str | Path | None = None, *, create: bool = True) -> Self:
        """Open and migrate the database file; create it (owner-only) if missing and
        ``create`` is true, else refuse, so a mistyped path is not silently a new one.
        A database that another user could change is refused (``filesafety``), each time."""
        with filesafety.private_umask():  # the file, and SQLite's -wal and -shm
            path = Path(path).expanduser() if path is not None else default_path()
            return cls._open(path.absolute(), create=create)

    @classmethod
    def _open(cls, path: Path, *, create: bool) -> Self:
        if not create and not path.exists():
            raise StoreError(
                f"no bgproc database at {path}; register a task first (`bgproc register MODULE`) "
                "or check --db / BGPROC_DB"
            )
        path = filesafety.private_database(path, create=create)
        try:
            conn = _connect(path, create=create)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open database {path}: {exc}; is it a bgproc database?") from None
        store = cls(path, conn)
        with faults_named():
            migrate(conn, path)
        return store

    def close(self) -> None:
        self.conn.close()
        if self._watch is not None:
            # Only now: closing it drops this process's locks on the file (see filewatch).
            self._watch.close()
            self._watch = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def watch(self) -> FileWatch:
        """A watch on the database file: whether it is still the one opened (see
        ``filewatch``). Its descriptor stays open until the store is closed."""
        if self._watch is None:
            try:
                self._watch = FileWatch(self.path, os.open(self.path, os.O_RDONLY))
            except OSError as exc:
                raise StoreError(f"cannot open database {self.path}: {exc.strerror}") from None
        return self._watch

    def listen(self, name: str) -> Notifier | None:
        """A FIFO beside the database (see ``notifier``); None without FIFOs."""
        try:
            return notifier.FifoNotifier.listen(self.path, name)
        except OSError as exc:
            raise StoreError(f"no wake-up FIFO ({exc})") from None

    def _notify(self) -> None:
        """Wake the daemons on this database after a change they should see."""
        notifier.notify(self.path)

    def clock_offset(self, wall: Callable[[], datetime]) -> float:
        """A file has no clock of its own: this host's is the database's."""
        return 0.0

    @property
    def heartbeats_expire(self) -> bool:
        """No: a heartbeat is judged by the judge's own beats, or a pid on this host."""
        return False

    @operation
    def set_busy_timeout(self, ms: int) -> None:
        self.conn.execute(f"PRAGMA busy_timeout = {int(ms)}")

    @operation
    def schema_version(self) -> int:
        return schema_version(self.conn)

    @operation
    def changes(self) -> Hashable:
        """``PRAGMA data_version``: moves whenever another connection commits."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def named(self, exc: Exception) -> StoreError:
        assert isinstance(exc, sqlite3.Error)
        return named(exc)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))

    def tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def values(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return [row[0] for row in self.conn.execute(sql, params)]

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(self.conn.execute(sql, params).lastrowid or 0)

    def update_ids(self, table: str, sets: str, where: str, params: Sequence[Any], keys: Sequence[Any]) -> list[int]:
        """The ids first, then the update: the write lock (``immediate``) keeps them the same rows."""
        ids = [int(v) for v in self.values(f"SELECT id FROM {table} WHERE {where} ORDER BY id", keys)]
        self.execute(f"UPDATE {table} SET {sets} WHERE {where}", [*params, *keys])
        return ids

    def write(self) -> AbstractContextManager[None]:
        return self.immediate()

    @contextmanager
    def immediate(self) -> Iterator[None]:
        """A write transaction that takes the write lock at once (``BEGIN IMMEDIATE``);
        inside one already, a part of it."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            # SQLite ends the transaction itself on some errors (a full disk, an I/O
            # error): rolling back again would hide the error that matters.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside ``immediate()``: undo only this block's writes if it raises."""
        with faults_named():
            self.conn.execute("SAVEPOINT claim")
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:  # not ended by SQLite itself (see ``immediate``)
                with faults_named():
                    self.conn.execute("ROLLBACK TO claim")
                    self.conn.execute("RELEASE claim")
            raise
        with faults_named():
            self.conn.execute("RELEASE claim")


def _connect(path: Path, *, create: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False,
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # One statement, one snapshot: another process may be creating the schema now.
    version, ours, others = conn.execute(
        "SELECT (SELECT user_version FROM pragma_user_version),"
        " EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'requests'),"
        " (SELECT group_concat(name, ', ') FROM (SELECT name FROM sqlite_master"
        "  WHERE name NOT LIKE 'sqlite_%' ORDER BY name LIMIT 4))"
    ).fetchone()
    if version == 0 and others:
        # Another program's database: bgproc sets up only a new or empty file.
        conn.close()
        raise StoreError(
            f"{path} is not a bgproc database (it holds another program's tables: {others}); "
            "give --db / BGPROC_DB a new file's path"
        )
    if (version == 0 and not create) or (version > 0 and not ours):
        # An empty file, or another program's database: not ours to set up.
        conn.close()
        raise StoreError(
            f"{path} is not a bgproc database (it has no bgproc tables); "
            + ("register a task first (`bgproc register MODULE`) or " if version == 0 else "")
            + "check --db / BGPROC_DB"
        )
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn
