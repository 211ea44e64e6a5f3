"""Whether the database file is still the one a daemon opened (``Store.watch``).

A daemon's connection keeps the file it opened: if the file at its path is
deleted, truncated or replaced, the daemon would go on running work and
recording it where nobody looks, and never serve the database now at that path.
``FileWatch.check`` notices, cheaply enough to run at every pass of the loop:
one ``stat`` of the path (identity, owner, mode, size, modification time), and
a read of the 100-byte SQLite header only when the size or modification time
changed. A file given to another user or opened to others is a problem too, as
``filesafety`` refuses it at open.

The header is read through a descriptor opened once, beside the connection, and
closed only after it: closing any descriptor of the database file drops every
POSIX lock this process holds on it, SQLite's own included (another connection
could then take the database for unused, checkpoint it and delete its WAL).
"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import StoreError
from ...filesafety import check_database_file
from ..base import DatabaseProblem

MAGIC = b"SQLite format 3\x00"
HEADER_SIZE = 100


class FileWatch:
    """The database file as it was when ``fd`` (a descriptor of it, read-only, kept
    open by its owner) was opened."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd
        st = os.fstat(fd)
        self._identity = (st.st_dev, st.st_ino)
        self._seen = (st.st_size, st.st_mtime_ns)

    def close(self) -> None:
        os.close(self._fd)

    def check(self) -> DatabaseProblem | None:
        """What happened to the file since it was opened, or None while the path holds
        the same database file, still as safe as ``filesafety`` wants it at open
        (another user's now, or open to others, is a problem too)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return DatabaseProblem(f"the database file {self.path} was deleted", gone=True)
        except OSError as exc:
            return DatabaseProblem(f"the database file {self.path} cannot be examined ({exc.strerror})", gone=True)
        if (st.st_dev, st.st_ino) != self._identity:
            return DatabaseProblem(
                f"the database file {self.path} was replaced by another file (inode {self._identity[1]} is now "
                f"{st.st_ino})", gone=True,
            )
        try:
            check_database_file(self.path, st)  # as at open: its owner and mode
        except StoreError as exc:
            return DatabaseProblem(str(exc), gone=False)
        if (st.st_size, st.st_mtime_ns) == self._seen:
            return None
        self._seen = (st.st_size, st.st_mtime_ns)
        try:
            header = os.pread(self._fd, HEADER_SIZE, 0)
        except OSError as exc:
            return DatabaseProblem(f"the database file {self.path} cannot be read ({exc.strerror})", gone=True)
        damage = header_damage(header, st.st_size)
        return None if damage is None else DatabaseProblem(f"the database file {self.path} {damage}", gone=True)


def header_damage(header: bytes, size: int) -> str | None:
    """What is wrong with a SQLite file, from its first 100 bytes and its size (a
    whole number of pages), or None when it looks like a database."""
    if len(header) < HEADER_SIZE:
        return f"was truncated ({size} bytes)"
    if not header.startswith(MAGIC):
        return "was overwritten (it has no SQLite header any more)"
    page = int.from_bytes(header[16:18], "big")
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1) or size % page:
        return f"was truncated or overwritten ({size} bytes, not a whole number of {page}-byte pages)"
    return None
