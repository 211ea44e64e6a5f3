"""The SQLite store (see ``store``)."""

from __future__ import annotations

from .schema import MIGRATIONS, dt, ts
from .store import SQLiteStore

__all__ = ["MIGRATIONS", "SQLiteStore", "dt", "ts"]
