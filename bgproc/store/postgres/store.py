"""The PostgreSQL store: one database that daemons on several hosts share.

Its concerns are classes over one connection (``connection``): the registered
tasks (``tasks``), process requests (``requests``), runs (``runs``), daemons
(``daemons``) and claiming (``due``); the schema and its migrations are in
``schema``, the naming of PostgreSQL's errors in ``faults``, the wake-ups
(LISTEN/NOTIFY) in ``notifier``, the conversion of rows in ``rows``. Every
operation of the ``Store`` protocol is one of their methods; the other public
methods are the store's own (the reads and writes of a claim pass, and helpers
for tests).
"""

from __future__ import annotations

from .due import Due
from .requests import Requests


class PostgresStore(Due, Requests):
    """A bgproc database on a PostgreSQL server. Open with ``PostgresStore.open(url)``."""
