"""The SQLite store's wake-ups: FIFOs beside the database file.

Each daemon owns a FIFO in ``<database>.wake/``; a command that changes
requests writes one byte to every FIFO there after it commits. A daemon
selects on its FIFO, so it notices a new request within milliseconds and
an idle daemon sleeps without using CPU. A FIFO without a reader belongs to
a daemon that is gone and is removed. Where FIFOs do not exist (Windows),
notify does nothing and daemons fall back to watching ``Store.changes()``.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


def wake_dir(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".wake")


def notify(db_path: Path) -> None:
    """Wake every daemon on this database (best effort: never raises)."""
    directory = wake_dir(db_path)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not name.endswith(".fifo"):
            continue
        fifo = directory / name
        try:
            # Never follow a link, and write to FIFOs only.
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no reader: its daemon is gone
                try:
                    fifo.unlink()
                except OSError:
                    pass
            continue
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                os.write(fd, b"!")
        except OSError:
            pass  # full: the daemon has wake-ups pending already
        finally:
            os.close(fd)


class FifoNotifier:
    """A daemon's end: a FIFO to select on (``Notifier``)."""

    def __init__(self, db_path: Path, path: Path, read: int, keep: int) -> None:
        self._db_path = db_path
        self.path: Path | None = path
        self._read, self._keep = read, keep

    @classmethod
    def listen(cls, db_path: Path, name: str) -> FifoNotifier | None:
        """A FIFO named ``name`` to listen on; None where there are no FIFOs. Raises
        OSError, or PermissionError for a directory others could write into."""
        if not hasattr(os, "mkfifo"):
            return None
        directory = wake_dir(db_path)
        directory.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
            raise PermissionError(
                errno.EPERM, f"{directory} must be a directory of this user that others cannot write"
            )
        path = directory / f"{name}.fifo"
        os.mkfifo(path, 0o600)
        read = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        # Holding a write end ourselves keeps the FIFO from reading as EOF forever.
        keep = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        return cls(db_path, path, read, keep)

    def notify(self) -> None:
        notify(self._db_path)

    def fileno(self) -> int:
        return self._read

    def drain(self) -> None:
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        for fd in (self._read, self._keep):
            if fd >= 0:
                os.close(fd)
        self._read = self._keep = -1
        if self.path is not None:
            try:
                self.path.unlink()
            except OSError:
                pass
            self.path = None
