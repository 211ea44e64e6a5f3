"""The PostgreSQL store (see ``store``); needs the ``postgres`` extra (psycopg 3)."""

from __future__ import annotations

from .schema import MIGRATIONS
from .store import PostgresStore

__all__ = ["MIGRATIONS", "PostgresStore"]
