"""The PostgreSQL store: one database that daemons on several hosts share.

Its concerns, written once for every SQL store (``bgproc.store.sql``: tasks,
requests, runs, daemons, claiming), run over one connection (``connection``:
connecting again after a loss, transactions, the dialect, the server's clock);
the queries that find and lock due work are in ``due``, the schema and its
migrations in ``schema``, the naming of PostgreSQL's errors in ``faults``, the
wake-ups (LISTEN/NOTIFY) in ``notifier``. Every operation of the ``Store``
protocol is one of their methods; the other public methods are the store's own
(the reads and writes of a claim pass, and helpers for tests).
"""

from __future__ import annotations

from ..sql.due import Due
from ..sql.requests import Requests
from .connection import PostgresConnection
from .due import QUERIES


class PostgresStore(Due, Requests, PostgresConnection):
    """A bgproc database on a PostgreSQL server. Open with ``PostgresStore.open(url)``."""

    due_queries = QUERIES
