"""The SQLite store: one file, nothing to install or start.

Its concerns, written once for every SQL store (``bgproc.store.sql``: tasks,
requests, runs, daemons, claiming), run over one connection (``connection``:
opening the file safely, ``BEGIN IMMEDIATE`` transactions, the dialect); the
queries for due work are in ``due``, the schema and its migrations in
``schema``, the naming of SQLite's errors in ``faults``, the wake-ups in
``notifier``, the watch on the file in ``filewatch``. Every operation of the
``Store`` protocol is one of their methods; the other public methods are the
store's own (the reads and writes of a claim pass, and helpers for tests).
"""

from __future__ import annotations

from ..sql.due import Due
from ..sql.requests import Requests
from .connection import SQLiteConnection
from .due import QUERIES


class SQLiteStore(Due, Requests, SQLiteConnection):
    """A bgproc database in a SQLite file. Open with ``SQLiteStore.open(path)``."""

    due_queries = QUERIES
