"""File safety: another local user cannot take over a database (its directory,
its -wal and -shm, its owner) or a task's code (its module, package, search
directory, or a module planted beside it)."""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Result, snapshot

from bgproc.errors import StoreError
from bgproc.store import Store

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def refused(result: Result, *words: str) -> str:
    """Non-zero, one `bgproc: error:` line naming the problem, nothing on stdout."""
    assert result.code != 0, result.out
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bgproc: error: "), result.err
    assert result.out == ""
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


@pytest.fixture(autouse=True)
def isolated_imports(tmp_path: Path) -> Iterator[None]:
    """Task modules registered in-process are imported afresh by the next test."""
    saved_path, before = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = saved_path
    for name in set(sys.modules) - before:
        if (getattr(sys.modules[name], "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


# ----------------------------------------------------------------------
# The database


def test_a_new_database_its_wal_and_shm_are_the_owners_only_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "bg.db"
    old = os.umask(0)
    try:
        with Store.open(path) as store:
            store.conn.execute("SELECT count(*) FROM tasks").fetchone()
            assert os.umask(0) == 0  # put back as it was while the store is open
            for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                assert mode(file) == 0o600, file
            assert mode(path.parent) == mode(path.parent.parent) == 0o700
    finally:
        os.umask(old)


@pytest.mark.parametrize("dir_mode", [0o777, 0o1777, 0o770, 0o1733])
def test_a_database_in_a_directory_others_can_write_is_refused(
    tmp_path: Path, cli: Callable[..., Result], db: Path, dir_mode: int
) -> None:
    db.parent.mkdir()
    os.chmod(db.parent, dir_mode)
    line = refused(cli("register", "sample_tasks.activities"), f"directory {db.parent}", "writable by others",
                   f"mode {dir_mode:o}", "give --db a path in a directory only you can write")
    assert (f"chmod go-w {db.parent}" in line) == (not dir_mode & stat.S_ISVTX)  # not for a shared /tmp
    assert os.listdir(db.parent) == []  # nothing written


def test_a_database_made_while_the_directory_was_shared_is_refused_at_the_next_open(tmp_path: Path) -> None:
    path = tmp_path / "d" / "bg.db"
    Store.open(path).close()
    os.chmod(path.parent, 0o1777)
    with pytest.raises(StoreError, match="writable by others"):
        Store.open(path)


@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
@pytest.mark.parametrize("how", ["mode 666", "owned by nobody", "symlink", "fifo"])
@pytest.mark.parametrize("when", ["before it exists", "while it is closed"])
def test_a_planted_wal_or_shm_is_refused(tmp_path: Path, suffix: str, how: str, when: str) -> None:
    if how == "owned by nobody" and os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    path = tmp_path / "bg.db"
    if when == "while it is closed":
        Store.open(path).close()
    before = path.read_bytes() if path.exists() else None
    planted = Path(f"{path}{suffix}")
    if how == "symlink":
        target = tmp_path / "theirs"
        target.write_bytes(b"")
        planted.symlink_to(target)
    elif how == "fifo":
        os.mkfifo(planted, 0o600)
    else:
        planted.write_bytes(b"")
        os.chmod(planted, 0o666 if how == "mode 666" else 0o600)
        if how == "owned by nobody":
            os.chown(planted, NOBODY, NOBODY)
    words = {"mode 666": "writable by others (mode 666); run: chmod 600", "owned by nobody": "belongs to nobody",
             "symlink": "is a symbolic link", "fifo": "is not a regular file"}[how]
    with pytest.raises(StoreError, match=re.escape(f"{planted}, part of database {path}, ") + ".*" + re.escape(words)):
        Store.open(path)
    assert (path.read_bytes() if path.exists() else None) == before  # nothing created or written
    assert planted.is_symlink() or planted.stat().st_size == 0  # nor written through


@needs_root
def test_a_database_owned_by_another_user_is_refused_even_to_root(tmp_path: Path, cli: Callable[..., Result],
                                                                  db: Path) -> None:
    Store.open(db).close()
    os.chown(db, NOBODY, NOBODY)
    before = snapshot(db)
    refused(cli("daemon", "--once"), f"database {db} belongs to nobody", "as root",
            "run bgproc as nobody", "systemd's User=nobody")
    assert snapshot(db) == before


@needs_root
def test_a_database_in_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "theirs"
    directory.mkdir(mode=0o755)
    os.chown(directory, NOBODY, NOBODY)
    with pytest.raises(StoreError, match=f"directory {directory} of database .* belongs to nobody"):
        Store.open(directory / "bg.db")
    assert os.listdir(directory) == []


def test_a_database_others_can_read_is_refused_since_its_wal_would_be_too(tmp_path: Path) -> None:
    path = tmp_path / "bg.db"
    Store.open(path).close()
    os.chmod(path, 0o644)
    with pytest.raises(StoreError, match=f"database {path} is readable by others \\(mode 644\\); run: chmod 600"):
        Store.open(path)


def test_a_symlinked_database_is_checked_and_opened_where_it_really_is(tmp_path: Path) -> None:
    private = tmp_path / "private"
    Store.open(private / "bg.db").close()
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    link = shared / "link.db"
    link.symlink_to(private / "bg.db")
    with Store.open(link) as store:  # the link's directory does not matter: it is not opened again
        assert store.path == private / "bg.db"
    (private / "in-shared.db").symlink_to(shared / "real.db")
    with pytest.raises(StoreError, match=f"directory {shared} of database {shared / 'real.db'}"):
        Store.open(private / "in-shared.db")
    assert not (shared / "real.db").exists()


def test_the_demo_in_a_shared_directory_says_to_choose_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bgproc.cli import run

    shared = tmp_path / "pub"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    monkeypatch.chdir(shared)
    monkeypatch.delenv("BGPROC_DB", raising=False)
    code = run(["demo"])
    out, err = capsys.readouterr()
    refused(Result(code, out, err), f"directory {shared}", "writable by others", "--db")
    assert os.listdir(shared) == []
