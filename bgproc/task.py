"""The public task API: ``BackgroundTask``, ``ConnectionRequired``, ``Connection``.

A task is a class with one method, ``run(params)``; its parameters are a
dataclass named by the generic argument::

    @dataclass
    class ReportParams:
        month: date

    class MonthlyReport(BackgroundTask[ReportParams], ConnectionRequired):
        "Builds the monthly report."
        timeout = 600

        def run(self, params: ReportParams) -> None:
            self.connection.log.info("building %s", params.month)

This module is imported by the worker, so it stays light: no database, no
command-line libraries.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import os
import threading
import typing
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from .errors import BgprocError, NoAppDatabase

if TYPE_CHECKING:
    import sqlite_utils

DEFAULT_TIMEOUT_S = 3600.0

P = TypeVar("P")


@dataclasses.dataclass(frozen=True)
class NoParams:
    """The parameters of a task declared without any (``BackgroundTask`` bare)."""


class Cancelled(BaseException):  # noqa: N818 - reads as a state, like KeyboardInterrupt
    """Raised inside ``run`` when the core stops the run (timeout, cancel, shutdown).

    It derives from ``BaseException`` so that a task's ``except Exception``
    does not swallow it; ``finally`` blocks still run.
    """


class BackgroundTask(Generic[P]):
    """Base class of every task. Subclass as ``BackgroundTask[MyParams]``.

    Class attributes a task may set:

    - ``name``: the registered name (default: the class name)
    - ``description``: one line (default: the docstring's first line)
    - ``timeout``: how long before the core stops a run (default: one hour):
      a number of seconds, a ``timedelta`` or a DURATION string (``"5m"``, ``"1h30m"``)
    - ``retries``: how many times a run that ends ``error`` or ``timeout`` is
      retried (default 0); ``retry_delay``: how long before the first retry, as
      ``timeout``, doubled at each (default 30 s)
    - ``recover``: start a run again, once, when its daemon died or stopped
      while it ran (default False: at most once)
    - ``isolation``: how a run's process starts: ``"fork"`` (default), forked
      from the daemon's fork server, which imported the task's module once; or
      ``"spawn"``, a fresh interpreter that imports everything anew (for a task
      whose module must be imported afresh at each run, or that cannot be forked)

    A request's ``--timeout``, ``--retries``, ``--retry-delay`` and ``--recover``
    win over these.
    """

    name: ClassVar[str] = "BackgroundTask"
    description: ClassVar[str] = ""
    timeout: ClassVar[float | timedelta | str | None] = None
    retries: ClassVar[int] = 0
    retry_delay: ClassVar[float | timedelta | str | None] = None
    recover: ClassVar[bool] = False
    isolation: ClassVar[str] = "fork"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__
        if "description" not in cls.__dict__:
            doc = (cls.__dict__.get("__doc__") or "").strip()
            cls.description = doc.splitlines()[0].strip() if doc else ""

    def run(self, params: P) -> None:
        """Do the work. Raise to fail the run; return to succeed."""
        raise NotImplementedError(f"{type(self).__name__} must implement run(params)")

    @classmethod
    def params_type(cls) -> type:
        """The parameters dataclass, read from the generic argument."""
        for klass in cls.__mro__:
            for base in klass.__dict__.get("__orig_bases__", ()):
                if typing.get_origin(base) is BackgroundTask:
                    (arg,) = typing.get_args(base)
                    if isinstance(arg, TypeVar):
                        continue
                    if arg is None or arg is type(None):
                        return NoParams
                    return typing.cast(type, arg)
        return NoParams

    @classmethod
    def timeout_seconds(cls) -> float:
        """The task's timeout in seconds (the default when it sets none); a
        ``TimingError`` for one that is not a positive duration of at most 100 years."""
        if cls.timeout is None:
            return DEFAULT_TIMEOUT_S
        from .timing import parse_duration  # here, not at import: the worker does without it

        return parse_duration(cls.timeout, "timeout").total_seconds()

    @classmethod
    def import_path(cls) -> str:
        return f"{cls.__module__}:{cls.__qualname__}"


APP_DB_ENV = "BGPROC_APP_DB"
NO_APP_DB = (
    "connection.db: no application database: the scheduler's database is on a server; "
    f"set {APP_DB_ENV}=/path/to/app.db (an SQLite file) where the daemon runs"
)


def application_db(store_path: Path | None, chosen: str | None) -> str | None:
    """The application database ``connection.db`` opens, as an absolute path:
    ``chosen`` (``BGPROC_APP_DB``) if set, else the scheduler's own database file
    (``store_path``); None where there is neither (a database on a server), so that
    ``connection.db`` is refused rather than some other database."""
    if chosen:
        return os.path.abspath(chosen)
    return None if store_path is None else os.path.abspath(store_path)


class Connection:
    """What the core hands a ``ConnectionRequired`` task before ``run``.

    - ``db``: the application database (``sqlite_utils.Database``), opened
      on first use: ``BGPROC_APP_DB`` if set, else the bgproc database file;
      with a bgproc database on a server and no ``BGPROC_APP_DB``, there is
      none and ``db`` raises ``NoAppDatabase`` saying so
    - ``run_id``, ``request_id``, ``user`` (who made the request)
    - ``log``: a ``logging.Logger`` whose records go to the run's process log
    - ``progress(done, total=None, message=None)``: shown by the monitor
    - ``cancelled``: true once the core has asked the run to stop
    """

    def __init__(
        self,
        *,
        run_id: int,
        request_id: int,
        user: str,
        app_db_path: str,
        log: logging.Logger,
        on_progress: Callable[[float, float | None, str | None], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.request_id = request_id
        self.user = user
        self.app_db_path = app_db_path
        self.log = log
        self._on_progress = on_progress
        self._db: sqlite_utils.Database | None = None
        self._cancelled = threading.Event()

    @property
    def db(self) -> sqlite_utils.Database:
        if not self.app_db_path:  # ``application_db`` found none
            raise NoAppDatabase(NO_APP_DB)
        if self._db is None:
            import sqlite3

            import sqlite_utils

            conn = sqlite3.connect(self.app_db_path, timeout=30.0)
            conn.execute("PRAGMA busy_timeout = 30000")
            self._db = sqlite_utils.Database(conn, execute_plugins=False)
        return self._db

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Report how far the run has come; the monitor shows it as a bar.

        ``done`` and ``total`` are finite numbers, zero or more (``total`` may be
        None: no bar); anything else raises ``TypeError`` or ``ValueError`` here,
        in the task, rather than being shown as 0 or dropped."""
        done_f = _progress_number(done, "done")
        total_f = None if total is None else _progress_number(total, "total")
        if self._on_progress is not None:
            self._on_progress(done_f, total_f, message)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _progress_number(value: object, name: str) -> float:
    """A progress count as a float: a real number (not a bool), finite, not negative."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"connection.progress: {name} must be a number (an int or a float), not {type(value).__name__} {value!r}"
        )
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"connection.progress: {name} must be a finite number, zero or more, not {value!r}")
    return number


class ConnectionRequired:
    """Mixin: the core calls ``set_connection`` before ``run``; use ``self.connection``."""

    _connection: Connection | None = None

    def set_connection(self, connection: Connection) -> None:
        self._connection = connection

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            raise BgprocError(
                f"{type(self).__name__}.connection is only available inside run(), "
                "when bgproc starts the task"
            )
        return self._connection
