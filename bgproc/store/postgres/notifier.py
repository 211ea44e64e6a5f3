"""The PostgreSQL store's wake-ups: LISTEN/NOTIFY.

A daemon listens on a connection of its own (autocommit, ``LISTEN``) whose socket
is in its selector: a ``NOTIFY`` from any host (a request made, a cancel asked
for; sent by the store once the change is committed) makes it readable within
milliseconds, and ``drain`` takes the notifications without blocking.
Notifications stay within one database, so one channel name serves them all.

A listening connection that is lost (the server restarted, the network cut)
is connected again at once if it can be, else whenever the store is next asked
for its ``changes()`` (a daemon does at every pass): meanwhile its descriptor is
a pipe that never wakes, and the daemon looks at the database unprompted, as
it does where there are no wake-ups.
"""

from __future__ import annotations

import os
import select
from collections.abc import Callable
from typing import Any, Self

import psycopg

from . import network

CHANNEL = "bgproc_wake"
CONNECT_TIMEOUT_S = 5


class Listener:
    """A daemon's end (``Notifier``): a connection that LISTENs."""

    def __init__(self, url: str, notify: Callable[[], None], conn: psycopg.Connection[Any] | None) -> None:
        self._url = url
        self._notify = notify
        self._conn = conn
        self._quiet: tuple[int, int] | None = None  # the pipe that stands in while the connection is lost
        self.closed = False
        self.generation = 0  # moves whenever the descriptor is a new one (see ``daemon.wakeups``)

    @classmethod
    def start(cls, url: str, notify: Callable[[], None]) -> Self:
        """Listen on a new connection; raises ``psycopg.Error``."""
        return cls(url, notify, _listening(url))

    def notify(self) -> None:
        self._notify()

    def fileno(self) -> int:
        if self._conn is not None:
            return self._conn.pgconn.socket
        if self._quiet is None:
            self._quiet = os.pipe()
        return self._quiet[0]

    def drain(self) -> None:
        if self._conn is None:
            return
        pgconn = self._conn.pgconn
        try:
            # Until nothing more is there: a connection ended by the server reads its
            # last words first, then its end.
            for _ in range(3):
                pgconn.consume_input()
                while pgconn.notifies() is not None:
                    pass
                if not select.select([pgconn.socket], [], [], 0)[0]:
                    return
        except psycopg.Error:
            self._lost()

    def revive(self) -> None:
        """Listen again if the connection was lost; wake once, for what was missed."""
        if self.closed or (self._conn is not None and not self._conn.closed):
            return
        try:
            self._conn = _listening(self._url)
        except psycopg.Error:
            return
        self.generation += 1
        self._notify()

    def _lost(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self.generation += 1
        self.revive()

    def close(self) -> None:
        self.closed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._quiet is not None:
            for fd in self._quiet:
                os.close(fd)
            self._quiet = None


def _listening(url: str) -> psycopg.Connection[Any]:
    conn = network.connect(url, connect_timeout=CONNECT_TIMEOUT_S, application_name="bgproc listen")
    try:
        conn.execute(f"LISTEN {CHANNEL}")
    except BaseException:
        conn.close()
        raise
    return conn
