"""The store: bgproc's database behind one interface (``base.Store``).

``open_store(target)`` opens one from what ``--db`` or ``BGPROC_DB`` says: a file
path or a ``sqlite:///ABSOLUTE/PATH`` URL (the SQLite store, ``sqlite/``). The
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
    "Store", "TaskRecord", "Watch", "open_store", "sqlite_path",
]

# A URL names its scheme before "://"; anything else is a file path.
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SQLITE_FORM = "sqlite:///ABSOLUTE/PATH"


def open_store(target: str | Path | None = None, *, create: bool = True) -> Store:
    """Open the store at ``target``: a file path or a URL (``sqlite:///ABSOLUTE/PATH``);
    None: ``BGPROC_DB`` if set, else ``bgproc.db`` in the user's data directory.
    With ``create`` off a missing database is refused rather than made. An unknown
    or unsupported URL is refused in one line (``StoreError``)."""
    from .sqlite import SQLiteStore

    return SQLiteStore.open(sqlite_path(target), create=create)


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
    if scheme in ("postgresql", "postgres"):
        raise StoreError(
            f"PostgreSQL stores are not supported yet ({scheme}://... in --db / BGPROC_DB); "
            f"give a SQLite file path or {_SQLITE_FORM}"
        )
    if scheme != "sqlite":
        raise StoreError(
            f"unknown database URL scheme {scheme!r} in --db / BGPROC_DB; give a file path or {_SQLITE_FORM}"
        )
    return _sqlite_url_path(target)


def _sqlite_url_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc or not parts.path.startswith("/") or parts.query or parts.fragment:
        raise StoreError(f"cannot read the SQLite URL {url!r} in --db / BGPROC_DB; write it as {_SQLITE_FORM}")
    return Path(unquote(parts.path))
