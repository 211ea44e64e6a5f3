"""The SQLite store: one file, nothing to install or start.

Its concerns are classes over one connection (``connection``): the registered
tasks (``tasks``), process requests (``requests``), runs (``runs``), daemons
(``daemons``) and claiming (``due``); the schema and its migrations are in
``schema``, the naming of SQLite's errors in ``faults``, the wake-ups in
``notifier``, the watch on the file in ``filewatch``. Every operation of the
``Store`` protocol is one of their methods; the other public methods are the
SQLite store's own (the reads and writes of a claim pass, and helpers for tests).
"""

from __future__ import annotations

from .due import Due
from .requests import Requests


class SQLiteStore(Due, Requests):
    """A bgproc database in a SQLite file. Open with ``SQLiteStore.open(path)``."""
