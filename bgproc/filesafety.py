"""File safety: no other local user can change the database or a task's code.

Whoever can write a database's directory can replace the database or plant
its ``-wal`` file (SQLite reads a WAL it finds beside the database as part
of it), and so choose the tasks that the database's daemon runs. Whoever
can write a task module, its package or its search directory can change
the code that runs. These checks refuse both, in one line naming the fix.
Called by the store on every open, and by the registry and the worker
before a task module's code runs. Standard library only: the worker uses it.
"""

from __future__ import annotations

import importlib.util
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import RegistryError, StoreError

# Group and other write: a file or directory "writable by others".
OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
# Any group or other access: a database and its -wal/-shm are the owner's alone.
OTHERS_ANY = 0o077
SIDE_FILES = ("-wal", "-shm")


def _posix() -> bool:
    return hasattr(os, "geteuid")


def _user(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


@contextmanager
def private_umask() -> Iterator[None]:
    """Files and directories created meanwhile (the database, and SQLite's -wal and
    -shm) are the owner's only. The umask is the process's: keep the window short."""
    if not _posix():
        yield
        return
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


# ----------------------------------------------------------------------
# The database


def private_database(path: Path, *, create: bool) -> Path:
    """Check the database at ``path`` (creating its directory and the file,
    owner-only, if missing and ``create``); returns its real location, the one
    to open, so that a symbolic link changed later does not matter."""
    if create and not path.parent.exists():
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create directory {path.parent} for database {path}: {exc.strerror}; "
                "choose another path with --db"
            ) from None
    real = Path(os.path.realpath(path))
    if not _posix():
        _create_file(real, create)
        return real
    _check_directory_mode(real)
    info = _lstat(real)
    if info is not None:
        _check_database_file(real, info)
    _check_directory_owner(real)
    for suffix in SIDE_FILES:
        _check_side_file(real, suffix)
    if info is None:
        _create_file(real, create)
    return real


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot open database {path}: {exc.strerror}") from None


def _stat_directory(db: Path) -> os.stat_result:
    try:
        return os.stat(db.parent)
    except OSError as exc:
        raise StoreError(f"cannot open database {db}: {db.parent}: {exc.strerror}; check --db") from None


def _check_directory_mode(db: Path) -> None:
    directory = db.parent
    info = _stat_directory(db)
    mode = info.st_mode
    if mode & OTHERS_WRITE:
        # A sticky directory that others write (/tmp) is shared by design: not to chmod.
        own = info.st_uid == os.geteuid() and not mode & stat.S_ISVTX
        raise StoreError(
            f"directory {directory} of database {db} is writable by others (mode {stat.S_IMODE(mode):o}), "
            "who could replace the database or plant its -wal file; "
            + (f"run: chmod go-w {directory}, or " if own else "")
            + f"give --db a path in a directory only you can write (e.g. --db ~/bgproc/{db.name}; "
            "a missing directory is created, mode 700)"
        )


def _check_directory_owner(db: Path) -> None:
    directory = db.parent
    owner = _stat_directory(db).st_uid
    if owner not in (os.geteuid(), 0):
        raise StoreError(
            f"directory {directory} of database {db} belongs to {_user(owner)}, who could replace the "
            f"database or plant its -wal file; give --db a path in a directory of yours, "
            f"or run bgproc as {_user(owner)}"
        )


def check_database_file(db: Path, info: os.stat_result) -> None:
    """Refuse (StoreError) a database file, ``info`` its stat, that is not a regular
    file of this user's without group or other access (at open, and under a daemon)."""
    if _posix():
        _check_database_file(db, info)


def _check_database_file(db: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise StoreError(f"database {db} is not a regular file; choose another path with --db")
    me = os.geteuid()
    if info.st_uid != me:
        owner = _user(info.st_uid)
        if me == 0:
            raise StoreError(
                f"database {db} belongs to {owner}: as root, bgproc would run the tasks {owner} registers "
                f"as root; run bgproc as {owner} (in a service, systemd's User={owner})"
            )
        raise StoreError(
            f"database {db} belongs to {owner}, not to you ({_user(me)}); run bgproc as {owner}, "
            "or give --db a database of your own"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & OTHERS_ANY:
        which = "writable" if mode & OTHERS_WRITE else "readable"
        raise StoreError(f"database {db} is {which} by others (mode {mode:o}); run: chmod 600 {db}")


def _check_side_file(db: Path, suffix: str) -> None:
    side = db.with_name(db.name + suffix)
    info = _lstat(side)
    if info is None:
        return
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISREG(info.st_mode):
        problem = "is a symbolic link" if stat.S_ISLNK(info.st_mode) else "is not a regular file"
    elif info.st_uid != os.geteuid():
        problem = f"belongs to {_user(info.st_uid)}"
    elif mode & OTHERS_ANY:
        which = "writable" if mode & OTHERS_WRITE else "readable"
        raise StoreError(
            f"{side}, part of database {db}, is {which} by others (mode {mode:o}); run: chmod 600 {side}"
        )
    else:
        return
    raise StoreError(
        f"{side}, part of database {db}, {problem}: SQLite would read it as the database's; "
        f"if the database is yours, remove it (rm {side}), and keep the database in a directory only you can write"
    )


def _create_file(db: Path, create: bool) -> None:
    if not create:
        raise StoreError(f"no bgproc database at {db}; check --db / BGPROC_DB")
    try:
        fd = os.open(db, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        # Created meanwhile by another bgproc: it must pass the same checks.
        info = _lstat(db)
        if info is not None:
            _check_database_file(db, info)
        return
    except OSError as exc:
        raise StoreError(f"cannot create database {db}: {exc.strerror}; choose another path with --db") from None
    try:
        if _posix():
            os.fchmod(fd, 0o600)  # SQLite gives -wal and -shm the database's mode
    finally:
        os.close(fd)


# ----------------------------------------------------------------------
# Task modules


def check_module_file(origin: str, search_path: str) -> None:
    """Refuse a task module that others could change: its file, every package
    directory between it and its search directory, the search directory, and
    the bytecode cache Python would read instead of the source."""
    if not _posix():
        return
    file = Path(origin)
    root = Path(search_path)
    places = [file, file.parent]
    directory = file.parent
    while directory != root and root in directory.parents:
        directory = directory.parent
        places.append(directory)
    places += [root, Path(os.path.realpath(file)).parent]  # a symbolic link to another directory
    if file.suffix == ".py":
        try:
            cached = Path(importlib.util.cache_from_source(str(file)))
            places += [cached.parent, cached]
        except NotImplementedError:
            pass  # no bytecode cache on this interpreter
    for place in dict.fromkeys(places):
        _check_module_place(place, file, root)


def _check_module_place(place: Path, module: Path, root: Path) -> None:
    try:
        mode = os.stat(place).st_mode
    except FileNotFoundError:
        return  # no bytecode cache yet
    except OSError as exc:
        raise RegistryError(f"cannot check task module {module}: {place}: {exc.strerror}") from None
    if not mode & OTHERS_WRITE:
        return
    if stat.S_ISDIR(mode):
        what = "its search directory" if place == root else "a directory of its"
        raise RegistryError(
            f"task module {module}: {what}, {place}, is writable by others (mode {stat.S_IMODE(mode):o}), "
            f"who could plant or change code there; run: chmod go-w {place}, "
            "or move the module to a directory only you can write"
        )
    raise RegistryError(
        f"task module {module}: {place} is writable by others (mode {stat.S_IMODE(mode):o}), "
        f"who could change its code; run: chmod go-w {place}, or move it"
    )
