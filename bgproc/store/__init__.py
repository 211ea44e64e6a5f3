"""The store: bgproc's database behind one interface (``base.Store``).

``open_store(target)`` opens one from what ``--db`` or ``BGPROC_DB`` says: a file
path or a ``sqlite:///ABSOLUTE/PATH`` URL (the SQLite store, ``sqlite/``), or a
``postgresql://`` URL (the PostgreSQL store, ``postgres/``: the ``postgres`` extra). The
interface and the records it returns are in ``base`` and ``records``; the claim
pass that every store runs inside its own transaction is in ``claiming``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import StoreError
from .base import ClaimedRun, ClaimResult, LogWrite, Notifier, Settled, Store, Watch
from .records import DaemonRecord, RequestRecord, RunRecord, TaskRecord

__all__ = [
    "ClaimResult", "ClaimedRun", "DaemonRecord", "LogWrite", "Notifier", "RequestRecord", "RunRecord", "Settled",
    "Store", "TaskRecord", "Watch", "open_store", "postgres_url", "shown", "sqlite_path",
]

# A URL names its scheme before "://"; anything else is a file path.
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SQLITE_FORM = "sqlite:///ABSOLUTE/PATH"


_POSTGRES = ("postgresql", "postgres")
POSTGRES_FORM = "postgresql://USER@HOST:PORT/DBNAME"
POSTGRES_EXTRA = "pip install 'bgproc[postgres]'"
# A URL's password: after the user name, up to the "@" (libpq's reading: neither "@"
# nor "/" before it), or a password=... parameter.
_NETLOC_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^@/:]*):[^@/]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def shown(target: str | Path) -> str:
    """A database target as messages show it: a URL's password masked (``***``)."""
    text = str(target)
    if _URL.match(text) is None:
        return text
    return _QUERY_PASSWORD.sub(r"\1***", _NETLOC_PASSWORD.sub(r"\1:***@", text))


def open_store(target: str | Path | None = None, *, create: bool = True) -> Store:
    """Open the store at ``target``: a file path or a URL (``sqlite:///ABSOLUTE/PATH``,
    ``postgresql://USER@HOST:PORT/DBNAME``); None: ``BGPROC_DB`` if set, else
    ``bgproc.db`` in the user's data directory. With ``create`` off a missing
    database (or one without bgproc's tables) is refused rather than made. An
    unknown URL is refused in one line (``StoreError``)."""
    url = postgres_url(target)
    if url is not None:
        return _open_postgres(url, create=create)
    from .sqlite import SQLiteStore

    return SQLiteStore.open(sqlite_path(target), create=create)


def postgres_url(target: str | Path | None) -> str | None:
    """The PostgreSQL URL ``target`` (or ``BGPROC_DB``) is, or None."""
    if target is None:
        target = os.environ.get("BGPROC_DB") or None
    if not isinstance(target, str):
        return None
    found = _URL.match(target)
    return target if found is not None and found.group(1).lower() in _POSTGRES else None


def _open_postgres(url: str, *, create: bool) -> Store:
    try:
        from .postgres import PostgresStore
    except ImportError as exc:
        if not (exc.name or "").startswith("psycopg"):
            raise
        raise StoreError(
            f"a PostgreSQL database (--db / BGPROC_DB) needs the store's `postgres` extra: {POSTGRES_EXTRA}"
        ) from None
    return PostgresStore.open(url, create=create)


def sqlite_path(target: str | Path | None) -> Path | None:
    """The database file ``target`` names (None: the default file); ``StoreError`` for
    a URL that is not a SQLite file's."""
    if target is None:
        target = os.environ.get("BGPROC_DB") or None
        if target is None:
            return None
    if isinstance(target, Path):
        return target
    found = _URL.match(target)
    if found is None:
        return Path(target)
    scheme = found.group(1).lower()
    if scheme in _POSTGRES:
        raise StoreError(f"{scheme}://... in --db / BGPROC_DB is a PostgreSQL database, not a SQLite file")
    if scheme != "sqlite":
        raise StoreError(
            f"unknown database URL scheme {scheme!r} in --db / BGPROC_DB; give a file path, "
            f"{_SQLITE_FORM} or {POSTGRES_FORM}"
        )
    return _sqlite_url_path(target)


def _sqlite_url_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc or not parts.path.startswith("/") or parts.query or parts.fragment:
        raise StoreError(f"cannot read the SQLite URL {shown(url)!r} in --db / BGPROC_DB; write it as {_SQLITE_FORM}")
    return Path(unquote(parts.path))
